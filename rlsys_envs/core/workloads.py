"""Seeded arrival processes: Poisson, on-off, MMPP, diurnal, and replay of invocation traces.

A process is a small configuration object; ``reset(rng)`` binds it to an episode's generator
(always the environment's ``np_random``, never global state) and ``arrivals(start, end)`` returns
the sorted arrival times in ``[start, end)``. Windows must be asked for in order, because the
on-off and MMPP processes carry their hidden phase from one window to the next.
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np


class ArrivalProcess:
    """Base class of the arrival processes."""

    def reset(self, rng: np.random.Generator) -> None:
        self.rng = rng
        self._cursor = 0.0

    def arrivals(self, start: float, end: float) -> np.ndarray:
        raise NotImplementedError

    def rate(self, t: float) -> float:
        """Expected arrival rate (per second) at time ``t`` in the current phase."""
        raise NotImplementedError

    def _window(self, start, end):
        if end < start:
            raise ValueError(f"window end {end} is before start {start}")
        if start < self._cursor - 1e-9:
            raise ValueError(f"windows must be asked in order: start {start} is before {self._cursor}")
        self._cursor = end


def _poisson_times(rng: np.random.Generator, rate: float, start: float, end: float) -> np.ndarray:
    n = rng.poisson(rate * (end - start)) if rate > 0 and end > start else 0
    return np.sort(rng.uniform(start, end, n))


class PoissonProcess(ArrivalProcess):
    """Homogeneous Poisson arrivals at ``rate`` per second."""

    def __init__(self, rate: float):
        if rate < 0:
            raise ValueError(f"rate must be >= 0, got {rate}")
        self.rate_ = float(rate)

    def arrivals(self, start, end):
        self._window(start, end)
        return _poisson_times(self.rng, self.rate_, start, end)

    def rate(self, t):
        return self.rate_


class MMPPProcess(ArrivalProcess):
    """Markov-modulated Poisson process: phase ``i`` emits at ``rates[i]`` and lasts an
    exponential time of mean ``mean_durations[i]``, then jumps to the next phase drawn from
    row ``i`` of ``transition`` (a stochastic matrix with zero diagonal)."""

    def __init__(self, rates, mean_durations, transition=None):
        self.rates = np.asarray(rates, float)
        self.mean_durations = np.asarray(mean_durations, float)
        k = len(self.rates)
        if self.mean_durations.shape != (k,) or np.any(self.mean_durations <= 0) or np.any(self.rates < 0):
            raise ValueError("MMPP needs non-negative rates and positive mean_durations of the same length")
        if transition is None:
            transition = (np.ones((k, k)) - np.eye(k)) / max(k - 1, 1)
        self.transition = np.asarray(transition, float)
        if self.transition.shape != (k, k) or not np.allclose(self.transition.sum(axis=1), 1.0):
            raise ValueError("transition must be a k x k stochastic matrix")

    def reset(self, rng):
        super().reset(rng)
        self.phase = int(rng.integers(len(self.rates)))
        self._phase_end = rng.exponential(self.mean_durations[self.phase])

    def arrivals(self, start, end):
        self._window(start, end)
        out, t = [], start
        while t < end:
            seg_end = min(end, self._phase_end)
            out.append(_poisson_times(self.rng, self.rates[self.phase], t, seg_end))
            t = seg_end
            if t >= self._phase_end:
                self.phase = int(self.rng.choice(len(self.rates), p=self.transition[self.phase]))
                self._phase_end = t + self.rng.exponential(self.mean_durations[self.phase])
        return np.concatenate(out) if out else np.empty(0)

    def rate(self, t):
        return float(self.rates[self.phase])


class OnOffProcess(MMPPProcess):
    """Bursty on-off arrivals: ``rate_on`` during on-periods, ``rate_off`` otherwise."""

    def __init__(self, rate_on: float, rate_off: float = 0.0, mean_on: float = 60.0, mean_off: float = 120.0):
        super().__init__([rate_off, rate_on], [mean_off, mean_on])


class DiurnalProcess(ArrivalProcess):
    """Non-homogeneous Poisson arrivals with a sinusoidal daily rate
    ``mean_rate * (1 + amplitude * sin(2 pi (t / period + phase)))``, sampled by thinning."""

    def __init__(self, mean_rate: float, amplitude: float = 0.5, period: float = 86400.0, phase: float = 0.0):
        if not 0 <= amplitude <= 1:
            raise ValueError(f"amplitude must be in [0, 1], got {amplitude}")
        if mean_rate < 0 or period <= 0:
            raise ValueError("mean_rate must be >= 0 and period > 0")
        self.mean_rate, self.amplitude = float(mean_rate), float(amplitude)
        self.period, self.phase = float(period), float(phase)

    def rate(self, t):
        return self.mean_rate * (1 + self.amplitude * np.sin(2 * np.pi * (t / self.period + self.phase)))

    def arrivals(self, start, end):
        self._window(start, end)
        peak = self.mean_rate * (1 + self.amplitude)
        cand = _poisson_times(self.rng, peak, start, end)
        if len(cand) == 0:
            return cand
        keep = self.rng.uniform(0, peak, len(cand)) < self.rate(cand)
        return cand[keep]


class TraceReplay(ArrivalProcess):
    """Replays per-interval invocation counts (e.g. the per-minute counts of the Azure Functions
    2019 trace): the ``counts[i]`` arrivals of interval ``i`` are spread uniformly at random over
    ``[i * interval, (i + 1) * interval)``; past the end of the trace, it wraps around."""

    def __init__(self, counts, interval: float = 60.0, scale: float = 1.0):
        self.counts = np.asarray(counts, dtype=np.int64)
        if self.counts.ndim != 1 or len(self.counts) == 0 or np.any(self.counts < 0):
            raise ValueError("counts must be a non-empty 1-D array of non-negative integers")
        if interval <= 0 or scale <= 0:
            raise ValueError("interval and scale must be > 0")
        self.interval, self.scale = float(interval), float(scale)

    def rate(self, t):
        return self.scale * self.counts[int(t // self.interval) % len(self.counts)] / self.interval

    def arrivals(self, start, end):
        self._window(start, end)
        out = []
        first, last = int(start // self.interval), int(np.ceil(end / self.interval))
        for i in range(first, last):
            lo, hi = i * self.interval, (i + 1) * self.interval
            n = self.counts[i % len(self.counts)]
            if self.scale != 1.0:
                n = self.rng.poisson(n * self.scale)
            times = self.rng.uniform(lo, hi, n)
            out.append(times[(times >= start) & (times < end)])
        return np.sort(np.concatenate(out)) if out else np.empty(0)


AZURE_KEY_COLUMNS = ("HashOwner", "HashApp", "HashFunction", "Trigger")


def load_azure_functions_trace(path: str | Path, function: str | None = None, minutes: int = 1440) -> np.ndarray:
    """Per-minute invocation counts from an Azure Functions 2019 ``invocations_per_function`` CSV.

    The file has the columns ``HashOwner,HashApp,HashFunction,Trigger,1,2,...,1440``. Returns the
    counts of the row whose ``HashFunction`` is ``function``, or the sum over all rows when
    ``function`` is None. Raises ``ValueError`` naming the line and column of anything malformed.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"trace file not found: {path}")
    with path.open(newline="") as fh:
        reader = csv.reader(fh)
        try:
            header = next(reader)
        except StopIteration:
            raise ValueError(f"{path}: empty trace file") from None
        header = [h.strip() for h in header]
        missing = [c for c in AZURE_KEY_COLUMNS if c not in header]
        if missing:
            raise ValueError(f"{path}: header lacks column(s) {missing}; "
                             f"expected {list(AZURE_KEY_COLUMNS)} then 1..{minutes}")
        expected_minutes = [str(i) for i in range(1, minutes + 1)]
        minute_cols = header[len(AZURE_KEY_COLUMNS):]
        if minute_cols != expected_minutes:
            raise ValueError(f"{path}: expected minute columns 1..{minutes} after {list(AZURE_KEY_COLUMNS)}, "
                             f"got {len(minute_cols)} columns starting {minute_cols[:3]}")
        total = np.zeros(minutes, np.int64)
        found = False
        for lineno, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != len(header):
                raise ValueError(f"{path}:{lineno}: expected {len(header)} fields, got {len(row)}")
            if function is not None and row[2] != function:
                continue
            try:
                counts = np.array([int(v) for v in row[len(AZURE_KEY_COLUMNS):]], np.int64)
            except ValueError:
                bad = next(i for i, v in enumerate(row[len(AZURE_KEY_COLUMNS):]) if not v.strip().lstrip("-").isdigit())
                raise ValueError(f"{path}:{lineno}: minute {bad + 1} is not an integer count: "
                                 f"{row[len(AZURE_KEY_COLUMNS) + bad]!r}") from None
            if np.any(counts < 0):
                raise ValueError(f"{path}:{lineno}: negative invocation count")
            total += counts
            found = True
        if not found:
            what = f"function {function!r}" if function is not None else "any data row"
            raise ValueError(f"{path}: no row for {what}")
    return total
