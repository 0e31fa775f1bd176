"""Policy-guided Monte Carlo tree search (AlphaZero / MuZero style) over an environment's own model.

The tree branches with the environment's state snapshots (``get_state`` / ``set_state`` of
:class:`rlsys_envs.core.RlsysEnv`), so the search uses the exact dynamics, not a learned model; it
suits environments whose transitions are deterministic given the state (the snapshot holds the
random generator too, so a stochastic environment replays the same outcome in a branch: the search
then plans for that one outcome). At each node a prior over the legal actions and a value come from
an ``evaluate(obs, mask) -> (priors [n_actions], value)`` function, e.g. a trained actor-critic
(:func:`sb3_evaluator`). Selection is PUCT,

    a* = argmax  Q(s, a) + c_puct * P(s, a) * sqrt(N(s)) / (1 + N(s, a)),

with ``Q`` the mean return (reward of the edge + the child's backed-up value) normalised to
``[0, 1]`` by the smallest and largest ``Q`` seen in the tree (MuZero's normalisation, so
``c_puct`` does not depend on the scale of the rewards); an unvisited action takes its parent's
value as ``Q``. A leaf is evaluated once (no rollouts); a terminal leaf is worth 0 beyond its
reward. After ``simulations`` simulations the most visited action is played (ties: the higher
prior, then the lower index), and the subtree under it is kept for the next decision.

:class:`MCTSPolicy` wraps it as a :class:`rlsys_envs.core.Policy`.
"""
from __future__ import annotations

import math
from typing import Callable

import numpy as np

from rlsys_envs.core import Policy


class _Node:
    __slots__ = ("state", "obs", "mask", "priors", "value", "terminal", "children", "n", "w", "reward", "visits")

    def __init__(self, state, obs, mask, terminal: bool):
        self.state, self.obs, self.mask, self.terminal = state, obs, mask, terminal
        self.priors = None
        self.value = 0.0
        self.children: dict[int, _Node] = {}
        self.n: dict[int, int] = {}
        self.w: dict[int, float] = {}
        self.reward: dict[int, float] = {}
        self.visits = 0


class MCTS:
    """The search (see the module docstring); ``gamma`` discounts the rewards."""

    def __init__(self, evaluate: Callable[[dict, np.ndarray], tuple[np.ndarray, float]], simulations: int = 32,
                 c_puct: float = 1.25, gamma: float = 1.0):
        if simulations < 1:
            raise ValueError(f"MCTS: simulations must be >= 1, got {simulations}")
        self.evaluate, self.simulations, self.c_puct, self.gamma = evaluate, int(simulations), float(c_puct), gamma
        self.root: _Node | None = None
        self._q_min, self._q_max = math.inf, -math.inf

    def reset(self) -> None:
        self.root = None
        self._q_min, self._q_max = math.inf, -math.inf

    def _expand(self, node: _Node) -> float:
        if node.terminal:
            return 0.0
        priors, value = self.evaluate(node.obs, node.mask)
        priors = np.where(node.mask, np.asarray(priors, np.float64), 0.0)
        total = priors.sum()
        node.priors = priors / total if total > 0 else node.mask / max(node.mask.sum(), 1)
        node.value = float(value)
        return node.value

    def _q(self, node: _Node, a: int) -> float:
        n = node.n.get(a, 0)
        q = node.w[a] / n if n else node.value
        if self._q_max > self._q_min:
            return (q - self._q_min) / (self._q_max - self._q_min)
        return 0.5

    def _select(self, node: _Node) -> int:
        legal = np.flatnonzero(node.mask)
        sqrt_n = math.sqrt(max(node.visits, 1))
        best, best_score = int(legal[0]), -math.inf
        for a in legal:
            a = int(a)
            score = self._q(node, a) + self.c_puct * node.priors[a] * sqrt_n / (1 + node.n.get(a, 0))
            if score > best_score:
                best, best_score = a, score
        return best

    def search(self, env) -> int:
        """Search from the current state of ``env`` (unwrapped) and return the action to play;
        ``env`` is left in the state it was in."""
        start = env.get_state()
        obs, info = env.observe()
        mask = np.asarray(env.action_masks(), bool)
        if self.root is None or self.root.state is None:
            self.root = _Node(start, obs, mask, False)
            self._expand(self.root)
        root = self.root
        root.state = start
        for _ in range(self.simulations):
            node, path = root, []
            while True:
                a = self._select(node)
                path.append((node, a))
                child = node.children.get(a)
                if child is None:
                    env.set_state(node.state)
                    obs, reward, terminated, truncated, info = env.step(a)
                    done = bool(terminated or truncated)
                    child = _Node(None if done else env.get_state(), obs,
                                  np.asarray(env.action_masks(), bool), done)
                    node.children[a] = child
                    node.reward[a] = float(reward)
                    value = self._expand(child)
                    break
                if child.terminal:
                    value = 0.0
                    break
                node = child
            for parent, a in reversed(path):
                value = parent.reward[a] + self.gamma * value
                parent.n[a] = parent.n.get(a, 0) + 1
                parent.w[a] = parent.w.get(a, 0.0) + value
                parent.visits += 1
                q = parent.w[a] / parent.n[a]
                self._q_min, self._q_max = min(self._q_min, q), max(self._q_max, q)
        env.set_state(start)
        legal = np.flatnonzero(root.mask)
        return int(max(legal, key=lambda a: (root.n.get(int(a), 0), root.priors[a], -a)))

    def advance(self, action: int) -> None:
        """Keep the subtree under ``action`` (played) for the next search."""
        child = self.root.children.get(int(action)) if self.root is not None else None
        self.root = child if child is not None and not child.terminal else None


class MCTSPolicy(Policy):
    """A :class:`~rlsys_envs.core.Policy` that plays the action of :class:`MCTS` at every step."""

    def __init__(self, evaluate: Callable, simulations: int = 32, c_puct: float = 1.25, name: str | None = None):
        self.mcts = MCTS(evaluate, simulations, c_puct)
        self.name = name or f"mcts{simulations}"

    def reset(self, env, seed=None):
        super().reset(env, seed)
        self.mcts.reset()

    def act(self, env, obs, info):
        a = self.mcts.search(env)
        self.mcts.advance(a)
        return a


def sb3_evaluator(model) -> Callable[[dict, np.ndarray], tuple[np.ndarray, float]]:
    """``evaluate(obs, mask) -> (action probabilities, value)`` of an SB3 (maskable) actor-critic."""
    import torch

    policy = model.policy

    def evaluate(obs, mask):
        with torch.no_grad():
            tensor, _ = policy.obs_to_tensor(obs)
            dist = policy.get_distribution(tensor, action_masks=np.asarray(mask, bool)[None])
            probs = dist.distribution.probs[0].cpu().numpy()
            value = float(policy.predict_values(tensor)[0, 0])
        return probs, value

    return evaluate
