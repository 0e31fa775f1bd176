"""Seeded workloads for the serverless environment.

* ``paper``: the paper's load test, a closed loop of ``clients`` (500) parallel clients that each
  send a request as soon as the previous one returns (success or error);
* ``poisson``: open-loop Poisson arrivals at ``arrival_rate``;
* ``bursty``: on-off arrivals (an MMPP with two phases), ``2 x`` the rate for 60 s on average,
  then ``0.25 x`` for 120 s on average;
* ``diurnal``: a sinusoidal rate of mean ``arrival_rate`` (amplitude 0.8) whose period is the
  episode length, so one episode is one compressed "day";
* ``trace``: replay of per-minute invocation counts from an Azure Functions 2019
  ``invocations_per_function`` CSV (``trace_path``; no trace ships with rlsys), rescaled so the
  mean rate equals ``arrival_rate`` unless ``trace_scale`` is given;
* ``switching``: the paper's closed loop whose request profile switches from ``profile`` to
  ``switch_profile`` at ``switch_at`` (a fraction of the episode).

All randomness comes from the generator passed to ``Workload.reset`` (the env's ``np_random``).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from rlsys_envs.core import DiurnalProcess, OnOffProcess, PoissonProcess, TraceReplay

from .model import PROFILES, Profile, Workload

WORKLOADS = ("paper", "poisson", "bursty", "diurnal", "trace", "switching")

#: default open-loop rates (requests / s) per profile: about 60 % of what the default cluster
#: serves at the best static limit
DEFAULT_RATES = {"cpu": 50.0, "memory": 60.0, "sleep": 300.0}


def make_profile(name: str, cpu_s: float | None = None, sleep_s: float | None = None,
                 mem_mb: float | None = None, work_cv: float | None = None) -> Profile:
    """A named profile from :data:`PROFILES` with optional overrides of its knobs."""
    base = PROFILES[name]
    return Profile(name=base.name,
                   cpu_s=base.cpu_s if cpu_s is None else float(cpu_s),
                   sleep_s=base.sleep_s if sleep_s is None else float(sleep_s),
                   mem_mb=base.mem_mb if mem_mb is None else float(mem_mb),
                   work_cv=base.work_cv if work_cv is None else float(work_cv))


def load_trace_counts(path: str | Path, function: str | None = None) -> np.ndarray:
    """Per-minute counts of an Azure Functions 2019 trace file: one function's row, or the sum of
    all rows (see :func:`load_azure_2019_functions`)."""
    rows = load_azure_2019_functions(path, functions=None if function is None else [function])
    counts = np.sum(list(rows.values()), axis=0)
    if counts.sum() <= 0:
        raise ValueError(f"{path}: the trace has no invocations")
    return counts


def make_workload(kind: str, profile: Profile, *, clients: int = 500, arrival_rate: float | None = None,
                  episode_seconds: float = 900.0, switch_profile: Profile | None = None,
                  switch_at: float = 0.5, trace_counts: np.ndarray | None = None,
                  trace_scale: float | None = None) -> Workload:
    """Build the :class:`Workload` of ``kind`` (one of :data:`WORKLOADS`)."""
    rate = DEFAULT_RATES.get(profile.name, 50.0) if arrival_rate is None else float(arrival_rate)
    if kind == "paper":
        return Workload(profile, clients=clients)
    if kind == "switching":
        return Workload(profile, clients=clients, switch_at=switch_at * episode_seconds,
                        switch_profile=switch_profile)
    if kind == "poisson":
        return Workload(profile, process=PoissonProcess(rate))
    if kind == "bursty":
        return Workload(profile, process=OnOffProcess(rate_on=2.0 * rate, rate_off=0.25 * rate,
                                                      mean_on=60.0, mean_off=120.0))
    if kind == "diurnal":
        return Workload(profile, process=DiurnalProcess(rate, amplitude=0.8, period=episode_seconds))
    if kind == "trace":
        if trace_counts is None:
            raise ValueError("workload 'trace' needs trace_path (an Azure Functions 2019 invocations CSV)")
        scale = trace_scale if trace_scale is not None else rate * 60.0 / max(float(np.mean(trace_counts)), 1e-9)
        return Workload(profile, process=TraceReplay(trace_counts, interval=60.0, scale=scale))
    raise ValueError(f"workload must be one of {', '.join(WORKLOADS)}; got {kind!r}")


# ------------------------------------------------------------------------------ trace formats

_AZ19_KEYS = ("HashOwner", "HashApp", "HashFunction", "Trigger")
_AZ21_COLUMNS = ("app", "func", "end_timestamp", "duration")


def _open_csv(path: str | Path):
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"trace file not found: {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        line = path.read_bytes()[:err.start].count(b"\n") + 1
        raise ValueError(f"{path}:{line}: not UTF-8 text (byte {err.start}); expected a CSV trace") from None
    import csv
    import io
    return path, csv.reader(io.StringIO(text, newline=""))


def _number(path, lineno, field, value, kind=float):
    try:
        x = kind(value)
    except (TypeError, ValueError):
        raise ValueError(f"{path}:{lineno}: {field} is not a number: {value!r}") from None
    if kind is float and not np.isfinite(x):
        raise ValueError(f"{path}:{lineno}: {field} is not finite: {value!r}")
    if kind is int and abs(x) > 10**12:
        raise ValueError(f"{path}:{lineno}: {field} is out of range: {value!r}")
    return x


def load_azure_2019_functions(path: str | Path, functions=None, start_minute: int = 0,
                              minutes: int | None = None) -> dict[str, np.ndarray]:
    """Per-function per-minute invocation counts of an Azure Functions 2019
    ``invocations_per_function_md.anon.dNN.csv`` file (``HashOwner, HashApp, HashFunction,
    Trigger, 1 .. 1440``; any number of minute columns ``1 .. M``).

    ``functions``: None (every function), an int ``k`` (the ``k`` busiest over the chosen window),
    or a list of ``HashFunction`` values (in that order). The window starts at ``start_minute``
    (0-based) and lasts ``minutes`` (None: to the end of the day). Returns ``{HashFunction: counts}``.
    Malformed content raises ``ValueError`` naming the file and line (and the field)."""
    path, reader = _open_csv(path)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise ValueError(f"{path}:1: empty trace file") from None
    if tuple(header[:4]) != _AZ19_KEYS:
        raise ValueError(f"{path}:1: expected the columns {list(_AZ19_KEYS)} then the minutes 1, 2, ...; "
                         f"got {header[:5]}")
    n_min = len(header) - 4
    if n_min < 1 or header[4:] != [str(i) for i in range(1, n_min + 1)]:
        raise ValueError(f"{path}:1: the minute columns must be 1, 2, ..., {n_min}")
    start = int(start_minute)
    if not 0 <= start < n_min:
        raise ValueError(f"start_minute must be in [0, {n_min - 1}] for {path}, got {start_minute}")
    stop = n_min if minutes is None else start + int(minutes)
    if minutes is not None and not start < stop <= n_min:
        raise ValueError(f"minutes must be in [1, {n_min - start}] for {path} from minute {start}, got {minutes}")
    rows: dict[str, np.ndarray] = {}
    for lineno, row in enumerate(reader, start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise ValueError(f"{path}:{lineno}: expected {len(header)} fields, got {len(row)}")
        name = row[2].strip()
        if not name:
            raise ValueError(f"{path}:{lineno}: empty HashFunction")
        counts = np.array([_number(path, lineno, f"minute {j}", v, int)
                           for j, v in enumerate(row[4:], start=1)], np.int64)
        if np.any(counts < 0):
            bad = int(np.flatnonzero(counts < 0)[0]) + 1
            raise ValueError(f"{path}:{lineno}: minute {bad} has a negative count")
        w = counts[start:stop]
        rows[name] = rows[name] + w if name in rows else w
    if not rows:
        raise ValueError(f"{path}: no row of invocation counts (no data rows)")
    if functions is None:
        return rows
    if isinstance(functions, int) and not isinstance(functions, bool):
        if functions < 1:
            raise ValueError(f"functions must be >= 1, got {functions}")
        busiest = sorted(rows, key=lambda k: (-int(rows[k].sum()), k))[:functions]
        return {k: rows[k] for k in busiest}
    missing = [f for f in functions if f not in rows]
    if missing:
        raise ValueError(f"{path}: no row for function(s) {missing}")
    return {f: rows[f] for f in functions}


def load_azure_2021_invocations(path: str | Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Invocations of an Azure Functions 2021 trace (``AzureFunctionsInvocationTrace2021``: one
    row per invocation, columns ``app, func, end_timestamp, duration`` in seconds). Returns
    ``{"app/func": (arrival times, durations)}`` sorted by arrival, with arrival = end - duration
    and times shifted so the first arrival of the file is at 0. Malformed content raises
    ``ValueError`` naming the file and line."""
    path, reader = _open_csv(path)
    try:
        header = [h.strip() for h in next(reader)]
    except StopIteration:
        raise ValueError(f"{path}:1: empty trace file") from None
    if tuple(header[:4]) != _AZ21_COLUMNS:
        raise ValueError(f"{path}:1: expected the columns {list(_AZ21_COLUMNS)}, got {header}")
    acc: dict[str, list[tuple[float, float]]] = {}
    for lineno, row in enumerate(reader, start=2):
        if not row:
            continue
        if len(row) != len(header):
            raise ValueError(f"{path}:{lineno}: expected {len(header)} fields, got {len(row)}")
        end = _number(path, lineno, "end_timestamp", row[2])
        dur = _number(path, lineno, "duration", row[3])
        if dur < 0:
            raise ValueError(f"{path}:{lineno}: negative duration {row[3]!r}")
        if not row[0].strip() or not row[1].strip():
            raise ValueError(f"{path}:{lineno}: empty app or func")
        acc.setdefault(f"{row[0].strip()}/{row[1].strip()}", []).append((end - dur, dur))
    if not acc:
        raise ValueError(f"{path}: no data rows")
    t0 = min(a for v in acc.values() for a, _ in v)
    out = {}
    for k, v in acc.items():
        arr = np.array(sorted(v))
        out[k] = (arr[:, 0] - t0, arr[:, 1])
    return out


class TimesReplay:
    """Open-loop arrivals at given times (seconds), wrapping around after the last with the
    trace's span; a :mod:`rlsys_envs.core` ``ArrivalProcess``-like object (``reset``, ``arrivals``)."""

    def __init__(self, times, span: float | None = None):
        self.times = np.sort(np.asarray(times, float))
        if self.times.ndim != 1 or len(self.times) == 0:
            raise ValueError("times must be a non-empty 1-D array")
        self.span = float(span) if span is not None else float(self.times[-1] + max(1e-3, np.diff(self.times).mean()
                                                                                    if len(self.times) > 1 else 1.0))

    def reset(self, rng) -> None:
        self.rng = rng

    def arrivals(self, start: float, end: float) -> np.ndarray:
        out = []
        k0, k1 = int(start // self.span), int(end // self.span)
        for k in range(k0, k1 + 1):
            t = self.times + k * self.span
            out.append(t[(t >= start) & (t < end)])
        return np.concatenate(out) if out else np.empty(0)


def profile_from_durations(name: str, durations, cpu_fraction: float = 0.5, mem_mb: float = 1.0) -> Profile:
    """A request profile whose mean work matches a function's invocation durations: ``cpu_fraction``
    of the mean duration is CPU, the rest sleep, and the log-normal shape fits the durations'
    coefficient of variation (``work_cv = sqrt(log(1 + cv^2))``, capped at 2)."""
    d = np.asarray(durations, float)
    mean = float(d.mean()) if len(d) else 0.0
    if mean <= 0:
        mean = 1e-3
    cv = float(d.std() / mean) if len(d) > 1 else 0.0
    shape = min(2.0, float(np.sqrt(np.log1p(cv * cv))))
    med = mean / np.exp(shape * shape / 2)        # the profile's knobs are medians times the mean factor
    return Profile(name=name, cpu_s=cpu_fraction * med, sleep_s=(1 - cpu_fraction) * med, mem_mb=mem_mb,
                   work_cv=shape)
