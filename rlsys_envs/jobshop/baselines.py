"""Dispatching-rule baselines and a CP-SAT reference for ``rlsys/JobShop-v0``.

Priority rules pick, among the legal jobs (the env's candidates), the one with the best key
(ties: lowest job index):

=======  =====================================================================
SPT      shortest processing time of the next operation
LPT      longest processing time of the next operation
MWKR     most work remaining (undispatched work of the job, next op included)
LWKR     least work remaining
MOPNR    most operations remaining
FIFO     first in, first out: the job that became ready earliest
random   uniform among the legal jobs (``core.RandomMaskedPolicy``)
cpsat    OR-Tools CP-SAT plan (solved at reset, ``time_limit`` 10 s, 2 workers) replayed
=======  =====================================================================

``cpsat`` turns its schedule into actions by choosing, at each decision, the candidate whose
next operation starts earliest in the plan (ties: the lower job index); the actions are simulated
at reset on a copy of the environment (``core.simulate``, same state and random stream, so
shutdowns too) and replayed (``core.PlannedPolicy``). Under ``rule="active"``
(Giffler-Thompson) the choice among the conflict set follows the plan's machine order, so an
optimal (active) plan is reproduced and the env reaches the plan's makespan. Under
``rule="nondelay"`` only non-delay schedules are reachable, so the replay can be worse than the
plan (on ft06: see the benchmark notes). For blocking instances the plan comes from the blocking
model with swaps (a job occupies its machine from the start of an operation to the start of its
next one; occupancies on a machine may touch, which is what makes swaps possible); shutdowns are
unknown to the plan, so under shutdowns it is a plan replayed in a disturbed world.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from rlsys_envs.core import PlannedPolicy, Policy, RandomMaskedPolicy, simulate
from rlsys_envs.core.exact import run_cpsat

from .model import JobShopInstance


class PriorityRule(Policy):
    """Pick the legal job minimising ``key(model) `` (a vector over jobs)."""

    def __init__(self, name: str, key: Callable):
        self.name = name
        self._key = key

    def act(self, env, obs, info):
        md = env.unwrapped.model
        cand = md.cand
        key = np.where(cand, self._key(md).astype(np.float64), np.inf)
        return int(np.argmin(key))


def _spt(md):
    return md.next_p


def _lpt(md):
    return -md.next_p


def _mwkr(md):
    return -md.job_rem


def _lwkr(md):
    return md.job_rem


def _mopnr(md):
    return -(md.job_nops - md.next_k)


def _fifo(md):
    return md.ready


# ------------------------------------------------------------------------------ CP-SAT
def solve_cpsat(instance: JobShopInstance, time_limit: float = 10.0, workers: int = 2, blocking: bool = False,
                seed: int = 0) -> dict:
    """Solve the classic (or blocking-with-swaps) makespan problem with OR-Tools CP-SAT.

    Returns a dict: ``makespan`` (int, of the best solution found), ``status`` ("OPTIMAL" /
    "FEASIBLE" / ...), ``bound`` (best lower bound), ``wall_s``, and ``schedule``: int64
    ``[n_ops, 5]`` rows (job, op_index, machine, start, end), the same format as the env's
    ``env.schedule()``.
    """
    from ortools.sat.python import cp_model

    jj, kk, mm, pp = instance.ops()
    n = len(jj)
    horizon = int(pp.sum())
    model = cp_model.CpModel()
    starts = [model.NewIntVar(0, horizon, f"s{o}") for o in range(n)]
    ends = [starts[o] + int(pp[o]) for o in range(n)]
    per_machine: dict[int, list] = {}
    last_of_job = np.r_[jj[1:] != jj[:-1], True]
    for o in range(n):
        if not last_of_job[o]:
            model.Add(starts[o + 1] >= ends[o])
        if blocking and not last_of_job[o]:
            # occupies its machine until the job starts its next operation
            size = model.NewIntVar(int(pp[o]), horizon, f"occ{o}")
            model.Add(size == starts[o + 1] - starts[o])
            iv = model.NewIntervalVar(starts[o], size, starts[o + 1], f"i{o}")
        else:
            iv = model.NewFixedSizeIntervalVar(starts[o], int(pp[o]), f"i{o}")
        per_machine.setdefault(int(mm[o]), []).append(iv)
    for ivs in per_machine.values():
        model.AddNoOverlap(ivs)
    cmax = model.NewIntVar(0, horizon, "cmax")
    model.AddMaxEquality(cmax, [ends[o] for o in range(n) if last_of_job[o]])
    model.Minimize(cmax)
    solver, status, name = run_cpsat(model, time_limit, workers, seed)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return {"makespan": None, "status": name, "bound": float(solver.BestObjectiveBound()),
                "wall_s": solver.WallTime(), "schedule": np.zeros((0, 5), np.int64)}
    s = np.asarray([solver.Value(v) for v in starts], np.int64)
    rows = np.stack([jj, kk, mm, s, s + pp], axis=1).astype(np.int64)
    return {"makespan": int(solver.Value(cmax)), "status": name, "bound": float(solver.BestObjectiveBound()),
            "wall_s": solver.WallTime(), "schedule": rows[np.lexsort((rows[:, 2], rows[:, 3]))]}


class PlanOrder(Policy):
    """The candidate whose next operation starts earliest in a plan (``plan_start[op]``; ties:
    the lower job index)."""

    name = "plan_order"

    def __init__(self, plan_start: np.ndarray):
        self.plan_start = plan_start

    def act(self, env, obs, info):
        md = env.model
        cand = np.flatnonzero(md.cand)
        ops = md.job_off[cand] + md.next_k[cand]
        return int(cand[np.lexsort((cand, self.plan_start[ops]))[0]])


class CPSATPolicy(PlannedPolicy):
    """Solve at reset with CP-SAT, then replay the plan (earliest planned start among candidates)."""

    name = "cpsat"

    def __init__(self, time_limit: float = 10.0, workers: int = 2):
        self.time_limit = time_limit
        self.workers = workers

    def plan(self, env, seed):
        md = env.model
        self.result = solve_cpsat(env.instance, self.time_limit, self.workers, blocking=md.blocking)
        rows = self.result["schedule"]
        plan_start = np.zeros(md.n_ops_total, np.int64)
        if len(rows):
            plan_start[md.job_off[rows[:, 0]] + rows[:, 1]] = rows[:, 3]
        self.order = PlanOrder(plan_start)
        return simulate(env, self.order, seed)[0].actions

    def after_plan(self, env, obs, info):
        return self.order.act(env, obs, info)


BASELINES: dict[str, Callable[[], Policy]] = {
    "SPT": lambda: PriorityRule("SPT", _spt),
    "LPT": lambda: PriorityRule("LPT", _lpt),
    "MWKR": lambda: PriorityRule("MWKR", _mwkr),
    "LWKR": lambda: PriorityRule("LWKR", _lwkr),
    "MOPNR": lambda: PriorityRule("MOPNR", _mopnr),
    "FIFO": lambda: PriorityRule("FIFO", _fifo),
    "random": RandomMaskedPolicy,
    "cpsat": CPSATPolicy,
}

RULES = ("SPT", "LPT", "MWKR", "LWKR", "MOPNR", "FIFO", "random")
