"""Experiment configuration: defaults in code (dataclasses), YAML files and ``key=value`` overrides.

A config has six sections, mirrored by the YAML files in ``configs/`` (shipped with the package,
loaded by name or path: :func:`load_config`)::

    experiment: jobshop_maskable_ppo     # name of the run folder: runs/<experiment>/seed_<s>/
    env:   {id, kwargs, n_envs, vec_env}
    algo:  {name, policy, kwargs, policy_kwargs, extractor_kwargs}
    train: {total_timesteps, seeds, checkpoint_freq, torch_threads, progress_bar, device, run_dir, verbose}
    pretrain: {expert, expert_kwargs, episodes, seed, epochs, batch_size, learning_rate, value_coef, workers,
               dagger_rounds, dagger_episodes, dagger_epochs, dagger_cut_from, select_episodes, select_seed}
    eval:  {episodes, seed, freq, env_kwargs, suite, baselines, deterministic, reference, gap_metrics, metrics}

Every field is typed; a YAML value or an override of the wrong type, or a key that does not exist,
raises :class:`ConfigError` (a ``ValueError``) naming it. Free-form dictionaries (``env.kwargs``,
``algo.kwargs``, ...) are checked where they are used: env kwargs by the environment's constructor,
algorithm kwargs against the algorithm's signature.

The dataclass defaults say what a key left out of a YAML file means; they are not an experiment of
their own: the default experiment is ``configs/default.yaml``, which ``load_config()`` loads.
"""
from __future__ import annotations

import dataclasses
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml


class _Loader(yaml.SafeLoader):
    """YAML 1.1 safe loader that also reads ``1e-3`` (no dot) as a float, as YAML 1.2 does."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+]?[0-9]+)?
                |[-+]?(?:[0-9][0-9_]*)(?:[eE][-+]?[0-9]+)
                |\.[0-9_]+(?:[eE][-+][0-9]+)?
                |[-+]?\.(?:inf|Inf|INF)
                |\.(?:nan|NaN|NAN))$""", re.X),
    list("-+0123456789."))


def yaml_load(text):
    return yaml.load(text, Loader=_Loader)


class ConfigError(ValueError):
    """A config key that does not exist or a value of the wrong type."""


@dataclass
class EnvConfig:
    #: registered environment ID (``rlsys list`` shows them)
    id: str = "rlsys/JobShop-v0"
    #: constructor keyword arguments of the training environment
    kwargs: dict = field(default_factory=dict)
    #: number of parallel environments
    n_envs: int = 4
    #: ``dummy`` (one process, default) or ``subproc`` (one process per environment)
    vec_env: str = "dummy"


@dataclass
class AlgoConfig:
    #: ppo | maskable_ppo | gnn_ppo | dqn | qrdqn | sac
    name: str = "maskable_ppo"
    #: auto | mlp | gnn | pointer | rowpointer | attention  (auto: the algorithm's default)
    policy: str = "auto"
    #: keyword arguments of the SB3 algorithm (n_steps, batch_size, learning_rate, ...)
    kwargs: dict = field(default_factory=dict)
    #: ``policy_kwargs`` of the SB3 algorithm (net_arch, activation, ...)
    policy_kwargs: dict = field(default_factory=dict)
    #: keyword arguments of the features extractor (hidden, layers, conv, heads, ...)
    extractor_kwargs: dict = field(default_factory=dict)


@dataclass
class TrainConfig:
    total_timesteps: int = 60_000
    #: one run per seed, sequentially, each in runs/<experiment>/seed_<s>/
    seeds: list = field(default_factory=lambda: [0])
    #: save a checkpoint every this many environment steps (0: only the final model)
    checkpoint_freq: int = 20_000
    #: torch intra-op threads (1 on small shared machines)
    torch_threads: int = 1
    progress_bar: bool = True
    device: str = "cpu"
    #: root folder of all runs
    run_dir: str = "runs"
    #: SB3 verbosity (0 quiet, 1 info)
    verbose: int = 0


@dataclass
class PretrainConfig:
    """Behaviour cloning before RL (``rlsys_agents.imitation``): off unless ``expert`` is set."""

    #: name of an expert of the environment (``rlsys_envs.experts(env_id)``, e.g. ``cpsat``); null: none
    expert: typing.Optional[str] = None
    #: keyword arguments of the expert (e.g. ``time_limit``)
    expert_kwargs: dict = field(default_factory=dict)
    #: demonstration episodes; episode i starts from env.reset(seed=pretrain.seed + i)
    episodes: int = 100
    seed: int = 20_000
    epochs: int = 5
    batch_size: int = 32
    learning_rate: float = 1e-3
    #: weight of the value head's fit to the expert's returns-to-go
    value_coef: float = 0.5
    #: processes that make demonstrations in parallel
    workers: int = 1
    #: DAgger rounds after the first cloning: the policy plays, the expert takes over from a random
    #: state of its episode, and cloning continues on all demonstrations so far
    dagger_rounds: int = 0
    #: episodes per DAgger round (seeds after the plain demonstrations' seeds)
    dagger_episodes: int = 100
    #: cloning epochs after each DAgger round
    dagger_epochs: int = 2
    #: fraction in [0, 1) of the earliest hand-over points left out (rlsys_agents.imitation.learner_prefixes):
    #: 0.5 lets the expert take over only in the second half of the learner's episode
    dagger_cut_from: float = 0.0
    #: validation: after every epoch the policy (deterministic) plays this many episodes
    #: (env.reset(seed=select_seed + i)), and each stage ends with its epoch of the highest mean
    #: return (0: no validation, every stage ends with its last epoch). Why: a clone's rollouts
    #: vary a lot from epoch to epoch although its loss does not (one early mistake compounds)
    select_episodes: int = 0
    select_seed: int = 30_000


@dataclass
class EvalConfig:
    #: evaluation episodes; episode i uses env.reset(seed=eval.seed + i)
    episodes: int = 10
    seed: int = 10_000
    #: evaluate the policy every this many environment steps (0: only at the end)
    freq: int = 10_000
    #: overrides of env.kwargs for the evaluation environment (e.g. a benchmark instance set)
    env_kwargs: dict = field(default_factory=dict)
    #: per-episode env kwargs cycled over the episodes (episode i uses suite[i % len]), e.g.
    #: [{instance: ta01}, {instance: ta02}]; applied on top of env.kwargs and eval.env_kwargs
    suite: list = field(default_factory=list)
    #: baselines to compare against; null = every baseline of the environment
    baselines: typing.Optional[list] = None
    #: greedy actions of the trained policy (false: sample)
    deterministic: bool = True
    #: baseline used as the reference of the "gap" columns (null: no gap)
    reference: typing.Optional[str] = None
    #: metrics for which a gap to the reference is reported: (policy - ref) / |ref|
    gap_metrics: list = field(default_factory=list)
    #: metrics shown in the final table (empty: all; TensorBoard always gets all); the confidence-interval
    #: table over the seeds shows these too (empty there: the objective and the gap metrics)
    metrics: list = field(default_factory=list)
    #: metric of the probability of improvement of the policy over the best baseline (and of sweeps)
    objective: str = "return"
    #: lower ``objective`` is better (e.g. makespan); false: higher is better
    minimise: bool = False
    #: bootstrap resamples of every confidence interval (rlsys_agents.statistics)
    bootstrap_reps: int = 10_000


@dataclass
class Config:
    experiment: str = "default"
    env: EnvConfig = field(default_factory=EnvConfig)
    algo: AlgoConfig = field(default_factory=AlgoConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    pretrain: PretrainConfig = field(default_factory=PretrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def eval_env_kwargs(self) -> dict | list:
        """The evaluation env kwargs: a dict, or a list of dicts (one per suite item)."""
        base = {**self.env.kwargs, **self.eval.env_kwargs}
        if self.eval.suite:
            return [{**base, **item} for item in self.eval.suite]
        return base


# ------------------------------------------------------------------------------ type checking
def _type_ok(value: Any, tp: Any) -> bool:
    origin = typing.get_origin(tp)
    if origin is typing.Union:
        return any(_type_ok(value, a) for a in typing.get_args(tp))
    if tp is type(None):
        return value is None
    if tp is bool:
        return isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is str:
        return isinstance(value, str)
    if tp is list or origin is list:
        return isinstance(value, list)
    if tp is dict or origin is dict:
        return isinstance(value, dict)
    return isinstance(value, tp)


def _type_name(tp: Any) -> str:
    if typing.get_origin(tp) is typing.Union:
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    return "null" if tp is type(None) else getattr(tp, "__name__", str(tp))


def _apply(obj: Any, data: dict, where: str) -> None:
    if not isinstance(data, dict):
        raise ConfigError(f"config section {where or 'top level'!r} must be a mapping, got {data!r}")
    hints = typing.get_type_hints(type(obj))
    names = [f.name for f in dataclasses.fields(obj)]
    for key, value in data.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in names:
            raise ConfigError(f"unknown config key {path!r}; known keys here: {', '.join(names)}")
        current = getattr(obj, key)
        if dataclasses.is_dataclass(current):
            _apply(current, value, path)
            continue
        tp = hints[key]
        if tp is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        if not _type_ok(value, tp):
            raise ConfigError(f"config key {path!r} must be of type {_type_name(tp)}, got {value!r} "
                              f"({type(value).__name__})")
        setattr(obj, key, value)


def _set_dotted(tree: dict, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    node = tree
    for p in parts[:-1]:
        nxt = node.setdefault(p, {})
        if not isinstance(nxt, dict):
            raise ConfigError(f"cannot set {dotted!r}: {p!r} is not a section")
        node = nxt
    node[parts[-1]] = value


def _parse_value(item: str, raw: str) -> Any:
    try:
        return yaml_load(raw) if raw != "" else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {item!r}: value is not valid YAML ({exc})") from None


def parse_overrides(overrides: list[str]) -> dict:
    """``["algo.kwargs.n_steps=128", "train.seeds=[0,1]"]`` -> a nested dict (values parsed as YAML)."""
    tree: dict = {}
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} is not of the form dotted.key=value")
        _set_dotted(tree, key.strip(), _parse_value(item, raw))
    return tree


def apply_override(config: Config, dotted: str, value: Any) -> None:
    """Set one dotted key. A key that names a field replaces it (``algo.kwargs={}`` clears the
    dict); a key that goes inside a free-form dict field sets just that entry
    (``algo.kwargs.n_steps=128``)."""
    parts = dotted.split(".")
    obj, where = config, ""
    for i, part in enumerate(parts):
        names = [f.name for f in dataclasses.fields(obj)]
        path = f"{where}.{part}" if where else part
        if part not in names:
            raise ConfigError(f"unknown config key {path!r}; known keys here: {', '.join(names)}")
        current = getattr(obj, part)
        rest = parts[i + 1:]
        if dataclasses.is_dataclass(current):
            if not rest:
                _apply(obj, {part: value}, where)
                return
            obj, where = current, path
            continue
        if rest:
            if not isinstance(current, dict):
                raise ConfigError(f"config key {path!r} is not a mapping, so {dotted!r} cannot be set")
            new = dict(current)
            node = new
            for p in rest[:-1]:
                node[p] = dict(node[p]) if isinstance(node.get(p), dict) else {}
                node = node[p]
            node[rest[-1]] = value
            value = new
        _apply(obj, {part: value}, where)
        return


def load_config(path: str | Path | None = "default", overrides: list[str] | None = None) -> Config:
    """The field defaults, then the YAML file (if any), then the dotted overrides.

    ``path`` is a file or the name of a shipped config (:mod:`rlsys_agents.shipped`): ``load_config()``
    is the default experiment ``configs/default.yaml`` (what ``train.py`` runs without ``--config``),
    ``load_config("jobshop_gnn_ppo")`` a shipped one; None reads no file (the field defaults)."""
    from .shipped import resolve_config

    config = Config()
    if path is not None:
        path = resolve_config(path)
        if not path.is_file():
            raise ConfigError(f"config file {str(path)!r} not found")
        data = read_yaml_file(path) or {}
        if not isinstance(data, dict):
            raise ConfigError(f"config file {str(path)!r} must contain a mapping")
        _apply(config, data, "")
    for item in overrides or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"override {item!r} is not of the form dotted.key=value")
        apply_override(config, key.strip(), _parse_value(item, raw))
    validate(config)
    return config


def validate(config: Config) -> None:
    """Checks beyond types: known env ID, algorithm, policy, vec_env, positive sizes."""
    from rlsys_envs.registry import get_entry  # light: no env module is imported

    get_entry(config.env.id)
    from .algorithms import ALGORITHMS, POLICIES

    if config.algo.name not in ALGORITHMS:
        raise ConfigError(f"unknown algorithm algo.name={config.algo.name!r}; known: {', '.join(ALGORITHMS)}")
    if config.algo.policy not in POLICIES:
        raise ConfigError(f"unknown policy algo.policy={config.algo.policy!r}; known: {', '.join(POLICIES)}")
    if config.env.vec_env not in ("dummy", "subproc"):
        raise ConfigError(f"env.vec_env must be 'dummy' or 'subproc', got {config.env.vec_env!r}")
    pre = config.pretrain
    for name, value, low in (("env.n_envs", config.env.n_envs, 1),
                             # 0 steps of RL is allowed after a pretraining (behaviour cloning only)
                             ("train.total_timesteps", config.train.total_timesteps, 0 if pre.expert else 1),
                             ("pretrain.episodes", pre.episodes, 1),
                             ("pretrain.epochs", pre.epochs, 1),
                             ("pretrain.batch_size", pre.batch_size, 1),
                             ("pretrain.workers", pre.workers, 1),
                             ("pretrain.dagger_rounds", pre.dagger_rounds, 0),
                             ("pretrain.dagger_episodes", pre.dagger_episodes, 1),
                             ("pretrain.dagger_epochs", pre.dagger_epochs, 1),
                             ("pretrain.select_episodes", pre.select_episodes, 0),
                             ("train.checkpoint_freq", config.train.checkpoint_freq, 0),
                             ("train.torch_threads", config.train.torch_threads, 1),
                             ("eval.episodes", config.eval.episodes, 1),
                             ("eval.freq", config.eval.freq, 0),
                             ("eval.bootstrap_reps", config.eval.bootstrap_reps, 100)):
        if value < low:
            raise ConfigError(f"{name} must be >= {low}, got {value}")
    if not 0.0 <= pre.dagger_cut_from < 1.0:
        raise ConfigError(f"pretrain.dagger_cut_from must be in [0, 1), got {pre.dagger_cut_from}")
    if not pre.learning_rate > 0 or pre.value_coef < 0:
        raise ConfigError(f"pretrain.learning_rate must be > 0 and pretrain.value_coef >= 0, got "
                          f"{pre.learning_rate} and {pre.value_coef}")
    if not config.train.seeds or not all(_type_ok(s, int) for s in config.train.seeds):
        raise ConfigError(f"train.seeds must be a non-empty list of ints, got {config.train.seeds!r}")
    if not all(isinstance(item, dict) for item in config.eval.suite):
        raise ConfigError(f"eval.suite must be a list of mappings (env kwargs), got {config.eval.suite!r}")
    if config.eval.baselines is not None and not all(isinstance(b, str) for b in config.eval.baselines):
        raise ConfigError(f"eval.baselines must be null or a list of names, got {config.eval.baselines!r}")


def config_to_yaml(config: Config) -> str:
    return yaml.safe_dump(config.to_dict(), sort_keys=False)


def read_yaml_file(path: str | Path):
    """The YAML document of ``path``; a syntax error or a file that is not UTF-8 text is a
    :class:`ConfigError` naming the file, line and column."""
    path = Path(path)
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError as exc:
        line = path.read_bytes()[:exc.start].count(b"\n") + 1
        raise ConfigError(f"config file {str(path)!r}, line {line}: not UTF-8 text") from None
    try:
        return yaml_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None) or getattr(exc, "context_mark", None)
        where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        what = " ".join(str(x) for x in (getattr(exc, "context", None), getattr(exc, "problem", None)) if x)
        start = getattr(exc, "context_mark", None)
        if start is not None and mark is not None and start.line != mark.line:
            what += f" (the construct that starts at line {start.line + 1})"
        raise ConfigError(f"config file {str(path)!r}{where}: YAML syntax error: {what or exc}") from None
