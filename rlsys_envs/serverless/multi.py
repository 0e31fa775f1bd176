"""Several Knative services (functions) on one shared cluster: ``rlsys/ServerlessMultiFunction-v0``.

Each function is a service of its own (its request profile, its load, its KPA, its revisions and
pods, simulated by the single-service simulators of :mod:`.model`); their pods compete for the
nodes of one :class:`rlsys_envs.core.ResourcePool` of cpu / memory, so a function whose KPA wants
more pods than fit leaves them pending until another function's pods go. The services advance in
lock-step rounds of 10 s (5 KPA ticks; 2 s when the decision interval is not a multiple of 10 s),
in a rotating order (no function always schedules first). Every decision the agent sets each
function's concurrency limit.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import numpy as np
from gymnasium import spaces

from rlsys_envs.core import (Demonstration, Policy, ResourcePool, RlsysEnv, check_choice, check_episode_window,
                              check_float, check_int, play_prefix)
from rlsys_envs.core.spaces import multi_discrete_legal
from rlsys_envs.core.validation import config_of

from .env import DELTAS, LIMITS, OBS_KEYS, _squash
from .generator import (DEFAULT_RATES, TimesReplay, load_azure_2019_functions, load_azure_2021_invocations,
                        make_profile, profile_from_durations)
from .kpa import KPAConfig, kpa_for_interval
from .model import PROFILES, ClusterConfig, IntervalStats, SLOReward, Workload, make_simulator, merge_stats

MULTI_WORKLOADS = ("poisson", "diurnal", "bursty", "revisions", "azure2019", "azure2021")
#: per-function observation keys (each a Box of shape (n_functions,)); plus cluster-wide ones
FUNC_KEYS = tuple(k for k in OBS_KEYS if k != "progress")


class MultiSimulator:
    """``n`` single-service simulators sharing one node pool (see the module docstring)."""

    def __init__(self, n: int, cluster: ClusterConfig, kpa: KPAConfig, kind: str = "fluid", dt: float = 0.5,
                 rollout: bool = True):
        self.cluster, self.kpa_cfg = cluster, kpa
        self.sims = [make_simulator(kind, cluster, kpa, dt=dt, rollout=rollout) for _ in range(n)]

    def reset(self, rng: np.random.Generator, workloads: Sequence[Workload], limits: Sequence[int]) -> None:
        c = self.cluster
        self.pool = ResourcePool(np.tile([c.node_cpu, c.node_mem_mb], (c.n_nodes, 1)).astype(float), ("cpu", "mem"))
        for i, (sim, wl, lim) in enumerate(zip(self.sims, workloads, limits)):
            sim.reset(rng, wl, int(lim), pool=self.pool, key=i)
        self.now = 0.0
        self._turn = 0

    #: KPA ticks per lock-step round (the services take turns every ``round_ticks`` ticks)
    round_ticks = 5

    def advance(self, duration: float) -> list[IntervalStats]:
        ticks = int(round(duration / self.kpa_cfg.tick))
        per = self.round_ticks if ticks % self.round_ticks == 0 else 1
        tick = per * self.kpa_cfg.tick
        n = ticks // per
        parts: list[list[IntervalStats]] = [[] for _ in self.sims]
        for _ in range(n):
            k = len(self.sims)
            for j in range(k):
                i = (self._turn + j) % k
                parts[i].append(self.sims[i].advance(tick))
            self._turn = (self._turn + 1) % k
        self.now = self.sims[0].now
        return [merge_stats(p) for p in parts]


class ServerlessMultiFunctionEnv(RlsysEnv):
    """Concurrency limits of several Knative functions on one shared cluster.

    **Description.** ``n_functions`` services share ``cluster`` (default 4 nodes of 3.5 cores:
    12 one-core pods in all). Each has its own request profile (``profiles``), its own load and
    Knative's request path and KPA as in ``rlsys/ServerlessAutoscaling-v0`` (revision roll-outs,
    queue-proxy cap, activator, timeouts, OOM kills with CrashLoopBackOff, cold starts); their
    pods compete for the nodes and wait pending while the cluster is full.

    **Action Space.** ``action_type="continuous"`` (default): ``Box(-1, 1, (n_functions,),
    float32)``, function ``i``'s limit is ``round(10 + (a_i + 1) / 2 * 300)`` (10 .. 310); no mask,
    values outside the box raise. ``"absolute"``: ``MultiDiscrete([16] * n_functions)``, component
    ``a_i`` sets function ``i``'s limit to ``10 + 20 a_i``; every action is legal. ``"delta"``:
    ``MultiDiscrete([3] * n_functions)``, per function -20 / keep / +20 (the single-service
    ``delta``); a move off the grid [10, 310] is masked out (the flat mask of length
    ``3 n_functions``, ``action_masks()``) and raises. The discrete types suit MaskablePPO.

    **Observation Space.** ``Dict``: for each key of the single-service observation but
    ``progress`` a ``Box(0, 1, (n_functions,))`` (the same normalisation, per function), plus
    ``cluster_cpu`` (allocated node cpu / total) and ``progress``, each ``Box(0, 1, (1,))``.

    **Rewards.** The sum over functions of the ``slo`` reward (each function's pod cost over the
    cluster's pod capacity), with the same weights as the single-service environment.

    **Starting State.** One warm pod per function, every limit at ``initial_limit``.

    **Episode End.** Truncated after ``episode_decisions`` decisions.

    **Arguments** (keyword only): ``n_functions`` [3, 1..16]; ``profiles`` [None: cpu, memory,
    sleep, cycled]; ``workload`` [poisson]: ``poisson``, ``diurnal`` (the rate swings +-80 % over
    the episode, each function's phase shifted), ``bursty`` (on-off), ``revisions`` (Poisson, and a
    new code revision of function ``revision_function`` [-1: the last] changes its memory per
    request from ``revision_mem_mb[0]`` to ``[1]`` [(10.0, 0.5)] at a time uniform in
    ``revision_at`` [0.5] +- ``revision_spread`` [0.2] of the episode, drawn at every reset, in a
    share ``revision_probability`` [1.0] of the episodes; the others run one of the two versions
    throughout; ``env.revision_time`` is the drawn time in s, None without one), ``azure2019`` (per-minute
    counts of the ``n_functions`` busiest functions, or ``trace_functions``, of an Azure
    Functions 2019 file ``trace_path`` from minute ``trace_start``, each rescaled to its function's
    rate unless ``trace_scale``), ``azure2021`` (the invocations of an Azure Functions 2021 file
    replayed at their arrival times ``end - duration``; the durations set each function's work:
    ``trace_cpu_fraction`` of the mean duration is CPU, the log-normal shape fits their spread);
    ``rates`` [None: the profiles' default rates x 0.6]; ``decision_interval`` [30.0];
    ``episode_decisions`` [30]; ``initial_limit`` [110, a grid value for the discrete action
    types]; ``action_type`` [continuous, absolute or delta]; ``simulator`` [fluid]; ``dt`` [0.5];
    ``limit_change`` [revision]; the ``slo`` reward weights (``throughput_ref`` ... ``w_cost``);
    ``kpa``, ``cluster`` as in the single-service environment; ``render_mode``.

    **Metrics.** Totals over all functions (``throughput``, ``p50/p95/p99_latency``,
    ``error_rate``, ``pod_seconds``, ``cold_starts``, ``oom_kills``, ``slo_score``,
    ``slo_violation_rate``, ``pending_pod_seconds``), and ``throughput_<i>``, ``p95_latency_<i>``,
    ``error_rate_<i>`` per function.

    **Version History.** v0: initial version.
    """

    def __init__(self, *, n_functions: int = 3, profiles: Sequence[str] | None = None, workload: str = "poisson",
                 rates: Sequence[float] | None = None, trace_path: str | None = None,
                 trace_functions: Sequence[str] | None = None, trace_start: int = 0,
                 trace_scale: float | None = None, trace_cpu_fraction: float = 0.5,
                 revision_function: int = -1, revision_mem_mb: Sequence[float] = (10.0, 0.5),
                 revision_at: float = 0.5, revision_spread: float = 0.2, revision_probability: float = 1.0,
                 decision_interval: float = 30.0, episode_decisions: int = 30, initial_limit: int = 110,
                 simulator: str = "fluid", dt: float = 0.5, limit_change: str = "revision",
                 action_type: str = "continuous",
                 throughput_ref: float = 100.0, slo_latency: float = 5.0, w_latency: float = 0.5, w_tail: float = 0.5,
                 latency_cap: float = 1.0, w_error: float = 2.0, w_cost: float = 0.1,
                 kpa: KPAConfig | Mapping | None = None, cluster: ClusterConfig | Mapping | None = None,
                 render_mode: str | None = None):
        super().__init__(render_mode=render_mode)
        self.n = check_int("n_functions", n_functions, 1, 16)
        names = list(profiles) if profiles is not None else [("cpu", "memory", "sleep")[i % 3] for i in range(self.n)]
        if len(names) != self.n:
            raise ValueError(f"profiles must name {self.n} profiles (one per function), got {len(names)}")
        self.profile_names = [check_choice("profiles", p, tuple(PROFILES)) for p in names]
        self.workload_kind = check_choice("workload", workload, MULTI_WORKLOADS)
        if rates is None:
            self.rates = [0.6 * DEFAULT_RATES[p] for p in self.profile_names]
        else:
            if len(rates) != self.n:
                raise ValueError(f"rates must give {self.n} rates (one per function), got {len(rates)}")
            self.rates = [check_float("rates", r, 0.0, 1e6, low_inclusive=False) for r in rates]
        self.revision_function = check_int("revision_function", revision_function, -self.n, self.n - 1) % self.n
        if len(revision_mem_mb) != 2:
            raise ValueError(f"revision_mem_mb must give 2 values (MB per request before and after the revision), "
                             f"got {len(revision_mem_mb)}")
        self.revision_mem_mb = tuple(check_float("revision_mem_mb", m, 0.0, 1e5) for m in revision_mem_mb)
        self.revision_at, self.revision_spread = check_episode_window("revision_at", revision_at,
                                                                      "revision_spread", revision_spread)
        self.revision_probability = check_float("revision_probability", revision_probability, 0.0, 1.0)
        self.trace_start = check_int("trace_start", trace_start, 0, 10**7)
        self.trace_scale = None if trace_scale is None else check_float("trace_scale", trace_scale, 0.0, 1e9,
                                                                        low_inclusive=False)
        self.trace_cpu_fraction = check_float("trace_cpu_fraction", trace_cpu_fraction, 0.0, 1.0)
        self.decision_interval = check_float("decision_interval", decision_interval, 2.0, 3600.0)
        self.episode_decisions = check_int("episode_decisions", episode_decisions, 1, 100_000)
        self.initial_limit = check_int("initial_limit", initial_limit, 10, 310)
        self.action_type = check_choice("action_type", action_type, ("continuous", "absolute", "delta"))
        if self.action_type != "continuous" and self.initial_limit not in LIMITS:
            raise ValueError(f"initial_limit must be a grid value 10, 30, ..., 310 with action_type="
                             f"{self.action_type!r}, got {self.initial_limit}")
        self.simulator_kind = check_choice("simulator", simulator, ("fluid", "event"))
        self.dt = check_choice("dt", dt, (0.1, 0.125, 0.2, 0.25, 0.5, 1.0))
        self.limit_change = check_choice("limit_change", limit_change, ("revision", "instant"))
        self.slo = SLOReward(throughput_ref=throughput_ref, slo_latency=slo_latency, w_latency=w_latency,
                             w_tail=w_tail, latency_cap=latency_cap, w_error=w_error, w_cost=w_cost)
        kpa = kpa_for_interval(kpa, self.decision_interval)
        cluster = config_of(ClusterConfig, cluster if cluster is not None else {"n_nodes": 4}, "cluster")
        self.cluster, self.kpa_cfg = cluster, kpa
        self.max_pods = cluster.max_pods()
        self.profiles = [make_profile(p) for p in self.profile_names]
        self.function_names = [f"f{i}" for i in range(self.n)]
        self._trace = None
        if self.workload_kind in ("azure2019", "azure2021"):
            if trace_path is None:
                raise ValueError(f"trace_path must name a trace file when workload={self.workload_kind!r}")
            self._trace = self._load_trace(trace_path, trace_functions)
        elif trace_path is not None:
            raise ValueError(f"trace_path is only read by the azure2019 / azure2021 workloads, not {workload!r}")
        self.sim = MultiSimulator(self.n, cluster, kpa, kind=self.simulator_kind, dt=self.dt,
                                  rollout=self.limit_change == "revision")
        if self.action_type == "continuous":
            self.action_space = spaces.Box(-1.0, 1.0, (self.n,), np.float32)
        else:
            self.action_space = self.masked_multi_discrete([len(LIMITS) if self.action_type == "absolute"
                                                            else len(DELTAS)] * self.n)
        obs = {k: spaces.Box(0.0, 1.0, (self.n,), np.float32) for k in FUNC_KEYS}
        obs["cluster_cpu"] = spaces.Box(0.0, 1.0, (1,), np.float32)
        obs["progress"] = spaces.Box(0.0, 1.0, (1,), np.float32)
        self.observation_space = spaces.Dict(obs)
        self._last: list[IntervalStats] | None = None
        self.revision_time, self.revision_version = None, 0

    # ---------------------------------------------------------------------------- workloads
    def _load_trace(self, path, functions):
        if self.workload_kind == "azure2019":
            sel = self.n if functions is None else list(functions)
            rows = load_azure_2019_functions(path, functions=sel, start_minute=self.trace_start)
            if len(rows) < self.n:
                raise ValueError(f"{path}: {len(rows)} function(s) for n_functions={self.n}")
            self.function_names = list(rows)
            return list(rows.values())
        inv = load_azure_2021_invocations(path)
        if functions is None:
            keys = sorted(inv, key=lambda k: (-len(inv[k][0]), k))[:self.n]
        else:
            keys = list(functions)
            missing = [k for k in keys if k not in inv]
            if missing:
                raise ValueError(f"{path}: no invocations of {missing} (names are 'app/func')")
        if len(keys) < self.n:
            raise ValueError(f"{path}: {len(keys)} function(s) for n_functions={self.n}")
        self.function_names = keys
        t0 = 60.0 * self.trace_start
        out = []
        for i, k in enumerate(keys):
            times, durs = inv[k]
            keep = times >= t0
            if not keep.any():
                raise ValueError(f"{path}: {k} has no invocation from minute {self.trace_start} on")
            self.profiles[i] = profile_from_durations(k, durs[keep], cpu_fraction=self.trace_cpu_fraction,
                                                      mem_mb=self.profiles[i].mem_mb)
            out.append(times[keep] - t0)
        return out

    def _workloads(self) -> list[Workload]:
        from rlsys_envs.core import DiurnalProcess, OnOffProcess, PoissonProcess, TraceReplay

        T = self.decision_interval * self.episode_decisions
        out = []
        for i, (p, r) in enumerate(zip(self.profiles, self.rates)):
            if self.workload_kind == "poisson":
                proc = PoissonProcess(r)
            elif self.workload_kind == "diurnal":
                proc = DiurnalProcess(r, amplitude=0.8, period=T, phase=i / self.n)
            elif self.workload_kind == "bursty":
                proc = OnOffProcess(rate_on=2.0 * r, rate_off=0.25 * r, mean_on=60.0, mean_off=120.0)
            elif self.workload_kind == "revisions":
                if i == self.revision_function:
                    out.append(self._revision_workload(p, PoissonProcess(r)))
                    continue
                proc = PoissonProcess(r)
            elif self.workload_kind == "azure2019":
                counts = self._trace[i]
                scale = self.trace_scale if self.trace_scale is not None else r * 60.0 / max(counts.mean(), 1e-9)
                proc = TraceReplay(counts, interval=60.0, scale=scale)
            else:
                proc = TimesReplay(self._trace[i])
            out.append(Workload(p, process=proc))
        return out

    def _draw_revision(self) -> None:
        """Draw this episode's code revision (``workload="revisions"``) from ``np_random``: with
        ``revision_probability`` the revised function changes version at a time uniform in
        ``revision_at +- revision_spread`` of the episode; otherwise it runs one of its two versions
        throughout (each with even odds), so one training distribution also holds both stationary
        loads. Sets ``revision_time`` (s, None without a revision) and ``revision_version`` (the
        version at the start: 0 = before, 1 = after)."""
        self.revision_time, self.revision_version = None, 0
        if self.workload_kind != "revisions":
            return
        rng = self.np_random
        if rng.random() < self.revision_probability:
            frac = rng.uniform(self.revision_at - self.revision_spread, self.revision_at + self.revision_spread)
            self.revision_time = float(frac) * self.decision_interval * self.episode_decisions
        else:
            self.revision_version = int(rng.integers(2))

    def _revision_workload(self, profile, process) -> Workload:
        """The revised function's workload: its profile with the memory per request of the drawn
        version, switching to the other version at ``revision_time``."""
        versions = [make_profile(profile.name, cpu_s=profile.cpu_s, sleep_s=profile.sleep_s, mem_mb=m,
                                 work_cv=profile.work_cv) for m in self.revision_mem_mb]
        if self.revision_time is None:
            return Workload(versions[self.revision_version], process=process)
        return Workload(versions[0], process=process, switch_at=self.revision_time, switch_profile=versions[1])

    # ------------------------------------------------------------------------------ helpers
    def limits_for_action(self, action) -> list[int]:
        """The limits an action would set now, per function."""
        if self.action_type == "absolute":
            return [int(LIMITS[int(x)]) for x in np.asarray(action).reshape(-1)]
        if self.action_type == "delta":
            return [int(s.limit + DELTAS[int(x)]) for s, x in zip(self.sim.sims, np.asarray(action).reshape(-1))]
        a = np.asarray(action, dtype=np.float64).reshape(-1)
        return [int(round(10 + (x + 1.0) / 2.0 * 300.0)) for x in a]

    def action_for_limits(self, limits) -> np.ndarray:
        """An action moving every function's limit towards ``limits`` (one step of 20 for
        ``delta``)."""
        if self.action_type == "absolute":
            return np.array([int(np.argmin(np.abs(LIMITS - lim))) for lim in limits], np.int64)
        if self.action_type == "delta":
            out = []
            for s, lim in zip(self.sim.sims, limits):
                cur = s.limit
                out.append(2 if lim > cur and cur + DELTAS[2] <= LIMITS[-1] else
                           0 if lim < cur and cur + DELTAS[0] >= LIMITS[0] else 1)
            return np.array(out, np.int64)
        return np.array([(min(max(lim, 10), 310) - 10) / 300.0 * 2.0 - 1.0 for lim in limits], np.float32)

    @property
    def limits(self) -> list[int]:
        return [s.limit for s in self.sim.sims]

    def pin_limits(self, limits) -> None:
        """Fix every function's limit (0 = no hard limit) for the rest of the episode."""
        for sim, lim in zip(self.sim.sims, limits):
            sim.set_limit(check_int("limit", lim, 0, 100_000))
        self._pinned = True

    # ------------------------------------------------------------------------ RlsysEnv hooks
    def _reset_model(self, options: dict) -> None:
        if options.get("instance") is not None:
            raise ValueError('options["instance"]: this environment draws its workloads from its arguments')
        self._draw_revision()
        self.sim.reset(self.np_random, self._workloads(), [self.initial_limit] * self.n)
        self._pinned = False
        self._t = 0
        self._last = None
        self._slo_sum = 0.0
        self._pending_s = 0.0
        self._terms: list[dict[str, float]] = []
        self.history = {k: [] for k in ("t", "throughput", "limit", "p95")}

    def _apply_action(self, action):
        if not self._pinned:
            for sim, lim in zip(self.sim.sims, self.limits_for_action(action)):
                sim.set_limit(lim)
        sts = self.sim.advance(self.decision_interval)
        self._last = sts
        self._t += 1
        self._terms = [self.slo.terms(st, self.max_pods) for st in sts]
        reward = float(sum(sum(t.values()) for t in self._terms))
        self._slo_sum += reward
        self._pending_s += sum(s.pod_counts()[1] for s in self.sim.sims) * self.decision_interval
        h = self.history
        h["t"].append(self.sim.now)
        h["throughput"].append([st.throughput for st in sts])
        h["limit"].append(self.limits)
        h["p95"].append([st.latency(0.95) for st in sts])
        return reward, False, self._t >= self.episode_decisions

    def _observation(self) -> dict[str, np.ndarray]:
        vals = {k: np.zeros(self.n) for k in FUNC_KEYS}
        for i, sim in enumerate(self.sim.sims):
            snap = sim.snapshot()
            st = self._last[i] if self._last else None
            vals["limit"][i] = min(sim.limit, 310) / 310.0
            vals["pods_ready"][i] = min(1.0, snap["ready"] / self.max_pods)
            vals["pods_pending"][i] = _squash(snap["pending"], self.max_pods)
            vals["in_flight"][i] = _squash(snap["in_flight"], 100.0)
            vals["queued"][i] = _squash(snap["queued"], 100.0)
            if st is not None:
                vals["arrival_rate"][i] = _squash(st.arrived / st.duration, 100.0)
                vals["throughput"][i] = _squash(st.throughput, 100.0)
                vals["p50_latency"][i] = _squash(st.latency(0.5), 1.0)
                vals["p95_latency"][i] = _squash(st.latency(0.95), 1.0)
                vals["error_rate"][i] = st.error_rate
                vals["cpu_util"][i] = st.cpu_util
                vals["mem_util"][i] = st.mem_util
        out = {k: np.clip(v, 0.0, 1.0).astype(np.float32) for k, v in vals.items()}
        pool = self.sim.pool
        out["cluster_cpu"] = np.array([min(1.0, float(pool.usage[:, 0].sum() / pool.capacity[:, 0].sum()))],
                                      np.float32)
        out["progress"] = np.array([min(1.0, self._t / self.episode_decisions)], np.float32)
        return out

    def _action_mask(self) -> np.ndarray | None:
        if self.action_type == "continuous":
            return None
        if self.action_type == "absolute":
            return np.ones(len(LIMITS) * self.n, dtype=bool)
        m = []
        for s in self.sim.sims:
            m += [s.limit + DELTAS[0] >= LIMITS[0], True, s.limit + DELTAS[2] <= LIMITS[-1]]
        return np.array(m, dtype=bool)

    def _is_legal(self, action, mask) -> bool:
        if self.action_type == "continuous":
            return True       # every value inside the Box is legal (the base checked the box)
        return multi_discrete_legal(mask, self.action_space.nvec, action)

    def action_masks(self) -> np.ndarray:
        if self.action_type == "continuous":
            return np.ones(1, dtype=bool)
        return self._action_mask()

    def _step_info(self) -> dict[str, Any]:
        info: dict[str, Any] = {"limits": self.limits}
        if self._last is not None:
            info["reward_terms"] = [dict(t) for t in self._terms]
            info["interval"] = [{"throughput": st.throughput, "p95_latency": st.latency(0.95),
                                 "error_rate": st.error_rate, "cpu_util": st.cpu_util, "mem_util": st.mem_util,
                                 "pod_seconds": st.pod_seconds} for st in self._last]
        return info

    def _episode_metrics(self) -> dict[str, float]:
        from .model import LatencyHistogram

        elapsed = max(self.sim.now, 1e-9)
        hist = LatencyHistogram()
        tot = dict(completed=0.0, failed=0.0, pod_seconds=0.0, cold_starts=0.0, oom_kills=0.0, arrived=0.0)
        per = {}
        slo = self.slo.slo_latency
        late = 0.0
        for i, sim in enumerate(self.sim.sims):
            t = sim.total
            hist.merge(sim.hist_total)
            for k in tot:
                tot[k] += float(t[k])
            done = t["completed"] + t["failed"]
            late += t["completed"] * sim.hist_total.fraction_above(slo)
            per[f"throughput_{i}"] = t["completed"] / elapsed
            per[f"p95_latency_{i}"] = sim.hist_total.quantile(0.95)
            per[f"error_rate_{i}"] = t["failed"] / done if done > 0 else 0.0
        done = tot["completed"] + tot["failed"]
        return {"throughput": tot["completed"] / elapsed, "p50_latency": hist.quantile(0.5),
                "p95_latency": hist.quantile(0.95), "p99_latency": hist.quantile(0.99),
                "error_rate": tot["failed"] / done if done > 0 else 0.0, "pod_seconds": tot["pod_seconds"],
                "cold_starts": tot["cold_starts"], "oom_kills": tot["oom_kills"],
                "arrived": tot["arrived"], "completed": tot["completed"], "failed": tot["failed"],
                "slo_score": self._slo_sum / max(self._t, 1),
                "slo_violation_rate": (late + tot["failed"]) / done if done > 0 else 0.0,
                "pending_pod_seconds": self._pending_s, **per}

    def _render_ansi(self) -> str:
        lines = [f"ServerlessMultiFunction  workload={self.workload_kind} t={self.sim.now:.0f}s "
                 f"cluster cpu {self.sim.pool.usage[:, 0].sum():.1f}/{self.sim.pool.capacity[:, 0].sum():.1f}",
                 f"{'function':>24} {'profile':>8} {'limit':>5} {'ready':>5} {'pending':>7} {'done/s':>8} "
                 f"{'p95[s]':>7}"]
        for i, sim in enumerate(self.sim.sims):
            snap = sim.snapshot()
            st = self._last[i] if self._last else None
            lines.append(f"{self.function_names[i][-24:]:>24} {self.profiles[i].name[:8]:>8} {sim.limit:5d} "
                         f"{snap['ready']:5d} {snap['pending']:7d} {st.throughput if st else 0.0:8.1f} "
                         f"{st.latency(0.95) if st else 0.0:7.2f}")
        return "\n".join(lines) + "\n"

    def _render_rgb(self) -> np.ndarray:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        from rlsys_envs.core.render import figure_to_rgb

        h = self.history
        t = np.array(h["t"], float)
        fig, axes = plt.subplots(2, 1, figsize=(8, 5), dpi=80, sharex=True)
        try:
            for i in range(self.n):
                label = f"{self.function_names[i][-12:]} ({self.profiles[i].name[:8]})"
                axes[0].step(t, [x[i] for x in h["throughput"]], where="pre", label=label)
                axes[1].step(t, [x[i] for x in h["limit"]], where="pre", label=label)
            axes[0].set_ylabel("completions/s")
            axes[0].legend(fontsize=7, loc="upper right")
            axes[0].set_title(f"{self.n} functions on {self.cluster.n_nodes} nodes, t = {self.sim.now:.0f} s",
                              fontsize=9)
            axes[1].set_ylabel("limit")
            axes[1].set_ylim(0, 320)
            axes[1].set_xlabel("simulated time [s]")
            fig.tight_layout()
            return figure_to_rgb(fig)
        finally:
            plt.close(fig)


# ---------------------------------------------------------------------------------- baselines


class MultiStaticPolicy(Policy):
    """Every function's limit pinned (one limit for all, or one per function; 0 = Knative's
    default: no hard limit, target 100 x 0.7)."""

    def __init__(self, limits):
        self.limits_spec = limits
        self.name = (f"static_{limits}" if isinstance(limits, int) else
                     "static_per_function_" + "_".join(map(str, limits)))

    def reset(self, env, seed=None):
        super().reset(env, seed)
        env = env.unwrapped
        lims = [self.limits_spec] * env.n if isinstance(self.limits_spec, int) else list(self.limits_spec)
        env.pin_limits(lims)
        self._lims = lims

    def act(self, env, obs, info):
        return env.unwrapped.action_for_limits([max(10, x) for x in self._lims])


class MultiPhasedLimitPolicy(MultiStaticPolicy):
    """Oracle for ``workload="revisions"``: the limits ``before`` until the first decision at or
    after the drawn ``revision_time``, then ``after`` (it knows when the revision comes: an upper
    reference, not a deployable policy; without a revision in the episode it keeps ``before``)."""

    def __init__(self, before, after):
        super().__init__(list(before))
        self.after = list(after)
        self.name = "oracle_" + "_".join(map(str, before)) + "->" + "_".join(map(str, after))

    def act(self, env, obs, info):
        env = env.unwrapped
        rt = env.revision_time
        if rt is not None and env.sim.now >= rt and env.limits != self.after:
            env.pin_limits(self.after)      # pinned: the action itself is ignored
        return super().act(env, obs, info)


class MultiRevisionExpert:
    """Demonstrations for behaviour cloning (``rlsys_agents.imitation``, ``pretrain.expert:
    revision_oracle``) on ``workload="revisions"`` with ``action_type="delta"`` or ``"absolute"``:
    it moves every function's limit (one delta step per decision, or at once) towards ``before``
    until the revision has
    shown in an interval (the first decision at or after ``revision_time``; in an episode that runs
    the revised version throughout, from the second decision, after one interval of it), then
    towards ``after``. It reads ``revision_time`` / ``revision_version``, which a policy does not
    see: the student learns the same moves from what the observation shows (the revised
    function's memory use per pod falls from about 0.5 to 0.15 of the pod limit), i.e. it is
    taught to detect the revision, not told. Each step's accepted action is the expert's."""

    name = "revision_oracle"
    version = 1

    def __init__(self, before: Sequence[int] = (30, 30, 30), after: Sequence[int] = (30, 30, 110)):
        self.before = [check_int("before", x, 10, 310) for x in before]
        self.after = [check_int("after", x, 10, 310) for x in after]
        if len(self.before) != len(self.after):
            raise ValueError(f"before and after must give one limit per function, got {len(self.before)} and "
                             f"{len(self.after)}")

    def target(self, env) -> list[int]:
        """The limits the expert steers to now."""
        rt = env.revision_time
        revised = env.sim.now >= rt if rt is not None else env.revision_version == 1 and env._t >= 1
        return self.after if revised else self.before

    def demonstrate(self, env, seed: int, prefix=()) -> Demonstration:
        base = env.unwrapped
        if base.workload_kind != "revisions" or base.action_type == "continuous" or base.n != len(self.before):
            raise ValueError(f"the revision_oracle expert needs workload='revisions', action_type='delta' or "
                             f"'absolute' and {len(self.before)} functions; got {base.workload_kind!r}, "
                             f"{base.action_type!r}, {base.n}")
        offsets = np.arange(base.n) * (len(DELTAS) if base.action_type == "delta" else len(LIMITS))
        play_prefix(env, seed, prefix, "revision_oracle", lambda a: np.asarray(a, np.int64))
        actions, done = [[int(x) for x in a] for a in prefix], False
        n_prefix = len(actions)
        while not done:
            a = base.action_for_limits(self.target(base))
            actions.append([int(x) for x in a])
            _, _, term, trunc, _ = env.step(a)
            done = term or trunc
        return Demonstration(int(seed), actions, [[int(o + x) for o, x in zip(offsets, a)] for a in actions],
                             {"revision_time": base.revision_time}, n_prefix)


EXPERTS = {"revision_oracle": MultiRevisionExpert}


class MultiCPUThresholdPolicy(Policy):
    """The single-service ``cpu_threshold`` rule applied to every function."""

    name = "cpu_threshold"

    def __init__(self, low: float = 0.5, high: float = 0.8):
        self.low, self.high = float(low), float(high)

    def act(self, env, obs, info):
        env = env.unwrapped
        lims = list(env.limits)
        for i, iv in enumerate(info.get("interval") or []):
            if iv["cpu_util"] > self.high:
                lims[i] = max(10, lims[i] - 20)
            elif iv["cpu_util"] < self.low:
                lims[i] = min(310, lims[i] + 20)
        return env.action_for_limits(lims)


BASELINES = {
    "knative_default": lambda: _named(MultiStaticPolicy(0), "knative_default"),
    **{f"static_{lim}": (lambda lim=lim: MultiStaticPolicy(lim)) for lim in range(10, 311, 20)},
    "cpu_threshold": MultiCPUThresholdPolicy,
}

class MultiRandomPolicy(Policy):
    """Every function's limit uniformly random in [10, 310] at every decision (seeded by ``reset``)."""

    name = "random"

    def act(self, env, obs, info):
        return self.rng.uniform(-1.0, 1.0, env.action_space.shape).astype(np.float32)


BASELINES["random"] = MultiRandomPolicy


def _named(policy, name):
    policy.name = name
    return policy
