"""Behaviour-cloning demonstrations of task allocation from a plan-based baseline
(``rlsys_agents.imitation``; ``pretrain.expert: cpsat`` or ``ga`` in a config).

Why: on the Electric-like scenario every baseline completes every demand, so what separates
allocations is the conveyance cost of the suppliers chosen, a small signal in PPO's returns (the
shipped PPO checkpoint stays 2% below greedy after 200k steps), while the per-epoch optimum is
available exactly and cheaply (under a second per episode). On Material the per-epoch optimum is
also the best baseline; on RBF the GA is at par with it, and either with deferral (``defer``, tasks
wait for cheaper busy entities) ahead of both: the shipped RBF-like checkpoint clones CP-SAT with
``defer: 1.5``.

:class:`PlanExpert` turns any plan baseline of :mod:`.baselines` (a
:class:`~rlsys_envs.taskalloc.baselines.AllocationPolicy`: one plan ``slot -> entities`` per
epoch) into demonstrations; ``cpsat`` (:class:`CPSatExpert`) and ``ga`` (:class:`GAExpert`) are
the registered ones, with their baselines' keyword arguments.

Both action modes. In the two-stage mode a demonstration's actions are whole ``MultiDiscrete``
vectors, and its accepted sets are flat indices into the per-component mask layout
(``action_masks()``): at every step, one accepted set per component. In the sequential mode (stage 2
only, every free entity a candidate of every task, tasks in slot order) the actions are the picks,
and the accepted set is the stage-2 one below.

* **Stage 1.** An entity of the plan is pre-assigned to its planned slot: that is its only accepted
  value. An entity outside the plan may take any legal value (none, or any open slot: stage 2 picks
  only the plan's entities, so as a candidate it changes nothing), and the demonstration plays a
  uniformly random legal one (seeded by the episode), so that stage 2 sees tasks with more
  candidates than they need, as a learner's stage 1 gives them. The ignored stage-2 component
  accepts every value.
* **Stage 2.** The remaining plan entities of the current task that still contribute (any order:
  the plan's set is picked whole and commits on coverage), or END when the task has no plan.

The episode's total net value is the baseline's on the same seed (the baseline is reset with the
episode's seed, as ``play_episode`` does, and the extra candidates are never picked).
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from rlsys_envs.core import Demonstration, play_prefix

from .baselines import BASELINES, CPSAT_DETERMINISTIC_TIME, AllocationPolicy
from .model import ASSIGN


class PlanExpert:
    """Demonstrations of the plan baseline ``baseline`` (a name of ``BASELINES``, built with
    ``kwargs``), with accepted sets per action component (see the module doc)."""

    name = "plan"
    version = 1

    def __init__(self, baseline: str, **kwargs):
        factory = BASELINES.get(baseline)
        if not (isinstance(factory, type) and issubclass(factory, AllocationPolicy)):
            plans = [k for k, v in BASELINES.items() if isinstance(v, type) and issubclass(v, AllocationPolicy)]
            raise ValueError(f"{type(self).__name__}: baseline must be a plan baseline ({', '.join(plans)}); "
                             f"got {baseline!r}")
        self.baseline, self.kwargs = baseline, dict(kwargs)
        self.make_policy()                      # bad keyword arguments: fail here, not mid-episode

    def make_policy(self) -> AllocationPolicy:
        return BASELINES[self.baseline](**self.kwargs)

    def demonstrate(self, env, seed: int, prefix=()) -> Demonstration:
        """Play the baseline's plans from ``env.reset(seed=seed)`` (after the ``prefix`` actions)."""
        env = env.unwrapped
        two_stage = env.mode == "two_stage"
        as_action = (lambda a: np.asarray(a, np.int64)) if two_stage else int
        obs, info = play_prefix(env, seed, prefix, type(self).__name__, as_action)
        if not env.at_decision_boundary():
            raise ValueError(f"{type(self).__name__}: the prefix of seed {seed} stops in stage 2 "
                             "(an epoch half played)")
        policy = self.make_policy()
        policy.reset(env, int(seed))
        rng = np.random.default_rng([int(seed), len(prefix)])
        if two_stage:
            actions = [[int(x) for x in p] for p in prefix]
            targets = [[int(i) for i in env._offsets + np.asarray(p, np.int64)] for p in prefix]   # not imitated
        else:
            actions, targets = [int(p) for p in prefix], [[int(p)] for p in prefix]
        done = False
        while not done:
            if two_stage:
                a, accepted = self.step(env, policy, obs, info, rng)
                actions.append(a.tolist())
            else:
                a, accepted = self.pick_step(env, policy, obs, info)
                actions.append(int(a))
            targets.append(accepted)
            obs, _r, terminated, truncated, info = env.step(a)
            done = terminated or truncated
        found = getattr(policy, "statuses", [])      # CP-SAT's solver statuses per epoch
        statuses = {s: found.count(s) for s in set(found)}
        return Demonstration(int(seed), actions, targets, {"total_net_value": float(info["metrics"]["total_net_value"]),
                                                           "statuses": statuses}, prefix=len(prefix))

    @staticmethod
    def pick_step(env, policy, obs, info) -> tuple[int, list[int]]:
        """Sequential mode: the expert's pick and its accepted actions (the stage-2 rule)."""
        a = int(policy.act(env, obs, info))
        return a, policy.plan_picks(env.model) or [env.max_entities]

    @staticmethod
    def step(env, policy, obs, info, rng: np.random.Generator) -> tuple[np.ndarray, list[int]]:
        """The expert's action in the current state and its accepted flat mask indices."""
        m, mask = env.model, env.action_masks()
        E, K = env.max_entities, env.max_slots
        a = np.asarray(policy.act(env, obs, info), np.int64).copy()
        first = mask[: E * (K + 1)].reshape(E, K + 1)
        accepted = np.zeros_like(mask)
        acc_first = accepted[: E * (K + 1)].reshape(E, K + 1)
        acc_last = accepted[E * (K + 1):]
        if m.phase == ASSIGN:
            in_plan = np.zeros(E, bool)
            for ents in policy._plan.values():
                in_plan[list(ents)] = True
            acc_first[:] = first
            for e in np.flatnonzero(in_plan):
                acc_first[e] = False
                acc_first[e, a[e]] = True
            for e in np.flatnonzero(~in_plan):
                legal = np.flatnonzero(first[e])
                a[e] = legal[rng.integers(len(legal))]
            acc_last[:] = True
        else:
            acc_first[:, K] = True
            acc_last[policy.plan_picks(m) or [E]] = True          # END only for a task without a plan
        return a, [int(i) for i in np.flatnonzero(accepted & mask)]


class CPSatExpert(PlanExpert):
    """Demonstrations of :class:`~rlsys_envs.taskalloc.baselines.CPSATPolicy`, the per-epoch
    optimum: at most ``deterministic_time`` CP-SAT work units per epoch (default the baseline's,
    the same demonstrations on every machine) and at most ``time_limit`` wall-clock seconds (a
    safety cap by default; a small one binds first and makes the demonstrations depend on the
    machine's load, so ``configs/taskalloc_material_bc.yaml`` lowers ``deterministic_time``
    instead). ``defer`` / ``defer_horizon``: the baseline's deferral (tasks wait for cheaper busy
    entities; off by default)."""

    name = "cpsat"
    version = 2

    def __init__(self, time_limit: float = 60.0, deterministic_time: float | None = CPSAT_DETERMINISTIC_TIME,
                 defer: float | None = None, defer_horizon: int = 20):
        # CPSATPolicy checks every argument (PlanExpert builds one at construction)
        super().__init__("cpsat", time_limit=time_limit, deterministic_time=deterministic_time, defer=defer,
                         defer_horizon=defer_horizon)


class GAExpert(PlanExpert):
    """Demonstrations of :class:`~rlsys_envs.taskalloc.baselines.GAPolicy` (keyword arguments
    ``population``, ``generations``, ``mutation``, ``elite``, ``tournament``, ``defer``,
    ``defer_horizon``): the best baseline on RBF, at par with the per-epoch optimum; with
    ``defer`` (tasks wait for cheaper busy entities) ahead of both there."""

    name = "ga"
    version = 1

    def __init__(self, **kwargs):
        super().__init__("ga", **kwargs)


EXPERTS: dict[str, Callable[..., PlanExpert]] = {"cpsat": CPSatExpert, "ga": GAExpert}
