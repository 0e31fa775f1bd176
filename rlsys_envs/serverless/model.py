"""Knative-style serverless autoscaling: requests, pods on nodes, and what the two simulators share.

Everything here is numpy and plain Python (no gymnasium). The pieces:

* :mod:`.kpa` -- :class:`~rlsys_envs.serverless.kpa.KPAConfig` / ``KPA``, the Knative Pod
  Autoscaler decision rule.
* :class:`Profile` -- per-request work: CPU seconds (processor-shared over the pod's cores, with a
  contention penalty), sleep / I/O seconds (not shared), memory held while in flight.
* :class:`ClusterConfig` -- nodes (a :class:`rlsys_envs.core.ResourcePool` of cpu / mem), the pod
  size, cold starts (log-normal), the pod memory limit.
* :class:`SimulatorBase` -- the pod controller both simulators share (pod slots on the pool, the
  KPA loop, interval statistics), and :func:`make_simulator`.
* :class:`~rlsys_envs.serverless.fluid.FluidSimulator` (:mod:`.fluid`) -- the fast, time-stepped
  model (per-pod request counts as floats, one step per ``dt``); what the environment runs by
  default.
* :class:`~rlsys_envs.serverless.eventsim.EventSimulator` (:mod:`.eventsim`) -- the request-level
  reference on :class:`rlsys_envs.core.EventClock`:
  every request is an object that queues in a pod's proxy, is processor-shared on the CPU, sleeps,
  and completes or fails.

Both simulators share the semantics below, the pod controller and the KPA:

* requests arrive (open loop from an arrival process, or from a closed loop of ``clients``
  that re-issue immediately when a response, success or error, comes back);
* while no pod is routable, or while the activator is in the path (excess burst capacity below
  0), the activator holds them and sends a pod only what it can admit; otherwise each goes to
  the routable pod with the fewest requests (in flight + queued), ties to the lowest slot, and a
  full queue-proxy queue (``queue_depth_factor x containerConcurrency``) answers 503;
* a pod admits queued requests while its in-flight count is below ``containerConcurrency``
  (0 = unlimited); the rest wait FIFO in the pod's queue-proxy; a request waiting past
  ``request_timeout`` fails;
* a request holds ``mem_mb`` while in flight; admitting one more request past the pod's memory
  limit OOM-kills the container: every in-flight and queued request fails, and the container
  restarts after CrashLoopBackOff plus a container start;
* routable pods belong to the revision receiving traffic; a limit change is a new revision
  (:meth:`SimulatorBase.set_limit`) with its own KPA; the old revision's pods keep serving what
  they hold and follow their own KPA down (:meth:`SimulatorBase._kpa_tick`);
* the activator holds at most ``activator_queue_depth`` requests (Knative's per-revision
  ``breakerQueueDepth``, 10000) and answers 503 beyond;
* the KPA target per pod is ``containerConcurrency * target_utilisation`` (``100 * 0.7`` when the
  limit is 0); the serving revision's KPA sees its pods' concurrency plus the activator's
  requests, an old revision's KPA its own pods'.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from rlsys_envs.core import ResourcePool
from rlsys_envs.core.validation import check_float, check_int, set_checked

from .kpa import KPA, KPAConfig


# ----------------------------------------------------------------------------- request profile


@dataclass(frozen=True)
class Profile:
    """Work of one request: CPU seconds (shared), sleep seconds (not shared), memory in flight.

    Each request's CPU and sleep are the nominal values times an independent log-normal factor
    of median 1 and shape ``work_cv`` (0 = deterministic)."""

    name: str = "custom"
    cpu_s: float = 0.1
    sleep_s: float = 0.0
    mem_mb: float = 1.0
    work_cv: float = 0.1

    def mean_factor(self) -> float:
        return math.exp(self.work_cv ** 2 / 2)


#: the paper's three request profiles (memory, CPU and sleep knobs of the test function)
PROFILES: dict[str, Profile] = {
    "cpu": Profile("cpu", cpu_s=0.1, sleep_s=0.0, mem_mb=1.0),
    "memory": Profile("memory", cpu_s=0.08, sleep_s=0.2, mem_mb=10.0),
    "sleep": Profile("sleep", cpu_s=0.01, sleep_s=1.0, mem_mb=0.5),
}


@dataclass(frozen=True)
class ClusterConfig:
    """Nodes and pods. The default (3 nodes of 3.5 allocatable cores) holds 9 one-core pods."""

    n_nodes: int = 3
    node_cpu: float = 3.5
    node_mem_mb: float = 12288.0
    pod_cpu: float = 1.0            # cores requested = the pod's CPU limit
    pod_mem_mb: float = 512.0       # request = limit
    pod_base_mem_mb: float = 62.0   # runtime footprint, before requests
    cold_start_median: float = 1.5  # seconds: container start + init + readiness (log-normal median)
    cold_start_sigma: float = 0.3   # log-normal shape
    image_mb: float = 100.0         # container image size, pulled once per node
    pull_mb_per_s: float = 50.0     # registry -> node pull bandwidth
    contention: float = 0.01        # CPU efficiency loss per request over the pod's cores
    error_latency: float = 0.05     # seconds before a failed request's client sees the error
    initial_pods: int = 1
    restart_backoff: float = 10.0   # CrashLoopBackOff: first restart delay after an OOM kill (0: none)
    restart_backoff_max: float = 300.0   # the doubling back-off's cap
    backoff_reset: float = 600.0    # a container up this long without a crash resets its back-off
    queue_depth_factor: float = 10.0     # queue-proxy queue = factor x containerConcurrency; 503 beyond
    request_timeout: float = 300.0       # revision-timeout-seconds: a request still waiting after it fails
    target_burst_capacity: float = 200.0  # activator in the path while excess burst capacity < 0; -1: always
    activator_queue_depth: float = 10000.0  # requests the activator holds per revision; 503 beyond (breakerQueueDepth)

    def __post_init__(self):
        """Validate every field (a ``ValueError`` names it as ``cluster.<field>``)."""
        set_checked(self, "n_nodes", check_int("cluster.n_nodes", self.n_nodes, 1, 1000))
        set_checked(self, "initial_pods", check_int("cluster.initial_pods", self.initial_pods, 0, 100_000))
        for name, low, high, low_inclusive in (("node_cpu", 0.0, 1e4, False), ("node_mem_mb", 0.0, 1e8, False),
                                               ("pod_cpu", 0.0, 1e3, False), ("pod_mem_mb", 0.0, 1e7, False),
                                               ("pod_base_mem_mb", 0.0, 1e7, True),
                                               ("cold_start_median", 0.0, 600.0, False),
                                               ("cold_start_sigma", 0.0, 3.0, True), ("contention", 0.0, 10.0, True),
                                               ("error_latency", 0.0, 60.0, True), ("image_mb", 0.0, 1e6, True),
                                               ("pull_mb_per_s", 0.0, 1e6, False),
                                               ("restart_backoff", 0.0, 3600.0, True),
                                               ("restart_backoff_max", 0.0, 86400.0, True),
                                               ("backoff_reset", 0.0, 86400.0, True),
                                               ("queue_depth_factor", 0.0, 1e6, True),
                                               ("request_timeout", 0.0, 86400.0, False),
                                               ("target_burst_capacity", -1.0, 1e9, True),
                                               ("activator_queue_depth", 0.0, 1e9, True)):
            set_checked(self, name, check_float(f"cluster.{name}", getattr(self, name), low, high,
                                                low_inclusive=low_inclusive))
        if self.pod_base_mem_mb >= self.pod_mem_mb:
            raise ValueError(f"cluster.pod_base_mem_mb must be below cluster.pod_mem_mb ({self.pod_mem_mb}), "
                             f"got {self.pod_base_mem_mb}")
        if self.restart_backoff_max < self.restart_backoff:
            raise ValueError(f"cluster.restart_backoff_max must be >= cluster.restart_backoff "
                             f"({self.restart_backoff}), got {self.restart_backoff_max}")
        if self.max_pods() < 1:
            raise ValueError(f"cluster.n_nodes / node_cpu / node_mem_mb: the cluster cannot hold a single pod of "
                             f"pod_cpu={self.pod_cpu}, pod_mem_mb={self.pod_mem_mb}")

    def max_pods(self) -> int:
        per_node = min(int(self.node_cpu // self.pod_cpu + 1e-9), int(self.node_mem_mb // self.pod_mem_mb + 1e-9))
        return max(0, per_node) * self.n_nodes

    def pull_time(self) -> float:
        """Seconds to pull the image onto a node that does not hold it yet."""
        return self.image_mb / self.pull_mb_per_s

    def mem_cap(self, profile: Profile) -> float:
        """Requests a pod can hold in flight before an OOM kill (inf when requests need no memory)."""
        if profile.mem_mb <= 0:
            return float("inf")
        return math.floor((self.pod_mem_mb - self.pod_base_mem_mb) / profile.mem_mb + 1e-9)


def per_request_rate(n, cores: float, contention: float):
    """CPU seconds per second each of ``n`` processor-shared requests receives (vectorised)."""
    n = np.asarray(n, dtype=float)
    nn = np.maximum(n, 1e-12)
    return np.minimum(1.0, cores / nn) / (1.0 + contention * np.maximum(0.0, n - cores))


# --------------------------------------------------------------------------- latency histogram

_H_LO, _H_HI, _H_BINS = -3.0, 4.0, 2800          # log10 seconds: 1 ms .. 10^4 s
_H_EDGES = np.logspace(_H_LO, _H_HI, _H_BINS + 1)
_H_CENTRES = np.concatenate(([_H_EDGES[0]], np.sqrt(_H_EDGES[:-1] * _H_EDGES[1:]), [_H_EDGES[-1]]))


class LatencyHistogram:
    """Weighted log-binned histogram of latencies (1 ms .. 3 h, 0.6 % wide bins)."""

    def __init__(self):
        self.counts = np.zeros(_H_BINS + 2)

    def add(self, lat, weight=None) -> None:
        lat = np.atleast_1d(np.asarray(lat, float))
        idx = np.clip(((np.log10(np.maximum(lat, 1e-12)) - _H_LO) / (_H_HI - _H_LO) * _H_BINS).astype(np.int64) + 1,
                      0, _H_BINS + 1)
        w = None if weight is None else np.atleast_1d(np.asarray(weight, float)).ravel()
        self.counts += np.bincount(idx.ravel(), weights=w, minlength=_H_BINS + 2)

    def merge(self, other: "LatencyHistogram") -> None:
        self.counts += other.counts

    @property
    def total(self) -> float:
        return float(self.counts.sum())

    def mean_of(self, f) -> float:
        """Mean of ``f(latency)`` over the recorded latencies (each bin at its geometric centre;
        below 1 ms at 1 ms, above the top edge at the top edge); 0 when empty."""
        tot = self.counts.sum()
        if tot <= 0:
            return 0.0
        return float(np.dot(self.counts, f(_H_CENTRES)) / tot)

    def fraction_above(self, x: float) -> float:
        """Fraction of the recorded latencies above ``x`` seconds (0 when empty)."""
        return self.mean_of(lambda lat: (lat > x).astype(float))

    def quantile(self, q: float) -> float:
        tot = self.counts.sum()
        if tot <= 0:
            return 0.0
        cum = np.cumsum(self.counts)
        k = int(np.searchsorted(cum, q * tot))
        k = min(max(k, 0), _H_BINS + 1)
        if k == 0:
            return float(_H_EDGES[0])
        if k == _H_BINS + 1:
            return float(_H_EDGES[-1])
        prev = cum[k - 1]
        frac = (q * tot - prev) / max(self.counts[k], 1e-300)
        lo, hi = np.log10(_H_EDGES[k - 1]), np.log10(_H_EDGES[k])
        return float(10 ** (lo + min(max(frac, 0.0), 1.0) * (hi - lo)))


# ---------------------------------------------------------------------------------- workloads


@dataclass
class Workload:
    """What drives the simulator: a closed loop of ``clients`` or an open-loop arrival process,
    and the request profile, which may switch to ``switch_profile`` at ``switch_at`` seconds."""

    profile: Profile
    clients: int = 0                 # > 0: closed loop (zero think time)
    process: object | None = None    # core.ArrivalProcess for open loop
    switch_at: float | None = None
    switch_profile: Profile | None = None

    def profile_at(self, t: float) -> Profile:
        if self.switch_at is not None and t >= self.switch_at and self.switch_profile is not None:
            return self.switch_profile
        return self.profile

    def reset(self, rng: np.random.Generator) -> None:
        if self.process is not None:
            self.process.reset(rng)


@dataclass
class IntervalStats:
    """What happened in one simulated interval (one agent decision)."""

    duration: float = 0.0
    arrived: float = 0.0
    completed: float = 0.0
    failed: float = 0.0
    pod_seconds: float = 0.0
    cold_starts: int = 0
    oom_kills: int = 0
    ready_mean: float = 0.0
    cpu_util: float = 0.0
    mem_util: float = 0.0
    hist: LatencyHistogram = field(default_factory=LatencyHistogram)

    @property
    def throughput(self) -> float:
        return self.completed / self.duration if self.duration > 0 else 0.0

    @property
    def error_rate(self) -> float:
        done = self.completed + self.failed
        return self.failed / done if done > 0 else 0.0

    def latency(self, q: float) -> float:
        return self.hist.quantile(q)


# --------------------------------------------------------------------------------- SLO reward


@dataclass(frozen=True)
class SLOReward:
    """The ``slo`` reward of one interval, in units of ``throughput_ref`` requests per second.

    A completed request earns 1, less ``w_latency`` times its capped overshoot of the SLO and
    ``w_tail`` times the interval's mean capped p95 / p99 overshoot; a failed request costs
    ``w_error``; pods cost ``w_cost`` per pod-second over the pod capacity. Validated so that a
    completed request is never worth less than 0 (``(w_latency + w_tail) * latency_cap <= 1``)."""

    throughput_ref: float = 100.0
    slo_latency: float = 5.0
    w_latency: float = 0.5
    w_tail: float = 0.5
    latency_cap: float = 1.0
    w_error: float = 2.0
    w_cost: float = 0.1

    def __post_init__(self):
        set_checked(self, "throughput_ref", check_float("throughput_ref", self.throughput_ref, 0.0, 1e9,
                                                        low_inclusive=False))
        set_checked(self, "slo_latency", check_float("slo_latency", self.slo_latency, 0.0, 1e6, low_inclusive=False))
        for name in ("w_latency", "w_tail", "latency_cap", "w_error", "w_cost"):
            set_checked(self, name, check_float(name, getattr(self, name), 0.0, 1e6))
        if (self.w_latency + self.w_tail) * self.latency_cap > 1.0 + 1e-12:
            raise ValueError(f"(w_latency + w_tail) * latency_cap must be <= 1 (a completed request is never worth "
                             f"less than 0, so never less than a failed one, -w_error); "
                             f"got ({self.w_latency} + {self.w_tail}) * {self.latency_cap}")

    def terms(self, st: "IntervalStats", pod_capacity: int) -> dict[str, float]:
        """The five signed terms (``throughput``, ``latency``, ``tail``, ``error``, ``cost``); they
        sum to the reward."""
        T, ref = st.duration, self.throughput_ref
        slo, cap = self.slo_latency, self.latency_cap
        over = st.hist.mean_of(lambda lat: np.minimum(np.maximum(0.0, lat / slo - 1.0), cap))
        tail = 0.0
        if st.completed > 0:
            tail = sum(min(max(0.0, st.latency(q) / slo - 1.0), cap) for q in (0.95, 0.99)) / 2.0
        x = st.completed / T / ref
        return {"throughput": x,
                "latency": -self.w_latency * x * over,
                "tail": -self.w_tail * x * tail,
                "error": -self.w_error * st.failed / T / ref,
                "cost": -self.w_cost * st.pod_seconds / (T * pod_capacity)}


def merge_stats(parts: list["IntervalStats"]) -> "IntervalStats":
    """One interval's statistics from consecutive pieces of it."""
    out = IntervalStats()
    for p in parts:
        out.duration += p.duration
        out.arrived += p.arrived
        out.completed += p.completed
        out.failed += p.failed
        out.pod_seconds += p.pod_seconds
        out.cold_starts += p.cold_starts
        out.oom_kills += p.oom_kills
        out.ready_mean += p.ready_mean * p.duration
        out.cpu_util += p.cpu_util * p.duration
        out.mem_util += p.mem_util * p.duration
        out.hist.merge(p.hist)
    if out.duration > 0:
        out.ready_mean /= out.duration
        out.cpu_util /= out.duration
        out.mem_util /= out.duration
    return out


# ------------------------------------------------------------------------------ pod controller

FREE, STARTING, READY, DRAINING = 0, 1, 2, 3


class SimulatorBase:
    """State and logic both simulators share: pod slots on a ResourcePool, the KPA loop, stats."""

    rollout = True

    def __init__(self, cluster: ClusterConfig, kpa: KPAConfig):
        self.cluster = cluster
        self.kpa_cfg = kpa
        self.n_slots = cluster.max_pods()
        if self.n_slots < 1:
            raise ValueError("the cluster cannot hold a single pod: raise n_nodes, node_cpu or node_mem_mb")

    # ---- lifecycle
    def reset(self, rng: np.random.Generator, workload: Workload, limit: int, pool: ResourcePool | None = None,
              key: object = None) -> None:
        """Start an episode. ``pool`` (with this service's ``key``): a node pool shared with other
        services, whose pods then compete for the nodes; default a pool of this service's own."""
        c = self.cluster
        self._pkey = key
        self.rng = rng
        self.workload = workload
        workload.reset(rng)
        self.limit = int(limit)
        self.now = 0.0
        # one autoscaler per live revision (Knative: a PodAutoscaler per revision), with its limit
        self.kpas: dict[int, KPA] = {0: KPA(self.kpa_cfg)}
        self.rev_limit: dict[int, int] = {0: self.limit}
        self.pool = pool if pool is not None else ResourcePool(
            np.tile([c.node_cpu, c.node_mem_mb], (c.n_nodes, 1)).astype(float), ("cpu", "mem"))
        S = self.n_slots
        self.state = np.zeros(S, np.int8)
        self.ready_at = np.zeros(S)
        self.down_until = np.zeros(S)
        self.unscheduled = 0
        self.desired = c.initial_pods
        self.total = dict(arrived=0.0, completed=0.0, failed=0.0, pod_seconds=0.0, cold_starts=0, oom_kills=0,
                          in_system_s=0.0, latency_s=0.0)
        self.crashes = np.zeros(S, np.int64)         # CrashLoopBackOff count per pod
        self.last_crash = np.full(S, -np.inf)
        self.pod_node = np.full(S, -1, np.int64)
        self.pod_rev = np.zeros(S, np.int64)         # the revision each pod runs
        self.pod_limit = np.zeros(S)                 # its containerConcurrency (0 = none)
        self.rev = self.serving_rev = 0              # the latest revision, the one receiving traffic
        self.started = False
        self.act_in_path = True                      # the activator in the request path
        self.image_at = np.full(c.n_nodes, np.inf)   # when each node holds the image (pulled once per node)
        self.hist_total = LatencyHistogram()
        self._bucket_acc = 0.0                       # this bucket's integral of the in-system count
        self._slot_acc = [0.0] * S                   # ... of each pod's requests (for the old revisions)
        self._rev_acc_left: dict[int, float] = {}    # ... of pods released during the bucket, per revision
        self.activator_503 = 0.0                     # requests the activator's full queue answered 503
        self._next_bucket = self.kpa_cfg.bucket
        self._next_tick = self.kpa_cfg.tick
        self._reset_requests()
        for _ in range(c.initial_pods):     # initial scale: warm pods, ready at t = 0
            s = self._place_pod()
            if s is not None:
                self.state[s] = READY
                self.ready_at[s] = 0.0
                self.image_at[self.pod_node[s]] = 0.0
        self.desired = c.initial_pods

    def _reset_requests(self) -> None:
        raise NotImplementedError

    @property
    def kpa(self) -> KPA:
        """The autoscaler of the revision receiving traffic."""
        return self.kpas[self.serving_rev]

    def _record_buckets(self) -> None:
        """Close a metric bucket: each old (draining) revision's autoscaler records the mean
        concurrency of its own pods over the bucket, the serving revision's the rest (its pods,
        the activator's requests)."""
        b = self.kpa_cfg.bucket
        total = self._bucket_acc
        if len(self.kpas) > 1:
            per = dict(self._rev_acc_left)
            revs = self.pod_rev.tolist()
            for s, a in enumerate(self._slot_acc):
                if a:
                    per[revs[s]] = per.get(revs[s], 0.0) + a
            for r, kpa in self.kpas.items():
                if r < self.serving_rev:
                    v = per.get(r, 0.0)
                    kpa.record(v / b)
                    total -= v
        self.kpas[self.serving_rev].record(max(0.0, total) / b)
        self._bucket_acc = 0.0
        self._slot_acc = [0.0] * self.n_slots
        self._rev_acc_left = {}

    def _draw_start(self) -> float:
        """Container start (start + init + readiness): log-normal around ``cold_start_median``."""
        c = self.cluster
        return float(c.cold_start_median * math.exp(c.cold_start_sigma * self.rng.standard_normal()))

    def _crash(self, s: int) -> None:
        """OOM kill of pod ``s``'s container: it restarts after the kubelet's CrashLoopBackOff
        (``restart_backoff`` doubling per crash up to ``restart_backoff_max``; the count resets
        after ``backoff_reset`` seconds without a crash) plus a container start."""
        c = self.cluster
        if self.now - self.last_crash[s] > c.backoff_reset:
            self.crashes[s] = 0
        k = int(self.crashes[s])
        wait = min(c.restart_backoff_max, c.restart_backoff * 2.0 ** k) if c.restart_backoff > 0 else 0.0
        self.crashes[s] = k + 1
        self.last_crash[s] = self.now
        self.down_until[s] = self.now + wait + self._draw_start()
        self.total["oom_kills"] += 1
        self._st_oom()

    def _st_oom(self) -> None:
        st = getattr(self, "_st", None)
        if st is not None:
            st.oom_kills += 1

    def _place_pod(self) -> int | None:
        c = self.cluster
        free = np.flatnonzero(self.state == FREE)
        if len(free) == 0:
            return None
        fits = np.flatnonzero(self.pool.fits([c.pod_cpu, c.pod_mem_mb]))
        if len(fits) == 0:
            return None
        s = int(free[0])
        # the scheduler prefers a node that already holds the image (no pull)
        cached = fits[np.isfinite(self.image_at[fits])]
        node = int(cached[0]) if len(cached) else int(fits[0])
        self.pool.place(s if self._pkey is None else (self._pkey, s), node, [c.pod_cpu, c.pod_mem_mb])
        self.state[s] = STARTING
        if not np.isfinite(self.image_at[node]):         # the first pod on this node pulls the image
            self.image_at[node] = self.now + c.pull_time()
        self.pod_node[s] = node
        self.pod_rev[s] = self.rev
        self.pod_limit[s] = self.limit
        self.ready_at[s] = max(self.now, float(self.image_at[node])) + self._draw_start()
        self.down_until[s] = 0.0
        self.crashes[s] = 0
        self.last_crash[s] = -np.inf
        return s

    def _release_pod(self, s: int) -> None:
        a = self._slot_acc[s]
        if a:
            r = int(self.pod_rev[s])
            self._rev_acc_left[r] = self._rev_acc_left.get(r, 0.0) + a
            self._slot_acc[s] = 0.0
        self.pool.release(s if self._pkey is None else (self._pkey, s))
        self.state[s] = FREE

    def ready_mask(self) -> np.ndarray:
        """Routable pods: ready, of the revision receiving traffic, not being removed, container up."""
        return (self.state == READY) & (self.down_until <= self.now + 1e-9) & (self.pod_rev == self.serving_rev)

    def pod_counts(self) -> tuple[int, int]:
        """(ready, pending) where pending = starting + unschedulable + restarting after OOM."""
        ready = int(self.ready_mask().sum())
        restarting = int(((self.state == READY) & (self.down_until > self.now + 1e-9)).sum())
        return ready, int((self.state == STARTING).sum()) + self.unscheduled + restarting

    def _pod_load(self) -> np.ndarray:
        raise NotImplementedError

    def _on_pod_drained_check(self) -> None:
        raise NotImplementedError

    def _scale_to(self, desired: int) -> None:
        """Pod controller: create or remove pods until the count matches ``desired``."""
        self.desired = desired
        mine = self.pod_rev == self.rev
        current = self.unscheduled + int((((self.state == STARTING) | (self.state == READY)) & mine).sum())
        if desired > current:
            self.unscheduled += desired - current
        elif desired < current:
            k = current - desired
            take = min(k, self.unscheduled)
            self.unscheduled -= take
            k -= take
            starting = np.flatnonzero((self.state == STARTING) & mine)
            for s in starting[::-1][:k]:
                self._release_pod(int(s))
            k -= min(k, len(starting))
            if k > 0:
                ready = np.flatnonzero((self.state == READY) & mine)
                load = self._pod_load()[ready]
                order = ready[np.lexsort((-ready, load))]   # least loaded first, newest first on ties
                for s in order[:k]:
                    self.state[int(s)] = DRAINING
                self._on_pod_drained_check()
        self._schedule()

    def _schedule(self) -> None:
        """Place the latest revision's pods waiting for a node, as far as they fit."""
        while self.unscheduled > 0:
            s = self._place_pod()
            if s is None:
                break
            self.unscheduled -= 1
            self.total["cold_starts"] += 1

    def _scale_down_old(self, r: int, desired: int) -> None:
        """An old revision's pod count follows its own autoscaler down (it adds no pods): pods over
        ``desired`` drain, least loaded first; a drained pod goes when its requests are done."""
        mine = np.flatnonzero((self.state == READY) & (self.pod_rev == r))
        k = len(mine) - desired
        if k > 0:
            load = self._pod_load()[mine]
            for s in mine[np.lexsort((-mine, load))][:k]:
                self.state[int(s)] = DRAINING
            self._on_pod_drained_check()

    def _kpa_tick(self) -> None:
        """Every revision's autoscaler decides. The latest revision, once it receives traffic,
        scales up or down (Knative's pod controller); before that it holds its initial scale (no
        metrics yet). A revision the route left (or is leaving: the latest is still starting) only
        scales down, by its own KPA on its own pods' concurrency, and is forgotten when its last
        pod is gone (Knative: an unreachable revision ignores min-scale and its autoscaler takes it
        to zero)."""
        now = self.now
        up = (self.state == READY) & (self.down_until <= now + 1e-9)
        for r in list(self.kpas):
            if r > self.serving_rev:
                self._schedule()        # its initial pods, as room frees up
                continue
            mine = self.pod_rev == r
            d = self.kpas[r].decide(now, int((up & mine).sum()), self.rev_limit[r])
            if r == self.rev:
                self._scale_to(d)
            else:
                self._scale_down_old(r, d)
                if r < self.serving_rev and not (mine & (self.state != FREE)).any():
                    del self.kpas[r], self.rev_limit[r]
        # Knative's excess burst capacity of the serving revision:
        # ready x capacity - target-burst-capacity - panic concurrency
        ready, _ = self.pod_counts()
        tbc = self.cluster.target_burst_capacity
        lim = self.rev_limit[self.serving_rev]
        per_pod = lim if lim > 0 else self.kpa_cfg.target_default
        ebc = math.floor(ready * per_pod - tbc - self.kpa.last_panic)
        # (target-burst-capacity 0: the activator is in the path only at zero pods; -1: always)
        self.act_in_path = ready == 0 or tbc < 0 or (tbc > 0 and ebc < 0)

    def _check_switch(self) -> bool:
        """Route to the latest revision once one of its pods is ready. The old revision's pods
        take no new requests but stay up, finishing what they hold, until its own autoscaler
        (which sees their falling concurrency) scales them down. True if the route switched."""
        if self.serving_rev == self.rev:
            return False
        if not ((self.state == READY) & (self.pod_rev == self.rev)).any():
            return False
        self.serving_rev = self.rev
        return True

    def _latest_has_pods(self) -> bool:
        """Whether the latest revision has a pod starting, ready or waiting for a node."""
        live = (self.state == STARTING) | (self.state == READY)
        return self.unscheduled > 0 or bool((live & (self.pod_rev == self.rev)).any())

    # ---- public
    def set_limit(self, limit: int) -> None:
        """Set ``containerConcurrency``. Before the first :meth:`advance` (the service is deployed
        with it) or with ``rollout=False`` the change is instant on every pod; otherwise it is a
        new revision with its own autoscaler: it starts at Knative's initial scale
        (``max(1, initial_pods)`` pods, cold starts, on the capacity the old pods leave), the route
        moves to it once one of them is ready, and the old revision's pods finish their requests
        while its own autoscaler scales them down (:meth:`_kpa_tick`). On a full cluster the old
        revision's least-loaded pod drains first to make room."""
        limit = int(limit)
        if limit == self.limit:
            return
        self.limit = limit
        if not self.started or not self.rollout:
            self.pod_limit[self.state != FREE] = limit
            for r in self.rev_limit:
                self.rev_limit[r] = limit
            return
        self.rev += 1
        for s in np.flatnonzero((self.state == STARTING) & (self.pod_rev != self.rev)):
            self._release_pod(int(s))       # a superseded revision's pods that never became ready
        for r in [r for r in self.kpas if r > self.serving_rev]:
            del self.kpas[r], self.rev_limit[r]      # a superseded revision that never served
        self.kpas[self.rev] = KPA(self.kpa_cfg)
        self.rev_limit[self.rev] = limit
        self.unscheduled = 0
        self._scale_to(max(1, self.cluster.initial_pods))     # Knative's initial-scale (default 1)
        if not ((self.pod_rev == self.rev) & (self.state != FREE)).any():
            # a full cluster: free room for the new revision by draining the old revision's
            # least-loaded pod (a rolling update without surge; Knative would leave it pending)
            old = np.flatnonzero((self.state == READY) & (self.pod_rev != self.rev))
            if len(old):
                s = int(old[np.argmin(self._pod_load()[old])])
                self.state[s] = DRAINING
                self._on_pod_drained_check()

    def advance(self, duration: float) -> IntervalStats:
        raise NotImplementedError

    def in_system(self) -> float:
        raise NotImplementedError

    def snapshot(self) -> dict[str, float]:
        raise NotImplementedError


def make_simulator(kind: str, cluster: ClusterConfig, kpa: KPAConfig, dt: float = 0.5,
                   rollout: bool = True) -> SimulatorBase:
    """``"fluid"`` (fast, default) or ``"event"`` (request-level reference); ``rollout``: a limit
    change rolls out a new revision (else it is instant on every pod)."""
    if kind == "fluid":
        from .fluid import FluidSimulator

        sim = FluidSimulator(cluster, kpa, dt=dt)
    elif kind == "event":
        from .eventsim import EventSimulator

        sim = EventSimulator(cluster, kpa)
    else:
        raise ValueError(f"simulator must be 'fluid' or 'event', got {kind!r}")
    sim.rollout = bool(rollout)
    return sim
