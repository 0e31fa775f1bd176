"""The policy interface and the one episode runner shared by baselines, references and checkpoints.

A policy is asked for one action at a time, with access to the (unwrapped) environment so that a
heuristic can read the exact problem state rather than a lossy observation. Every policy, learned
or not, is scored by the same environment on the same seeded episodes through
:func:`play_episode`.

Search over the environment's own model uses its state snapshots
(:meth:`~rlsys_envs.core.base.EnvContract.get_state` / ``set_state``):

* :func:`play_on` plays a policy from the current state to the end of the episode, and
  :func:`simulate` does so on a copy of the environment;
* :func:`best_of_k` plays several (sampling) policies from one state and keeps the best episode
  (VMR2L's risk-seeking evaluation; best-of-K sampling of a checkpoint);
* :class:`PlannedPolicy` plans a sequence of actions at reset (an exact solver's plan, the best of
  K rollouts, a plan simulated on a copy of the environment) and replays it; when a planned
  action is no longer legal it hands over to :meth:`PlannedPolicy.after_plan`;
* :class:`BestOfK` is the planned policy whose plan is :func:`best_of_k`'s best episode.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Sequence

import numpy as np


class Policy:
    """Base class: ``reset`` once per episode, then ``act`` at every decision."""

    #: short name used by ``rlsys evaluate --policy NAME`` and in result tables
    name: str = "policy"

    def reset(self, env, seed: int | None = None) -> None:
        """Called right after ``env.reset(seed=seed)``; ``env`` is the unwrapped environment."""
        self.rng = np.random.default_rng(seed)

    def act(self, env, obs: dict[str, np.ndarray], info: dict[str, Any]):
        raise NotImplementedError

    def episode_metrics(self, metrics: dict[str, float]) -> dict[str, float]:
        """The metrics :func:`play_on` reports for the finished episode, from the environment's
        ``info["metrics"]`` (by default those, unchanged). A reference whose own figure differs
        from what the environment measures (an exact solver's schedule, which the environment can
        only replay) reports it here, next to the environment's."""
        return metrics


class RandomMaskedPolicy(Policy):
    """Uniformly random among the legal actions (seeded by ``reset``): those of
    ``info["action_mask"]`` where the info has one (so it also plays one agent of a parallel
    environment), else of ``env.action_masks()``."""

    name = "random"

    def act(self, env, obs, info):
        mask = info.get("action_mask") if isinstance(info, dict) else None
        legal = np.flatnonzero(env.action_masks() if mask is None else mask)
        return int(self.rng.choice(legal))


@dataclass
class Episode:
    """What :func:`play_episode` / :func:`play_on` return."""

    #: ``info["metrics"]`` of the last step (the environment's headline metrics)
    metrics: dict[str, float]
    #: undiscounted sum of the rewards
    total_return: float
    #: number of steps played
    steps: int
    #: the actions played, in order (replaying them from the same start reproduces the episode)
    actions: list = field(default_factory=list)
    #: the ``info`` of the last step
    info: dict = field(default_factory=dict)


def play_on(env, policy: Policy, obs, info, policy_seed: int | None = None) -> Episode:
    """Play ``policy`` from the current state of ``env`` (whose last ``obs`` / ``info`` are given)
    to the end of the episode; ``policy.reset(env.unwrapped, policy_seed)`` first."""
    base = env.unwrapped
    policy.reset(base, policy_seed)
    total, actions = 0.0, []
    while True:
        action = policy.act(base, obs, info)
        actions.append(action)
        obs, reward, terminated, truncated, info = env.step(action)
        total += float(reward)
        if terminated or truncated:
            metrics = policy.episode_metrics(dict(info.get("metrics", {})))
            return Episode(metrics, total, len(actions), actions, info)


def play_episode(env, policy: Policy, seed: int | None, policy_seed: int | None = None,
                 options: dict | None = None) -> Episode:
    """One episode of ``policy`` from ``env.reset(seed=seed, options=options)``.

    The policy is reset with ``policy_seed`` (default: the episode's ``seed``) so that a sampling
    policy can be run several times on the same episode.
    """
    obs, info = env.reset(seed=seed, options=options)
    return play_on(env, policy, obs, info, seed if policy_seed is None else policy_seed)


def episode_key(metric: str, minimise: bool = True) -> Callable[[Episode], tuple]:
    """Sort key of :func:`best_of_k` by one metric (lower first when ``minimise``)."""
    sign = 1.0 if minimise else -1.0
    return lambda ep: (sign * ep.metrics[metric],)


def best_of_k(env, factories: Sequence[Callable[[], Policy]], policy_seeds: Sequence[int],
              key: Callable[[Episode], tuple]) -> tuple[int, list[Episode]]:
    """Play ``factories[j]()`` (reset with ``policy_seeds[j]``) from the current state of ``env``
    for every ``j``; returns ``(index of the best episode, all episodes)``.

    The best episode has the lowest ``key(episode)`` (ties: the lower index). Every run starts from
    the same snapshot of the unwrapped environment, which is restored at the end, so ``env`` is left
    where it was and the best episode's ``actions`` replay it exactly.
    """
    if len(factories) != len(policy_seeds) or not factories:
        raise ValueError(f"best_of_k needs one policy seed per factory (got {len(factories)} factories, "
                         f"{len(policy_seeds)} seeds)")
    base = env.unwrapped
    start = base.get_state()
    runs = []
    for make, s in zip(factories, policy_seeds):
        base.set_state(start)
        obs, info = base.observe()
        runs.append(play_on(base, make(), obs, info, int(s)))
    base.set_state(start)
    best = min(range(len(runs)), key=lambda i: (*key(runs[i]), i))
    return best, runs


class PlannedPolicy(Policy):
    """Plans a sequence of actions at reset (:meth:`plan`) and replays it.

    When the next planned action is not legal (the plan is used up, or someone else acted and the
    state moved away from the plan), the rest of the plan is dropped and :meth:`after_plan`
    decides from then on (by default: the first legal action; environments override it, e.g. VM
    rescheduling stops or goes on greedily).
    """

    def plan(self, env, seed: int) -> list:
        """The actions to replay from the current state of ``env`` (just reset with ``seed``)."""
        raise NotImplementedError

    def reset(self, env, seed=None):
        super().reset(env, seed)
        self._queue = list(self.plan(env, 0 if seed is None else int(seed)))

    def after_plan(self, env, obs, info):
        """The action once the plan is used up or stale."""
        return int(np.flatnonzero(env.action_masks())[0])

    def is_legal(self, env, action) -> bool:
        """Whether the planned ``action`` may be played now (``env.check_action`` accepts it)."""
        try:
            env.check_action(action)
        except ValueError:
            return False
        return True

    def act(self, env, obs, info):
        if self._queue and self.is_legal(env, self._queue[0]):
            return self._queue.pop(0)
        self._queue = []
        return self.after_plan(env, obs, info)


def simulate(env, policy: Policy, seed: int | None = None):
    """Play ``policy`` (reset with ``seed``) to the end on a copy of ``env`` in its current state;
    returns ``(episode, the copy at the end)`` and leaves ``env`` untouched. The episode's actions
    are a plan that a :class:`PlannedPolicy` can replay on ``env``."""
    twin = env.unwrapped.spawn()
    twin.set_state(env.unwrapped.get_state())
    obs, info = twin.observe()
    return play_on(twin, policy, obs, info, seed), twin


class BestOfK(PlannedPolicy):
    """The best of ``k`` rollouts from the reset state, replayed (:func:`best_of_k`).

    Rollout ``j`` is a fresh ``policy_factory()`` reset with the episode seed plus ``j`` (so the
    same episode gets the same samples every time); with ``first`` (e.g. the deterministic version
    of a sampling policy) rollout 0 is that policy's, so the result is never worse than it.
    ``key``: sort key of the episodes (default: highest return); ``after_plan_policy``: who acts
    once the plan is used up (default the base class's first legal action).
    """

    def __init__(self, policy_factory: Callable[[], Policy], k: int = 16, name: str | None = None,
                 first: Callable[[], Policy] | None = None, key: Callable[[Episode], tuple] | None = None,
                 seed_stride: int = 1):
        if k < 1:
            raise ValueError(f"BestOfK: k must be >= 1, got {k}")
        self.policy_factory, self.k, self.first = policy_factory, int(k), first
        self.key = key or (lambda ep: (-ep.total_return,))
        self.seed_stride = int(seed_stride)
        self.name = name or f"best{k}"

    def plan(self, env, seed):
        factories = [self.first or self.policy_factory] + [self.policy_factory] * (self.k - 1)
        seeds = [seed + self.seed_stride * j for j in range(self.k)]
        self.best_index, self.runs = best_of_k(env, factories, seeds, self.key)
        return list(self.runs[self.best_index].actions)
