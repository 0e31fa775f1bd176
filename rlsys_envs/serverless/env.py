"""Gymnasium environment: set Knative's per-pod concurrency limit every 30 s of simulated time."""
from __future__ import annotations

from typing import Any, Mapping

import numpy as np
from gymnasium import spaces

from rlsys_envs.core import (RlsysEnv, check_choice, check_episode_window, check_float, check_int, draw_instance,
                              instance_source)
from rlsys_envs.core.validation import config_of

from .generator import WORKLOADS, load_trace_counts, make_profile, make_workload
from .kpa import KPAConfig, kpa_for_interval
from .model import PROFILES, ClusterConfig, IntervalStats, SLOReward, Workload, make_simulator

#: the limit grid of the paper's action space: 10, 30, ..., 310
LIMITS = np.arange(10, 311, 20)
DELTAS = (-20, 0, 20)
OBS_KEYS = ("limit", "pods_ready", "pods_pending", "arrival_rate", "throughput", "in_flight", "queued",
            "p50_latency", "p95_latency", "error_rate", "cpu_util", "mem_util", "progress")


def _squash(x: float, scale: float) -> float:
    """x / (x + scale): maps [0, inf) onto [0, 1), monotone, 0.5 at ``scale``."""
    x = max(0.0, float(x))
    return x / (x + scale)


class ServerlessAutoscalingEnv(RlsysEnv):
    """Concurrency-limit autoscaling of a Knative service (Schuler, Jamil, Kühl, CCGrid 2021).

    **Description.** A Knative service runs on a small cluster (default: 3 nodes of 3.5
    allocatable cores, so at most 9 one-core pods, held on a ``core.ResourcePool``). Knative's
    Pod Autoscaler (KPA, simulated faithfully: 1 s metric buckets, 60 s stable and 6 s panic
    windows, panic at 2x the ready pods with no scale-down while panicking, a decision every 2 s,
    scale-up rate 1000x and scale-down rate 2x per tick, scale to zero after 60 s idle plus a 30 s
    grace period) scales pods to keep the concurrency per pod at ``0.7 x containerConcurrency``.
    The agent sets ``containerConcurrency``, the hard per-pod limit, and Knative's request path
    applies it: the queue-proxy queues up to 10x the limit and answers 503 beyond; the activator
    is in the path while the excess burst capacity (target-burst-capacity 200) is negative and
    then holds what the pods cannot admit (up to 10000 requests, 503 beyond); requests waiting
    past the 300 s revision timeout fail; a limit change rolls out a new revision with its own
    autoscaler (initial scale 1, cold starts; the route moves once a new pod is ready; the old
    revision's pods finish their requests and its own KPA scales them down, so they hold their
    nodes for up to a stable window and its grace period; ``limit_change="instant"`` keeps the
    free change). Each request burns CPU
    shared by the requests in flight on its pod (processor sharing with a contention penalty),
    sleeps (not shared) and holds memory; admitting a request past the pod's memory limit
    OOM-kills the container (its in-flight and queued requests fail; it restarts after
    CrashLoopBackOff: 10 s doubling to 300 s). A cold start is an image pull (once per node) plus
    a log-normal container start. Between decisions the simulator runs ``decision_interval``
    seconds (the fast fluid model by default, which holds Little's law; the request-level
    reference with ``simulator="event"``). Arrivals, per-request work, cold starts and restarts
    are random per seed.

    **Action Space.**
    * ``action_type="delta"`` (default, the paper's): ``Discrete(3)``: 0 = limit - 20,
      1 = keep, 2 = limit + 20. At the grid edges the move that would leave [10, 310] is
      masked out (``action_masks()`` / ``info["action_mask"]``) and raises
      ``InvalidActionError``; "keep" is always legal.
    * ``"absolute"``: ``Discrete(16)``: action ``a`` sets the limit ``10 + 20 a`` (10 .. 310);
      every action is always legal.
    * ``"continuous"``: ``Box(-1, 1, (1,), float32)``: the limit is
      ``round(10 + (a + 1) / 2 * 300)``, any integer in [10, 310]. There is no mask: every value
      in the box is legal (``action_masks()`` returns ``[True]``) and values outside the box
      raise ``InvalidActionError``.

    **Observation Space.** ``Dict`` of ``Box(0, 1, (1,), float32)``, all about the interval that
    just ended (or the state at its end), normalised so the bounds hold by construction
    (``sq(x, k) = x / (x + k)``):

    ================ ==============================================================
    limit            current limit / 310 (0 when pinned to "no limit")
    pods_ready       ready pods at the end of the interval / the cluster's pod capacity
    pods_pending     sq(starting + unschedulable + restarting pods, pod capacity)
    arrival_rate     sq(requests arrived per second, 100)
    throughput       sq(requests completed per second, 100)
    in_flight        sq(requests in flight at the end, 100)
    queued           sq(requests queued in proxies and the activator at the end, 100)
    p50_latency      sq(median latency of the interval's successful requests in s, 1)
    p95_latency      sq(95th percentile latency in s, 1)
    error_rate       failed / (completed + failed) in the interval
    cpu_util         CPU seconds used / CPU seconds of the running pods
    mem_util         memory held / memory limit of the running pods
    progress         decisions taken / episode_decisions
    ================ ==============================================================

    **Rewards.**
    * ``reward="slo"`` (default): :class:`~rlsys_envs.serverless.model.SLOReward`, in units of
      ``throughput_ref`` requests per second (``T = decision_interval``, ``X = completed / T /
      throughput_ref``): ``r = throughput + latency + tail + error + cost`` with
      ``throughput = X``,
      ``latency = -w_latency * X * mean_L min(max(0, L / slo_latency - 1), latency_cap)``,
      ``tail = -w_tail * X * (capped p95 overshoot + capped p99 overshoot) / 2``,
      ``error = -w_error * failed / T / throughput_ref``,
      ``cost = -w_cost * pod_seconds / (T * pod capacity)``; ``info["reward_terms"]`` holds the
      five terms. The constructor requires ``(w_latency + w_tail) * latency_cap <= 1``, so a
      completed request, however late, is never worth less than 0, and more than a failed one.
    * ``reward="paper"``: throughput ``X`` of the interval over the best interval throughput
      ``X*`` seen so far in the episode (including this one); 1 when ``X >= 0.95 X*`` (the
      paper's tolerance), 0 when nothing has completed yet.

    **Starting State.** One warm ready pod, the limit at ``initial_limit``, empty queues; the
    workload starts at t = 0 (the closed loop's clients all send their first request at once).
    ``reset(options={"instance": w})`` plays one episode on workload ``w`` (the same kinds of
    value as ``workload``).

    **Episode End.** Truncation after ``episode_decisions`` decisions (default 30 = 15 min
    simulated); there is no terminal state.

    **Arguments** (keyword only; defaults in brackets):
    ``workload`` [paper] one of paper, poisson, bursty, diurnal, trace, switching, or a
    ``serverless.model.Workload``, or an instance generator ``rng -> Workload`` (your own load);
    ``profile`` [cpu] cpu, memory or sleep; ``switch_profile`` [sleep] and ``switch_at`` [0.5,
    in (0, 1)] for ``switching``; ``switch_spread`` [0.0, in [0, 0.5)]: with ``switching``, the
    switch happens at a fraction drawn uniformly from ``switch_at +- switch_spread`` at every
    reset (from ``np_random``; ``switch_at +- switch_spread`` must lie in (0, 1)), so a policy
    has to detect the switch rather than learn its time from ``progress``; the drawn time (s) is
    ``env.switch_time``; ``clients`` [500, 1..100000]; ``arrival_rate`` [None = per
    profile: cpu 50, memory 60, sleep 300 req/s; (0, 1e6]]; ``trace_path`` [None],
    ``trace_function`` [None = sum of all rows], ``trace_scale`` [None = match arrival_rate],
    ``trace_start`` [0, the first minute replayed];
    ``cpu_s``, ``sleep_s``, ``mem_mb``, ``work_cv`` [None = profile's] per-request knobs;
    ``action_type`` [delta]; ``reward`` [slo]; ``limit_change`` [revision or instant];
    ``decision_interval`` [30.0, 2..3600 s, a
    multiple of the 2 s tick]; ``episode_decisions`` [30, 1..100000]; ``initial_limit`` [110, a
    grid value 10..310 for discrete actions, any integer in [10, 310] for continuous];
    ``simulator`` [fluid] or event; ``dt`` [0.5, one of 0.1, 0.125, 0.2, 0.25, 0.5, 1.0];
    ``throughput_ref`` [100.0], ``slo_latency`` [5.0 s], ``w_latency`` [0.5, >= 0],
    ``w_tail`` [0.5, >= 0], ``latency_cap`` [1.0, >= 0; ``(w_latency + w_tail) * latency_cap <= 1``],
    ``w_error`` [2.0], ``w_cost`` [0.1]; ``kpa``: a :class:`~rlsys_envs.serverless.kpa.KPAConfig` or a mapping of
    its fields (Knative's defaults: ``target_default`` [100], ``target_utilisation`` [0.7],
    ``stable_window`` [60 s], ``panic_window_fraction`` [0.1], ``panic_threshold`` [2.0],
    ``max_scale_up_rate`` [1000], ``max_scale_down_rate`` [2], ``scale_to_zero_grace`` [30 s],
    ``enable_scale_to_zero`` [True], ``tick`` [2 s], ``bucket`` [1 s], ``min_scale`` [0],
    ``max_scale`` [0 = unlimited]), e.g. ``kpa={"stable_window": 30}``; ``cluster``: a
    :class:`~rlsys_envs.serverless.model.ClusterConfig` or a mapping of its fields
    (``n_nodes`` [3], ``node_cpu`` [3.5], ``node_mem_mb`` [12288], ``pod_cpu`` [1.0],
    ``pod_mem_mb`` [512], ``pod_base_mem_mb`` [62], ``cold_start_median`` [1.5 s],
    ``cold_start_sigma`` [0.3], ``image_mb`` [100], ``pull_mb_per_s`` [50], ``contention`` [0.01],
    ``error_latency`` [0.05 s], ``initial_pods`` [1], ``restart_backoff`` [10 s],
    ``restart_backoff_max`` [300 s], ``backoff_reset`` [600 s], ``queue_depth_factor`` [10],
    ``request_timeout`` [300 s], ``target_burst_capacity`` [200], ``activator_queue_depth``
    [10000]); both validate their own fields and name
    them (``cluster.n_nodes must be ...``); ``render_mode`` [None, ansi, rgb_array].

    **Metrics** (``info["metrics"]`` at the last step, whole episode): ``throughput`` (req/s),
    ``p50_latency``, ``p95_latency``, ``p99_latency`` (s, successful requests), ``error_rate``,
    ``pod_seconds``, ``cold_starts`` (pods started, OOM restarts excluded), ``oom_kills``,
    ``mean_limit``, ``arrived``, ``completed``, ``failed``, ``slo_score``, ``slo_violation_rate``,
    ``intervals_over_slo``. ``info`` at every step also holds ``limit`` and ``interval`` (this interval's numbers).

    **Simulators.** ``fluid`` (default) advances per-pod queued and in-service counts every
    ``dt`` with the service inside a step solved in closed form and exact request ages, so
    ``L = lambda W`` holds; ``event`` is the request-level reference on ``core.EventClock``
    (exact processor sharing, 30-50x slower). The fluid has no stochastic queueing inside a pod:
    at high open-loop load without a limit its queues and tails come out lower; under a
    synchronised closed loop it overstates the throughput of requests much faster than ``dt``.

    **Simplifications** (documented, not Knative): least-loaded routing; one activator queue per
    revision (Knative shards it over ``activator-capacity``-sized activator pods, which does not
    change what is held); a revision that no longer is the latest only scales down; on a full
    cluster the roll-out drains the old revision's least-loaded pod first.

    **Knative default.** :meth:`pin_limit` fixes the limit for the rest of the episode (0 = no
    hard limit, the Knative default with target 100 x 0.7); later actions are validated but do
    not change it. The ``knative_default`` and ``static_*`` baselines use it.

    **Variants** (registry): ``delta``, ``absolute``, ``continuous``, ``memory``, ``sleep``,
    ``poisson``, ``bursty``, ``diurnal``, ``switching``, ``switching_cpu``, ``switching_random``,
    ``slo``, ``paper_reward``, ``instant_limit``; see ``docs/envs/serverless.md``.

    **Version History.** v0: initial version.
    """

    def __init__(self, *, workload: Any = "paper", profile: str = "cpu", switch_profile: str = "sleep",
                 switch_at: float = 0.5, switch_spread: float = 0.0, clients: int = 500,
                 arrival_rate: float | None = None,
                 trace_path: str | None = None, trace_function: str | None = None, trace_scale: float | None = None,
                 trace_start: int = 0,
                 cpu_s: float | None = None, sleep_s: float | None = None, mem_mb: float | None = None,
                 work_cv: float | None = None, action_type: str = "delta", reward: str = "slo",
                 decision_interval: float = 30.0, episode_decisions: int = 30, initial_limit: int = 110,
                 simulator: str = "fluid", dt: float = 0.5, limit_change: str = "revision",
                 throughput_ref: float = 100.0,
                 slo_latency: float = 5.0, w_latency: float = 0.5, latency_cap: float = 1.0, w_error: float = 2.0,
                 w_cost: float = 0.1, w_tail: float = 0.5, kpa: KPAConfig | Mapping | None = None,
                 cluster: ClusterConfig | Mapping | None = None, render_mode: str | None = None):
        super().__init__(render_mode=render_mode)
        if isinstance(workload, str):
            self.workload_kind = check_choice("workload", workload, WORKLOADS)
        else:   # a Workload, or an instance generator rng -> Workload (checked below)
            self.workload_kind = "custom"
        self.profile_name = check_choice("profile", profile, tuple(PROFILES))
        self.switch_profile_name = check_choice("switch_profile", switch_profile, tuple(PROFILES))
        self.switch_at, self.switch_spread = check_episode_window("switch_at", switch_at,
                                                                  "switch_spread", switch_spread)
        self.clients = check_int("clients", clients, 1, 100_000)
        self.arrival_rate = (None if arrival_rate is None
                             else check_float("arrival_rate", arrival_rate, 0.0, 1e6, low_inclusive=False))
        knobs = {}
        for name, val, hi in (("cpu_s", cpu_s, 100.0), ("sleep_s", sleep_s, 3600.0), ("mem_mb", mem_mb, 1e6),
                              ("work_cv", work_cv, 2.0)):
            knobs[name] = None if val is None else check_float(name, val, 0.0, hi)
        if knobs["cpu_s"] == 0.0 and knobs["sleep_s"] == 0.0:
            raise ValueError("cpu_s and sleep_s cannot both be 0: a request must take time")
        self.action_type = check_choice("action_type", action_type, ("delta", "absolute", "continuous"))
        self.reward_kind = check_choice("reward", reward, ("paper", "slo"))
        self.decision_interval = check_float("decision_interval", decision_interval, 2.0, 3600.0)
        self.episode_decisions = check_int("episode_decisions", episode_decisions, 1, 100_000)
        self.simulator_kind = check_choice("simulator", simulator, ("fluid", "event"))
        self.dt = check_choice("dt", dt, (0.1, 0.125, 0.2, 0.25, 0.5, 1.0))
        self.limit_change = check_choice("limit_change", limit_change, ("revision", "instant"))
        self.slo = SLOReward(throughput_ref=throughput_ref, slo_latency=slo_latency, w_latency=w_latency,
                             w_tail=w_tail, latency_cap=latency_cap, w_error=w_error, w_cost=w_cost)
        self.throughput_ref, self.slo_latency = self.slo.throughput_ref, self.slo.slo_latency
        self.w_latency, self.w_tail, self.latency_cap = self.slo.w_latency, self.slo.w_tail, self.slo.latency_cap
        self.w_error, self.w_cost = self.slo.w_error, self.slo.w_cost
        kpa = kpa_for_interval(kpa, self.decision_interval)
        cluster = config_of(ClusterConfig, cluster, "cluster")
        if self.action_type == "continuous":
            self.initial_limit = check_int("initial_limit", initial_limit, 10, 310)
        else:
            self.initial_limit = check_choice("initial_limit", initial_limit, tuple(int(x) for x in LIMITS))
        self.trace_counts = None
        trace_start = check_int("trace_start", trace_start, 0, 10**7)
        if self.workload_kind == "trace":
            if trace_path is None:
                raise ValueError("trace_path must name an Azure Functions 2019 invocations CSV when workload='trace'")
            counts = load_trace_counts(trace_path, function=trace_function)
            start = check_int("trace_start", trace_start, 0, len(counts) - 1)
            self.trace_counts = counts[start:]
            if self.trace_counts.sum() <= 0:
                raise ValueError(f"trace_start: {trace_path} has no invocations from minute {start} on")
        self.trace_scale = (None if trace_scale is None
                            else check_float("trace_scale", trace_scale, 0.0, 1e9, low_inclusive=False))
        self.profile = make_profile(self.profile_name, **knobs)
        self.switch_profile = make_profile(self.switch_profile_name, **knobs)
        self.instance_source = self._source(workload, "workload")
        self.kpa_cfg, self.cluster = kpa, cluster
        self.max_pods = cluster.max_pods()
        self.sim = make_simulator(self.simulator_kind, cluster, kpa, dt=self.dt,
                                  rollout=self.limit_change == "revision")

        if self.action_type == "delta":       # sample() draws legal moves (core.MaskedDiscrete)
            self.action_space = self.masked_discrete(3)
        elif self.action_type == "absolute":
            self.action_space = spaces.Discrete(len(LIMITS))
        else:
            self.action_space = spaces.Box(-1.0, 1.0, (1,), np.float32)
        box = spaces.Box(0.0, 1.0, (1,), np.float32)
        self.observation_space = spaces.Dict({k: box for k in OBS_KEYS})
        self._last: IntervalStats | None = None
        self.history: dict[str, list[float]] = {}

    # ------------------------------------------------------------------------------ helpers
    @property
    def limit(self) -> int:
        return self.sim.limit

    def limit_for_action(self, action) -> int:
        """The limit an action would set now (for policies that plan in limits)."""
        if self.action_type == "delta":
            return int(self.sim.limit + DELTAS[int(action)])
        if self.action_type == "absolute":
            return int(LIMITS[int(action)])
        a = float(np.asarray(action, dtype=np.float64).reshape(-1)[0])
        return int(round(10 + (a + 1.0) / 2.0 * 300.0))

    def action_for_limit(self, limit: int):
        """An action moving the limit towards ``limit`` (one step of 20 for ``delta``)."""
        if self.action_type == "delta":
            cur = self.sim.limit
            mask = self._action_mask()
            if limit > cur and mask[2]:
                return 2
            if limit < cur and mask[0]:
                return 0
            return 1
        if self.action_type == "absolute":
            return int(np.argmin(np.abs(LIMITS - limit)))
        return np.array([(min(max(limit, 10), 310) - 10) / 300.0 * 2.0 - 1.0], np.float32)

    def pin_limit(self, limit: int) -> None:
        """Fix the limit (0 = no hard limit: Knative's default) for the rest of the episode."""
        limit = check_int("limit", limit, 0, 100_000)
        self.sim.set_limit(limit)
        self._pinned = True

    def slo_terms(self, st: IntervalStats) -> dict[str, float]:
        """The five terms of the ``slo`` reward for one interval (they sum to the reward); see
        :class:`~rlsys_envs.serverless.model.SLOReward`."""
        return self.slo.terms(st, self.max_pods)

    def _source(self, value, field: str):
        """The workload generator that ``value`` (a ``workload`` argument) stands for: a name of
        :data:`~rlsys_envs.serverless.generator.WORKLOADS`, a ``Workload``, or ``rng -> Workload``."""
        named = {kind: (lambda kind=kind: (lambda rng: self._named_workload(kind, rng))) for kind in WORKLOADS}
        return instance_source(value, instance_type=Workload, named=named, field=field)

    def _named_workload(self, kind: str, rng: np.random.Generator) -> Workload:
        at = self.switch_at
        if kind == "switching" and self.switch_spread > 0:
            at = float(rng.uniform(at - self.switch_spread, at + self.switch_spread))
        if kind == "trace" and self.trace_counts is None:
            raise ValueError("workload 'trace' needs trace_path (an Azure Functions 2019 invocations CSV)")
        wl = make_workload(kind, self.profile, clients=self.clients, arrival_rate=self.arrival_rate,
                           episode_seconds=self.decision_interval * self.episode_decisions,
                           switch_profile=self.switch_profile, switch_at=at,
                           trace_counts=self.trace_counts, trace_scale=self.trace_scale)
        self._switch_fraction = at
        return wl

    # ------------------------------------------------------------------------ RlsysEnv hooks
    def _reset_model(self, options: dict) -> None:
        given = options.get("instance")
        source = self.instance_source if given is None else self._source(given, 'options["instance"]')
        self._switch_fraction = self.switch_at
        wl = draw_instance(source, self.np_random, Workload)
        self.switch_time = (wl.switch_at if wl.switch_at is not None
                            else self._switch_fraction * self.decision_interval * self.episode_decisions)
        self.sim.reset(self.np_random, wl, self.initial_limit)
        self._pinned = False
        self._t = 0
        self._best = 0.0
        self._last = None
        self._limit_sum = 0.0
        self._terms: dict[str, float] = {}
        self._slo_sum = 0.0
        self._over_slo = 0
        self.history = {k: [] for k in ("t", "arrival_rate", "throughput", "pods_ready", "limit", "p95", "error_rate")}

    def _apply_action(self, action):
        if not self._pinned:
            self.sim.set_limit(self.limit_for_action(action))
        self._limit_sum += self.sim.limit
        st = self.sim.advance(self.decision_interval)
        self._last = st
        self._t += 1
        x = st.throughput
        self._terms = self.slo_terms(st)
        slo_r = sum(self._terms.values())
        self._slo_sum += slo_r
        self._over_slo += int(st.completed > 0 and st.latency(0.95) > self.slo_latency) or int(st.error_rate > 0.01)
        if self.reward_kind == "paper":
            self._best = max(self._best, x)
            reward = 0.0 if self._best <= 0 else (1.0 if x >= 0.95 * self._best else x / self._best)
        else:
            reward = slo_r
        h = self.history
        h["t"].append(self.sim.now)
        h["arrival_rate"].append(st.arrived / st.duration)
        h["throughput"].append(x)
        h["pods_ready"].append(st.ready_mean)
        h["limit"].append(self.sim.limit)
        h["p95"].append(st.latency(0.95))
        h["error_rate"].append(st.error_rate)
        truncated = self._t >= self.episode_decisions
        return float(reward), False, truncated

    def _observation(self) -> dict[str, np.ndarray]:
        st = self._last
        snap = self.sim.snapshot()
        vals = {
            "limit": min(self.sim.limit, 310) / 310.0,
            "pods_ready": min(1.0, snap["ready"] / self.max_pods),
            "pods_pending": _squash(snap["pending"], self.max_pods),
            "arrival_rate": _squash(st.arrived / st.duration, 100.0) if st else 0.0,
            "throughput": _squash(st.throughput, 100.0) if st else 0.0,
            "in_flight": _squash(snap["in_flight"], 100.0),
            "queued": _squash(snap["queued"], 100.0),
            "p50_latency": _squash(st.latency(0.5), 1.0) if st else 0.0,
            "p95_latency": _squash(st.latency(0.95), 1.0) if st else 0.0,
            "error_rate": st.error_rate if st else 0.0,
            "cpu_util": st.cpu_util if st else 0.0,
            "mem_util": st.mem_util if st else 0.0,
            "progress": min(1.0, self._t / self.episode_decisions),
        }
        return {k: np.array([min(max(v, 0.0), 1.0)], np.float32) for k, v in vals.items()}

    def _action_mask(self):
        if self.action_type == "delta":
            cur = self.sim.limit
            return np.array([cur - 20 >= 10, True, cur + 20 <= 310], dtype=bool)
        if self.action_type == "absolute":
            return np.ones(len(LIMITS), dtype=bool)
        return None

    def _is_legal(self, action, mask) -> bool:
        if self.action_type == "continuous":
            return True        # every value inside the Box is legal (the base checked the box)
        return super()._is_legal(action, mask)

    def action_masks(self) -> np.ndarray:
        if self.action_type == "continuous":
            return np.ones(1, dtype=bool)
        return super().action_masks()

    def _step_info(self) -> dict[str, Any]:
        info: dict[str, Any] = {"limit": int(self.sim.limit)}
        st = self._last
        if st is not None and self.reward_kind == "slo":
            info["reward_terms"] = dict(self._terms)
        if st is not None:
            info["interval"] = {"throughput": st.throughput, "p50_latency": st.latency(0.5),
                                "p95_latency": st.latency(0.95), "error_rate": st.error_rate,
                                "pod_seconds": st.pod_seconds, "ready_pods": st.ready_mean,
                                "cpu_util": st.cpu_util, "mem_util": st.mem_util}
        return info

    def _episode_metrics(self) -> dict[str, float]:
        tot = self.sim.total
        h = self.sim.hist_total
        elapsed = max(self.sim.now, 1e-9)
        done = tot["completed"] + tot["failed"]
        return {
            "throughput": tot["completed"] / elapsed,
            "p50_latency": h.quantile(0.5), "p95_latency": h.quantile(0.95), "p99_latency": h.quantile(0.99),
            "error_rate": tot["failed"] / done if done > 0 else 0.0,
            "pod_seconds": tot["pod_seconds"], "cold_starts": float(tot["cold_starts"]),
            "oom_kills": float(tot["oom_kills"]),
            "mean_limit": self._limit_sum / max(self._t, 1),
            "arrived": tot["arrived"], "completed": tot["completed"], "failed": tot["failed"],
            "slo_score": self._slo_sum / max(self._t, 1),
            "slo_violation_rate": ((tot["completed"] * h.fraction_above(self.slo_latency) + tot["failed"]) / done
                                   if done > 0 else 0.0),
            "intervals_over_slo": self._over_slo / max(self._t, 1),
        }

    # ------------------------------------------------------------------------------- render
    def _render_ansi(self) -> str:
        from .render import render_ansi
        return render_ansi(self)

    def _render_rgb(self) -> np.ndarray:
        from .render import render_rgb
        return render_rgb(self)
