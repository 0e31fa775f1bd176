"""Atomic file writes: a reader sees the old file or the whole new one, never a part (checkpoints,
results, generated traces)."""
from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path


def write_atomic(path: str | Path, data: str | bytes) -> Path:
    """Write ``data`` to a temporary file beside ``path`` and rename it over ``path``."""
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.encode() if isinstance(data, str) else data)
    return Path(path)


@contextlib.contextmanager
def atomic_path(path: str | Path):
    """A temporary path beside ``path`` for a writer that takes a file name (``model.save``, ...);
    renamed over ``path`` when the block ends without an exception, removed otherwise.

    The temporary name keeps ``path``'s suffix (``.name.XXXX.tmp.zip``), so writers that add a
    missing suffix leave it alone.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=f".tmp{path.suffix}", dir=path.parent)
    os.close(fd)
    try:
        yield Path(tmp)
        os.chmod(tmp, path.stat().st_mode & 0o7777 if path.exists() else 0o644)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


def remove_stale_temporaries(folder: str | Path) -> list[Path]:
    """Remove the temporary files that a killed :func:`write_atomic` / :func:`atomic_path` left in ``folder``."""
    out = []
    for p in Path(folder).glob(".*.tmp*"):
        if p.is_file() and (p.name.endswith(".tmp") or ".tmp." in p.name):
            p.unlink(missing_ok=True)
            out.append(p)
    return out
