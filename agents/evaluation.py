"""Evaluation of baselines and trained checkpoints on the same seeded episodes.

* :func:`evaluate` -- episode ``i`` runs ``env.reset(seed=seed + i)`` then
  ``policy.reset(env.unwrapped, seed + i)``; returns ``{metric: [value per episode]}`` from
  ``info["metrics"]`` at the end of each episode.
* :func:`load_policy` -- a baseline name (``rlsys_envs.baselines(env_id)``) or an SB3 checkpoint
  ``.zip`` wrapped as a :class:`rlsys_envs.core.Policy` (action masks for maskable algorithms,
  deterministic by default). Size-agnostic checkpoints (pointer policy) are loaded with the
  target environment's observation and action spaces, so they run on any padding.
* :func:`best_of_k` -- run a sampling policy K times per episode and keep the best episode
  (``rlsys_envs.core.best_of_k`` from each episode's reset state).
* :func:`summarise` / :func:`format_table` -- means and gaps to a reference, as a markdown table.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any, Callable

import numpy as np

from rlsys_envs.core.policy import Policy, best_of_k as best_of_k_from_state, episode_key, play_episode


def make_env(env_id: str, env_kwargs: dict | None = None):
    import gymnasium as gym

    import rlsys_envs  # noqa: F401  (registers the IDs)
    from rlsys_envs.registry import get_entry

    get_entry(env_id)
    return gym.make(env_id, disable_env_checker=True, **(env_kwargs or {}))


def episode_kwargs(env_kwargs: dict | list | None, episodes: int) -> list[dict]:
    """Per-episode env kwargs: a dict applies to every episode; a list of dicts is cycled over
    (episode ``i`` uses item ``i % len``), e.g. one benchmark instance per episode."""
    if env_kwargs is None:
        return [{} for _ in range(episodes)]
    if isinstance(env_kwargs, dict):
        return [env_kwargs for _ in range(episodes)]
    items = list(env_kwargs)
    if not items or not all(isinstance(k, dict) for k in items):
        raise ValueError(f"env kwargs must be a dict or a non-empty list of dicts, got {env_kwargs!r}")
    return [items[i % len(items)] for i in range(episodes)]


def evaluate(env_id: str, policy: Policy | str, episodes: int = 10, seed: int = 0,
             env_kwargs: dict | list | None = None, env_cache: dict | None = None) -> dict[str, list[float]]:
    """``{metric: [value of episode i]}`` over ``episodes`` seeded episodes (plus ``return``).

    Episode ``i`` runs ``env.reset(seed=seed + i)`` and ``policy.reset(env.unwrapped, seed + i)``.
    ``env_kwargs`` may be a list of dicts (see :func:`episode_kwargs`). ``env_cache`` (a dict)
    keeps the made environments between calls; they are closed here only when it is None.
    """
    import json

    if isinstance(policy, str) and env_kwargs is None and Path(policy).suffix == ".zip":
        env_kwargs = checkpoint_env_kwargs(policy, env_id)
    per_episode = episode_kwargs(env_kwargs, episodes)
    if isinstance(policy, str):
        policy = load_policy(policy, env_id, per_episode[0])
    cache = {} if env_cache is None else env_cache
    out: dict[str, list[float]] = {}
    try:
        for i, kw in enumerate(per_episode):
            key = json.dumps(kw, sort_keys=True, default=str)
            if key not in cache:
                cache[key] = make_env(env_id, kw)
            episode = play_episode(cache[key], policy, seed + i)
            metrics = {**episode.metrics}
            metrics.setdefault("return", episode.total_return)
            for k, v in metrics.items():
                out.setdefault(k, []).append(float(v))
    finally:
        if env_cache is None:
            for env in cache.values():
                env.close()
    return out


# --------------------------------------------------------------------------------- checkpoints
class SB3Policy(Policy):
    """An SB3 model as a :class:`Policy`; masks come from ``env.action_masks()`` when maskable."""

    def __init__(self, model, maskable: bool, deterministic: bool = True, name: str = "policy"):
        self.model, self.maskable, self.deterministic, self.name = model, maskable, deterministic, name
        self._keys = None
        self._discrete = hasattr(model.action_space, "n") and np.ndim(model.action_space.n) == 0
        space = model.observation_space
        if hasattr(space, "spaces"):
            self._keys = set(space.spaces)

    def reset(self, env, seed=None):
        super().reset(env, seed)
        if not self.deterministic and seed is not None:
            import torch

            torch.manual_seed(int(seed))

    def act(self, env, obs, info):
        if self._keys is not None and isinstance(obs, dict) and set(obs) != self._keys:
            raise ValueError(f"checkpoint {self.name!r} expects observation keys {sorted(self._keys)} but the env "
                             f"gives {sorted(obs)}: evaluate with the env kwargs it was trained with")
        kwargs = {}
        if self.maskable:
            kwargs["action_masks"] = env.action_masks()
        action, _ = self.model.predict(obs, deterministic=self.deterministic, **kwargs)
        if self._discrete:
            return int(np.asarray(action).reshape(-1)[0])
        return action


def checkpoint_config(path: str | Path) -> dict | None:
    """The resolved ``config.yaml`` of the run a checkpoint belongs to, if found beside it."""
    import yaml

    path = Path(path)
    for folder in (path.parent, path.parent.parent):
        cfg = folder / "config.yaml"
        if cfg.is_file():
            with open(cfg) as fh:
                return yaml.safe_load(fh)
    return None


def load_sb3(path: str | Path, env_id: str | None = None, env_kwargs: dict | None = None, device: str = "cpu",
             env=None):
    """Load an SB3 checkpoint; returns ``(model, algorithm_name)``."""
    from stable_baselines3.common.save_util import load_from_zip_file

    from .algorithms import algorithm_of_policy_class, get_algorithm

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {str(path)!r} not found")
    data, _, _ = load_from_zip_file(path, load_data=True, device=device)
    name = algorithm_of_policy_class(data["policy_class"])
    algo = get_algorithm(name)
    custom: dict[str, Any] = {}
    if getattr(data["policy_class"], "size_agnostic", False) and (env is not None or env_id is not None):
        probe = env if env is not None else make_env(env_id, env_kwargs)
        custom = {"observation_space": probe.observation_space, "action_space": probe.action_space}
        if env is None:
            probe.close()
    model = algo.load_class().load(path, device=device, custom_objects=custom or None)
    return model, name


def checkpoint_env_kwargs(path: str | Path, env_id: str | None = None) -> dict | list | None:
    """The env kwargs a checkpoint is evaluated on by default: the evaluation kwargs of the run that
    made it (a dict, or a list of dicts, one per episode), from the environment record inside the
    zip (:mod:`rlsys_agents.checkpoint_env`), else from the ``config.yaml`` of its run folder. None when
    neither is there, or when the checkpoint was trained on another environment than ``env_id``."""
    from .checkpoint_env import read_env_metadata

    meta = read_env_metadata(path)
    if meta is not None:
        if env_id is not None and meta.get("env_id") != env_id:
            return None
        return meta.get("eval_env_kwargs", meta.get("env_kwargs"))
    cfg = checkpoint_config(path)
    if not cfg or (env_id is not None and (cfg.get("env") or {}).get("id", env_id) != env_id):
        return None
    base = {**(cfg.get("env", {}).get("kwargs") or {}), **(cfg.get("eval", {}).get("env_kwargs") or {})}
    suite = cfg.get("eval", {}).get("suite") or []
    return [{**base, **item} for item in suite] if suite else base


def merge_env_kwargs(recorded: dict | list | None, given: dict | list | None) -> dict | list | None:
    """``given`` env kwargs laid over ``recorded`` ones (a checkpoint's, :func:`checkpoint_env_kwargs`),
    so a user who changes one setting (``{"size": "L"}``) keeps the rest the policy was trained with
    (its observation, reward scale). A dict ``given`` applies to every recorded episode; a list
    ``given`` sets the episodes (item ``i`` over recorded item ``i``, the recorded list cycled). Either
    side None: the other, unchanged."""
    if given is None or recorded is None:
        return recorded if given is None else given
    rec = episode_kwargs(recorded, len(recorded) if isinstance(recorded, list) else 1)
    if isinstance(given, dict):
        merged = [{**r, **given} for r in rec]
        return merged[0] if isinstance(recorded, dict) else merged
    items = episode_kwargs(given, len(given))
    return [{**rec[i % len(rec)], **item} for i, item in enumerate(items)]


def recorded_env_kwargs(name_or_path: str | Path, keys, env_id: str | None = None) -> dict:
    """The entries ``keys`` of the env kwargs a checkpoint was evaluated on (:func:`checkpoint_env_kwargs`,
    its first episode's): the ones that shape its observation and action spaces, for a caller that plays
    it on instances of its own (a benchmark's snapshots) and must give it the spaces it was trained with.
    ``name_or_path``: a file or a shipped checkpoint's name; ``{}`` when nothing is recorded."""
    from .shipped import resolve_checkpoint

    kwargs = episode_kwargs(checkpoint_env_kwargs(resolve_checkpoint(str(name_or_path)), env_id), 1)[0]
    return {k: kwargs[k] for k in keys if k in kwargs}


def load_policy(name_or_path: str, env_id: str, env_kwargs: dict | None = None, deterministic: bool = True,
                device: str = "cpu") -> Policy:
    """A baseline by name, or a checkpoint ``.zip`` by path, as a :class:`Policy`.

    ``env_kwargs``: the target environment's (of its first episode); None for a checkpoint: those
    it was evaluated on in its run (:func:`checkpoint_env_kwargs`). A target environment whose
    observation or action space does not fit the checkpoint is refused with a ``ValueError``
    naming what differs."""
    import rlsys_envs

    table = rlsys_envs.baselines(env_id)
    if name_or_path in table:
        policy = table[name_or_path]()
        policy.name = name_or_path
        return policy
    from .shipped import checkpoint_names, resolve_checkpoint

    path = resolve_checkpoint(name_or_path)     # a file, or a shipped checkpoint's name (jobshop_gnn_ppo)
    if not path.is_file():
        raise ValueError(f"{name_or_path!r} is neither a baseline of {env_id} ({', '.join(table)}) "
                         f"nor a checkpoint file nor a shipped checkpoint ({', '.join(checkpoint_names())})")
    import torch

    torch.set_num_threads(1)
    from .checkpoint_env import check_env_fits, read_env_metadata

    meta = read_env_metadata(path)
    if env_kwargs is None:
        env_kwargs = episode_kwargs(checkpoint_env_kwargs(path, env_id), 1)[0]
    target = make_env(env_id, env_kwargs)
    try:
        model, algo_name = load_sb3(path, env=target, device=device)
        size_agnostic = getattr(type(model.policy), "size_agnostic", False)
        check_env_fits(str(name_or_path), model, target, meta, size_agnostic)
    finally:
        target.close()
    from .algorithms import get_algorithm

    return SB3Policy(model, get_algorithm(algo_name).maskable, deterministic, name=str(name_or_path))


def best_of_k(env_id: str, make_policy: Callable[[], Policy], k: int, episodes: int, seed: int,
              metric: str, minimise: bool = True, env_kwargs: dict | list | None = None) -> dict[str, list[float]]:
    """Run a (sampling) policy ``k`` times per seeded episode and keep the best run by ``metric``.

    Run ``j`` of episode ``i`` starts from ``env.reset(seed=seed + i)`` (same instance) and resets
    the policy with ``seed + i + 1_000_003 * j`` (different samples).
    """
    import json

    per_episode = episode_kwargs(env_kwargs, episodes)
    envs: dict = {}
    out: dict[str, list[float]] = {}
    try:
        for i in range(episodes):
            key = json.dumps(per_episode[i], sort_keys=True, default=str)
            if key not in envs:
                envs[key] = make_env(env_id, per_episode[i])
            env = envs[key]
            env.reset(seed=seed + i)
            seeds = [seed + i + 1_000_003 * j for j in range(k)]
            best, runs = best_of_k_from_state(env, [make_policy] * k, seeds, episode_key(metric, minimise))
            metrics = {**runs[best].metrics}
            metrics.setdefault("return", runs[best].total_return)
            for name, v in metrics.items():
                out.setdefault(name, []).append(float(v))
    finally:
        for env in envs.values():
            env.close()
    return out


# -------------------------------------------------------------------------------------- tables
def summarise(results: dict[str, dict[str, list[float]]], reference: str | None = None,
              gap_metrics: list[str] | None = None) -> dict[str, dict[str, float]]:
    """``{policy: {metric: mean, "gap_<metric>": mean relative gap to reference}}``."""
    out: dict[str, dict[str, float]] = {}
    ref = results.get(reference) if reference else None
    for name, metrics in results.items():
        row = {k: float(np.mean(v)) for k, v in metrics.items()}
        if ref is not None:
            for m in gap_metrics or []:
                if m in metrics and m in ref:
                    a, b = np.asarray(metrics[m], float), np.asarray(ref[m], float)
                    n = min(len(a), len(b))
                    denom = np.where(np.abs(b[:n]) > 0, np.abs(b[:n]), 1.0)
                    row[f"gap_{m}"] = float(np.mean((a[:n] - b[:n]) / denom))
        out[name] = row
    return out


def _fmt(v: float) -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    if abs(v) >= 1e7:
        return f"{v:.4g}"
    if abs(v) >= 100 or v == int(v):
        return f"{v:.1f}"
    return f"{v:.4g}"


def format_table(summary: dict[str, dict[str, float]], title: str | None = None, drop_zero: bool = True) -> str:
    """A markdown table: one row per policy, one column per metric (gaps as percentages).

    With ``drop_zero``, metrics that are 0 for every row are listed under the table instead."""
    columns: list[str] = []
    for row in summary.values():
        for k in row:
            if k not in columns:
                columns.append(k)
    zero = [c for c in columns if drop_zero and len(summary) > 1 and all(row.get(c) == 0 for row in summary.values())]
    columns = [c for c in columns if c not in zero]
    columns = [c for c in columns if not c.startswith("gap_")] + [c for c in columns if c.startswith("gap_")]
    header = ["policy"] + [f"{c[4:]} gap %" if c.startswith("gap_") else c for c in columns]
    lines = [f"### {title}", ""] if title else []
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join("---" for _ in header) + "|")
    for name, row in summary.items():
        cells = []
        for c in columns:
            v = row.get(c)
            if v is None:
                cells.append("-")
            elif c.startswith("gap_"):
                cells.append(f"{100 * v:+.1f}")
            else:
                cells.append(_fmt(v))
        lines.append("| " + " | ".join([name] + cells) + " |")
    if zero:
        lines.append(f"\n(0 for every policy: {', '.join(zero)})")
    return "\n".join(lines)
