"""The exact one-step allocation as an OR-Tools CP-SAT model, and a brute force for tiny cases.

An *epoch* (:class:`Epoch`) is what one decision epoch allocates: the free entities, the open
tasks, capabilities, requirements, current values and the entity-task costs. The one-step problem:

    maximise   sum_s value_s * y_s - sum_{e,s} cost_{e,s} * x_{e,s}
    subject to sum_s x_{e,s} <= 1                      (an entity on at most one task)
               x_{e,s} <= y_s <= sum_e x_{e,s}         (entities only on chosen tasks, at least one)
               sum_e cap_{e,d} * x_{e,s} >= req_{s,d} * y_s   (a chosen task is covered)

with booleans ``x`` (only for entities that contribute to the task) and ``y``. Values and costs
are scaled by ``SCALE`` and rounded to integers (CP-SAT is an integer solver); the answer is scored
in floating point again. This is exact for one epoch: on Almighty (one epoch, integer data) it is
the optimum of the instance; on the dynamic scenarios it is the per-epoch optimum, which ignores
the entities and tasks of later steps.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from rlsys_envs.core.exact import run_cpsat

#: values and costs are multiplied by this and rounded for CP-SAT
SCALE = 10_000


@dataclass
class Epoch:
    """One decision epoch: entity indices ``entities`` [n], open ``slots`` [m], capabilities
    ``cap`` [n, d], requirements ``req`` [m, d], values [m], costs [n, m]."""

    entities: np.ndarray
    slots: np.ndarray
    cap: np.ndarray
    req: np.ndarray
    value: np.ndarray
    cost: np.ndarray

    @classmethod
    def of(cls, model) -> "Epoch":
        """The epoch the model is in (free entities at its start, less those committed since)."""
        ent = np.flatnonzero(model._epoch_avail)
        slots = model.open_slots()
        q = model.slot_task[slots]
        return cls(ent, slots, model.inst.entity_cap[ent], model.inst.task_req[q], model.value[q].copy(),
                   model._epoch_cost[np.ix_(ent, slots)])

    def contributes(self) -> np.ndarray:
        """[n, m]: entity i has some capability that task j requires (any entity for a task that
        requires nothing: a task needs at least one entity)."""
        return ((self.cap @ (self.req > 0).T) > 0) | (self.req.sum(1) == 0)[None, :]

    def score(self, plan: dict[int, list[int]]) -> float:
        """Net value of a plan (slot -> entity indices): the sum over covered tasks with a positive net."""
        pos = {int(s): j for j, s in enumerate(self.slots)}
        row = {int(e): i for i, e in enumerate(self.entities)}
        total = 0.0
        for s, ents in plan.items():
            j, idx = pos[int(s)], [row[int(e)] for e in ents]
            if idx and np.all(self.cap[idx].sum(0) >= self.req[j]):
                net = self.value[j] - self.cost[idx, j].sum()
                total += max(net, 0.0)
        return float(total)


def cover_cost_bound(cap: np.ndarray, cost: np.ndarray, req: np.ndarray) -> float:
    """A lower bound on the cost of covering ``req`` with entities of capabilities ``cap`` [n, d]
    and costs ``cost`` [n]: the largest over dimensions of the fractional (LP) cover of that
    dimension alone, i.e. entities by cost per unit of capability, the last one fractionally.
    ``inf`` when even all the entities do not cover ``req``."""
    if np.any(cap.sum(0) < req):
        return float("inf")
    best = 0.0
    for d in np.flatnonzero(req > 0):
        has = np.flatnonzero(cap[:, d] > 0)
        order = has[np.argsort(cost[has] / cap[has, d], kind="stable")]
        need, total = float(req[d]), 0.0
        for i in order:
            take = min(1.0, need / cap[i, d])
            total += take * cost[i]
            need -= take * cap[i, d]
            if need <= 1e-12:
                break
        best = max(best, total)
    return best


def solve_epoch(epoch: Epoch, time_limit: float = 10.0, workers: int = 1, seed: int = 0,
                hint: dict[int, list[int]] | None = None, deterministic_time: float | None = None):
    """The CP-SAT optimum of one epoch: ``(plan slot -> entities, value, status name)``.

    ``time_limit``: wall-clock seconds; ``deterministic_time``: a limit in CP-SAT's deterministic
    work units (``rlsys_envs.core.run_cpsat``): with one worker, it makes the answer the same on
    every machine and under any load, as long as the wall-clock limit is not reached first.
    ``hint``: a plan to start the search from (e.g. greedy's). Valid cuts tighten the model: the
    cost of a chosen task's entities is at least :func:`cover_cost_bound`, and a task whose value
    does not exceed that bound is left out.
    """
    from ortools.sat.python import cp_model

    n, m = len(epoch.entities), len(epoch.slots)
    if n == 0 or m == 0:
        return {}, 0.0, "OPTIMAL"
    ok = epoch.contributes()
    bound = np.array([cover_cost_bound(epoch.cap, epoch.cost[:, j], epoch.req[j]) for j in range(m)])
    ok &= (epoch.value > bound)[None, :]
    model = cp_model.CpModel()
    y = [model.NewBoolVar(f"y{j}") for j in range(m)]
    x = {(i, j): model.NewBoolVar(f"x{i}_{j}") for i in range(n) for j in range(m) if ok[i, j]}
    for i in range(n):
        row = [x[i, j] for j in range(m) if (i, j) in x]
        if len(row) > 1:
            model.AddAtMostOne(row)
    for (i, j), v in x.items():
        model.AddImplication(v, y[j])
    for j in range(m):
        model.Add(sum(x[i, j] for i in range(n) if (i, j) in x) >= y[j])
    for j in range(m):
        for d in np.flatnonzero(epoch.req[j] > 0):
            terms = [int(epoch.cap[i, d]) * x[i, j] for i in range(n) if (i, j) in x and epoch.cap[i, d] > 0]
            model.Add(sum(terms) >= int(epoch.req[j, d]) * y[j])
    for j in range(m):
        if epoch.value[j] <= bound[j]:
            model.Add(y[j] == 0)
        else:
            terms = [int(round(SCALE * epoch.cost[i, j])) * x[i, j] for i in range(n) if (i, j) in x]
            model.Add(sum(terms) >= int(np.floor(SCALE * bound[j] - 1)) * y[j])
    if hint:
        pos = {int(s): j for j, s in enumerate(epoch.slots)}
        row = {int(e): i for i, e in enumerate(epoch.entities)}
        chosen = {(row[int(e)], pos[int(s)]) for s, ents in hint.items() for e in ents}
        if all(k in x for k in chosen):
            for (i, j), v in x.items():
                model.AddHint(v, (i, j) in chosen)
            for j in range(m):
                model.AddHint(y[j], any(jj == j for _, jj in chosen))
    value = [int(round(SCALE * v)) for v in epoch.value]
    model.Maximize(sum(value[j] * y[j] for j in range(m))
                   - sum(int(round(SCALE * epoch.cost[i, j])) * v for (i, j), v in x.items()))
    # the LP relaxation (linearization level 2) is what makes the covering constraints tractable:
    # on RBF epochs it proves the optimum in about 2 s where the default level stalls
    solver, status, name = run_cpsat(model, time_limit, workers, seed, deterministic_time,
                                     linearization_level=2)
    if name not in ("OPTIMAL", "FEASIBLE"):
        return {}, 0.0, name
    plan = {}
    for j in range(m):
        if solver.Value(y[j]):
            chosen = [i for i in range(n) if (i, j) in x and solver.Value(x[i, j])]
            plan[int(epoch.slots[j])] = [int(epoch.entities[i]) for i in chosen]
    return plan, epoch.score(plan), name


def brute_force_epoch(epoch: Epoch) -> float:
    """The optimum of a tiny epoch by enumerating every assignment of every entity to a task or
    none ((m + 1) ** n of them)."""
    n, m = len(epoch.entities), len(epoch.slots)
    if n > 10:
        raise ValueError(f"brute force is for tiny epochs (n <= 10 entities), got {n}")
    best = 0.0
    for genes in itertools.product(range(m + 1), repeat=n):
        plan: dict[int, list[int]] = {}
        for i, g in enumerate(genes):
            if g < m:
                plan.setdefault(int(epoch.slots[g]), []).append(int(epoch.entities[i]))
        best = max(best, epoch.score(plan))
    return best
