"""Learning with several agents: frozen checkpoints as partners, and the joint evaluation.

An rlsys environment with several deciding agents is a PettingZoo ``ParallelEnv``
(:class:`rlsys_envs.core.parallel.RlsysParallelEnv`); each agent is trained on its single-agent
Gymnasium view (:class:`rlsys_envs.core.parallel.SingleAgentView`, registered like any other
environment), where the other agents are played by *partner* policies. This module makes a
trained checkpoint such a partner (:class:`CheckpointPartner`, loaded once, deterministic), picks a
partner by name (:func:`partner`: a baseline of the agent's view, or a checkpoint path), and scores
a joint policy on seeded episodes of the parallel environment (:func:`evaluate_joint`), so that
"placement checkpoint + migration checkpoint" is compared with the joint baselines on the same
episodes.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np

from rlsys_envs.core.policy import Policy


class CheckpointPartner(Policy):
    """An SB3 checkpoint playing one agent of a parallel environment (greedy by default).

    The mask comes from the agent's ``info["action_mask"]`` (PettingZoo convention of rlsys),
    for maskable algorithms (as SB3's ``predict`` takes it); the model is loaded once per process
    and shared by the copies a snapshot makes. Greedy play of an MLP checkpoint runs on a numpy
    copy of its weights (:class:`rlsys_agents.fast_inference.NumpyGreedyPolicy`, the same actions as
    ``predict(deterministic=True)`` at a fraction of its cost) unless ``fast=False``; other
    checkpoints, and ``deterministic=False``, use SB3's ``predict``.
    """

    def __init__(self, path: str | Path, deterministic: bool = True, device: str = "cpu", fast: bool = True):
        self.path, self.deterministic, self.device, self.fast = str(path), deterministic, device, fast
        self.name = Path(path).stem
        self._model = None
        self._maskable = False
        self._numpy = None

    def __deepcopy__(self, memo):
        twin = CheckpointPartner(self.path, self.deterministic, self.device, self.fast)
        twin._model, twin._maskable, twin._numpy = self._model, self._maskable, self._numpy
        return twin

    def _load(self):
        if self._model is None:
            import torch

            from .algorithms import get_algorithm
            from .evaluation import load_sb3
            from .fast_inference import NumpyGreedyPolicy, supports

            torch.set_num_threads(1)
            self._model, algo = load_sb3(self.path, device=self.device)
            self._maskable = get_algorithm(algo).maskable
            if self.fast and self.deterministic and supports(self._model):
                self._numpy = NumpyGreedyPolicy(self._model, name=self.name)
        return self._model

    @property
    def uses_numpy(self) -> bool:
        """Whether the actions come from the numpy copy (after the first ``reset`` / ``act``)."""
        return self._numpy is not None

    def reset(self, env, seed=None):
        super().reset(env, seed)
        self._load()
        if not self.deterministic and seed is not None:
            import torch

            torch.manual_seed(int(seed))

    def act(self, env, obs, info):
        model = self._load()
        if self._numpy is not None:
            scores = self._numpy.forward(obs)
            if self._maskable:
                scores = np.where(np.asarray(info["action_mask"], bool), scores, -np.inf)
            return int(np.argmax(scores))
        kwargs = {"action_masks": np.asarray(info["action_mask"], bool)} if self._maskable else {}
        action, _ = model.predict(obs, deterministic=self.deterministic, **kwargs)
        return int(np.asarray(action).reshape(-1)[0])


def partner(name_or_path: str, view_id: str) -> Callable[[], Policy]:
    """A factory of the partner ``name_or_path``: a baseline of the single-agent view ``view_id``
    (``rlsys_envs.baselines(view_id)``), or an SB3 checkpoint ``.zip`` (a path, or a shipped one by name)."""
    import rlsys_envs

    from .shipped import resolve_checkpoint

    table = rlsys_envs.baselines(view_id)
    if name_or_path in table:
        return table[name_or_path]
    path = resolve_checkpoint(name_or_path)
    if path.is_file():
        loaded = CheckpointPartner(path)
        return lambda: loaded.__deepcopy__({})
    raise ValueError(f"partner {name_or_path!r} is neither a baseline of {view_id} ({', '.join(table)}) "
                     "nor a checkpoint file")


def evaluate_joint(env_id: str, policies: Mapping[str, Callable[[], Policy]], episodes: int = 10, seed: int = 0,
                   env_kwargs: dict | None = None) -> dict[str, list[float]]:
    """``{metric: [value of episode i]}`` of a joint policy (agent -> policy factory) on the
    parallel environment ``env_id``; episode ``i`` starts from ``env.reset(seed=seed + i)``.
    Each agent's return is reported as ``return_<agent>``."""
    import rlsys_envs
    from rlsys_envs.core.parallel import play_joint_episode

    env = rlsys_envs.make_parallel(env_id, **(env_kwargs or {}))
    out: dict[str, list[float]] = {}
    for i in range(episodes):
        run = play_joint_episode(env, {a: make() for a, make in policies.items()}, seed + i)
        row: dict[str, Any] = {**run["metrics"], **{f"return_{a}": r for a, r in run["returns"].items()}}
        for k, v in row.items():
            out.setdefault(k, []).append(float(v))
    env.close()
    return out
