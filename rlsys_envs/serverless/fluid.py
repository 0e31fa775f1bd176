"""The fast, time-stepped fluid simulator of the serverless environment (its default).

See :mod:`rlsys_envs.serverless.model` for the semantics both simulators share.
"""
from __future__ import annotations

from statistics import NormalDist

import numpy as np

from .kpa import KPAConfig
from .model import DRAINING, FREE, READY, STARTING, ClusterConfig, IntervalStats, Profile, SimulatorBase


class FluidSimulator(SimulatorBase):
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
