"""The fast, time-stepped fluid simulator of the serverless environment (its default).

See :mod:`rlsys_envs.serverless.model` for the semantics both simulators share.

Accounting (what makes Little's law hold): per pod the fluid keeps the queued count ``q`` (with
the mean age of the queue) and the in-service count ``n`` (with the mean wait its requests spent
queued). Each step of ``dt`` starts with the step's arrivals routed and admitted; over the step
the pod serves in continuous time, solved in closed form: while its queue-proxy still holds
requests the pod stays at its limit and completes ``limit / T`` requests per second, each
completion admitting the next queued request; once the queue is empty the in-service count
decays as ``exp(-t / T)``. ``T`` is the mean time in service at the pod's sharing level (a
mean-value analysis of processor sharing over the step's time-averaged in-service count), so a
request is held for ``T`` on average, not for a whole step, and the recorded latency of a
completion (its queue wait plus ``T``, spread by the work jitter) is the time the fluid really
held it. The integral of the in-system count is exact for these dynamics, so ``L = lambda W``
holds up to the fluid's mixing approximations (tested within a few percent).

Randomness (from the simulator's generator only): open-loop arrivals come from the arrival
process; each step, each pod's mean work is the sample mean of its cohort's log-normal work
factors (a log-normal of the same mean whose variance shrinks with the cohort size); the
latency spread of each completion batch is drawn from the per-request work distribution; cold
starts and restarts are drawn per pod.
"""
from __future__ import annotations

import math

import numpy as np

from .kpa import KPAConfig
from .model import DRAINING, FREE, READY, STARTING, ClusterConfig, IntervalStats, SimulatorBase


#: in-service residue (requests) a pod with an empty queue finishes at once
_RESIDUE = 0.01


class FluidSimulator(SimulatorBase):
    """Time-stepped fluid model (see the module docstring). Per-pod state is kept in Python
    lists: with a few dozen pods at most, scalar loops beat numpy's per-call overhead."""

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
        self.q = [0.0] * S      # queued in the pod's queue-proxy
        self.aq = [0.0] * S     # mean age of the queued requests
        self.n = [0.0] * S      # in service (in flight)
        self.wn = [0.0] * S     # mean queue wait of the in-service requests
        self.an = [0.0] * S     # mean age in service (time since admission) of the in-service requests
        self._t_lim: dict[tuple, float] = {}    # (profile, limit) -> mean time in service at the limit
        self.act_age = 0.0
        self.returning = 0.0       # closed-loop clients whose response came back during the last step
        self.act_n = float(self.workload.clients)      # the closed loop's first requests, at t = 0
        self.total["arrived"] += self.act_n

    def _t_at_limit(self, p, limit: float) -> float:
        """Mean time in service of a pod holding ``limit`` requests of profile ``p`` (the mean-value
        analysis of :meth:`advance` at a constant count), cached per (profile, limit)."""
        key = (p, limit)
        t = self._t_lim.get(key)
        if t is None:
            c = self.cluster
            w, sl, m = p.cpu_s * p.mean_factor(), p.sleep_s * p.mean_factor(), float(limit)
            cpu_t = w
            for _ in range(self._FP_ITERS):
                if w <= 0.0:
                    break
                nce = m * cpu_t / (cpu_t + sl)
                seen = (m - 1.0) / m if m > 1.0 else 0.0
                cpu_t = w * max(1.0, (1.0 + nce * seen) / c.pod_cpu) * (1.0 + c.contention * max(0.0, nce - c.pod_cpu))
            t = self._t_lim[key] = max(cpu_t + sl, 1e-9)
        return t

    def _pod_load(self) -> np.ndarray:
        return np.array([a + b for a, b in zip(self.q, self.n)])

    def _on_pod_drained_check(self) -> None:
        for s in np.flatnonzero(self.state == DRAINING):
            s = int(s)
            if self.q[s] + self.n[s] < 1e-9:
                self._release_pod(s)

    def _release_pod(self, s: int) -> None:
        left = self.q[s] + self.n[s]
        if left > 0:        # a drained pod's rounding residue: leaves the system as completed
            self.total["completed"] += left
        self.q[s] = self.n[s] = 0.0
        super()._release_pod(s)

    def in_system(self) -> float:
        return float(sum(self.q) + sum(self.n) + self.act_n)

    def snapshot(self) -> dict[str, float]:
        ready, pending = self.pod_counts()
        return dict(ready=ready, pending=pending, in_flight=float(sum(self.n)),
                    queued=float(sum(self.q) + self.act_n))

    def _route(self, n: float, age: float, routable: list[int]) -> None:
        """Water-fill ``n`` requests (mean age ``age``) over the routable pods, least loaded first
        (the fluid limit of join-the-shortest-queue)."""
        if n <= 0.0:
            return
        q, ns, aq = self.q, self.n, self.aq
        loads = sorted((q[s] + ns[s], s) for s in routable)
        cum, k = 0.0, 0
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
        """Simulate ``duration`` seconds in steps of ``dt`` (see the module docstring)."""
        st = IntervalStats(duration=duration)
        self._st = st
        self.started = True
        qfac, timeout = self.cluster.queue_depth_factor, self.cluster.request_timeout
        act_depth = self.cluster.activator_queue_depth
        c, dt = self.cluster, self.dt
        n_steps = int(round(duration / dt))
        wl = self.workload
        rng = self.rng
        arr_counts = None
        if wl.process is not None:
            times = wl.process.arrivals(self.now, self.now + n_steps * dt)
            arr_counts = np.bincount(np.minimum(((times - self.now) / dt).astype(np.int64), n_steps - 1),
                                     minlength=n_steps).astype(float).tolist()
        S = self.n_slots
        noise = rng.standard_normal((n_steps, S)).tolist()
        ready_acc = cpu_used = cpu_cap = mem_used = mem_cap = pod_s = 0.0
        l_int = lat_sum = 0.0
        cores, kappa = c.pod_cpu, c.contention
        base_mem, pod_mem = c.pod_base_mem_mb, c.pod_mem_mb
        closed = wl.clients > 0
        q, aq, ns, wn, an = self.q, self.aq, self.n, self.wn, self.an
        pacc = self._slot_acc
        lat_w, lat_s, lat_n = [], [], []
        exp = math.exp
        prof = None
        for i in range(n_steps):
            t = self.now
            p = wl.profile_at(t)
            if p is not prof:
                prof = p
                mf = p.mean_factor()
                w0, sl0, mem = p.cpu_s, p.sleep_s, p.mem_mb
                cap = c.mem_cap(p)
                var1 = math.expm1(p.work_cv ** 2)      # variance of one request's work factor / mean^2
            stl = self.state.tolist()
            down = self.down_until.tolist()
            # ---- arrivals at the start of the step: open-loop arrivals and the closed loop's
            # clients whose response (or error) came back during the last step
            new = arr_counts[i] if arr_counts is not None else 0.0
            if closed:
                new += self.returning
                self.returning = 0.0
            st.arrived += new
            failed = 0.0
            lent = None
            plim = self.pod_limit.tolist()
            if new > 0 or self.act_n > 0:
                rev = self.serving_rev
                prev = self.pod_rev.tolist()
                routable = [s for s in range(S) if stl[s] == READY and down[s] <= t + 1e-9 and prev[s] == rev]
                tot = self.act_n + new
                age = self.act_n * self.act_age / tot
                if routable and self.act_in_path and plim[routable[0]] > 0:
                    # the activator holds the requests and sends each pod what it can admit: its free
                    # slots now and, for requests faster than a step, one per completion within the
                    # step (limit x dt / T, T the time in service at the limit; the pod's refill
                    # keeps it at its limit, as the activator forwards on each completion)
                    rooms = []
                    for s in routable:
                        ts = self._t_at_limit(p, plim[s])
                        rooms.append(plim[s] * (1.0 + dt / ts if ts < dt else 1.0) - ns[s] - q[s])
                    free = sum(r for r in rooms if r > 0)
                    share = 1.0 if free <= tot else tot / free
                    sent = 0.0
                    lent = []
                    for s, r in zip(routable, rooms):
                        if r > 0:
                            add = r * share
                            aq[s] = (aq[s] * q[s] + age * add) / (q[s] + add)
                            q[s] += add
                            sent += add
                            lent.append((s, add))
                    self.act_n = tot - sent if tot - sent > 1e-12 else 0.0
                    self.act_age = age if self.act_n > 0 else 0.0
                elif routable:
                    self._route(tot, age, routable)
                    self.act_n, self.act_age = 0.0, 0.0
                    for s in routable:          # a full queue-proxy queue answers 503
                        cap_q = qfac * plim[s]
                        if plim[s] > 0 and q[s] > cap_q:
                            failed += q[s] - cap_q
                            q[s] = cap_q
                else:
                    self.act_n, self.act_age = tot, age
                    if not self._latest_has_pods():
                        self._scale_to(max(1, self.desired))       # the activator pokes the autoscaler
                        stl = self.state.tolist()
                if self.act_n > act_depth:       # the activator's full queue answers 503
                    failed += self.act_n - act_depth
                    self.activator_503 += self.act_n - act_depth
                    self.act_n = act_depth
            # ---- admission from the proxy queues (with OOM kills), then service over [t, t + dt)
            l_step0 = l_int
            n_comp = 0.0
            n_live = 0
            zrow = noise[i]
            for s in range(S):
                sst = stl[s]
                if sst == FREE:
                    continue
                pod_s += dt
                if sst == STARTING or down[s] > t + 1e-9:
                    l_int += q[s] * dt
                    pacc[s] += q[s] * dt
                    continue
                n_live += 1
                if sst == READY:
                    ready_acc += dt
                n0, q0 = ns[s], q[s]
                lim = plim[s]
                if q0 > 0.0:
                    adm = q0
                    if lim > 0:
                        room = lim - n0
                        if room < adm:
                            adm = room if room > 0.0 else 0.0
                    if adm > 0.0 and n0 + adm > cap + 1e-9:
                        # OOM kill: the admission that breaks the memory limit kills the container;
                        # everything in flight fails, and so does the queue-proxy's queue (it
                        # forwards to a container that is not listening: 502)
                        failed += n0 + q0
                        q[s] = ns[s] = 0.0
                        self._crash(s)
                        down[s] = self.down_until[s]
                        mem_used += base_mem * dt
                        continue
                    if adm > 0.0:
                        wn[s] = (wn[s] * n0 + aq[s] * adm) / (n0 + adm)
                        an[s] = an[s] * n0 / (n0 + adm)
                        n0 += adm
                        q0 -= adm
                        q[s] = q0
                if n0 <= 0.0:
                    mem_used += base_mem * dt
                    l_int += q0 * dt
                    pacc[s] += q0 * dt
                    continue
                # this step's mean work: the cohort's sample mean of log-normal factors
                s2 = math.log1p(var1 / (n0 if n0 > 1.0 else 1.0))
                f = mf * exp(math.sqrt(s2) * zrow[s] - 0.5 * s2)
                w, sl = w0 * f, sl0 * f
                # the queue refills the pod within the step only when it is at its limit
                refill = q0 > 0.0 and lim > 0
                K = n0
                # time in service T by mean-value analysis of processor sharing: a request reaching
                # the CPU sees nce (m - 1) / m of the others there, nce = m cpu_t / (cpu_t + sleep),
                # m the step's time-averaged in-service count; iterate up to the fixed point
                cpu_t = w
                for _ in range(self._FP_ITERS):
                    T = cpu_t + sl
                    if T >= dt:
                        m = n0
                    elif refill:
                        tau = q0 * T / K
                        m = K if tau >= dt else (K * tau + K * T * (1.0 - exp(-(dt - tau) / T))) / dt
                    else:
                        m = n0 * T * (1.0 - exp(-dt / T)) / dt
                    if w <= 0.0:
                        nce = 0.0
                        break
                    nce = m * cpu_t / T
                    seen = (m - 1.0) / m if m > 1.0 else 0.0
                    new_t = w * max(1.0, (1.0 + nce * seen) / cores) * (1.0 + kappa * max(0.0, nce - cores))
                    if abs(new_t - cpu_t) <= 1e-9 * cpu_t:
                        cpu_t = new_t
                        break
                    cpu_t = new_t
                T = cpu_t + sl
                a0, b0 = an[s], wn[s]          # mean age in service, mean queue wait, of the pod's requests
                if T >= dt:
                    # slow requests: the population is held over the step and a fraction dt / T
                    # leaves at its end (a geometric time in service of mean T); the queue refills
                    # the pod at the next step's start, the same instant
                    comp = n0 * dt / T
                    n_end = n0 - comp
                    int_n = n0 * dt
                    int_q = q0 * dt
                    exit_age = a0 + dt
                    exit_wait = b0
                    an[s] = a0 + dt
                elif refill:
                    # fast requests, pod at its limit with a queue: while the queue lasts (tau) the
                    # pod completes K / T per second, each completion admitting the next request;
                    # then the in-service count decays as exp(-t / T). Ages follow exactly: under
                    # memoryless exits the population's mean age a obeys da/dt = 1 - a / T while
                    # refilled (new requests enter at age 0), and grows by the elapsed time after.
                    tau = q0 * T / K
                    ph = tau if tau < dt else dt
                    e1 = exp(-ph / T)
                    g1 = T * (1.0 - e1) / ph                      # mean of exp(-u / T) over [0, ph]
                    c1 = K * ph / T
                    w_adm = aq[s] + 0.5 * ph
                    age1 = T + (a0 - T) * g1
                    wait1 = w_adm + (b0 - w_adm) * g1
                    a_ph = T + (a0 - T) * e1
                    b_ph = w_adm + (b0 - w_adm) * e1
                    int_q = q0 * ph - c1 * ph * 0.5
                    q[s] = q0 - c1 if c1 < q0 else 0.0
                    if tau >= dt:
                        comp, n_end, int_n = c1, K, K * dt
                        exit_age, exit_wait = age1, wait1
                        an[s], wn[s] = a_ph, b_ph
                    else:
                        r = dt - tau
                        e2 = exp(-r / T)
                        c2 = K * (1.0 - e2)
                        n_end = K * e2
                        comp = c1 + c2
                        int_n = K * tau + K * T * (1.0 - e2)
                        age2 = a_ph + T - r * e2 / (1.0 - e2)    # mean age at exit, exp decay over r
                        exit_age = (c1 * age1 + c2 * age2) / comp
                        exit_wait = (c1 * wait1 + c2 * b_ph) / comp
                        an[s], wn[s] = a_ph + r, b_ph
                else:
                    # fast requests, no queue: the in-service count decays as exp(-t / T)
                    e = exp(-dt / T)
                    n_end = n0 * e
                    comp = n0 - n_end
                    int_n = n0 * T * (1.0 - e)
                    int_q = q0 * dt
                    exit_age = a0 + T - dt * e / (1.0 - e)
                    exit_wait = b0
                    an[s] = a0 + dt
                    if n_end < _RESIDUE:
                        # the exponential tail never empties a pod: finish a residue below 1 % of a
                        # request at once (at its age), so pods drain and scale to zero
                        exit_age = (comp * exit_age + n_end * (a0 + dt)) / n0
                        comp, n_end = n0, 0.0
                        an[s] = wn[s] = 0.0
                ns[s] = n_end
                l_int += int_n + int_q
                pacc[s] += int_n + int_q
                if comp > 0.0:
                    lat_w.append(exit_wait)
                    lat_s.append(exit_age)
                    lat_n.append(comp)
                    lat_sum += comp * (exit_wait + exit_age)
                    n_comp += comp
                mem_used += (base_mem * dt + int_n * mem)
                busy = int_n / T * w * (1.0 + kappa * max(0.0, nce - cores))
                cpu_used += busy if busy < cores * dt else cores * dt
            cpu_cap += n_live * cores * dt
            mem_cap += n_live * pod_mem * dt
            l_int += self.act_n * dt
            if lent:
                # what the activator forwarded for completions that did not come goes back to it
                for s, add in lent:
                    back = q[s] if q[s] < add else add
                    if back > 1e-12:
                        self.act_age = (self.act_n * self.act_age + back * aq[s]) / (self.act_n + back)
                        self.act_n += back
                        q[s] -= back
            st.completed += n_comp
            if failed:
                st.failed += failed
            if closed:
                self.returning += n_comp + failed
            self.now = t = t + dt
            # pods that finished their cold start during the step
            for s in range(S):
                if stl[s] == STARTING and self.ready_at[s] <= t + 1e-9:
                    self.state[s] = READY
                    stl[s] = READY
            if self.serving_rev != self.rev and self._check_switch():
                stl = self.state.tolist()
            # requests that waited past the revision timeout fail (the fluid's queues have one
            # mean age: a queue whose mean age passes the timeout fails as a whole)
            tfail = 0.0
            for s in range(S):
                if q[s] > 0 and aq[s] + dt > timeout:
                    tfail += q[s]
                    q[s] = 0.0
                    aq[s] = 0.0
            if self.act_n > 0 and self.act_age + dt > timeout:
                tfail += self.act_n
                self.act_n = self.act_age = 0.0
            if tfail:
                st.failed += tfail
                if closed:
                    self.returning += tfail
            # ---- ageing, metrics buckets, autoscaler ticks
            for s in range(S):
                if q[s] > 0:
                    aq[s] += dt
            if self.act_n > 0:
                self.act_age += dt
            self._bucket_acc += l_int - l_step0       # the step's integral of the in-system count
            if DRAINING in stl:
                self._on_pod_drained_check()
            if t >= self._next_bucket - 1e-9:
                self._record_buckets()
                pacc = self._slot_acc
                self._next_bucket += self.kpa_cfg.bucket
                if t >= self._next_tick - 1e-9:
                    cs = self.total["cold_starts"]
                    self._kpa_tick()
                    st.cold_starts += self.total["cold_starts"] - cs
                    self._next_tick += self.kpa_cfg.tick
        if lat_n:
            k = self._JITTER_NODES
            cv = prof.work_cv
            jit = np.exp(cv * rng.standard_normal((len(lat_n), k)) - 0.5 * cv * cv)
            lw, ls_, ln = np.array(lat_w), np.array(lat_s), np.array(lat_n)
            st.hist.add(lw[:, None] + ls_[:, None] * jit, np.repeat(ln / k, k))
        st.pod_seconds = pod_s
        st.ready_mean = ready_acc / duration if duration > 0 else 0.0
        st.cpu_util = min(1.0, cpu_used / cpu_cap) if cpu_cap > 0 else 0.0
        st.mem_util = min(1.0, mem_used / mem_cap) if mem_cap > 0 else 0.0
        self.total["in_system_s"] += l_int
        self.total["latency_s"] += lat_sum
        self._fold_totals(st)
        return st

    def _fold_totals(self, st: IntervalStats) -> None:
        self.total["arrived"] += st.arrived
        self.total["completed"] += st.completed
        self.total["failed"] += st.failed
        self.total["pod_seconds"] += st.pod_seconds
        self.hist_total.merge(st.hist)
