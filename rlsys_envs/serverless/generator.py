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

from rlsys_envs.core import DiurnalProcess, OnOffProcess, PoissonProcess, TraceReplay, load_azure_functions_trace

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
    """Per-minute counts of an Azure Functions 2019 trace file (see ``core.load_azure_functions_trace``)."""
    counts = load_azure_functions_trace(path, function=function)
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
