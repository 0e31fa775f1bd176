"""Knative-style serverless autoscaling: the KPA autoscaler, pods on nodes, and two simulators.

Everything here is numpy and plain Python (no gymnasium). The pieces:

* :class:`KPAConfig` / :class:`KPA` -- the Knative Pod Autoscaler decision rule: concurrency
  averaged over 1 s buckets, a stable window (60 s) and a panic window (10 % of it), panic mode
  when the panic-window pod count reaches 2x the ready pods (no scale-down while panicking, panic
  left a stable window after the last over-threshold tick), scale-up / scale-down rate limits per
  2 s tick, and scale to zero after the stable window of no traffic plus a grace period.
* :class:`Profile` -- per-request work: CPU seconds (processor-shared over the pod's cores, with a
  contention penalty), sleep / I/O seconds (not shared), memory held while in flight.
* :class:`ClusterConfig` -- nodes (a :class:`rlsys_envs.core.ResourcePool` of cpu / mem), the pod
  size, cold starts (log-normal), the pod memory limit.
* :class:`FluidSimulator` -- the fast, time-stepped model (per-pod request counts as floats, one
  numpy step per ``dt``); this is what the environment runs by default.
* :class:`EventSimulator` -- the request-level reference on :class:`rlsys_envs.core.EventClock`:
  every request is an object that queues in a pod's proxy, is processor-shared on the CPU, sleeps,
  and completes or fails.

Both simulators share the semantics below, the pod controller and the KPA:

* requests arrive (open loop from an arrival process, or from a closed loop of ``clients``
  that re-issue immediately when a response, success or error, comes back);
* while no pod is routable the activator holds them; otherwise each goes to the routable pod
  with the fewest requests (in flight + queued), ties to the lowest slot;
* a pod admits queued requests while its in-flight count is below ``containerConcurrency``
  (0 = unlimited); the rest wait FIFO in the pod's queue-proxy;
* a request holds ``mem_mb`` while in flight; admitting one more request past the pod's memory
  limit OOM-kills the container: every in-flight request (and the one admitted) fails, the pod
  is down for a restart delay (drawn like a cold start) while its queue waits;
* the KPA target per pod is ``containerConcurrency * target_utilisation`` (``100 * 0.7`` when the
  limit is 0) and it sees the total concurrency (in flight + queued + held by the activator).
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass, field
from statistics import NormalDist

import numpy as np

from rlsys_envs.core import EventClock, ResourcePool

# ------------------------------------------------------------------------------------------ KPA


@dataclass(frozen=True)
class KPAConfig:
    """Knative Pod Autoscaler settings (Knative's defaults)."""

    target_default: float = 100.0       # container-concurrency-target-default (limit 0)
    target_utilisation: float = 0.7     # container-concurrency-target-percentage
    stable_window: float = 60.0         # seconds
    panic_window_fraction: float = 0.1  # panic window = 6 s
    panic_threshold: float = 2.0        # 200 %
    tick: float = 2.0                   # decision period, seconds
    bucket: float = 1.0                 # metric bucket, seconds
    max_scale_up_rate: float = 1000.0
    max_scale_down_rate: float = 2.0
    scale_to_zero_grace: float = 30.0
    enable_scale_to_zero: bool = True
    min_scale: int = 0
    max_scale: int = 0                  # 0 = unbounded

    @property
    def panic_window(self) -> float:
        return self.stable_window * self.panic_window_fraction

    def target(self, limit: int) -> float:
        """Per-pod concurrency target for a hard limit ``limit`` (0 = no limit)."""
        base = float(limit) if limit > 0 else self.target_default
        return max(0.01, base * self.target_utilisation)


class KPA:
    """The decision rule. Feed one bucket average per ``bucket`` seconds with :meth:`record`;
    call :meth:`decide` every ``tick`` seconds."""

    def __init__(self, cfg: KPAConfig):
        self.cfg = cfg
        self.n_stable = max(1, int(round(cfg.stable_window / cfg.bucket)))
        self.n_panic = max(1, int(round(cfg.panic_window / cfg.bucket)))
        self.reset()

    def reset(self) -> None:
        self.buckets: deque[float] = deque(maxlen=self.n_stable)
        self.panic_since: float | None = None   # time of the last over-threshold tick
        self.max_panic_pods = 0
        self.zero_since: float | None = None
        self.last_stable = 0.0
        self.last_panic = 0.0

    @property
    def panicking(self) -> bool:
        return self.panic_since is not None

    def record(self, concurrency: float) -> None:
        self.buckets.append(float(concurrency))

    def averages(self) -> tuple[float, float]:
        """(stable, panic) window averages of total concurrency over the recorded buckets."""
        if not self.buckets:
            return 0.0, 0.0
        b = list(self.buckets)
        stable = sum(b) / len(b)
        p = b[-self.n_panic:]
        return stable, sum(p) / len(p)

    def decide(self, now: float, ready: int, limit: int) -> int:
        """Desired pod count at time ``now`` given ``ready`` ready pods and the hard limit."""
        cfg = self.cfg
        target = cfg.target(limit)
        stable, panic = self.averages()
        self.last_stable, self.last_panic = stable, panic
        ready_c = max(1, ready)
        max_up = max(math.ceil(cfg.max_scale_up_rate * ready_c), ready + 1)
        max_down = min(math.floor(ready_c / cfg.max_scale_down_rate), max(ready - 1, 0))
        dspc = min(max(math.ceil(stable / target - 1e-9), max_down), max_up)
        dppc = min(max(math.ceil(panic / target - 1e-9), max_down), max_up)
        over = dppc / ready_c >= cfg.panic_threshold
        if over:
            self.panic_since = now
        elif self.panic_since is not None and now - self.panic_since >= cfg.stable_window:
            self.panic_since = None
            self.max_panic_pods = 0
        if self.panic_since is None:
            desired = dspc
        else:
            desired = max(dspc, dppc, self.max_panic_pods, ready)   # no scale-down in panic
            self.max_panic_pods = desired
        # scale to zero: only after the stable window saw no traffic, then a grace period
        if desired == 0:
            if not cfg.enable_scale_to_zero:
                desired = 1
            else:
                if self.zero_since is None:
                    self.zero_since = now
                if now - self.zero_since < cfg.scale_to_zero_grace:
                    desired = 1 if ready > 0 else 0
        else:
            self.zero_since = None
        desired = max(desired, cfg.min_scale)
        if cfg.max_scale > 0:
            desired = min(desired, cfg.max_scale)
        return int(desired)


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
    cold_start_median: float = 2.0  # seconds
    cold_start_sigma: float = 0.3   # log-normal shape
    contention: float = 0.01        # CPU efficiency loss per request over the pod's cores
    error_latency: float = 0.05     # seconds before a failed request's client sees the error
    initial_pods: int = 1

    def max_pods(self) -> int:
        per_node = min(int(self.node_cpu // self.pod_cpu + 1e-9), int(self.node_mem_mb // self.pod_mem_mb + 1e-9))
        return max(0, per_node) * self.n_nodes

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


# ------------------------------------------------------------------------------ pod controller

FREE, STARTING, READY, DRAINING = 0, 1, 2, 3


class _SimBase:
    """State and logic both simulators share: pod slots on a ResourcePool, the KPA loop, stats."""

    def __init__(self, cluster: ClusterConfig, kpa: KPAConfig):
        self.cluster = cluster
        self.kpa_cfg = kpa
        self.n_slots = cluster.max_pods()
        if self.n_slots < 1:
            raise ValueError("the cluster cannot hold a single pod: raise n_nodes, node_cpu or node_mem_mb")

    # ---- lifecycle
    def reset(self, rng: np.random.Generator, workload: Workload, limit: int) -> None:
        c = self.cluster
        self.rng = rng
        self.workload = workload
        workload.reset(rng)
        self.limit = int(limit)
        self.now = 0.0
        self.kpa = KPA(self.kpa_cfg)
        self.pool = ResourcePool(np.tile([c.node_cpu, c.node_mem_mb], (c.n_nodes, 1)).astype(float), ("cpu", "mem"))
        S = self.n_slots
        self.state = np.zeros(S, np.int8)
        self.ready_at = np.zeros(S)
        self.down_until = np.zeros(S)
        self.unscheduled = 0
        self.desired = c.initial_pods
        self.total = dict(arrived=0.0, completed=0.0, failed=0.0, pod_seconds=0.0, cold_starts=0, oom_kills=0)
        self.hist_total = LatencyHistogram()
        self._bucket_acc = 0.0
        self._next_bucket = self.kpa_cfg.bucket
        self._next_tick = self.kpa_cfg.tick
        self._reset_requests()
        for _ in range(c.initial_pods):     # initial scale: warm pods, ready at t = 0
            s = self._place_pod()
            if s is not None:
                self.state[s] = READY
        self.desired = c.initial_pods

    def _reset_requests(self) -> None:
        raise NotImplementedError

    def _draw_start(self) -> float:
        c = self.cluster
        return float(c.cold_start_median * math.exp(c.cold_start_sigma * self.rng.standard_normal()))

    def _place_pod(self) -> int | None:
        c = self.cluster
        free = np.flatnonzero(self.state == FREE)
        if len(free) == 0:
            return None
        fits = np.flatnonzero(self.pool.fits([c.pod_cpu, c.pod_mem_mb]))
        if len(fits) == 0:
            return None
        s = int(free[0])
        self.pool.place(s, int(fits[0]), [c.pod_cpu, c.pod_mem_mb])
        self.state[s] = STARTING
        self.ready_at[s] = self.now + self._draw_start()
        self.down_until[s] = 0.0
        return s

    def _release_pod(self, s: int) -> None:
        self.pool.release(s)
        self.state[s] = FREE

    def ready_mask(self) -> np.ndarray:
        """Routable pods: ready, not being removed, container up."""
        return (self.state == READY) & (self.down_until <= self.now + 1e-9)

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
        current = self.unscheduled + int(((self.state == STARTING) | (self.state == READY)).sum())
        if desired > current:
            self.unscheduled += desired - current
        elif desired < current:
            k = current - desired
            take = min(k, self.unscheduled)
            self.unscheduled -= take
            k -= take
            starting = np.flatnonzero(self.state == STARTING)
            for s in starting[::-1][:k]:
                self._release_pod(int(s))
            k -= min(k, len(starting))
            if k > 0:
                ready = np.flatnonzero(self.state == READY)
                load = self._pod_load()[ready]
                order = ready[np.lexsort((-ready, load))]   # least loaded first, newest first on ties
                for s in order[:k]:
                    self.state[int(s)] = DRAINING
                self._on_pod_drained_check()
        # schedule what fits
        while self.unscheduled > 0:
            s = self._place_pod()
            if s is None:
                break
            self.unscheduled -= 1
            self.total["cold_starts"] += 1

    def _kpa_tick(self) -> None:
        ready, _ = self.pod_counts()
        self._scale_to(self.kpa.decide(self.now, ready, self.limit))

    # ---- public
    def set_limit(self, limit: int) -> None:
        self.limit = int(limit)

    def advance(self, duration: float) -> IntervalStats:
        raise NotImplementedError

    def in_system(self) -> float:
        raise NotImplementedError

    def snapshot(self) -> dict[str, float]:
        raise NotImplementedError


# ---------------------------------------------------------------------------- fluid simulator


class FluidSimulator(_SimBase):
    """Time-stepped fluid model: per pod, the queued, CPU-phase and sleep-phase request counts
    (floats) advance by ``dt``; mean waits ride along with the counts, so each completion
    carries a latency (its mean wait plus the service time at the pod's current sharing rate,
    spread by the work jitter). Per-pod state is kept in Python lists: with a few dozen pods at
    most, scalar loops beat numpy's per-call overhead by several times."""

    _JITTER_NODES = 8
    _FP_ITERS = 12

    def __init__(self, cluster: ClusterConfig, kpa: KPAConfig, dt: float = 0.5):
        super().__init__(cluster, kpa)
        ratio = kpa.bucket / dt if dt > 0 else 0.5
        ticks_per_bucket = kpa.tick / kpa.bucket
        if dt <= 0 or abs(ratio - round(ratio)) > 1e-9 or abs(ticks_per_bucket - round(ticks_per_bucket)) > 1e-9:
            raise ValueError(f"dt must divide the {kpa.bucket} s metric bucket (and the bucket the tick), got {dt}")
        self.dt = float(dt)

    def _reset_requests(self) -> None:
        S = self.n_slots
        self.q = [0.0] * S
        self.nc = [0.0] * S
        self.ns = [0.0] * S
        self.aq = [0.0] * S     # mean age of queued requests
        self.wc = [0.0] * S     # mean wait (time before admission) of CPU-phase requests
        self.ws = [0.0] * S     # ... of sleep-phase requests
        self.act_age = 0.0
        self.returning = 0.0       # closed-loop clients whose error comes back next step
        self.act_n = float(self.workload.clients)      # the closed loop's first requests, at t = 0
        self.total["arrived"] += self.act_n
        self._jitter_profile = None

    def _jitter(self, p: Profile) -> np.ndarray:
        if self._jitter_profile is not p:
            k = self._JITTER_NODES
            z = _normal_quantiles(k)
            self._jit = np.exp(p.work_cv * z)
            self._jitter_profile = p
        return self._jit

    def _pod_load(self) -> np.ndarray:
        return np.array([a + b + d for a, b, d in zip(self.q, self.nc, self.ns)])

    def _on_pod_drained_check(self) -> None:
        for s in np.flatnonzero(self.state == DRAINING):
            s = int(s)
            if self.q[s] + self.nc[s] + self.ns[s] < 1e-9:
                self.q[s] = self.nc[s] = self.ns[s] = 0.0
                self._release_pod(s)

    def _release_pod(self, s: int) -> None:
        self.q[s] = self.nc[s] = self.ns[s] = 0.0
        super()._release_pod(s)

    def in_system(self) -> float:
        return float(sum(self.q) + sum(self.nc) + sum(self.ns) + self.act_n)

    def snapshot(self) -> dict[str, float]:
        ready, pending = self.pod_counts()
        return dict(ready=ready, pending=pending, in_flight=float(sum(self.nc) + sum(self.ns)),
                    queued=float(sum(self.q) + self.act_n))

    def _route(self, n: float, age: float, routable: list[int]) -> None:
        """Water-fill ``n`` requests (mean age ``age``) over the routable pods, least loaded first
        (the fluid limit of join-the-shortest-queue)."""
        q, nc, ns, aq = self.q, self.nc, self.ns, self.aq
        loads = sorted((q[s] + nc[s] + ns[s], s) for s in routable)
        cum, level, k = 0.0, 0.0, 0
        for j, (ld, _) in enumerate(loads):
            if j * ld - cum > n:          # filling the first j pods up to this load needs more than n
                break
            cum += ld
            k = j + 1
        level = (n + cum) / k
        for ld, s in loads[:k]:
            add = level - ld
            if add > 0:
                tot = q[s] + add
                aq[s] = (aq[s] * q[s] + age * add) / tot
                q[s] = tot

    def advance(self, duration: float) -> IntervalStats:
        """Simulate ``duration`` seconds. Each step of ``dt``: the admitted requests are served
        (CPU phase at the processor-sharing rate, then the sleep phase, with exit fractions set
        so that a request's mean time in service equals its CPU time at the current sharing rate
        plus its sleep); responses return to closed-loop clients, who re-issue within the step;
        new and held requests are routed and admitted at the end of the step."""
        st = IntervalStats(duration=duration)
        c, dt = self.cluster, self.dt
        n_steps = int(round(duration / dt))
        wl = self.workload
        arr_counts = None
        if wl.process is not None:
            times = wl.process.arrivals(self.now, self.now + n_steps * dt)
            arr_counts = np.bincount(np.minimum(((times - self.now) / dt).astype(np.int64), n_steps - 1),
                                     minlength=n_steps).astype(float).tolist()
        ready_acc = cpu_used = cpu_cap = mem_used = mem_cap = pod_s = 0.0
        cores, kappa = c.pod_cpu, c.contention
        base_mem, pod_mem = c.pod_base_mem_mb, c.pod_mem_mb
        closed = wl.clients > 0
        q, nc, ns, aq, wc, ws = self.q, self.nc, self.ns, self.aq, self.wc, self.ws
        S = self.n_slots
        lat_w, lat_s, lat_n = [], [], []
        prof = None
        for i in range(n_steps):
            t = self.now
            p = wl.profile_at(t)
            if p is not prof:
                prof = p
                mf = p.mean_factor()
                w, sl, mem = p.cpu_s * mf, p.sleep_s * mf, p.mem_mb
                cap = c.mem_cap(p)
            stl = self.state.tolist()
            down = self.down_until.tolist()
            # ---- service of the admitted requests over [t, t + dt)
            n_comp = 0.0
            n_live = 0
            for s in range(S):
                sst = stl[s]
                if sst == FREE:
                    continue
                pod_s += dt
                if sst == STARTING or down[s] > t + 1e-9:
                    continue
                n_live += 1
                if sst == READY:
                    ready_acc += dt
                a, b = nc[s], ns[s]
                n = a + b
                mem_used += (base_mem + n * mem) * dt
                if n <= 0.0:
                    continue
                # CPU time at the pod by mean-value analysis of a processor-sharing station: a
                # request reaching the CPU sees n_c (m - 1) / m of the others there, where n_c is
                # the number in the CPU phase, n_c = m cpu_t / (cpu_t + sleep), and m the number in
                # service. The fluid holds a request for at least one step, so when the service
                # time T = cpu_t + sleep is below dt only m = n T / dt are really in service. The
                # map is increasing and starts below its least fixed point: iterate up.
                if w <= 0.0:
                    nce, cpu_t = 0.0, 0.0
                else:
                    cpu_t = w
                    for _ in range(self._FP_ITERS):
                        T = cpu_t + sl
                        m = n * T / dt if T < dt else n
                        nce = m * cpu_t / T
                        seen = (m - 1.0) / m if m > 1.0 else 0.0
                        new_t = w * max(1.0, (1.0 + nce * seen) / cores) * (1.0 + kappa * max(0.0, nce - cores))
                        if new_t - cpu_t <= 1e-9 * cpu_t:
                            cpu_t = new_t
                            break
                        cpu_t = new_t
                    T = cpu_t + sl
                    busy = n / (T if T > dt else dt) * w * (1.0 + kappa * max(0.0, nce - cores))
                    cpu_used += (busy if busy < cores else cores) * dt
                inv_g = cpu_t / dt if cpu_t > dt else 1.0
                inv_f = 1.0 + (cpu_t + sl) / dt - inv_g
                if inv_f < 1.0:
                    inv_f = 1.0
                out_c = a / inv_g
                pool = b + out_c
                out_s = pool / inv_f
                if pool > 0:
                    dw = (ws[s] * b + wc[s] * out_c) / pool
                    ws[s] = dw
                    if out_s > 0:
                        lat_w.append(dw)
                        lat_s.append(cpu_t + sl)
                        lat_n.append(out_s)
                nc[s] = a - out_c
                ns[s] = pool - out_s
                n_comp += out_s
            cpu_cap += n_live * cores * dt
            mem_cap += n_live * pod_mem * dt
            st.completed += n_comp
            self.now = t = t + dt
            # pods that finished their cold start during the step
            for s in range(S):
                if stl[s] == STARTING and self.ready_at[s] <= t + 1e-9:
                    self.state[s] = READY
                    stl[s] = READY
            # ---- arrivals: closed-loop clients re-issue at once; errors come back one step later
            new = arr_counts[i] if arr_counts is not None else 0.0
            if closed:
                new += self.returning + n_comp
                self.returning = 0.0
            st.arrived += new
            if new > 0 or self.act_n > 0:
                routable = [s for s in range(S) if stl[s] == READY and down[s] <= t + 1e-9]
                tot = self.act_n + new
                age = self.act_n * self.act_age / tot
                if routable:
                    self._route(tot, age, routable)
                    self.act_n, self.act_age = 0.0, 0.0
                else:
                    self.act_n, self.act_age = tot, age
                    if self.unscheduled + stl.count(STARTING) + stl.count(READY) == 0:
                        self._scale_to(max(1, self.desired))       # the activator pokes the autoscaler
                        stl = self.state.tolist()
            # ---- admission from the proxy queues, with OOM kills
            lim = self.limit
            failed = 0.0
            for s in range(S):
                if stl[s] < READY or q[s] <= 0.0 or down[s] > t + 1e-9:
                    continue
                infl = nc[s] + ns[s]
                adm = q[s]
                if lim > 0:
                    room = lim - infl
                    if room < adm:
                        adm = room if room > 0 else 0.0
                if infl + adm > cap + 1e-9:       # OOM kill
                    failed += cap + 1
                    q[s] -= cap + 1 - infl
                    nc[s] = ns[s] = 0.0
                    self.down_until[s] = t + self._draw_start()
                    self.total["oom_kills"] += 1
                    st.oom_kills += 1
                    continue
                if adm > 0:
                    tot_c = nc[s] + adm
                    wc[s] = (wc[s] * nc[s] + aq[s] * adm) / tot_c
                    nc[s] = tot_c
                    q[s] -= adm
            if failed:
                st.failed += failed
                if closed:
                    self.returning += failed
            # ---- ageing, metrics buckets, autoscaler ticks
            for s in range(S):
                if q[s] > 0:
                    aq[s] += dt
            self.act_age += dt
            self._bucket_acc += (sum(q) + sum(nc) + sum(ns) + self.act_n) * dt
            if DRAINING in stl:
                self._on_pod_drained_check()
            if t >= self._next_bucket - 1e-9:
                self.kpa.record(self._bucket_acc / self.kpa_cfg.bucket)
                self._bucket_acc = 0.0
                self._next_bucket += self.kpa_cfg.bucket
                if t >= self._next_tick - 1e-9:
                    cs = self.total["cold_starts"]
                    self._kpa_tick()
                    st.cold_starts += self.total["cold_starts"] - cs
                    self._next_tick += self.kpa_cfg.tick
        if lat_n:
            jit = self._jitter(prof)
            k = self._JITTER_NODES
            lw, ls_, ln = np.array(lat_w), np.array(lat_s), np.array(lat_n)
            st.hist.add(lw[:, None] + ls_[:, None] * jit[None, :], np.repeat(ln / k, k))
        st.pod_seconds = pod_s
        st.ready_mean = ready_acc / duration if duration > 0 else 0.0
        st.cpu_util = min(1.0, cpu_used / cpu_cap) if cpu_cap > 0 else 0.0
        st.mem_util = min(1.0, mem_used / mem_cap) if mem_cap > 0 else 0.0
        self._fold_totals(st)
        return st

    def _fold_totals(self, st: IntervalStats) -> None:
        self.total["arrived"] += st.arrived
        self.total["completed"] += st.completed
        self.total["failed"] += st.failed
        self.total["pod_seconds"] += st.pod_seconds
        self.hist_total.merge(st.hist)


def _normal_quantiles(k: int) -> np.ndarray:
    """The k mid-point quantiles of the standard normal (nodes for the latency jitter)."""
    nd = NormalDist()
    return np.array([nd.inv_cdf((i + 0.5) / k) for i in range(k)])


# ---------------------------------------------------------------------------- event simulator


class _Pod:
    __slots__ = ("queue", "cpu", "sleeping", "last", "cpu_event")

    def __init__(self):
        self.queue: deque[int] = deque()
        self.cpu: dict[int, float] = {}     # request -> remaining CPU seconds
        self.sleeping: set[int] = set()
        self.last = 0.0
        self.cpu_event: int | None = None


class EventSimulator(_SimBase):
    """Request-level reference model on :class:`core.EventClock` (exact processor sharing)."""

    def _reset_requests(self) -> None:
        self.clock = EventClock()
        self.pods = [_Pod() for _ in range(self.n_slots)]
        self.req_t0: list[float] = []
        self.req_tadm: list[float] = []
        self.req_sleep: list[float] = []
        self.req_mem: list[float] = []
        self.activator: deque[int] = deque()
        self._cpu_work: dict[int, float] = {}
        self._n_buckets = 0
        self._conc = 0
        self._last_int = 0.0
        self._cpu_int = 0.0
        self._cpu_cap_int = 0.0
        self._mem_int = 0.0
        self._mem_cap_int = 0.0
        self._ready_int = 0.0
        self._pod_s_int = 0.0
        self._mem_inflight = 0.0
        self.clock.schedule(self.kpa_cfg.bucket, "bucket")
        for _ in range(self.workload.clients):
            self.clock.schedule(0.0, "issue")
        self._arrivals_until = 0.0

    def _pod_load(self) -> np.ndarray:
        return np.array([len(p.queue) + len(p.cpu) + len(p.sleeping) for p in self.pods], float)

    def in_system(self) -> float:
        return float(sum(len(p.queue) + len(p.cpu) + len(p.sleeping) for p in self.pods) + len(self.activator))

    def snapshot(self) -> dict[str, float]:
        ready, pending = self.pod_counts()
        return dict(ready=ready, pending=pending,
                    in_flight=float(sum(len(p.cpu) + len(p.sleeping) for p in self.pods)),
                    queued=float(sum(len(p.queue) for p in self.pods) + len(self.activator)))

    # ---- integrals of concurrency, cpu, memory, pods (piecewise constant between events)
    def _integrate(self, now: float) -> None:
        dt = now - self._last_int
        if dt <= 0:
            return
        c = self.cluster
        serving = ((self.state == READY) | (self.state == DRAINING)) & (self.down_until <= self._last_int + 1e-12)
        n_serv = int(serving.sum())
        self._bucket_acc += self._conc * dt
        self._pod_s_int += int((self.state != FREE).sum()) * dt
        self._ready_int += int(((self.state == READY) & (self.down_until <= self._last_int + 1e-12)).sum()) * dt
        used = 0.0
        memf = 0.0
        for s in np.flatnonzero(serving):
            pod = self.pods[s]
            used += min(len(pod.cpu), c.pod_cpu)
        self._cpu_int += used * dt
        self._cpu_cap_int += n_serv * c.pod_cpu * dt
        self._mem_int += (n_serv * c.pod_base_mem_mb + self._mem_inflight) * dt
        self._mem_cap_int += n_serv * c.pod_mem_mb * dt
        del memf
        self._last_int = now

    def _on_pod_drained_check(self) -> None:
        for s in np.flatnonzero(self.state == DRAINING):
            p = self.pods[s]
            if not p.queue and not p.cpu and not p.sleeping:
                self._release_pod(int(s))

    def _place_pod(self):
        s = super()._place_pod()
        if s is not None:
            self.clock.schedule(self.ready_at[s], "ready", s)
        return s

    def _release_pod(self, s: int) -> None:
        pod = self.pods[s]
        if pod.cpu_event is not None:
            self.clock.cancel(pod.cpu_event)
        self.pods[s] = _Pod()
        super()._release_pod(s)

    # ---- requests
    def _new_request(self) -> int:
        p = self.workload.profile_at(self.now)
        j1, j2 = np.exp(p.work_cv * self.rng.standard_normal(2)) if p.work_cv > 0 else (1.0, 1.0)
        rid = len(self.req_t0)
        self.req_t0.append(self.now)
        self.req_tadm.append(self.now)
        self.req_sleep.append(p.sleep_s * j2)
        self.req_mem.append(p.mem_mb)
        self._cpu_work[rid] = p.cpu_s * j1
        self.total["arrived"] += 1
        self._st.arrived += 1
        self._conc += 1
        return rid

    def _dispatch(self, rid: int) -> None:
        r = np.flatnonzero(self.ready_mask())
        if len(r) == 0:
            self.activator.append(rid)
            if self.unscheduled + int(((self.state == STARTING) | (self.state == READY)).sum()) == 0:
                self._scale_to(max(1, self.desired))
            return
        best, best_load = -1, None
        for s in r:
            p = self.pods[s]
            load = len(p.queue) + len(p.cpu) + len(p.sleeping)
            if best_load is None or load < best_load:
                best, best_load = int(s), load
        self.pods[best].queue.append(rid)
        self._admit(best)

    def _ps_update(self, s: int) -> None:
        """Bring the remaining CPU work of pod ``s`` up to now."""
        pod = self.pods[s]
        el = self.now - pod.last
        if el > 0 and pod.cpu:
            rate = float(per_request_rate(len(pod.cpu), self.cluster.pod_cpu, self.cluster.contention))
            dec = rate * el
            for k in pod.cpu:
                pod.cpu[k] -= dec
        pod.last = self.now

    def _ps_schedule(self, s: int) -> None:
        pod = self.pods[s]
        if pod.cpu_event is not None:
            self.clock.cancel(pod.cpu_event)
            pod.cpu_event = None
        if pod.cpu and self.down_until[s] <= self.now + 1e-12:
            rate = float(per_request_rate(len(pod.cpu), self.cluster.pod_cpu, self.cluster.contention))
            k = min(pod.cpu, key=pod.cpu.get)
            pod.cpu_event = self.clock.schedule(self.now + max(pod.cpu[k], 0.0) / rate, "cpu", (s, k))

    def _admit(self, s: int) -> None:
        if self.state[s] == FREE or self.down_until[s] > self.now + 1e-12:
            return
        pod = self.pods[s]
        if not pod.queue:
            return
        self._ps_update(s)
        cap = self.cluster.mem_cap(self.workload.profile_at(self.now))
        changed = False
        while pod.queue and (self.limit <= 0 or len(pod.cpu) + len(pod.sleeping) < self.limit):
            rid = pod.queue.popleft()
            if len(pod.cpu) + len(pod.sleeping) + 1 > cap:
                self._oom(s, rid)
                return
            self.req_tadm[rid] = self.now
            self._mem_inflight += self.req_mem[rid]
            w = self._cpu_work.pop(rid)
            if w > 0:
                pod.cpu[rid] = w
                changed = True
            else:
                self._start_sleep(s, rid)
        if changed:
            self._ps_schedule(s)

    def _oom(self, s: int, rid: int) -> None:
        pod = self.pods[s]
        victims = [rid] + list(pod.cpu) + list(pod.sleeping)
        self._cpu_work.pop(rid, None)
        for v in victims:
            if v != rid:
                self._mem_inflight -= self.req_mem[v]
            self._fail(v)
        if pod.cpu_event is not None:
            self.clock.cancel(pod.cpu_event)
            pod.cpu_event = None
        pod.cpu.clear()
        pod.sleeping = set()      # pending sleep events see the request is gone
        self.down_until[s] = self.now + self._draw_start()
        self.clock.schedule(self.down_until[s], "up", s)
        self.total["oom_kills"] += 1
        self._st.oom_kills += 1

    def _fail(self, rid: int) -> None:
        self._conc -= 1
        self.total["failed"] += 1
        self._st.failed += 1
        if self.workload.clients > 0:
            self.clock.schedule(self.now + self.cluster.error_latency, "issue")

    def _start_sleep(self, s: int, rid: int) -> None:
        pod = self.pods[s]
        pod.sleeping.add(rid)
        self.clock.schedule(self.now + self.req_sleep[rid], "wake", (s, rid))

    def _complete(self, s: int, rid: int) -> None:
        self._conc -= 1
        self._mem_inflight -= self.req_mem[rid]
        self.total["completed"] += 1
        self._st.completed += 1
        lat = self.now - self.req_t0[rid]
        self._lat_buf.append(lat)
        if self.workload.clients > 0:
            self.clock.schedule(self.now, "issue")
        self._admit(s)
        if self.state[s] == DRAINING:
            self._on_pod_drained_check()

    def advance(self, duration: float) -> IntervalStats:
        st = IntervalStats(duration=duration)
        self._st = st
        self._lat_buf: list[float] = []
        end = self.now + duration
        c0 = self.total["cold_starts"]
        ints0 = (self._pod_s_int, self._ready_int, self._cpu_int, self._cpu_cap_int, self._mem_int, self._mem_cap_int)
        if self.workload.process is not None:
            for t in self.workload.process.arrivals(self.now, end):
                self.clock.schedule(float(t), "arrival")
        while self.clock.peek_time() < end:
            ev = self.clock.pop()
            self._integrate(ev.time)
            self.now = ev.time
            k = ev.kind
            if k in ("issue", "arrival"):
                self._dispatch(self._new_request())
            elif k == "cpu":
                s, rid = ev.payload
                self.pods[s].cpu_event = None
                self._ps_update(s)
                pod = self.pods[s]
                if rid in pod.cpu:
                    del pod.cpu[rid]
                    # others finishing at the same instant
                    for other in [o for o, rem in pod.cpu.items() if rem <= 1e-12]:
                        del pod.cpu[other]
                        if self.req_sleep[other] > 0:
                            self._start_sleep(s, other)
                        else:
                            self._complete(s, other)
                    self._ps_schedule(s)
                    if self.req_sleep[rid] > 0:
                        self._start_sleep(s, rid)
                    else:
                        self._complete(s, rid)
                else:
                    self._ps_schedule(s)
            elif k == "wake":
                s, rid = ev.payload
                pod = self.pods[s]
                if rid in pod.sleeping:
                    pod.sleeping.discard(rid)
                    self._complete(s, rid)
            elif k == "ready":
                s = ev.payload
                if self.state[s] == STARTING and abs(self.ready_at[s] - self.now) < 1e-9:
                    self.state[s] = READY
                    self._flush_activator()
            elif k == "up":
                s = ev.payload
                if self.state[s] != FREE and self.down_until[s] <= self.now + 1e-12:
                    self.pods[s].last = self.now
                    self._admit(s)
                    if self.state[s] == READY:
                        self._flush_activator()
                    self._on_pod_drained_check()
            elif k == "bucket":
                self.kpa.record(self._bucket_acc / self.kpa_cfg.bucket)
                self._bucket_acc = 0.0
                self._n_buckets += 1
                self.clock.schedule(self.now + self.kpa_cfg.bucket, "bucket")
                if self._n_buckets % int(round(self.kpa_cfg.tick / self.kpa_cfg.bucket)) == 0:
                    self._kpa_tick()
                    self._flush_activator()
        self._integrate(end)
        self.now = end
        if self._lat_buf:
            st.hist.add(np.array(self._lat_buf))
        st.cold_starts = self.total["cold_starts"] - c0
        d = [a - b for a, b in zip((self._pod_s_int, self._ready_int, self._cpu_int, self._cpu_cap_int,
                                     self._mem_int, self._mem_cap_int), ints0)]
        st.pod_seconds = d[0]
        st.ready_mean = d[1] / duration if duration > 0 else 0.0
        st.cpu_util = min(1.0, d[2] / d[3]) if d[3] > 0 else 0.0
        st.mem_util = min(1.0, d[4] / d[5]) if d[5] > 0 else 0.0
        self.total["pod_seconds"] += st.pod_seconds
        self.hist_total.merge(st.hist)
        return st

    def _flush_activator(self) -> None:
        if self.activator and self.ready_mask().any():
            held = list(self.activator)
            self.activator.clear()
            for rid in held:
                self._dispatch(rid)


def make_simulator(kind: str, cluster: ClusterConfig, kpa: KPAConfig, dt: float = 0.5) -> _SimBase:
    """``"fluid"`` (fast, default) or ``"event"`` (request-level reference)."""
    if kind == "fluid":
        return FluidSimulator(cluster, kpa, dt=dt)
    if kind == "event":
        return EventSimulator(cluster, kpa)
    raise ValueError(f"simulator must be 'fluid' or 'event', got {kind!r}")


__all__ = ["KPAConfig", "KPA", "Profile", "PROFILES", "ClusterConfig", "Workload", "IntervalStats",
           "LatencyHistogram", "FluidSimulator", "EventSimulator", "make_simulator", "per_request_rate"]
