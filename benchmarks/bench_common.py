"""What the benchmark scripts share: a markdown table of their results, and ``--out FILE.md``.

``--out FILE.md`` (every ``bench_<env>.py`` takes it): what the script prints on stdout also goes
to ``FILE.md`` (:func:`tee_stdout`, written atomically when the script ends), and its figures go
beside it as ``FILE_<name>.png`` (:func:`figure_beside`), linked from the markdown by file name.
``benchmarks/report.py`` runs every script this way and assembles ``docs/results.md``.
"""
from __future__ import annotations

import contextlib
import io
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from rlsys_agents.files import write_atomic  # noqa: E402  (light: no torch)


def table(header, rows) -> str:
    """A markdown table: ``header`` (column names) and ``rows`` (sequences of cells, printed with str)."""
    out = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)


class _Tee(io.TextIOBase):
    def __init__(self, *streams):
        self.streams = streams

    def write(self, s):
        for st in self.streams:
            st.write(s)
        return len(s)

    def flush(self):
        for st in self.streams:
            st.flush()


@contextlib.contextmanager
def tee_stdout(path: str | Path | None):
    """Inside the block, stdout also goes to ``path`` (nothing when None); the file is replaced
    atomically at the end, also when the block fails (then with what was printed so far)."""
    if path is None:
        yield
        return
    buf = io.StringIO()
    old = sys.stdout
    sys.stdout = _Tee(old, buf)
    try:
        yield
    finally:
        sys.stdout = old
        write_atomic(path, buf.getvalue())


def figure_beside(out: str | Path | None, name: str) -> Path | None:
    """``<out without .md>_<name>.png`` beside the ``--out`` file (None without ``--out``)."""
    if out is None:
        return None
    out = Path(out)
    return out.with_name(f"{out.stem}_{name}.png")


def add_out_option(ap, figures: str = "") -> None:
    """``--out FILE.md`` on an argparse parser (``figures``: what goes beside it, for the help)."""
    ap.add_argument("--out", default=None, metavar="FILE.md",
                    help="also write the tables to FILE.md" + (f" ({figures} beside it)" if figures else ""))


def default_figure(args, option: str, name: str) -> None:
    """With ``--out`` and no ``--<option>``, ``args.<option>`` becomes :func:`figure_beside` ``(out, name)``."""
    if args.out and not getattr(args, option):
        setattr(args, option, str(figure_beside(args.out, name)))


def run_sections(sections, only: str, started: float) -> None:
    """Print the tables of the ``(key, make_table)`` sections whose key is in ``only`` (e.g. "abc"),
    each followed by its wall time, then the script's total time since ``started``
    (``time.perf_counter()``)."""
    import time

    for key, make_table in sections:
        if key in only:
            ts = time.perf_counter()
            print(make_table())
            print(f"\n_section ({key}): {time.perf_counter() - ts:.0f} s_\n", flush=True)
    print(f"_total: {time.perf_counter() - started:.0f} s_")
