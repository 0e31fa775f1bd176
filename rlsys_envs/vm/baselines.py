"""Baselines for VM rescheduling: no-op, random, greedy, best-of-K sampling, and an exact CP-SAT model.

``BASELINES`` (name -> zero-argument factory):

- ``noop``: stop at once (FR unchanged); where stop is not allowed it falls back to ``greedy``.
- ``random``: uniformly random legal action (:class:`rlsys_envs.core.RandomMaskedPolicy`).
- ``greedy``: the single migration that removes the most fragmented cores now (over every movable
  VM and every legal destination, vectorised per VM shape); it stops when no migration helps, or,
  where stop is not allowed, keeps making the least harmful migration.
  This contains VMR2L's heuristic ("take a VM from the most fragmented place and move it where
  fragments drop most") as the special case where the source is fixed first.
- ``lookahead``: greedy with a two-move look-ahead (:func:`lookahead_plan`): where no single
  migration helps, an FR-neutral one after which the best single migration helps most (sampled).
  Not in VMR2L; added because CP-SAT's plans show that such preparatory moves are what greedy
  misses, so a policy should be measured against it too.
- ``cpsat``: plans at reset with :func:`plan_cpsat` (staged: the fragmented model, then the exact
  one; 10 s, 1 worker) and replays the plan.
- ``cpsat_fragmented``: the fragmented CP-SAT model alone, 1 s, 1 worker: on M size about as good
  as the exact model after a minute (see "Fragmented scope" in :mod:`.exact`).
- ``random_best16``: VMR2L's risk-seeking evaluation applied to ``random``: 16 seeded rollouts from
  the reset state (state snapshots), the plan with the lowest final FR is replayed (:class:`BestOfK`).

:class:`BestOfK` wraps any stochastic policy (e.g. a trained checkpoint's sampling policy), and
:class:`LookaheadCompletion` any policy: its plan up to its lowest FR, then the look-ahead on the
migrations left.

The plans themselves are computed on the cluster in :mod:`.planning` (greedy, look-ahead,
sequencing) and :mod:`.exact` (CP-SAT); the behaviour-cloning expert is in :mod:`.expert`.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from rlsys_envs.core import BestOfK as CoreBestOfK
from rlsys_envs.core import Episode, PlannedPolicy, Policy, RandomMaskedPolicy, simulate

from .exact import PLAN_SCOPES, check_scope, plan_cpsat
from .planning import best_migration, complete_with_lookahead, lookahead_plan


def _legal(env) -> np.ndarray:
    return env._legal_mask()



class GreedyPolicy(Policy):
    """Best single migration now; stops when none removes fragmented cores (if stop is allowed)."""

    name = "greedy"

    def __init__(self, stop_when_no_gain: bool = True):
        self.stop_when_no_gain = stop_when_no_gain
        self._pending: list[int] = []

    def reset(self, env, seed=None):
        super().reset(env, seed)
        self._pending = []

    def act(self, env, obs, info):
        legal = _legal(env)
        if self._pending and legal[self._pending[0]]:
            return self._pending.pop(0)
        self._pending = []
        if env.action_mode != "joint" and env.phase == 1:  # someone else picked the VM: best slot for it
            v = env.selected
            m = env.cluster.vm_slot_mask(v)
            slots = np.flatnonzero(m)
            drops = [env.cluster.migration_delta(v, int(s)) for s in slots]
            return int(slots[int(np.argmax(drops))])
        v, s, drop = best_migration(env.cluster)
        if v < 0 or (drop <= 0 and self.stop_when_no_gain and legal[env.stop_action]):
            if legal[env.stop_action]:
                return env.stop_action
            return int(np.flatnonzero(legal)[0])
        # here drop > 0, or stop is not allowed: the least harmful migration
        actions = env.encode_migration(v, s)
        self._pending = actions[1:]
        return actions[0]


class NoOpPolicy(Policy):
    """Stop at once (the FR of the snapshot); falls back to greedy where stop is not legal."""

    name = "noop"

    def reset(self, env, seed=None):
        super().reset(env, seed)
        self._greedy = GreedyPolicy()
        self._greedy.reset(env, seed)

    def act(self, env, obs, info):
        if _legal(env)[env.stop_action]:
            return env.stop_action
        return self._greedy.act(env, obs, info)


class LegalRandomPolicy(RandomMaskedPolicy):
    """Random among the legal actions, also in the unmasked ``penalty`` mode."""

    def act(self, env, obs, info):
        return int(self.rng.choice(np.flatnonzero(_legal(env))))


def rollout(env, policy: Policy, seed: int) -> tuple[Episode, list[tuple[int, int]]]:
    """Play ``policy`` (reset with ``seed``) to the end on a copy of ``env`` in its current state;
    returns the episode and its migrations ``(vm, slot)`` in order (``env`` is untouched)."""
    episode, twin = simulate(env, policy, seed)
    return episode, list(twin.plan[len(env.plan):])


def fewest_fragments(episode: Episode) -> tuple:
    """:class:`BestOfK`'s order of VM episodes: lowest final FR, then fewer migrations."""
    return episode.metrics["fr_final"], episode.metrics["migrations"]


class MigrationPlanPolicy(PlannedPolicy):
    """A planned policy for VM rescheduling: replays its plan, then stops; where stop is not
    allowed (``allow_stop=False``) it goes on with greedy's least harmful migrations. A planned
    action that is no longer legal (someone else acted) drops the rest of the plan. Legality is
    the env's (also in the unmasked ``penalty`` mode, where the plan must not earn penalties)."""

    def reset(self, env, seed=None):
        self._fallback = GreedyPolicy()
        self._fallback.reset(env, seed)
        super().reset(env, seed)

    def is_legal(self, env, action) -> bool:
        return bool(_legal(env)[int(action)])

    def after_plan(self, env, obs, info):
        if _legal(env)[env.stop_action]:
            return env.stop_action
        return self._fallback.act(env, obs, info)


class MigrationsPolicy(MigrationPlanPolicy):
    """A planned policy whose plan is a list of migrations ``(vm, slot)`` (:meth:`migrations`)."""

    def migrations(self, env, seed: int) -> list[tuple[int, int]]:
        raise NotImplementedError

    def plan(self, env, seed):
        self.sequence = self.migrations(env, seed)
        return [a for v, d in self.sequence for a in env.encode_migration(v, d)]


class BestOfK(MigrationPlanPolicy, CoreBestOfK):
    """VMR2L's risk-seeking evaluation (``core.BestOfK``): ``k`` seeded rollouts of a stochastic
    policy from the reset state, the one with the lowest final FR (then fewer migrations) replayed."""

    def __init__(self, policy_factory: Callable[[], Policy], k: int = 16, name: str | None = None,
                 first: Callable[[], Policy] | None = None):
        CoreBestOfK.__init__(self, policy_factory, k, name=name, first=first, key=fewest_fragments)


class CPSatPolicy(MigrationsPolicy):
    """Solve at reset (time limit, workers, ``scope`` of :func:`plan_cpsat`; hinted with the greedy
    plan), sequence the plan, replay it, stop."""

    def __init__(self, time_limit: float = 10.0, workers: int = 1, name: str = "cpsat", greedy_hint: bool = True,
                 scope: str = "staged"):
        check_scope(scope, PLAN_SCOPES)
        self.time_limit, self.workers, self.name, self.greedy_hint = time_limit, workers, name, greedy_hint
        self.scope = scope

    def migrations(self, env, seed):
        self.result, sequence, self.dropped = plan_cpsat(env.cluster, env.mnl - env.migrations, self.time_limit,
                                                         self.workers, seed, self.greedy_hint, self.scope)
        return sequence


class LookaheadCompletion(MigrationsPolicy):
    """Another policy's plan, completed by the look-ahead (:func:`complete_with_lookahead`).

    At reset ``policy_factory()`` plays the rest of the episode on a copy of the env (:func:`rollout`);
    its migrations up to its lowest FR are kept and the look-ahead (neutral migrations sampled with
    a generator seeded by the reset seed) spends the rest of the budget. Why: a cloned policy
    (``agents/checkpoints/vm_gnn_bc.zip``) makes FR-neutral moves once it sees no gain, while a
    gain is still to be had; the completion costs one look-ahead on the last few migrations.
    """

    def __init__(self, policy_factory: Callable[[], Policy], samples: int = 150, name: str | None = None):
        self.policy_factory, self.samples = policy_factory, samples
        self.name = name or "lookahead_completion"

    def migrations(self, env, seed):
        _, self.policy_plan = rollout(env, self.policy_factory(), seed)
        return complete_with_lookahead(env.cluster, self.policy_plan, env.mnl - env.migrations,
                                       np.random.default_rng(seed), self.samples)


class LookaheadPolicy(MigrationsPolicy):
    """:func:`lookahead_plan` at reset (neutral migrations sampled with a generator seeded by the
    reset seed), replayed."""

    name = "lookahead"

    def __init__(self, samples: int = 150):
        self.samples = samples

    def migrations(self, env, seed):
        return lookahead_plan(env.cluster, env.mnl - env.migrations, np.random.default_rng(seed), self.samples)


BASELINES: dict[str, Callable[[], Policy]] = {
    "noop": NoOpPolicy,
    "random": LegalRandomPolicy,
    "greedy": GreedyPolicy,
    "lookahead": LookaheadPolicy,
    "cpsat": CPSatPolicy,
    "cpsat_fragmented": lambda: CPSatPolicy(time_limit=1.0, scope="fragmented", name="cpsat_fragmented"),
    "random_best16": lambda: BestOfK(LegalRandomPolicy, 16, name="random_best16"),
}
