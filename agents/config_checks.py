"""Checks of a config's values beyond their types, run by ``train.py`` before any work.

:func:`check_config_values` and :func:`check_metrics` refuse (``ConfigError``, which ``train.py``
prints as ``config error: ...``) what would otherwise fail later with a traceback, after the
baselines ran, or not at all:

* ``experiment`` that would put the run outside ``train.run_dir`` (absolute, or with ``..``);
* negative seeds (``train.seeds``, ``eval.seed``, ``pretrain.seed``): Gymnasium refuses them;
* ``train.device`` that this machine does not have (``cuda`` without CUDA, a bad device string);
* env kwargs that are not keyword arguments of the environment (``env.kwargs``,
  ``eval.env_kwargs``, ``eval.suite``);
* ``algo.kwargs`` values out of range (``n_steps: 0``, ``batch_size: 0``, ``learning_rate: fast``,
  ``gamma: 5``, ...) for the keys SB3 does not check itself before training;
* ``eval.metrics`` / ``eval.gap_metrics`` / ``eval.objective`` that the environment does not report.
"""
from __future__ import annotations

import inspect
import math
from pathlib import PurePath

from .config import Config, ConfigError


def check_config_values(config: Config) -> None:
    """Every check of this module that needs no environment (then :func:`check_metrics`)."""
    check_experiment(config)
    check_seeds(config)
    check_device(config.train.device)
    check_env_kwargs(config)
    check_algo_values(config)


def check_experiment(config: Config) -> None:
    name = config.experiment
    parts = PurePath(name).parts
    if not name.strip() or PurePath(name).is_absolute() or ".." in parts or name.startswith("~"):
        raise ConfigError(f"experiment={name!r} must be a name (or relative folder) inside train.run_dir="
                          f"{config.train.run_dir!r}, without '..' or a leading '/' or '~'")


def check_seeds(config: Config) -> None:
    pre = config.pretrain
    for key, seeds in (("train.seeds", config.train.seeds), ("eval.seed", [config.eval.seed]),
                       ("pretrain.seed", [pre.seed]), ("pretrain.select_seed", [pre.select_seed])):
        bad = [s for s in seeds if isinstance(s, int) and not 0 <= s < 2**32]
        if bad:
            raise ConfigError(f"{key}: seeds must be integers in [0, 2**32) (Gymnasium's reset(seed=...)), "
                              f"got {bad[0]}")


def check_device(device: str) -> None:
    if device in ("cpu", "auto"):
        return
    import torch

    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError) as exc:
        raise ConfigError(f"train.device={device!r} is not a torch device ({exc}); use cpu, auto or cuda[:N]") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError(f"train.device={device!r}: this machine has no CUDA device (torch "
                              f"{torch.__version__}, built {'with' if torch.version.cuda else 'without'} CUDA); "
                              f"use train.device=cpu (or auto)")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise ConfigError(f"train.device={device!r}: there are only {torch.cuda.device_count()} CUDA device(s)")
    elif dev.type == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ConfigError(f"train.device={device!r}: MPS is not available on this machine; use train.device=cpu")


def env_kwarg_names(env_id: str) -> list[str] | None:
    """The keyword arguments of the environment class of ``env_id`` (None: it takes any)."""
    import importlib

    from rlsys_envs.registry import get_entry

    entry = get_entry(env_id)
    if callable(entry.entry_point):
        cls = entry.entry_point
    else:
        module, _, attr = str(entry.entry_point).partition(":")
        try:
            cls = getattr(importlib.import_module(module), attr)
        except (ImportError, AttributeError):
            return None
    try:
        params = inspect.signature(cls).parameters.values()
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_KEYWORD for p in params):
        return None
    return [p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)]


def check_env_kwargs(config: Config) -> None:
    known = env_kwarg_names(config.env.id)
    if known is None:
        return
    sources = [("env.kwargs", config.env.kwargs), ("eval.env_kwargs", config.eval.env_kwargs)]
    sources += [(f"eval.suite[{i}]", item) for i, item in enumerate(config.eval.suite) if isinstance(item, dict)]
    for where, kwargs in sources:
        for key in kwargs:
            if key not in known:
                import difflib

                close = difflib.get_close_matches(str(key), known, n=1)
                raise ConfigError(f"{where}.{key}: not a keyword argument of {config.env.id}"
                                  + (f" (did you mean {close[0]!r}?)" if close else "")
                                  + f"; its keyword arguments: {', '.join(known)}")


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


#: algo.kwargs key -> (test, what it must be)
_RULES = {
    "n_steps": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1, "an integer >= 1"),
    "batch_size": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1, "an integer >= 1"),
    "n_epochs": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1, "an integer >= 1"),
    "buffer_size": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1, "an integer >= 1"),
    "learning_starts": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0, "an integer >= 0"),
    "target_update_interval": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1,
                               "an integer >= 1"),
    "gradient_steps": (lambda v: isinstance(v, int) and not isinstance(v, bool) and (v >= 1 or v == -1),
                       "an integer >= 1 (or -1: as many as environment steps)"),
    "train_freq": (lambda v: (isinstance(v, int) and not isinstance(v, bool) and v >= 1)
                   or (isinstance(v, list) and len(v) == 2 and isinstance(v[0], int) and v[0] >= 1
                       and v[1] in ("step", "episode")),
                   "an integer >= 1 or [n, step|episode]"),
    "n_quantiles": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1, "an integer >= 1"),
    "learning_rate": (lambda v: _number(v) and v > 0, "a number > 0"),
    "gamma": (lambda v: _number(v) and 0 <= v <= 1, "a number in [0, 1]"),
    "gae_lambda": (lambda v: _number(v) and 0 <= v <= 1, "a number in [0, 1]"),
    "tau": (lambda v: _number(v) and 0 < v <= 1, "a number in (0, 1]"),
    "clip_range": (lambda v: _number(v) and v > 0, "a number > 0"),
    "clip_range_vf": (lambda v: v is None or (_number(v) and v > 0), "null or a number > 0"),
    "vf_coef": (lambda v: _number(v) and v >= 0, "a number >= 0"),
    "max_grad_norm": (lambda v: _number(v) and v > 0, "a number > 0"),
    "target_kl": (lambda v: v is None or (_number(v) and v > 0), "null or a number > 0"),
    "exploration_fraction": (lambda v: _number(v) and 0 <= v <= 1, "a number in [0, 1]"),
    "exploration_initial_eps": (lambda v: _number(v) and 0 <= v <= 1, "a number in [0, 1]"),
    "exploration_final_eps": (lambda v: _number(v) and 0 <= v <= 1, "a number in [0, 1]"),
    "ent_coef": (lambda v: (_number(v) and v >= 0) or (isinstance(v, str) and (v == "auto" or v.startswith("auto_"))),
                 "a number >= 0 (SAC: or 'auto' / 'auto_<initial value>')"),
}


def check_algo_values(config: Config) -> None:
    from .algorithms import get_algorithm

    kwargs = config.algo.kwargs
    for key, value in kwargs.items():
        rule = _RULES.get(key)
        if rule is not None and not rule[0](value):
            raise ConfigError(f"algo.kwargs.{key} must be {rule[1]}, got {value!r}")
    algo = get_algorithm(config.algo.name)
    if not algo.off_policy:
        n_steps = kwargs.get("n_steps", 2048)
        if n_steps * config.env.n_envs < 2:
            raise ConfigError(f"algo.kwargs.n_steps x env.n_envs must be >= 2 (PPO's advantage normalisation), "
                              f"got {n_steps} x {config.env.n_envs}")
        if kwargs.get("batch_size", 64) < 2 and kwargs.get("normalize_advantage", True):
            raise ConfigError(f"algo.kwargs.batch_size must be >= 2 for {config.algo.name} (advantages are "
                              f"normalised per batch), got {kwargs['batch_size']}")


def metric_names(env, seed: int = 0) -> list[str] | None:
    """The names of ``info["metrics"]`` of an environment (read from its state just after
    ``reset(seed=seed)``), or None when it cannot tell."""
    base = env.unwrapped
    env.reset(seed=seed)
    for owner in (base, getattr(base, "parallel", None)):
        fn = getattr(owner, "_final_metrics", None)
        if fn is None:
            continue
        try:
            return sorted(fn()) + ["return"]
        except (KeyError, AttributeError, TypeError, ValueError, ZeroDivisionError):
            continue
    return None


def check_metrics(config: Config, names) -> None:
    """``names``: the metric names of the training and evaluation environments (:func:`metric_names`
    of each, together; None: unknown, nothing is checked)."""
    wanted = [("eval.metrics", m) for m in config.eval.metrics] + [("eval.gap_metrics", m)
                                                                    for m in config.eval.gap_metrics]
    if config.eval.objective != "return":
        wanted.append(("eval.objective", config.eval.objective))
    bad_type = [(k, m) for k, m in wanted if not isinstance(m, str)]
    if bad_type:
        raise ConfigError(f"{bad_type[0][0]}: metric names must be strings, got {bad_type[0][1]!r}")
    if names is None:
        return
    names = sorted(set(names) - {"return"}) + ["return"]
    for key, m in wanted:
        base = m[4:] if key == "eval.metrics" and m.startswith("gap_") else m
        if base not in names:
            import difflib

            close = difflib.get_close_matches(base, names, n=1)
            raise ConfigError(f"{key}: {m!r} is not a metric of {config.env.id}"
                              + (f" (did you mean {close[0]!r}?)" if close else "")
                              + f"; its metrics: {', '.join(names)}")
