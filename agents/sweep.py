"""Sweeps: grids and searches of ``train.py`` runs as Ray Tune trials.

    python train.py --sweep configs/sweeps/jobshop_lr.yaml              # local Ray, 1 CPU per trial
    python train.py --sweep configs/sweeps/jobshop_lr.yaml --resume     # continue a killed sweep
    python train.py --sweep FILE --address ray://head:10001             # an existing cluster (or RAY_ADDRESS)

Every trial is one seed of one configuration, trained by :func:`rlsys_agents.training.train_seed` exactly
as ``train.py`` trains it (run folder ``<sweep>/trials/<trial id>/seed_<s>/`` with ``config.yaml``,
checkpoints, TensorBoard events, ``results.json``); each evaluation of the policy is reported to Tune
(``timesteps`` and the mean of every metric), which is what the ASHA scheduler stops trials on.

The sweep file (see ``docs/sweeps.md``)::

    base: ../default.yaml            # the train.py config of every trial (relative to this file)
    overrides: [train.total_timesteps=20000]
    seeds: [0, 1, 2]                 # every configuration runs once per seed
    grid:                            # dotted config keys: lists of values, all combinations
      algo.kwargs.learning_rate: [1.0e-4, 3.0e-4]
    search:                          # dotted config keys: distributions
      algo.kwargs.ent_coef: {loguniform: [1.0e-4, 1.0e-1]}
    searcher: random                 # grid (no search keys) | random | optuna
    num_samples: 8                   # configurations drawn from `search`
    metric: return                   # default: the base config's eval.objective
    mode: max                        # default: from eval.minimise
    scheduler: asha                  # fifo | asha
    asha: {grace_period: 20000, reduction_factor: 2}    # in environment steps

Folder ``<train.run_dir>/sweeps/<name>/``: ``sweep.json`` (the resolved sweep), ``tune/`` (Tune's
experiment state, for ``--resume``), ``trials/``, and when it ends ``results.md``, ``results.csv``,
``results.json`` (every trial; per configuration the mean and IQM over its seeds with 95% CIs and
the probability of improvement over the best baseline, see :mod:`rlsys_agents.statistics`) and
``best_config.yaml`` (a ``train.py --config`` file of the best configuration by mean metric).

Resume: ``--resume`` restores the Tune experiment (finished trials stay finished, the searcher's
state is kept) and every unfinished trial continues from the last checkpoint of its run folder
(``train_seed(resume=True)``), or starts again if it had none.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import time
import traceback
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from .config import Config, ConfigError, _apply, apply_override, config_to_yaml, load_config, validate
from .files import write_atomic

INSTALL_HINT = 'pip install -e ".[distributed]"'
DISTRIBUTIONS = ("uniform", "loguniform", "randint", "choice")
SEARCHERS = ("grid", "random", "optuna")
SCHEDULERS = ("fifo", "asha")
#: keys the sweep sets itself in every trial
TRIAL_KEYS = ("train.seeds", "train.run_dir", "experiment", "train.torch_threads", "train.progress_bar")


@dataclass
class SweepSpec:
    name: str
    base: str | None = None
    overrides: list = field(default_factory=list)
    seeds: list = field(default_factory=lambda: [0])
    grid: dict = field(default_factory=dict)
    search: dict = field(default_factory=dict)
    searcher: str = "grid"
    num_samples: int = 1
    metric: str | None = None
    mode: str | None = None
    scheduler: str = "fifo"
    asha: dict = field(default_factory=dict)
    max_concurrent: int | None = None
    cpus_per_trial: float = 1.0
    search_seed: int = 0
    #: Ray runtime_env for a cluster (e.g. {working_dir: ., pip: [...]}); locally the checkout is on PYTHONPATH
    runtime_env: dict = field(default_factory=dict)
    verbose: int = 1


def _err(path, msg: str) -> ConfigError:
    return ConfigError(f"sweep file {path}: {msg}")


def load_spec(path: str | Path) -> SweepSpec:
    """Read and check a sweep file (unknown keys, value types, distributions); ``path`` is a file or
    the name of a shipped sweep (``smoke``: :func:`rlsys_agents.shipped.resolve_sweep`)."""
    from .shipped import resolve_sweep, sweep_names

    path = resolve_sweep(path)
    if not path.is_file():
        raise ConfigError(f"sweep file {str(path)!r} not found (shipped sweeps, by name: {', '.join(sweep_names())})")
    data = yaml.safe_load(path.read_text()) or {}
    if not isinstance(data, dict):
        raise _err(path, "must contain a mapping")
    names = [f for f in SweepSpec.__dataclass_fields__]
    for key in data:
        if key not in names:
            raise _err(path, f"unknown key {key!r}; known keys: {', '.join(names)}")
    data.setdefault("name", path.stem)
    if data.get("base") is not None and (path.parent / str(data["base"])).is_file():   # else a shipped config's name
        data["base"] = str((path.parent / data["base"]).resolve())
    spec = SweepSpec(**data)
    check_spec(spec, path)
    return spec


def check_spec(spec: SweepSpec, where: Any = "") -> None:
    def need(cond, msg):
        if not cond:
            raise _err(where, msg)

    need(isinstance(spec.name, str) and spec.name and "/" not in spec.name, f"name must be a folder name, got "
         f"{spec.name!r}")
    need(isinstance(spec.overrides, list) and all(isinstance(o, str) and "=" in o for o in spec.overrides),
         f"overrides must be a list of 'dotted.key=value' strings, got {spec.overrides!r}")
    need(isinstance(spec.seeds, list) and spec.seeds and all(isinstance(s, int) and not isinstance(s, bool)
                                                             for s in spec.seeds),
         f"seeds must be a non-empty list of ints, got {spec.seeds!r}")
    need(len(set(spec.seeds)) == len(spec.seeds), f"seeds must be distinct, got {spec.seeds}")
    need(isinstance(spec.grid, dict) and all(isinstance(v, list) and v for v in spec.grid.values()),
         "grid must map dotted config keys to non-empty lists of values")
    need(isinstance(spec.search, dict), "search must map dotted config keys to distributions")
    for key, dist in spec.search.items():
        need(isinstance(dist, dict) and len(dist) == 1 and next(iter(dist)) in DISTRIBUTIONS,
             f"search.{key} must be one of {{{': ..., '.join(DISTRIBUTIONS)}: ...}}, got {dist!r}")
        kind, args = next(iter(dist.items()))
        if kind == "choice":
            need(isinstance(args, list) and args, f"search.{key}: choice needs a non-empty list, got {args!r}")
        else:
            ok = isinstance(args, list) and len(args) == 2 and all(isinstance(a, (int, float)) for a in args)
            need(ok and args[0] < args[1], f"search.{key}: {kind} needs [low, high] with low < high, got {args!r}")
            need(kind != "loguniform" or args[0] > 0, f"search.{key}: loguniform needs low > 0, got {args!r}")
            need(kind != "randint" or all(isinstance(a, int) for a in args),
                 f"search.{key}: randint needs integer bounds [low, high) , got {args!r}")
    both = set(spec.grid) & set(spec.search)
    need(not both, f"keys both in grid and in search: {sorted(both)}")
    for key in list(spec.grid) + list(spec.search):
        need(key not in TRIAL_KEYS and key != "train.seeds",
             f"{key!r} is set by the sweep itself (use the top-level seeds: for seeds)")
    need(spec.searcher in SEARCHERS, f"searcher must be one of {', '.join(SEARCHERS)}, got {spec.searcher!r}")
    need(spec.searcher != "grid" or not spec.search, "search keys need searcher: random or optuna")
    need(spec.searcher == "grid" or spec.search, f"searcher: {spec.searcher} needs search keys")
    need(spec.searcher != "optuna" or not spec.grid,
         "searcher: optuna samples every parameter: put the grid's lists under search as {choice: [...]}")
    need(isinstance(spec.num_samples, int) and spec.num_samples >= 1, f"num_samples must be >= 1, got "
         f"{spec.num_samples!r}")
    need(spec.searcher != "grid" or spec.num_samples == 1, "num_samples is for searchers (a grid runs each point once)")
    need(spec.mode in (None, "max", "min"), f"mode must be max or min, got {spec.mode!r}")
    need(spec.metric is None or isinstance(spec.metric, str), f"metric must be a metric name, got {spec.metric!r}")
    need(spec.scheduler in SCHEDULERS, f"scheduler must be one of {', '.join(SCHEDULERS)}, got {spec.scheduler!r}")
    unknown = set(spec.asha) - {"grace_period", "reduction_factor", "brackets"}
    need(not unknown, f"asha: unknown keys {sorted(unknown)} (grace_period, reduction_factor, brackets)")
    need(not (spec.scheduler == "asha" and spec.searcher == "optuna" and len(spec.seeds) > 1),
         "asha with optuna needs one seed: the searcher learns from the mean over a configuration's seeds, "
         "which early stopping of single seeds would bias")
    need(spec.max_concurrent is None or (isinstance(spec.max_concurrent, int) and spec.max_concurrent >= 1),
         f"max_concurrent must be null or >= 1, got {spec.max_concurrent!r}")
    need(isinstance(spec.cpus_per_trial, (int, float)) and spec.cpus_per_trial > 0,
         f"cpus_per_trial must be > 0, got {spec.cpus_per_trial!r}")
    need(isinstance(spec.runtime_env, dict), "runtime_env must be a mapping")


# ------------------------------------------------------------------------------- configurations
def base_config(spec: SweepSpec, overrides: list[str] | None = None) -> Config:
    base = "default" if spec.base is None else spec.base         # as train.py without --config
    return load_config(base, list(spec.overrides) + list(overrides or []))


def config_from_dict(data: dict) -> Config:
    config = Config()
    _apply(config, data, "")
    return config


def draw_samples(spec: SweepSpec) -> list[dict]:
    """``num_samples`` points of ``search`` for the random searcher (numpy, seeded by ``search_seed``)."""
    rng = np.random.default_rng(spec.search_seed)
    out = []
    for _ in range(spec.num_samples):
        point = {}
        for key, dist in spec.search.items():
            kind, args = next(iter(dist.items()))
            if kind == "uniform":
                point[key] = float(rng.uniform(*args))
            elif kind == "loguniform":
                point[key] = float(np.exp(rng.uniform(np.log(args[0]), np.log(args[1]))))
            elif kind == "randint":
                point[key] = int(rng.integers(args[0], args[1]))
            else:
                point[key] = args[int(rng.integers(len(args)))]
        out.append(point)
    return out


def trial_params(trial_config: dict, spec: SweepSpec) -> tuple[dict, int]:
    """``({dotted key: value}, seed)`` of a trial from the config Tune gave it."""
    params = {k: v for k, v in trial_config.items() if k in spec.grid or k in spec.search}
    params.update(trial_config.get("_sample") or {})
    if "seed" in trial_config:
        seed = int(trial_config["seed"])
    else:                                        # optuna: the Repeater's index is the seed's position
        from ray.tune.search.repeater import TRIAL_INDEX

        seed = int(spec.seeds[int(trial_config.get(TRIAL_INDEX, 0))])
    return params, seed


def trial_config(base: Config, params: dict, seed: int, trials_dir: Path, trial_id: str,
                 threads: int = 1) -> Config:
    config = config_from_dict(base.to_dict())
    for key, value in params.items():
        apply_override(config, key, value)
    config.train.seeds = [seed]
    config.train.run_dir = str(trials_dir)
    config.experiment = trial_id
    config.train.torch_threads = threads
    config.train.progress_bar = False
    validate(config)
    return config


def param_space(spec: SweepSpec) -> dict:
    from ray import tune

    if spec.searcher == "optuna":
        dists = {"uniform": tune.uniform, "loguniform": tune.loguniform, "randint": tune.randint}
        return {k: tune.choice(a) if kind == "choice" else dists[kind](*a)
                for k, d in spec.search.items() for kind, a in d.items()}
    space: dict = {"seed": tune.grid_search(list(spec.seeds))}
    space.update({k: tune.grid_search(list(v)) for k, v in spec.grid.items()})
    if spec.searcher == "random":
        space["_sample"] = tune.grid_search(draw_samples(spec))
    return space


def grid_points(spec: SweepSpec) -> list[dict]:
    """Every configuration the grid (and the random samples) give, without the seed (for checks)."""
    import itertools

    keys = list(spec.grid)
    points = [dict(zip(keys, values)) for values in itertools.product(*(spec.grid[k] for k in keys))]
    if spec.searcher == "random":
        points = [{**p, **s} for p in points for s in draw_samples(spec)]
    elif spec.searcher == "optuna":         # a corner of the space: the lower bounds and first choices
        points = [{k: a[0] for k, d in spec.search.items() for a in d.values()}]
    return points


def preflight_sweep(spec: SweepSpec, base: Config) -> None:
    """Every configuration of the grid is a valid config (keys, types), and the distinct env and
    algorithm settings among them build (``rlsys_agents.training.preflight``)."""
    from .training import preflight

    seen = set()
    for point in grid_points(spec):
        try:
            config = trial_config(base, point, spec.seeds[0], Path("/nonexistent"), "check")
        except ConfigError as exc:
            raise ConfigError(f"sweep {spec.name}: configuration {point}: {exc}") from None
        key = json.dumps({k: v for k, v in config.to_dict().items() if k in ("env", "algo", "eval", "pretrain")},
                         sort_keys=True, default=str)
        if key not in seen:
            seen.add(key)
            try:
                preflight(config)
            except (ConfigError, ValueError, TypeError) as exc:
                raise ConfigError(f"sweep {spec.name}: configuration {point}: {exc}") from None


# ------------------------------------------------------------------------------------- trials
def run_trial(trial_conf: dict, spec_json: str, base_json: str, trials_dir: str) -> None:
    """The Tune function trainable: one ``train_seed`` run, resumed from its run folder if it has a checkpoint."""
    from ray import tune

    from .callbacks import latest_checkpoint
    from .training import run_dir_of, train_seed

    spec = SweepSpec(**json.loads(spec_json))
    base = config_from_dict(json.loads(base_json))
    params, seed = trial_params(trial_conf, spec)
    trial_id = tune.get_context().get_trial_id()
    config = trial_config(base, params, seed, Path(trials_dir), trial_id, threads=max(1, int(spec.cpus_per_trial)))
    run_dir = run_dir_of(config, seed)
    resume = (run_dir / "config.yaml").is_file() and (latest_checkpoint(run_dir / "checkpoints") is not None
                                                       or bool(config.pretrain.expert))
    run_dir.mkdir(parents=True, exist_ok=True)
    share_baselines(Path(trials_dir), run_dir)
    write_atomic(run_dir / "trial.json", json.dumps({"trial_id": trial_id, "seed": seed, "params": params},
                                                    indent=1, default=str))
    log_file = open(run_dir / "train.log", "a")

    def log(msg: str = "") -> None:
        log_file.write(msg + "\n")
        log_file.flush()

    def report(timesteps: int, metrics: dict) -> None:
        tune.report({"timesteps": timesteps, **{k: float(np.mean(v)) for k, v in metrics.items()}})

    try:
        log(f"--- trial {trial_id} seed {seed} params {params} ({'resumed' if resume else 'new'}) "
            f"{time.strftime('%Y-%m-%d %H:%M:%S')}")
        train_seed(config, seed, resume=resume, log=log, on_eval=report)
        (run_dir / "error.txt").unlink(missing_ok=True)
    except Exception as exc:
        write_atomic(run_dir / "error.txt", f"{type(exc).__name__}: {exc}\n\n{traceback.format_exc()}")
        raise
    finally:
        log_file.close()


def share_baselines(trials_dir: Path, run_dir: Path) -> None:
    """Seed ``run_dir/baselines.json`` with the baseline evaluations other trials have already made.

    The entries are keyed by the evaluation spec (env, eval kwargs, episodes, seed, baseline: see
    ``rlsys_agents.training.baseline_results``), so a trial takes only those of its own evaluation, and a
    slow baseline (e.g. CP-SAT) is evaluated once per distinct evaluation setting, not per trial.
    """
    own = run_dir / "baselines.json"
    cache = _read_json(own) or {}
    for other in trials_dir.glob("*/seed_*/baselines.json"):
        if other != own:
            for key, value in (_read_json(other) or {}).items():
                cache.setdefault(key, value)
    if cache:
        write_atomic(own, json.dumps(cache, indent=1))


# ----------------------------------------------------------------------------------- gathering
def _short(key: str) -> str:
    return key.rsplit(".", 1)[-1]


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def collect_trials(sweep_dir: Path, metric: str) -> list[dict]:
    """One record per trial run folder: id, seed, params, status, steps and the metric's last value."""
    out = []
    for info_file in sorted((sweep_dir / "trials").glob("*/seed_*/trial.json")):
        info = _read_json(info_file)
        if info is None:
            continue
        run = info_file.parent
        res = _read_json(run / "results.json")
        rec = {"trial_id": info["trial_id"], "seed": info["seed"], "params": info["params"], "run_dir": str(run)}
        if res is not None:
            rec.update(status="finished", timesteps=res["timesteps"], train_seconds=res.get("train_seconds"),
                       value=res["summary"]["policy"].get(metric), results=res["results"])
        else:
            last = None
            if (run / "eval_history.jsonl").is_file():
                lines = [ln for ln in (run / "eval_history.jsonl").read_text().splitlines() if ln.strip()]
                last = json.loads(lines[-1]) if lines else None
            err = None
            if (run / "error.txt").is_file():
                err = (run / "error.txt").read_text().splitlines()[0][:300]
            rec.update(status="error" if err else "stopped early", error=err,
                       timesteps=last["timesteps"] if last else 0,
                       value=last["policy"].get(metric) if last else None)
        out.append(rec)
    return out


def group_trials(trials: list[dict], base: Config, metric: str, higher_is_better: bool) -> list[dict]:
    """Finished trials grouped by configuration (params without the seed), best mean metric first,
    each with the interval estimates of :func:`rlsys_agents.training.seeds_comparison` over its seeds."""
    from .training import seeds_comparison

    groups: dict[str, list[dict]] = {}
    for t in trials:
        if t["status"] == "finished":
            groups.setdefault(json.dumps(t["params"], sort_keys=True, default=str), []).append(t)
    config = config_from_dict(base.to_dict())
    config.eval.objective, config.eval.minimise = metric, not higher_is_better
    config.eval.metrics = list(dict.fromkeys([metric] + list(config.eval.metrics)))
    out = []
    for members in groups.values():
        members = sorted(members, key=lambda t: t["seed"])
        cmp = seeds_comparison(config, [t["results"] for t in members])
        est = cmp.rows["policy"].get(metric)
        out.append({"params": members[0]["params"], "seeds": [t["seed"] for t in members],
                    "trials": [t["trial_id"] for t in members], "comparison": cmp,
                    "mean": est["mean"].point if est else math.nan})
    sign = -1.0 if higher_is_better else 1.0
    out.sort(key=lambda g: (math.isnan(g["mean"]), sign * g["mean"] if not math.isnan(g["mean"]) else 0.0))
    return out


def _fmt(v) -> str:
    from .statistics import _num

    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "-"
    return _num(v) if isinstance(v, float) else str(v)


def _ci(e) -> str:
    return f"{_fmt(e.point)} [{_fmt(e.low)}, {_fmt(e.high)}]" if e.has_interval else _fmt(e.point)


def sweep_tables(spec: SweepSpec, trials: list[dict], groups: list[dict], metric: str, higher_is_better: bool) -> str:
    keys = list(dict.fromkeys([k for t in trials for k in t["params"]]))
    lines = [f"## Sweep {spec.name}: {len(trials)} trials, metric `{metric}` "
             f"({'higher' if higher_is_better else 'lower'} is better)", ""]
    if groups:
        pct = round(100 * groups[0]["comparison"].confidence)
        lines += [f"### Configurations (finished trials; mean and IQM over seeds x eval episodes, {pct}% CIs)", ""]
        header = ["rank"] + [_short(k) for k in keys] + ["seeds", f"{metric} mean [CI]", f"{metric} IQM [CI]",
                                                          "P(better than best baseline) [CI]", "best baseline"]
        lines += ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
        for rank, g in enumerate(groups, 1):
            cmp = g["comparison"]
            est = cmp.rows["policy"].get(metric)
            imp = cmp.improvement.get("policy")
            cells = [str(rank)] + [_fmt(g["params"].get(k)) for k in keys] + [
                ",".join(str(s) for s in g["seeds"]), _ci(est["mean"]) if est else "-", _ci(est["iqm"]) if est else "-",
                _ci(imp["probability"]) if imp else "-", cmp.best_baseline or "-"]
            lines.append("| " + " | ".join(cells) + " |")
        lines.append("")
        lines.append(f"CIs: stratified bootstrap over eval episodes and seeds ({groups[0]['comparison'].reps} "
                     f"resamples, rlsys_agents.statistics); rank by mean {metric}.")
        lines.append("")
    lines += ["### Trials", ""]
    header = ["trial", "seed"] + [_short(k) for k in keys] + ["status", "steps", f"{metric} (last eval)"]
    lines += ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    for t in sorted(trials, key=lambda t: t["trial_id"]):
        cells = [t["trial_id"], str(t["seed"])] + [_fmt(t["params"].get(k)) for k in keys] + [
            t["status"], str(t["timesteps"]), _fmt(t["value"])]
        lines.append("| " + " | ".join(cells) + " |")
    errors = [t for t in trials if t.get("error")]
    for t in errors:
        lines.append(f"\n{t['trial_id']}: {t['error']}")
    return "\n".join(lines)


def write_results(spec: SweepSpec, base: Config, sweep_dir: Path, log=print) -> dict:
    """Gather every trial of the sweep folder into ``results.md/.csv/.json`` and ``best_config.yaml``."""
    metric, higher = sweep_metric(spec, base)
    trials = collect_trials(sweep_dir, metric)
    groups = group_trials(trials, base, metric, higher)
    text = sweep_tables(spec, trials, groups, metric, higher)
    write_atomic(sweep_dir / "results.md", text + "\n")
    keys = list(dict.fromkeys([k for t in trials for k in t["params"]]))
    buf = io.StringIO()
    writer = csv.writer(buf)
    writer.writerow(["trial_id", "seed"] + keys + ["status", "timesteps", metric, "train_seconds", "run_dir"])
    for t in sorted(trials, key=lambda t: t["trial_id"]):
        writer.writerow([t["trial_id"], t["seed"]] + [json.dumps(t["params"].get(k)) if isinstance(
            t["params"].get(k), (list, dict)) else t["params"].get(k) for k in keys]
            + [t["status"], t["timesteps"], t["value"], t.get("train_seconds"), t["run_dir"]])
    write_atomic(sweep_dir / "results.csv", buf.getvalue())
    summary = {"sweep": spec.name, "metric": metric, "higher_is_better": higher,
               "trials": [{k: v for k, v in t.items() if k != "results"} for t in trials],
               "configurations": [{"params": g["params"], "seeds": g["seeds"], "trials": g["trials"],
                                   **g["comparison"].to_json()} for g in groups]}
    write_atomic(sweep_dir / "results.json", json.dumps(summary, indent=1, default=str))
    best = None
    if groups:
        best = groups[0]
        config = config_from_dict(base.to_dict())
        for key, value in best["params"].items():
            apply_override(config, key, value)
        config.experiment = f"{spec.name}_best"
        config.train.seeds = list(spec.seeds)
        header = (f"# best configuration of sweep {spec.name} by mean {metric} over seeds {best['seeds']} "
                  f"(trials {', '.join(best['trials'])}); params: {json.dumps(best['params'], default=str)}\n"
                  f"# train it with: python train.py --config {sweep_dir / 'best_config.yaml'}\n")
        write_atomic(sweep_dir / "best_config.yaml", header + config_to_yaml(config))
    log(text)
    log(f"\nsweep results: {sweep_dir}/results.md, results.csv, results.json"
        + (f"; best config: {sweep_dir / 'best_config.yaml'}" if best else ""))
    return summary


def sweep_metric(spec: SweepSpec, base: Config) -> tuple[str, bool]:
    metric = spec.metric or base.eval.objective
    higher = (spec.mode == "max") if spec.mode else not base.eval.minimise
    return metric, higher


# -------------------------------------------------------------------------------------- driver
def _import_tune():
    try:
        import ray
        from ray import tune
    except ImportError:
        raise SystemExit(f"--sweep runs trials on Ray Tune, which is not installed: {INSTALL_HINT}") from None
    return ray, tune


def sweep_dir_of(spec: SweepSpec, base: Config) -> Path:
    return (Path(base.train.run_dir) / "sweeps" / spec.name).resolve()


def _repo_root() -> str:
    return str(Path(__file__).resolve().parents[1])


def run_sweep(spec_path: str, overrides: list[str], resume: bool = False, address: str | None = None,
              log=print) -> dict:
    spec = load_spec(spec_path)
    base = base_config(spec, overrides)
    sweep_dir = sweep_dir_of(spec, base)
    state = sweep_dir / "sweep.json"
    if resume:
        if not state.is_file():
            raise ConfigError(f"--resume: no sweep to resume in {sweep_dir} (no sweep.json)")
        saved = json.loads(state.read_text())
        if saved["spec"] != json.loads(json.dumps(asdict(spec))) or saved["base"] != json.loads(
                json.dumps(base.to_dict())):
            raise ConfigError(f"--resume: {spec_path} (with these overrides) is not the sweep that was started in "
                              f"{sweep_dir}; resume it with the same file and overrides")
    else:
        if state.is_file():
            raise ConfigError(f"sweep folder {sweep_dir} exists: continue it with --resume, or remove it "
                              f"(or give the sweep another name:) to start again")
        preflight_sweep(spec, base)
    ray, tune = _import_tune()
    if spec.searcher == "optuna":
        try:
            import optuna  # noqa: F401
        except ImportError:
            raise SystemExit(f"searcher: optuna needs optuna: {INSTALL_HINT}") from None
    sweep_dir.mkdir(parents=True, exist_ok=True)
    if not resume:
        write_atomic(state, json.dumps({"spec": asdict(spec), "base": base.to_dict(), "overrides": overrides,
                                        "started": time.strftime("%Y-%m-%d %H:%M:%S")}, indent=1, default=str))
    address = address or os.environ.get("RAY_ADDRESS")
    if address:
        ray.init(address=address, runtime_env=spec.runtime_env or None, ignore_reinit_error=True)
    else:
        path = os.pathsep.join(p for p in (_repo_root(), os.environ.get("PYTHONPATH")) if p)
        env = dict(spec.runtime_env)
        env["env_vars"] = {"PYTHONPATH": path, **env.get("env_vars", {})}
        ray.init(include_dashboard=False, runtime_env=env, ignore_reinit_error=True)
    try:
        return _fit(spec, base, sweep_dir, resume, tune, log)
    finally:
        ray.shutdown()


def _fit(spec: SweepSpec, base: Config, sweep_dir: Path, resume: bool, tune, log) -> dict:
    metric, higher = sweep_metric(spec, base)
    mode = "max" if higher else "min"
    trainable = tune.with_resources(
        tune.with_parameters(run_trial, spec_json=json.dumps(asdict(spec)), base_json=json.dumps(base.to_dict()),
                             trials_dir=str(sweep_dir / "trials")),
        {"cpu": spec.cpus_per_trial})
    tune_path = sweep_dir / "tune"
    if resume:
        log(f"resuming sweep {spec.name} from {tune_path}")
        tuner = tune.Tuner.restore(str(tune_path), trainable, resume_unfinished=True, resume_errored=True)
    else:
        scheduler = None
        if spec.scheduler == "asha":
            from ray.tune.schedulers import ASHAScheduler

            # max_t past the last evaluation: ASHA stops a trial that reaches max_t, which would cut
            # off the run's final evaluation and results.json
            scheduler = ASHAScheduler(time_attr="timesteps", max_t=base.train.total_timesteps + 1,
                                      grace_period=int(spec.asha.get("grace_period", max(1, base.eval.freq))),
                                      reduction_factor=spec.asha.get("reduction_factor", 2),
                                      brackets=spec.asha.get("brackets", 1))
        search_alg, num_samples = None, 1
        if spec.searcher == "optuna":
            from ray.tune.search import Repeater
            from ray.tune.search.optuna import OptunaSearch

            search_alg = OptunaSearch(seed=spec.search_seed)
            if len(spec.seeds) > 1:
                search_alg = Repeater(search_alg, repeat=len(spec.seeds), set_index=True)
            num_samples = spec.num_samples * len(spec.seeds)
        tuner = tune.Tuner(
            trainable, param_space=param_space(spec),
            tune_config=tune.TuneConfig(metric=metric, mode=mode, scheduler=scheduler, search_alg=search_alg,
                                        num_samples=num_samples, max_concurrent_trials=spec.max_concurrent),
            run_config=tune.RunConfig(name="tune", storage_path=str(sweep_dir), verbose=spec.verbose))
        log(f"sweep {spec.name}: {spec.searcher} search, {spec.scheduler} scheduler, metric {metric} ({mode}) "
            f"-> {sweep_dir}")
    t0 = time.perf_counter()
    grid = tuner.fit()
    log(f"sweep {spec.name}: {len(grid)} trials in {time.perf_counter() - t0:.0f} s")
    summary = write_results(spec, base, sweep_dir, log=log)
    failed = [t["trial_id"] for t in summary["trials"] if t["status"] == "error"]
    if failed:
        log(f"{len(failed)} trial(s) failed ({', '.join(failed)}): see error.txt and train.log in their run folders")
    return summary


def main_sweep(args) -> int:
    resume = bool(args.resume)
    overrides = list(args.overrides)
    if isinstance(args.resume, str) and "=" in args.resume:      # `--resume key=value`: an override
        overrides.insert(0, args.resume)
    try:
        run_sweep(args.sweep, overrides, resume=resume, address=args.address)
    except ValueError as exc:
        raise SystemExit(f"config error: {exc}") from None
    return 0

