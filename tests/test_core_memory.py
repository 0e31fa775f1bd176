"""core.memory: the malloc settings that keep large observations cheap, and their opt-out."""
import subprocess
import sys

from rlsys_envs.core.memory import keep_freed_heap_memory


def test_keep_freed_heap_memory_is_idempotent():
    first = keep_freed_heap_memory()
    assert isinstance(first, bool)
    assert keep_freed_heap_memory() is first


def test_opt_out_variable_keeps_malloc_defaults():
    code = "from rlsys_envs.core.memory import keep_freed_heap_memory as k; print(k())"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={"RLSYS_KEEP_MALLOC_DEFAULTS": "1", "PATH": ""}).stdout.strip()
    assert out == "False"
