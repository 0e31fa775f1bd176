"""Baselines of ``rlsys/TaskAllocation-v0`` (by name in ``BASELINES``).

Every baseline but ``random`` decides one *plan* per decision epoch (slot -> ordered entities) and
plays it through the environment's own protocol, in either mode: stage 1 pre-assigns the plan's
entities to its tasks (the rest to none); stage 2 picks each task's entities in plan order (the
environment commits on coverage) and ends the tasks without a plan. So a plan is worth the same in
both modes, and what a policy gets is what the environment pays.

* ``random``: a uniformly random legal value for every action component.
* ``sequential``: tasks in slot order, free contributing entities in index order until covered
  (the paper's fixed-order ablation played by a heuristic).
* ``greedy``: tasks by value per unit of requirement (requirements in units of the mean entity
  capability of each dimension), highest first; for each, free contributing entities by total
  capability per cost (capabilities in the same units), highest first, until covered. On Almighty
  the all-skill entity has the best capability per cost, so greedy spends it on the first small
  task and lands in the trap (28).
* ``ga``: a genetic algorithm over assignment vectors (one gene per free entity: a task or none),
  the paper's main heuristic comparison; fitness = the plan's net value (covered tasks with a
  positive net); tournament selection, uniform crossover, per-gene mutation, elitism; seeded by
  the episode's policy seed; ``population`` and ``generations`` as keyword arguments.
* ``cpsat`` / ``optimal``: the exact one-step allocation of every epoch (:mod:`.exact`), with one
  worker, a fixed seed and a deterministic work limit per epoch (the same plans on every machine).
  Exact on Almighty; a per-epoch optimum on the dynamic scenarios.

The heuristics (greedy, sequential) submit a task they can cover even when its net value is <= 0,
so the environment declines it and frees its slot. ``cpsat`` and ``ga`` submit profitable tasks
only, and decline (by submitting a cover) a task that no cover by all the entities at their current
positions could make profitable.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from rlsys_envs.core import Policy

from .exact import Epoch, cover_cost_bound, solve_epoch
from .model import ASSIGN, PICK


class AllocationPolicy(Policy):
    """Plays one plan per epoch (``plan(env, epoch) -> {slot: [entities]}``) in either mode."""

    name = "plan"
    #: deferral margin of :meth:`deferred` (None: off) and its horizon; set by :meth:`set_defer`
    defer: float | None = None
    defer_horizon: int = 20

    def set_defer(self, defer: float | None, defer_horizon: int):
        """Check and keep the deferral arguments of a searching baseline (``ga``, ``cpsat``)."""
        if defer is not None and not defer >= 0:
            raise ValueError(f"{self.name}: defer must be a cost margin >= 0 (or None: off), got {defer!r}")
        if not defer_horizon >= 0:
            raise ValueError(f"{self.name}: defer_horizon must be >= 0 steps, got {defer_horizon!r}")
        self.defer, self.defer_horizon = (None if defer is None else float(defer)), int(defer_horizon)

    def deferred(self, env, epoch: Epoch, plan: dict) -> dict:
        """``plan`` after :func:`defer_expensive` when ``defer`` is set, then with its declines
        (:func:`_with_declines`): the last step of every searching baseline's plan."""
        if self.defer is not None:
            plan = defer_expensive(env, epoch, plan, self.defer, self.defer_horizon)
        return _with_declines(env, epoch, plan)

    def reset(self, env, seed=None):
        super().reset(env, seed)
        self._epoch_no = -1
        self._plan: dict[int, list[int]] = {}

    def plan(self, env, epoch: Epoch) -> dict[int, list[int]]:
        raise NotImplementedError

    def _refresh(self, env):
        m = env.model
        if m.epochs != self._epoch_no:
            self._epoch_no = m.epochs
            self._plan = self.plan(env, Epoch.of(m))

    def act(self, env, obs, info):
        m = env.model
        self._refresh(env)
        E, K = env.max_entities, env.max_slots
        if env.mode == "two_stage":
            a = np.full(E + 1, K, np.int64)
            a[E] = E
            if m.phase == ASSIGN:
                for s, ents in self._plan.items():
                    a[list(ents)] = s
            else:
                a[E] = self._next_pick(m, E)
            return a
        return self._next_pick(m, E)

    def plan_picks(self, m) -> list[int]:
        """Stage 2: the current task's planned entities, in plan order, that may still be picked
        and still contribute ([] outside stage 2, or for a task without a plan)."""
        if m.phase != PICK:
            return []
        useful = m.pickable() & m.contributes()
        return [int(e) for e in self._plan.get(m.current_slot, []) if useful[e]]

    def _next_pick(self, m, end: int) -> int:
        picks = self.plan_picks(m)
        return picks[0] if picks else end


class RandomPolicy(Policy):
    """A uniformly random legal value for each action component (seeded by ``reset``)."""

    name = "random"

    def act(self, env, obs, info):
        mask = env.action_masks()
        if env.mode == "sequential":
            return int(self.rng.choice(np.flatnonzero(mask)))
        E, K = env.max_entities, env.max_slots
        a = np.empty(E + 1, np.int64)
        if env.model.phase == ASSIGN:
            a[:E] = uniform_choice(mask[: E * (K + 1)].reshape(E, K + 1), self.rng)
        else:
            # stage 2: every stage-1 component has one legal value (none); the draws uniform_choice
            # would make are still taken, so the random stream (and the baseline's figures) are unchanged
            self.rng.random(E)
            a[:E] = K
        legal = np.flatnonzero(mask[E * (K + 1):])     # uniform_choice of one row, without its cumsum
        a[E] = legal[int(self.rng.random(1)[0] * len(legal))]
        return a


def uniform_choice(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One uniformly random True column per row of a boolean ``[n, k]`` mask (every row has one)."""
    counts = mask.sum(1)
    k = np.floor(rng.random(len(mask)) * counts).astype(np.int64)
    return np.argmax(np.cumsum(mask, axis=1) > k[:, None], axis=1)


def _cover(epoch: Epoch, j: int, order, free: np.ndarray) -> list[int]:
    """Rows of ``order`` (free, contributing) picked until task ``j`` is covered ([] if it cannot be)."""
    remaining = epoch.req[j].copy()
    picked = []
    for i in order:
        if not free[i] or not np.any(np.minimum(epoch.cap[i], remaining) > 0):
            continue
        picked.append(int(i))
        remaining = np.maximum(remaining - epoch.cap[i], 0)
        if not remaining.any():
            return picked
    return []


def _unit(env) -> np.ndarray:
    return np.maximum(env.inst.entity_cap.mean(0), 1e-9)


class SequentialPolicy(AllocationPolicy):
    """Tasks in slot order, entities in index order."""

    name = "sequential"

    def plan(self, env, epoch):
        free, plan = np.ones(len(epoch.entities), bool), {}
        for j, s in enumerate(epoch.slots):
            rows = _cover(epoch, j, range(len(epoch.entities)), free)
            if rows:
                free[rows] = False
                plan[int(s)] = [int(epoch.entities[i]) for i in rows]
        return plan


class GreedyPolicy(AllocationPolicy):
    """Tasks by value per unit of requirement, entities by capability per cost."""

    name = "greedy"

    def plan(self, env, epoch):
        unit = _unit(env)
        density = epoch.value / np.maximum((epoch.req / unit).sum(1), 1e-9)
        power = (epoch.cap / unit).sum(1)
        free, plan = np.ones(len(epoch.entities), bool), {}
        for j in np.argsort(-density, kind="stable"):
            ratio = power / np.maximum(epoch.cost[:, j], 1e-9)
            rows = _cover(epoch, j, np.argsort(-ratio, kind="stable"), free)
            if rows:
                free[rows] = False
                plan[int(epoch.slots[j])] = [int(epoch.entities[i]) for i in rows]
        return plan


def _hopeless(env, epoch: Epoch, j: int) -> bool:
    """Whether no cover of task ``j`` by all the entities (busy ones included, at their current
    positions) can have a positive net value (its value is at most :func:`cover_cost_bound`, a
    lower bound on the cost of any cover): then it may be declined."""
    m = env.model
    cost = m.pair_cost()[:, int(epoch.slots[j])]
    return bool(epoch.value[j] <= cover_cost_bound(m.inst.entity_cap, cost, epoch.req[j]))


def _with_declines(env, epoch: Epoch, plan: dict) -> dict:
    """Add a (declining) cover for every open task left out of ``plan`` that is hopeless."""
    free = np.ones(len(epoch.entities), bool)
    row = {int(e): i for i, e in enumerate(epoch.entities)}
    for ents in plan.values():
        free[[row[e] for e in ents]] = False
    for j, s in enumerate(epoch.slots):
        if int(s) in plan:
            continue
        rows = _cover(epoch, j, np.argsort(epoch.cost[:, j], kind="stable"), free)
        if rows and _hopeless(env, epoch, j):
            free[rows] = False
            plan[int(s)] = [int(epoch.entities[i]) for i in rows]
    return plan


#: CP-SAT's deterministic work units per epoch of ``cpsat`` (about 5 s of one quiet core on RBF-like
#: and Material-like epochs, the wall-clock limit this baseline had before)
CPSAT_DETERMINISTIC_TIME = 3.0


class CPSATPolicy(AllocationPolicy):
    """The exact one-step allocation of each epoch (one worker, fixed seed).

    Deterministic by default: the search of an epoch stops after ``deterministic_time`` CP-SAT work
    units (:data:`CPSAT_DETERMINISTIC_TIME`), a count that does not depend on the machine or its
    load, so the plans and the baseline's figures are the same wherever it runs. Why: a wall-clock
    limit cut the hard RBF-like epochs at different points under load (157.0 on a quiet machine,
    153.2 on a busy one). ``time_limit`` (wall-clock seconds) is only a safety cap; when it binds
    first (a small ``time_limit``, or ``deterministic_time=None``) the answer depends on the load
    again. The solver status of every epoch is kept in ``statuses`` (OPTIMAL: proven).

    ``defer`` (default None: off) and ``defer_horizon``: as :class:`GAPolicy`'s (ours; an expert for
    behaviour cloning on RBF-like, no longer the per-epoch optimum when set).
    """

    name = "cpsat"

    def __init__(self, time_limit: float = 60.0, seed: int = 0,
                 deterministic_time: float | None = CPSAT_DETERMINISTIC_TIME, defer: float | None = None,
                 defer_horizon: int = 20):
        self.set_defer(defer, defer_horizon)
        if not time_limit > 0:
            raise ValueError(f"cpsat: time_limit must be > 0 seconds, got {time_limit!r}")
        if deterministic_time is not None and not deterministic_time > 0:
            raise ValueError(f"cpsat: deterministic_time must be > 0 (or None), got {deterministic_time!r}")
        self.time_limit, self.seed = float(time_limit), int(seed)
        self.deterministic_time = None if deterministic_time is None else float(deterministic_time)
        self.statuses: list[str] = []

    def plan(self, env, epoch):
        hint = GreedyPolicy().plan(env, epoch)
        plan, self.last_value, status = solve_epoch(epoch, self.time_limit, 1, self.seed, hint=hint,
                                                    deterministic_time=self.deterministic_time)
        self.statuses.append(status)
        return self.deferred(env, epoch, plan)


def defer_expensive(env, epoch: Epoch, plan: dict, margin: float, horizon: int) -> dict:
    """``plan`` without the tasks worth waiting for: a task leaves the plan (stays open for a later
    epoch) when the cheapest cover of it by the *free* entities costs more than ``margin`` above
    the cheapest by *all* the entities, busy ones included (both :func:`cover_cost_bound`, at the
    entities' current positions), and the task is still profitable with all of them. Nothing is
    deferred within ``horizon`` steps of the step cap, so that a deferred task still has time.

    Ours, not the paper's. Why: on RBF-like the entities are not scarce (the GA keeps a third of
    them busy and completes nearly every task), so what separates plans is the cost of the covers;
    the per-epoch search spends expensive free entities on a task that cheap busy ones, back within
    a few steps, would cover for less.
    """
    m = env.model
    if m.t + horizon >= m.inst.max_steps:
        return plan
    cost = m.pair_cost()
    free = np.zeros(m.E, bool)
    free[epoch.entities] = True
    pos = {int(s): j for j, s in enumerate(epoch.slots)}
    kept = {}
    for s, ents in plan.items():
        req = epoch.req[pos[int(s)]]
        best = cover_cost_bound(m.inst.entity_cap, cost[:, s], req)
        best_free = cover_cost_bound(m.inst.entity_cap[free], cost[free, s], req)
        if best_free - best > margin and epoch.value[pos[int(s)]] > best:
            continue
        kept[s] = ents
    return kept


class GAPolicy(AllocationPolicy):
    """A genetic algorithm over assignment vectors (one gene per free entity: slot index or none).

    ``defer`` (default None: off): leave out of the plan the tasks that busy entities would cover
    for more than ``defer`` less (:func:`defer_expensive`, until ``defer_horizon`` steps before the
    cap). Ours; an expert for behaviour cloning on RBF-like, not the paper's GA baseline.
    """

    name = "ga"

    def __init__(self, population: int = 64, generations: int = 60, mutation: float | None = None,
                 elite: int = 2, tournament: int = 3, defer: float | None = None, defer_horizon: int = 20):
        if population < 2 or generations < 0 or elite < 0 or elite >= population or tournament < 1:
            raise ValueError(f"ga: needs population >= 2, generations >= 0, 0 <= elite < population and "
                             f"tournament >= 1; got {population}, {generations}, {elite}, {tournament}")
        self.set_defer(defer, defer_horizon)
        self.population, self.generations, self.mutation = int(population), int(generations), mutation
        self.elite, self.tournament = int(elite), int(tournament)

    def _fitness(self, genes: np.ndarray, epoch: Epoch) -> np.ndarray:
        """[P] net value of each assignment vector (gene m = none)."""
        m = len(epoch.slots)
        onehot = (genes[:, :, None] == np.arange(m)[None, None, :]).astype(np.float64)   # [P, n, m]
        got = np.einsum("pnm,nd->pmd", onehot, epoch.cap)
        covered = np.all(got >= epoch.req[None], axis=2) & (onehot.sum(1) > 0)
        net = epoch.value[None, :] - np.einsum("pnm,nm->pm", onehot, epoch.cost)
        return np.where(covered & (net > 0), net, 0.0).sum(1)

    def plan(self, env, epoch):
        n, m = len(epoch.entities), len(epoch.slots)
        if n == 0 or m == 0:
            return {}
        rng = self.rng
        ok = np.concatenate([epoch.contributes(), np.ones((n, 1), bool)], axis=1)     # [n, m + 1]

        def random_genes(size):
            return np.stack([uniform_choice(ok, rng) for _ in range(size)])

        P = self.population
        pop = random_genes(P)
        pop[0] = m                                     # the empty plan is always in the population
        fit = self._fitness(pop, epoch)
        rate = self.mutation if self.mutation is not None else 1.0 / n
        for _ in range(self.generations):
            order = np.argsort(-fit, kind="stable")
            elite = pop[order[: self.elite]]
            picks = rng.integers(0, P, (2 * (P - self.elite), self.tournament))
            winners = picks[np.arange(len(picks)), np.argmax(fit[picks], axis=1)]
            a, b = pop[winners[0::2]], pop[winners[1::2]]
            child = np.where(rng.random(a.shape) < 0.5, a, b)
            mutate = rng.random(child.shape) < rate
            if mutate.any():
                child = np.where(mutate, random_genes(len(child)), child)
            pop = np.concatenate([elite, child])
            fit = self._fitness(pop, epoch)
        best = pop[int(np.argmax(fit))]
        plan = {}
        net = epoch.value - np.array([epoch.cost[best == j, j].sum() for j in range(m)])
        for j in range(m):
            rows = np.flatnonzero(best == j)
            if len(rows) and np.all(epoch.cap[rows].sum(0) >= epoch.req[j]) and net[j] > 0:
                plan[int(epoch.slots[j])] = [int(epoch.entities[i]) for i in rows]
        self.last_value = float(fit.max())
        return self.deferred(env, epoch, plan)


BASELINES: dict[str, Callable[[], Policy]] = {
    "random": RandomPolicy,
    "sequential": SequentialPolicy,
    "greedy": GreedyPolicy,
    "ga": GAPolicy,
    "cpsat": CPSATPolicy,
    "optimal": CPSATPolicy,
}
