"""Test-suite settings: one torch thread, a hypothesis profile sized for a 2-core CI machine, and
SB3's fallback log folder inside pytest's temporary directory."""
import os
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings

try:
    import torch

    torch.set_num_threads(1)
except ImportError:  # pragma: no cover - torch is a hard dependency, but keep core tests independent
    pass

settings.register_profile("ci", max_examples=60, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci")

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """The real data folder beside the project; skips the test where it is absent (a user's clone)."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(autouse=True, scope="session")
def _sb3_logs_in_pytest_temp(tmp_path_factory):
    """An SB3 ``learn()`` without a logger (a test's bare model) makes a log folder: ``$SB3_LOGDIR``,
    else a new ``SB3-<date>`` in the system temporary directory that nothing removes. Point it at
    pytest's temporary directory, which pytest prunes."""
    old = os.environ.get("SB3_LOGDIR")
    os.environ["SB3_LOGDIR"] = str(tmp_path_factory.mktemp("sb3_logs"))
    yield
    if old is None:
        os.environ.pop("SB3_LOGDIR", None)
    else:
        os.environ["SB3_LOGDIR"] = old
