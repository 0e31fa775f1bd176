"""Job-shop dynamics in numpy: classic, blocking, swap-allowed and interrupted (ISBJSSP).

No gymnasium here. :class:`JobShopInstance` holds the problem data; :class:`JobShopModel` holds
the state of one episode and moves it from decision to decision.

Time is integer. Machines are unit-capacity resources: ``holder[m]`` is the job occupying machine
``m`` (processing, paused by a shutdown, or -- under blocking -- finished but not yet able to
leave), -1 when the machine is free.

Two candidate rules decide which operations the agent may dispatch at a decision:

``nondelay`` (event driven, every variant)
    The simulation runs on :class:`rlsys_envs.core.EventClock` (events: operation end, shutdown
    start, shutdown end). At the current time ``t`` the candidates are the jobs whose next
    operation can *start now*: the job is not processing, and the operation's machine is free (or
    held by the job itself) and up. With one candidate it is dispatched automatically; with none,
    time jumps to the next event. No machine ever idles while an operation could start on it, so
    only non-delay schedules are reachable (these may exclude every optimal schedule).

``active`` (Giffler--Thompson; classic problem only: no blocking, no shutdowns)
    ``est`` of each job's next operation = max(job ready, machine ready), ``C* = min(est + p)``,
    ``m*`` the machine of the operation achieving it (lowest job index on ties); the candidates
    are the operations on ``m*`` with ``est < C*`` (the conflict set), and the chosen one is
    scheduled at its ``est`` (possibly leaving the machine idle before it). Every active schedule,
    hence an optimal one, is reachable.

Blocking: a job whose operation finished keeps its machine until the machine of its next
operation is free (it then moves there and releases the old one). A cycle of blocked jobs, each
waiting for the machine the next one holds, is resolved at once by a *swap* (every job of the
cycle starts its next operation at ``t``; all the machines involved must be up) when
``swap_allowed``; otherwise it is a *deadlock*: :attr:`JobShopModel.deadlock` becomes True and the
episode ends (the env applies the documented penalty).

Shutdowns: each machine that still has work shuts down after a geometric number of time units
with per-unit hazard ``shutdown_prob / mean_p`` (``mean_p`` = mean processing time of the
instance; so ``shutdown_prob`` is the probability of a shutdown within one mean operation length),
for an integer duration drawn from ``shutdown_dist`` with mean ``shutdown_mean * mean_p``.
An operation on a shutting-down machine is interrupted and, when the machine is back, resumes
(``on_interrupt="resume"``: only the remaining time) or restarts (``"restart"``: the full time).
No operation starts on a machine that is down. Every processed segment is a schedule row.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rlsys_envs.core import EventClock

IDLE, PROC, BLOCKED, DONE = 0, 1, 2, 3          # job status
OP_WAIT, OP_PROC, OP_BLOCKED, OP_DONE = 0, 1, 2, 3  # operation status (OP_DONE: finished and left)

# Feature matrices kept up to date event by event (the env adds the time-dependent columns).
JOB_FEATURES = ("exists", "candidate", "idle", "processing", "blocked", "done", "next_p", "next_machine",
                "remaining_work", "remaining_ops", "waiting", "busy_left")
MACHINE_FEATURES = ("exists", "down", "processing", "blocked_held", "busy_left", "remaining_work",
                    "candidates", "remaining_ops")
NODE_FEATURES = ("waiting", "processing", "blocked", "candidate", "p", "completion", "job_remaining",
                 "waiting_time", "machine", "machine_down", "job_completion")
J_CAND, J_NEXTP, J_NEXTM, J_REMW, J_REMO, J_WAIT, J_BUSY = 1, 6, 7, 8, 9, 10, 11
M_DOWN, M_PROC, M_BLOCKED, M_BUSY, M_REMW, M_CANDS, M_REMO = 1, 2, 3, 4, 5, 6, 7
N_CAND, N_P, N_COMP, N_JREM, N_WAIT, N_MACH, N_DOWN, N_JCOMP = 3, 4, 5, 6, 7, 8, 9, 10


@dataclass
class JobShopInstance:
    """``machines[j, k]`` / ``durations[j, k]`` for ``k < n_ops[j]`` (padding -1 / 0)."""

    machines: np.ndarray
    durations: np.ndarray
    n_ops: np.ndarray
    n_machines: int
    name: str = "instance"
    optimum: float | None = None
    lower_bound: float | None = None
    upper_bound: float | None = None
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        self.machines = np.asarray(self.machines, dtype=np.int64)
        self.durations = np.asarray(self.durations, dtype=np.int64)
        self.n_ops = np.asarray(self.n_ops, dtype=np.int64)
        n, k = self.machines.shape
        if self.durations.shape != (n, k) or self.n_ops.shape != (n,):
            raise ValueError("machines, durations must be [n_jobs, max_ops] and n_ops [n_jobs]")
        if n < 1 or self.n_machines < 1:
            raise ValueError("an instance needs at least one job and one machine")
        if np.any(self.n_ops < 1) or np.any(self.n_ops > k):
            raise ValueError("every job needs between 1 and max_ops operations")
        valid = np.arange(k)[None, :] < self.n_ops[:, None]
        if np.any(self.machines[valid] < 0) or np.any(self.machines[valid] >= self.n_machines):
            raise ValueError(f"machine indices must be in [0, {self.n_machines - 1}]")
        if np.any(self.durations[valid] < 0):
            raise ValueError("processing times must be non-negative")
        self.machines[~valid] = -1
        self.durations[~valid] = 0

    @property
    def n_jobs(self) -> int:
        return int(self.machines.shape[0])

    @property
    def total_ops(self) -> int:
        return int(self.n_ops.sum())

    def best_known(self) -> float | None:
        """The optimum if known, else the best known upper bound, else None."""
        return self.optimum if self.optimum is not None else self.upper_bound

    def ops(self):
        """Flattened operation arrays: job, index within job, machine, duration (job-major)."""
        valid = np.arange(self.machines.shape[1])[None, :] < self.n_ops[:, None]
        jj, kk = np.nonzero(valid)
        return jj, kk, self.machines[jj, kk], self.durations[jj, kk]


class JobShopModel:
    """State and dynamics of one episode. Call :meth:`reset`, then :meth:`dispatch` a candidate job
    while ``not done``; ``cand`` is the boolean mask over jobs.

    Besides the state, the model keeps three float32 feature matrices up to date event by event
    (``jf`` [jobs, JOB_FEATURES], ``mf`` [machines, MACHINE_FEATURES], ``of`` [operations,
    NODE_FEATURES]) so that the env's observation costs a handful of numpy calls per step; the
    time-dependent columns (candidate, waiting, busy_left, completion of running operations) are
    filled by the env. ``alive[o]`` is False once operation ``o`` finished and left its machine.
    """

    def __init__(self, instance: JobShopInstance, rng: np.random.Generator, *, rule: str = "nondelay",
                 blocking: bool = False, swap_allowed: bool = False, shutdown_prob: float = 0.0,
                 shutdown_dist: str = "uniform", shutdown_mean: float = 1.0, on_interrupt: str = "resume",
                 max_machines: int | None = None):
        if rule == "active" and (blocking or shutdown_prob > 0):
            raise ValueError("rule='active' (Giffler-Thompson) supports the classic problem only "
                             "(blocking=False, shutdown_prob=0); use rule='nondelay'")
        self.inst = instance
        self.rng = rng
        self.rule = rule
        self.blocking = bool(blocking)
        self.swap_allowed = bool(swap_allowed)
        self.shutdown_prob = float(shutdown_prob)
        self.shutdown_dist = shutdown_dist
        self.shutdown_mean = float(shutdown_mean)
        self.on_interrupt = on_interrupt
        inst = instance
        self.n_jobs, self.n_machines = inst.n_jobs, int(inst.n_machines)
        self.max_machines = int(max_machines or self.n_machines)
        jj, kk, mm, dd = inst.ops()
        self.op_job, self.op_k, self.op_m, self.op_p = jj, kk, mm, dd
        self.n_ops_total = len(jj)
        self.job_off = np.concatenate([[0], np.cumsum(inst.n_ops)[:-1]]).astype(np.int64)
        self.job_nops = inst.n_ops.copy()
        self.mean_p = max(float(dd.mean()), 1.0)
        self.max_p = max(int(dd.max()), 1)
        self.total_work = int(dd.sum())
        # remaining work of the job from op o onwards (incl. o)
        self.op_tail = np.zeros(self.n_ops_total, np.int64)
        for j in range(self.n_jobs):
            s, e = self.job_off[j], self.job_off[j] + self.job_nops[j]
            self.op_tail[s:e] = np.cumsum(dd[s:e][::-1])[::-1]
        self.job_work = self.op_tail[self.job_off].copy()
        self.mach_work0 = np.bincount(mm, weights=dd, minlength=self.n_machines).astype(np.int64)
        self.mach_nops = np.bincount(mm, minlength=self.n_machines).astype(np.int64)
        self.max_jobwork = float(max(self.job_work.max(), 1))
        self.max_machwork = float(max(self.mach_work0.max(), 1))
        self.hazard = min(self.shutdown_prob / self.mean_p, 1.0)
        self._ar = np.arange(self.n_jobs)
        #: ask at single-candidate points too (the env sets it when an instance has no real choice)
        self.ask_single = False
        # static parts of the feature matrices
        J, M, O = self.n_jobs, self.n_machines, self.n_ops_total
        jf = np.zeros((J, len(JOB_FEATURES)), np.float32)
        jf[:, 0] = 1.0
        jf[:, 2] = 1.0
        jf[:, J_NEXTP] = dd[self.job_off] / self.max_p
        jf[:, J_NEXTM] = (mm[self.job_off] + 1) / self.max_machines
        jf[:, J_REMW] = self.job_work / self.max_jobwork
        jf[:, J_REMO] = 1.0
        mf = np.zeros((M, len(MACHINE_FEATURES)), np.float32)
        mf[:, 0] = 1.0
        mf[:, M_REMW] = self.mach_work0 / self.max_machwork
        mf[:, M_REMO] = (self.mach_nops > 0)
        # one extra scratch row (index O) absorbs vectorised writes for machines that run nothing
        of = np.zeros((O + 1, len(NODE_FEATURES)), np.float32)
        of[:O, 0] = 1.0
        of[:O, N_P] = dd / self.max_p
        of[:O, N_JREM] = self.op_tail / self.max_jobwork
        of[:O, N_MACH] = (mm + 1) / self.max_machines
        # running operation o with r time units left: [completion, job_remaining] columns are
        # run_base[o] + r * run_coef[o] (row O is the scratch row)
        self.run_base = np.zeros((O + 1, 2))
        self.run_base[:O, 0] = 1.0
        self.run_base[:O, 1] = (self.op_tail - dd) / self.max_jobwork
        self.run_coef = np.zeros((O + 1, 2))
        self.run_coef[:O, 0] = -1.0 / np.maximum(dd, 1)
        self.run_coef[:O, 1] = 1.0 / self.max_jobwork
        self._jf0, self._mf0, self._of0 = jf, mf, of
        # plain-Python copies of static data for the scalar hot path (numpy scalars are slow)
        self._op_m, self._op_p, self._op_k = mm.tolist(), dd.tolist(), kk.tolist()
        self._job_off, self._job_nops = self.job_off.tolist(), self.job_nops.tolist()
        self._mach_nops = np.maximum(self.mach_nops, 1).tolist()
        self._inv_jw, self._inv_mw = 1.0 / self.max_jobwork, 1.0 / self.max_machwork
        self._inv_p, self._inv_M = 1.0 / self.max_p, 1.0 / self.max_machines

    # ------------------------------------------------------------------------------ reset
    def reset(self) -> None:
        J, M, O = self.n_jobs, self.n_machines, self.n_ops_total
        self.t = 0
        self.clock = EventClock(0)
        self.job_status = np.zeros(J, np.int64)
        self.job_free = np.ones(J, bool)               # IDLE or BLOCKED, with a next operation
        self.next_k = np.zeros(J, np.int64)           # index of the next op to dispatch
        self.next_op = self.job_off.copy()             # its flat index (clamped for finished jobs)
        self.cur_op = np.full(J, -1, np.int64)         # op processing / blocked-held
        self.ready = np.zeros(J, np.int64)             # time the job became ready (active: will be)
        self.job_end_est = np.zeros(J, np.int64)       # end of the running op as known now
        self.job_rem = self.job_work.copy()            # work of ops not yet dispatched
        self.next_m = self.op_m[self.job_off].copy()    # machine of next op (-1 when none)
        self.next_mi = self.next_m.copy()              # same, 0 when none (safe index)
        self.next_p = self.op_p[self.job_off].copy()
        self.n_done = 0
        self.holder = np.full(M, -1, np.int64)
        self.down = np.zeros(M, bool)
        self.down_until = np.zeros(M, np.int64)
        self.paused = np.zeros(M, bool)
        self.seg_start = np.zeros(M, np.int64)
        self.end_ev = np.full(M, -1, np.int64)
        self.mach_end_est = np.zeros(M, np.int64)
        self.mach_op = np.full(M, O, np.int64)        # op processing (or paused) on m, O if none
        self.mach_rem = self.mach_work0.copy()         # work of ops not yet dispatched, per machine
        self.mach_wait = self.mach_nops.copy()         # ops not yet dispatched, per machine
        self.mach_ready = np.zeros(M, np.int64)        # active rule: machine free from
        self.op_status = np.zeros(O, np.int64)
        self.alive = np.ones(O, bool)
        self.alive_version = 0
        self.op_start = np.full(O, -1, np.int64)
        self.op_end = np.full(O, -1, np.int64)
        self.op_left = self.op_p.copy()
        self.jf, self.mf, self.of = self._jf0.copy(), self._mf0.copy(), self._of0.copy()
        self.segments: list[tuple[int, int, int, int, int]] = []
        self.swaps = 0
        self.swapped_ops = 0
        self.shutdowns = 0
        self.down_log: list[tuple[int, int, int]] = []   # (machine, start, end) of every shutdown
        self.interruptions = 0
        self.deadlock = False
        self.done = False
        self.auto_dispatched = 0
        self._check_cycles = False
        self._new_blocked: list[int] = []
        self.cand = np.zeros(J, bool)
        self._st = [IDLE] * J                          # Python mirror of job_status
        self._next_k = [0] * J
        self._job_rem = self.job_work.tolist()
        self._mach_rem = self.mach_work0.tolist()
        self._mach_wait = self.mach_nops.tolist()
        if self.hazard > 0:
            for m in range(M):
                self.clock.schedule(self._gap(), "sd_start", m)
        self._advance()

    def _gap(self) -> int:
        return int(self.rng.geometric(self.hazard))

    def _sd_duration(self) -> int:
        mean = max(self.shutdown_mean * self.mean_p, 1.0)
        if self.shutdown_dist == "constant":
            return max(int(round(mean)), 1)
        if self.shutdown_dist == "uniform":
            hi = max(int(round(2 * mean)) - 1, 1)
            return int(self.rng.integers(1, hi + 1))
        # exponential, rounded up to an integer >= 1
        return max(int(np.ceil(self.rng.exponential(mean))), 1)

    # ----------------------------------------------------------------------- state setters
    def _job_state(self, j: int, s: int) -> None:
        jf = self.jf
        jf[j, 2 + self._st[j]] = 0.0
        jf[j, 2 + s] = 1.0
        self._st[j] = s
        self.job_status[j] = s
        self.job_free[j] = (s == IDLE or s == BLOCKED) and self._next_k[j] < self._job_nops[j]

    def _op_state(self, o: int, s: int) -> None:
        old = int(self.op_status[o])
        of = self.of
        if old == OP_WAIT:  # no longer a next operation: clear the per-step columns
            of[o, N_CAND] = 0.0
            of[o, N_WAIT] = 0.0
        if old < OP_DONE:
            of[o, old] = 0.0
        if s < OP_DONE:
            of[o, s] = 1.0
        else:  # dropped from the graph: its row becomes (and stays) zero
            of[o] = 0.0
            self.alive[o] = False
            self.alive_version += 1
        self.op_status[o] = s

    # ------------------------------------------------------------------------- candidates
    def candidates(self) -> np.ndarray:
        """Boolean mask over jobs: whose next operation may be dispatched now (copy)."""
        return self.cand.copy()

    def _compute_candidates(self) -> np.ndarray:
        if self.rule == "active":
            return self._gt_conflict()
        mi = self.next_mi
        h = self.holder[mi]
        c = self.job_free & ((h < 0) | (h == self._ar))
        if self.hazard > 0:
            c &= ~self.down[mi]
        return c

    def _gt_conflict(self) -> np.ndarray:
        live = self.next_m >= 0
        est = np.maximum(self.ready, self.mach_ready[self.next_mi])
        ect = np.where(live, est + self.next_p, np.iinfo(np.int64).max)
        jstar = int(np.argmin(ect))
        cstar = ect[jstar]
        self._gt_est = est
        c = live & (self.next_m == self.next_m[jstar]) & (est < cstar)
        c[jstar] = True
        return c

    # ---------------------------------------------------------------------------- actions
    def dispatch(self, j: int) -> None:
        """Start (or, under ``active``, schedule) the next operation of candidate job ``j``."""
        if not self.cand[j]:
            raise ValueError(f"job {j} is not a candidate")
        if self.rule == "active":
            self._gt_schedule(j)
        else:
            self._start(j)
        self._advance()

    def _dispatched(self, j: int, o: int, m: int, p: int) -> None:
        """Bookkeeping shared by both rules when op ``o`` of job ``j`` is dispatched on ``m``."""
        jr = self._job_rem[j] - p
        self._job_rem[j] = jr
        self.job_rem[j] = jr
        mr = self._mach_rem[m] - p
        self._mach_rem[m] = mr
        self.mach_rem[m] = mr
        mw = self._mach_wait[m] - 1
        self._mach_wait[m] = mw
        self.mach_wait[m] = mw
        mf = self.mf
        mf[m, M_REMW] = mr * self._inv_mw
        mf[m, M_REMO] = mw / self._mach_nops[m]
        k = self._next_k[j] + 1
        self._next_k[j] = k
        self.next_k[j] = k
        jf = self.jf
        nops = self._job_nops[j]
        jf[j, J_REMW] = jr * self._inv_jw
        jf[j, J_REMO] = (nops - k) / nops
        s = self._job_off[j]
        # live operations of the job: o onwards (o itself is already dropped under "active")
        lo = o + 1 if self.rule == "active" else o
        self.of[lo:s + nops, N_JCOMP] = k / nops
        if k < nops:
            o2 = s + k
            self.next_op[j] = o2
            nm = self._op_m[o2]
            p2 = self._op_p[o2]
            self.next_m[j] = nm
            self.next_mi[j] = nm
            self.next_p[j] = p2
            jf[j, J_NEXTP] = p2 * self._inv_p
            jf[j, J_NEXTM] = (nm + 1) * self._inv_M
        else:
            self.next_m[j] = -1
            self.next_mi[j] = 0
            self.next_p[j] = 0
            jf[j, J_NEXTP] = 0.0
            jf[j, J_NEXTM] = 0.0

    def _gt_schedule(self, j: int) -> None:
        o = int(self.next_op[j])
        m, p = int(self.op_m[o]), int(self.op_p[o])
        s = int(max(self.ready[j], self.mach_ready[m]))
        e = s + p
        self.op_start[o], self.op_end[o] = s, e
        self._op_state(o, OP_DONE)
        self.segments.append((j, int(self.op_k[o]), m, s, e))
        self.ready[j] = e
        self.mach_ready[m] = e
        self._dispatched(j, o, m, p)
        if self.next_m[j] < 0:
            self._job_state(j, DONE)
            self.n_done += 1

    def _start(self, j: int) -> None:
        t = self.t
        o = self._job_off[j] + self._next_k[j]
        m = self._op_m[o]
        mf = self.mf
        if self._st[j] == BLOCKED:
            prev = int(self.cur_op[j])
            pm = self._op_m[prev]
            self._op_state(prev, OP_DONE)
            if pm != m and self.holder[pm] == j:
                self.holder[pm] = -1
                mf[pm, M_BLOCKED] = 0.0
        self.holder[m] = j
        mf[m, M_BLOCKED] = 0.0
        mf[m, M_PROC] = 1.0
        self.mach_op[m] = o
        self.cur_op[j] = o
        self._op_state(o, OP_PROC)
        self.op_start[o] = t
        self.seg_start[m] = t
        p = self._op_p[o]
        e = t + p
        self.job_end_est[j] = e
        self.mach_end_est[m] = e
        self.end_ev[m] = self.clock.schedule(e, "end", m)
        self._dispatched(j, o, m, p)
        self._job_state(j, PROC)

    # ------------------------------------------------------------------------- simulation
    def _advance(self) -> None:
        """Run until a decision with >= 2 candidates, the end, or a deadlock."""
        need = 1 if self.ask_single else 2
        if self.rule == "active":
            while True:
                if self.n_done == self.n_jobs:
                    self.t = int(self.op_end.max())
                    self.done = True
                    self.cand = np.zeros(self.n_jobs, bool)
                    return
                cand = self._gt_conflict()
                self.t = max(self.t, int(self._gt_est[self.next_m >= 0].min()))
                n = int(np.count_nonzero(cand))
                if n >= need:
                    self.cand = cand
                    return
                self.auto_dispatched += 1
                self._gt_schedule(int(cand.argmax()))
        while True:
            if self._check_cycles:
                self._check_cycles = False
                if self._resolve_cycles():
                    return  # deadlock
            cand = self._compute_candidates()
            n = int(np.count_nonzero(cand))
            if n >= need:
                self.cand = cand
                return
            if n == 1:
                self.auto_dispatched += 1
                self._start(int(cand.argmax()))
                if self.blocking:
                    continue  # the job may have released a machine: recompute the candidates
                # without blocking, dispatching the only candidate leaves none: go to the next event
            if self.n_done == self.n_jobs:
                self.done = True
                self.cand = cand
                return
            if self.clock.peek_time() == float("inf"):  # cannot happen without a cycle
                self.deadlock = True
                self.done = True
                self.cand = cand
                return
            self._process_next_events()

    _ORDER = {"end": 0, "sd_end": 1, "sd_start": 2}

    def _process_next_events(self) -> None:
        clock = self.clock
        t = clock.peek_time()
        evs = [clock.pop()]
        while clock.peek_time() == t:
            evs.append(clock.pop())
        self.t = int(t)
        if len(evs) > 1:
            order = self._ORDER
            evs.sort(key=lambda e: (order[e.kind], e.seq))
        for ev in evs:
            m = ev.payload
            if ev.kind == "end":
                self._on_end(m)
            elif ev.kind == "sd_end":
                self._on_sd_end(m)
            else:
                self._on_sd_start(m)

    def _on_end(self, m: int) -> None:
        t = self.t
        j = int(self.holder[m])
        o = int(self.cur_op[j])
        self.segments.append((j, self._op_k[o], m, int(self.seg_start[m]), t))
        self.op_end[o] = t
        self.op_left[o] = 0
        self.end_ev[m] = -1
        self.ready[j] = t
        mf = self.mf
        mf[m, M_PROC] = 0.0
        self.mach_op[m] = self.n_ops_total
        if self._next_k[j] >= self._job_nops[j]:
            self._op_state(o, OP_DONE)
            self.holder[m] = -1
            self.cur_op[j] = -1
            self._job_state(j, DONE)
            self.n_done += 1
        elif self.blocking:
            self._op_state(o, OP_BLOCKED)
            of = self.of
            of[o, N_COMP] = 1.0
            of[o, N_JREM] = (self.op_tail[o] - self.op_p[o]) / self.max_jobwork
            mf[m, M_BLOCKED] = 1.0
            self._job_state(j, BLOCKED)
            self._check_cycles = True
            self._new_blocked.append(j)
        else:
            self._op_state(o, OP_DONE)
            self.holder[m] = -1
            self.cur_op[j] = -1
            self._job_state(j, IDLE)

    def _machine_has_work(self, m: int) -> bool:
        h = self.holder[m]
        return bool(self.mach_rem[m] > 0 or (h >= 0 and self.job_status[h] == PROC))

    def _on_sd_start(self, m: int) -> None:
        if not self._machine_has_work(m):
            return  # no more work: no more shutdowns on this machine
        t = self.t
        d = self._sd_duration()
        self.shutdowns += 1
        self.down[m] = True
        self.down_until[m] = t + d
        self.down_log.append((m, t, t + d))
        self.mf[m, M_DOWN] = 1.0
        h = int(self.holder[m])
        if h >= 0 and self.job_status[h] == PROC and not self.paused[m]:
            o = int(self.cur_op[h])
            self.clock.cancel(int(self.end_ev[m]))
            self.end_ev[m] = -1
            done = t - int(self.seg_start[m])
            if done > 0:
                self.segments.append((h, int(self.op_k[o]), m, int(self.seg_start[m]), t))
            self.op_left[o] = (self.op_left[o] - done) if self.on_interrupt == "resume" else self.op_p[o]
            self.paused[m] = True
            self.interruptions += 1
            self.job_end_est[h] = self.mach_end_est[m] = t + d + self.op_left[o]
        self.clock.schedule(t + d, "sd_end", m)

    def _on_sd_end(self, m: int) -> None:
        t = self.t
        self.down[m] = False
        self.down_until[m] = 0
        self.mf[m, M_DOWN] = 0.0
        if self.paused[m]:
            h = int(self.holder[m])
            o = int(self.cur_op[h])
            self.paused[m] = False
            self.seg_start[m] = t
            self.end_ev[m] = self.clock.schedule(t + int(self.op_left[o]), "end", m)
        if self._machine_has_work(m):
            self.clock.schedule(t + self._gap(), "sd_start", m)
        if self.blocking:  # a swap may have been waiting for this machine
            self._check_cycles = True
            self._new_blocked.extend(int(x) for x in np.flatnonzero(self.job_status == BLOCKED))

    def _cycle_from(self, j: int) -> list[int] | None:
        """The cycle of blocked jobs reached by following "waits for the machine held by" from ``j``."""
        st, holder = self._st, self.holder
        pos: dict[int, int] = {}
        path: list[int] = []
        while st[j] == BLOCKED:
            if j in pos:
                return path[pos[j]:]
            pos[j] = len(path)
            path.append(j)
            h = int(holder[self._op_m[self._job_off[j] + self._next_k[j]]])
            if h < 0 or h == j:
                return None
            j = h
        return None

    def _resolve_cycles(self) -> bool:
        """Swap (or detect as deadlock) the cycles of blocked jobs through the jobs that became
        blocked since the last check (a new cycle must contain one). Returns True on deadlock."""
        starts, self._new_blocked = self._new_blocked, []
        for j0 in starts:
            cycle = self._cycle_from(j0)
            if cycle is None:
                continue
            if not self.swap_allowed:
                self.deadlock = True
                self.done = True
                self.cand = np.zeros(self.n_jobs, bool)
                return True
            targets = [self._op_m[self._job_off[j] + self._next_k[j]] for j in cycle]
            if self.down[targets].any():
                continue  # rechecked when the machine comes back up (see _on_sd_end)
            # every job leaves its machine and takes the next one's, all at time t
            for j in cycle:
                prev = int(self.cur_op[j])
                self._op_state(prev, OP_DONE)
                pm = self._op_m[prev]
                self.holder[pm] = -1
                self.mf[pm, M_BLOCKED] = 0.0
            for j in cycle:
                self._job_state(j, IDLE)  # so _start does not release anything again
                self._start(j)
            self.swaps += 1
            self.swapped_ops += len(cycle)
        return False

    # ------------------------------------------------------------------------------ views
    def lower_bound(self) -> int:
        """Lower bound on the final makespan given the current state (= makespan when done):
        the max over jobs of (when the job is next available + its undispatched work) and over
        machines of (when the machine is next free + its undispatched work), and ``t``."""
        if self.rule == "active":
            return int(max((self.ready + self.job_rem).max(), (self.mach_ready + self.mach_rem).max()))
        t = self.t
        jb = (np.maximum(self.job_end_est, t) + self.job_rem).max()
        mb = (np.maximum(np.maximum(self.mach_end_est, self.down_until), t) + self.mach_rem).max()
        return int(max(jb, mb))

    def makespan(self) -> int:
        return int(self.op_end.max()) if self.n_ops_total else 0

    def schedule_rows(self) -> np.ndarray:
        """int64 [n_segments, 5]: job, op_index, machine, start, end (sorted by start, machine)."""
        if not self.segments:
            return np.zeros((0, 5), np.int64)
        rows = np.asarray(self.segments, dtype=np.int64)
        return rows[np.lexsort((rows[:, 2], rows[:, 3]))]
