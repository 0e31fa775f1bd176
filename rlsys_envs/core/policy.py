"""The policy interface shared by baselines, exact references and trained checkpoints.

A policy is asked for one action at a time, with access to the (unwrapped) environment so that a
heuristic can read the exact problem state rather than a lossy observation. Exact references
(CP-SAT) plan the whole episode at ``reset`` and then replay the plan as actions, so that every
policy, learned or not, is scored by the same environment on the same seeded episodes.
"""
from __future__ import annotations

from typing import Any

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


class RandomMaskedPolicy(Policy):
    """Uniformly random among the legal actions (seeded by ``reset``)."""

    name = "random"

    def act(self, env, obs, info):
        legal = np.flatnonzero(env.action_masks())
        return int(self.rng.choice(legal))


def play_episode(env, policy: Policy, seed: int | None, policy_seed: int | None = None):
    """Play one episode of ``policy`` on ``env`` from ``env.reset(seed=seed)``.

    The policy is reset with ``policy_seed`` (default: the episode's ``seed``) so that a sampling
    policy can be run several times on the same episode. Returns ``(final info, undiscounted
    return, steps)``; the final ``info`` holds ``info["metrics"]``.
    """
    obs, info = env.reset(seed=seed)
    policy.reset(env.unwrapped, seed if policy_seed is None else policy_seed)
    total, steps = 0.0, 0
    while True:
        obs, reward, terminated, truncated, info = env.step(policy.act(env.unwrapped, obs, info))
        total += float(reward)
        steps += 1
        if terminated or truncated:
            return info, total, steps
