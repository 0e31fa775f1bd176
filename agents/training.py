"""What ``train.py`` runs: build envs and model from a :class:`rlsys_agents.config.Config`, train with
callbacks, checkpoint, resume, and print the final table of the policy against the baselines."""
from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import time
from pathlib import Path

from .config import Config, ConfigError, config_to_yaml, load_config

RUN_FILES = ("config.yaml", "checkpoints", "final_model.zip", "results.json", "results.md", "baselines.json",
             "eval_history.jsonl", "pretrain_last.zip", "pretrain_state.json", "demonstrations_summary.json")
#: not removed when a run is replaced: demonstrations.jsonl (expensive expert plans, keyed by spec);
#: the DAgger files dagger_<r>.jsonl depend on the policy, so they go
RUN_GLOBS = ("dagger_*.jsonl",)


def _table_columns(config: Config, summary: dict) -> dict:
    if not config.eval.metrics:
        return summary
    keep = set(config.eval.metrics) | {f"gap_{m}" for m in config.eval.metrics}
    return {name: {m: v for m, v in row.items() if m in keep} for name, row in summary.items()}


def run_dir_of(config: Config, seed: int) -> Path:
    return Path(config.train.run_dir) / config.experiment / f"seed_{seed}"


def _make_registered_env(env_id: str, **kwargs):
    """Module-level factory so SubprocVecEnv workers (fresh processes) register the rlsys IDs too."""
    import gymnasium as gym

    import rlsys_envs  # noqa: F401

    return gym.make(env_id, **kwargs)


def make_vec_env(config: Config, seed: int):
    from functools import partial

    from stable_baselines3.common.env_util import make_vec_env as sb3_make_vec_env
    from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

    cls = SubprocVecEnv if config.env.vec_env == "subproc" else DummyVecEnv
    return sb3_make_vec_env(partial(_make_registered_env, config.env.id), n_envs=config.env.n_envs, seed=seed,
                            env_kwargs=dict(config.env.kwargs), vec_env_cls=cls)


def baseline_names(config: Config) -> list[str]:
    import rlsys_envs

    known = list(rlsys_envs.baselines(config.env.id))
    if config.eval.baselines is None:
        return known
    for b in config.eval.baselines:
        if b not in known:
            raise ConfigError(f"eval.baselines: {b!r} is not a baseline of {config.env.id}; known: {', '.join(known)}")
    return list(config.eval.baselines)


def _eval_key(config: Config, name: str) -> str:
    spec = json.dumps({"env": config.env.id, "kwargs": config.eval_env_kwargs(), "episodes": config.eval.episodes,
                       "seed": config.eval.seed, "baseline": name}, sort_keys=True, default=str)
    return hashlib.sha1(spec.encode()).hexdigest()[:16]


def baseline_results(config: Config, cache_file: Path | None = None, log=print) -> dict[str, dict[str, list[float]]]:
    """Every selected baseline on the evaluation episodes (cached in ``cache_file`` by eval spec)."""
    from .evaluation import evaluate, load_policy
    from .files import write_atomic

    cache: dict = {}
    if cache_file is not None and cache_file.is_file():
        cache = json.loads(cache_file.read_text())
    out = {}
    for name in baseline_names(config):
        key = _eval_key(config, name)
        if key in cache:
            out[name] = cache[key]["metrics"]
            continue
        start = time.perf_counter()
        policy = load_policy(name, config.env.id, None)
        out[name] = evaluate(config.env.id, policy, config.eval.episodes, config.eval.seed, config.eval_env_kwargs())
        log(f"  baseline {name}: {config.eval.episodes} episodes in {time.perf_counter() - start:.1f} s")
        cache[key] = {"baseline": name, "metrics": out[name]}
        if cache_file is not None:
            write_atomic(cache_file, json.dumps(cache, indent=1))
    return out


def build_model(config: Config, venv, seed: int):
    from .algorithms import check_action_space, check_algo_kwargs, get_algorithm, policy_spec

    algo = get_algorithm(config.algo.name)
    check_action_space(algo, venv.action_space, config.env.id)
    check_algo_kwargs(algo, config.algo.kwargs)
    policy, policy_kwargs = policy_spec(algo, config.algo.policy, venv.observation_space, config.algo.policy_kwargs,
                                        config.algo.extractor_kwargs)
    cls = algo.load_class()
    return cls(policy, venv, seed=seed, device=config.train.device, verbose=config.train.verbose,
               policy_kwargs=policy_kwargs, **config.algo.kwargs)


def train_seed(config: Config, seed: int, resume: bool = False, log=print, on_eval=None) -> dict:
    """Train (or resume) one seed; returns ``{"policy": metrics, <baseline>: metrics, ...}``.

    ``on_eval(num_timesteps, metrics)`` is called after every evaluation of the policy (sweeps report
    it to Ray Tune)."""
    import torch

    from .algorithms import get_algorithm
    from .callbacks import (CheckpointCallback, EpisodeMetricsCallback, EvalBaselinesCallback, save_model,
                            truncate_history)
    from .evaluation import format_table, summarise
    from .files import remove_stale_temporaries, write_atomic

    torch.set_num_threads(config.train.torch_threads)
    algo = get_algorithm(config.algo.name)
    run_dir = run_dir_of(config, seed)
    ckpt_dir = run_dir / "checkpoints"
    found = None
    if resume:
        for folder in (run_dir, ckpt_dir):
            remove_stale_temporaries(folder)
        found = resumable_checkpoint(ckpt_dir, algo, log, warn=True)
        if found is None and not config.pretrain.expert:
            why = "no readable checkpoint" if any(ckpt_dir.glob("model_*_steps.zip")) else "no checkpoint yet"
            log(f"warning: --resume {run_dir}: {why} in {ckpt_dir}; starting the run again from step 0")
            resume = False
    if not resume and (run_dir / "config.yaml").exists():
        log(f"replacing the previous run in {run_dir} (use --resume {run_dir} to continue it)")
        for name in RUN_FILES:
            p = run_dir / name
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
        for pattern in ("events.out.tfevents.*",) + RUN_GLOBS:
            for p in run_dir.glob(pattern):
                p.unlink()
    run_dir.mkdir(parents=True, exist_ok=True)
    write_atomic(run_dir / "config.yaml",
        f"# resolved config of this run (seed {seed}); resume with: python train.py --resume {run_dir}\n"
        + config_to_yaml(config))

    log(f"[{config.experiment} seed {seed}] evaluating baselines on {config.eval.episodes} episodes ...")
    baselines = baseline_results(config, run_dir / "baselines.json", log=log)

    start_steps = 0
    if found is not None and config.pretrain.expert and pretraining_unfinished(config, run_dir):
        if found[1] > 0:
            raise ConfigError(f"{run_dir}: RL has started ({found[0].name}), so the pretraining can no longer be "
                              f"extended (pretrain.dagger_rounds={config.pretrain.dagger_rounds} is more than it did)")
        found = None        # the step-0 checkpoint ended a shorter pretraining (fewer DAgger rounds): go on with it
    if found is not None:
        path, start_steps = found
        venv = make_vec_env(config, seed + start_steps)
        model = algo.load_class().load(path, env=venv, device=config.train.device)
        buf = ckpt_dir / f"replay_buffer_{start_steps}_steps.pkl"
        extra = ""
        if algo.off_policy and buf.is_file():
            model.load_replay_buffer(buf)
            extra = f", replay buffer of {model.replay_buffer.size()} transitions"
        log(f"[{config.experiment} seed {seed}] resuming from {path} at {model.num_timesteps} steps{extra}")
    else:
        venv = make_vec_env(config, seed)
        model = build_model(config, venv, seed)
    # every model this run saves carries its environment (rlsys_agents.checkpoint_env)
    model.rlsys_env = checkpoint_metadata(config, venv)
    purge_step = None
    if found is not None:
        # what the killed run logged after this checkpoint goes: TensorBoard drops the points from
        # start_steps + 1 on (a purge step in the new event file), the history file is cut there.
        # At the step-0 checkpoint that ends a pretraining, whose points are logged by epoch
        # (steps 1 .. its number of epochs), the purge starts after them
        purge_step = start_steps + 1
        if start_steps == 0 and config.pretrain.expert:
            purge_step = sum(stage_epochs(config.pretrain)) + 1
        dropped = truncate_history(run_dir / "eval_history.jsonl", start_steps)
        if dropped:
            log(f"  dropped {dropped} evaluation record(s) after step {start_steps} from eval_history.jsonl")
    if not resume:
        purge_step = 0      # a session start in the first event file, so a later resume's purge is a restart
    model.set_logger(configure_tensorboard(run_dir, purge_step))
    if found is None and config.pretrain.expert:
        # a fresh run, or a resumed one killed before its first checkpoint: (finish the) pretraining
        model = pretrain(config, model, venv, seed, run_dir, resume=resume, log=log)

    if resume and config.pretrain.expert and model.num_timesteps == 0:
        # RL starts from the pretrained policy with this config's algo.kwargs (they may have been
        # changed on --resume; see main), not those the pretraining run was built with
        model = with_algo_kwargs(model, config.algo.kwargs, venv, config.train.device)
        model.set_logger(configure_tensorboard(run_dir))

    eval_cb = EvalBaselinesCallback(config.env.id, config.eval_env_kwargs(), config.eval.episodes, config.eval.seed,
                                    config.eval.freq, baselines, algo.maskable, config.eval.deterministic,
                                    config.eval.reference, config.eval.gap_metrics,
                                    history_path=run_dir / "eval_history.jsonl", on_eval=on_eval)
    ckpt_cb = CheckpointCallback(ckpt_dir, config.train.checkpoint_freq, save_replay_buffer=algo.off_policy)
    remaining = config.train.total_timesteps - model.num_timesteps
    t0 = time.perf_counter()
    if remaining > 0:
        log(f"[{config.experiment} seed {seed}] training {config.algo.name} ({config.algo.policy}) on {config.env.id} "
            f"for {remaining} steps -> {run_dir}")
        callbacks = [EpisodeMetricsCallback(), eval_cb, ckpt_cb]
        if config.train.progress_bar:
            from .callbacks import ProgressBar

            callbacks.append(ProgressBar(config.train.total_timesteps))
        model.learn(total_timesteps=remaining, callback=callbacks, reset_num_timesteps=not resume)
    else:
        log(f"[{config.experiment} seed {seed}] already trained for {model.num_timesteps} steps "
            f"(train.total_timesteps={config.train.total_timesteps})")
        eval_cb.init_callback(model)
    train_seconds = time.perf_counter() - t0
    ckpt_cb.init_callback(model)
    ckpt_cb.folder.mkdir(parents=True, exist_ok=True)
    ckpt_cb.save()
    save_model(model, run_dir / "final_model.zip")
    # the last update's training statistics are still pending (SB3 dumps them with the next
    # rollout's); dumped with the final evaluation they would make a second point at the step the
    # last rollout already logged, so they go, as in a plain model.learn
    drop_pending_records(model.logger, keep_prefix="eval/")
    final = eval_cb.evaluate_now()
    eval_cb.close()
    venv.close()

    results = {"policy": final, **baselines}
    summary = summarise(results, config.eval.reference, config.eval.gap_metrics)
    table = format_table(_table_columns(config, summary), title=f"{config.experiment} seed {seed}: {config.env.id}, "
                                        f"{config.eval.episodes} eval episodes (seeds {config.eval.seed}..)")
    write_atomic(run_dir / "results.json", json.dumps({"timesteps": int(model.num_timesteps),
                                                       "train_seconds": train_seconds, "summary": summary,
                                                       "results": results}, indent=1))
    write_atomic(run_dir / "results.md", table + "\n")
    log(f"[{config.experiment} seed {seed}] {model.num_timesteps} steps, {train_seconds:.0f} s of training")
    return results


def stage_epochs(pre) -> list[int]:
    """Epochs of each pretraining stage: stage 0 (cloning), then one per DAgger round."""
    return [pre.epochs] + [pre.dagger_epochs] * pre.dagger_rounds


def pretraining_unfinished(config: Config, run_dir: Path) -> bool:
    """Whether ``pretrain_state.json`` of a run stops short of the configured stages and epochs.

    True when a finished run's ``pretrain.dagger_rounds`` was raised on ``--resume``: its pretraining
    goes on with the added DAgger rounds instead of resuming at RL.
    """
    state_file = run_dir / "pretrain_state.json"
    if not state_file.is_file():
        return False
    epochs = stage_epochs(config.pretrain)
    done = json.loads(state_file.read_text())
    return (done["stage"], done["epoch"]) < (len(epochs) - 1, epochs[-1])


def pretrain(config: Config, model, venv, seed: int, run_dir: Path, resume: bool = False, log=print):
    """Behaviour cloning of ``config.pretrain.expert`` into ``model.policy`` (see rlsys_agents.imitation).

    Stage 0 clones demonstrations from ``env.reset(seed=pretrain.seed + i)``; each DAgger stage
    ``r >= 1`` lets the current policy play ``dagger_episodes`` further seeds, hands over to the
    expert at a random state of each, and continues cloning on every demonstration so far.
    Demonstrations are cached in ``run_dir/demonstrations.jsonl`` (stage 0; kept when a run is
    replaced, as its records are keyed by env and expert spec; the other training seeds' stage-0
    records of the same spec are read from their run folders, not made again) and
    ``dagger_<r>.jsonl``. After each
    epoch the model is saved to ``pretrain_last.zip`` and the stage and epoch to
    ``pretrain_state.json``, so ``--resume`` continues from the last finished epoch; at the end the
    model is saved as the step-0 checkpoint, from which RL starts (and resumes).
    """
    from .callbacks import save_model
    from .files import write_atomic
    from .imitation import behaviour_clone, collect_demonstrations, learner_prefixes

    pre = config.pretrain
    state_file, last = run_dir / "pretrain_state.json", run_dir / "pretrain_last.zip"
    best_file = run_dir / "pretrain_best.zip"
    done = {"stage": 0, "epoch": 0}
    if resume and state_file.is_file() and last.is_file():
        done = json.loads(state_file.read_text())
        model = _reloaded(model, last, venv, config.train.device)
        model.set_logger(configure_tensorboard(run_dir))
        log(f"[{config.experiment} seed {seed}] resuming pretraining after stage {done['stage']} epoch {done['epoch']}")
    env_kwargs = dict(config.env.kwargs)
    best = dict(done.get("best") or {})          # validation: {"stage", "epoch", "score"} of the best epoch

    def validate() -> float:
        from .algorithms import get_algorithm
        from .evaluation import SB3Policy, evaluate

        policy = SB3Policy(model, get_algorithm(config.algo.name).maskable, deterministic=True)
        returns = evaluate(config.env.id, policy, pre.select_episodes, pre.select_seed, env_kwargs)["return"]
        model.policy.set_training_mode(True)        # predict() left it in evaluation mode
        return sum(returns) / len(returns)

    def end_stage(stage: int) -> None:
        """With validation, go on from the stage's best epoch (the model of an earlier stage if none beat it)."""
        nonlocal model
        if pre.select_episodes and best and (best["stage"], best["epoch"]) != (stage, epochs_of[stage]):
            model = _reloaded(model, best_file, venv, config.train.device)
            model.set_logger(configure_tensorboard(run_dir))
            log(f"  stage {stage}: going on from the best validated epoch (stage {best['stage']} epoch "
                f"{best['epoch']}, mean return {best['score']:.4f})")

    def collect(seeds, cache, prefixes=None, sources=()):
        return collect_demonstrations(config.env.id, env_kwargs, pre.expert, dict(pre.expert_kwargs), seeds,
                                      cache=cache, log=log, progress=config.train.progress_bar, workers=pre.workers,
                                      prefixes=prefixes, sources=sources)

    log(f"[{config.experiment} seed {seed}] pretraining: cloning expert {pre.expert!r} on {pre.episodes} episodes "
        f"(seeds {pre.seed}..{pre.seed + pre.episodes - 1})" + (f", then {pre.dagger_rounds} DAgger round(s) of "
                                                                 f"{pre.dagger_episodes}" if pre.dagger_rounds else ""))
    # stage 0 does not depend on the training seed: the other seeds' plans are reused (train.seeds=[0,1,2])
    siblings = sorted(p for p in run_dir.parent.glob("seed_*/demonstrations.jsonl") if p.parent != run_dir)
    demos = collect([pre.seed + i for i in range(pre.episodes)], run_dir / "demonstrations.jsonl", sources=siblings)
    epochs_before = 0
    epochs_of = stage_epochs(pre)
    for stage in range(pre.dagger_rounds + 1):
        n_epochs = epochs_of[stage]
        if stage > 0:
            first = pre.seed + pre.episodes + (stage - 1) * pre.dagger_episodes
            seeds = list(range(first, first + pre.dagger_episodes))
            prefixes = lambda todo, st=stage: learner_prefixes(model.policy, config.env.id, env_kwargs, todo,  # noqa: E731
                                                               seed=seed * 1000 + st, cut_from=pre.dagger_cut_from)
            demos = demos + collect(seeds, run_dir / f"dagger_{stage}.jsonl", prefixes)
            log(f"  DAgger round {stage}: {len(demos)} demonstrations in all")
        start = done["epoch"] if stage == done["stage"] else (n_epochs if stage < done["stage"] else 0)
        if start < n_epochs:
            def on_epoch(epoch: int, stats: dict, st=stage) -> None:
                save_model(model, last)
                if pre.select_episodes:
                    score = validate()
                    log(f"  validation after stage {st} epoch {epoch}: mean return {score:.4f} "
                        f"({pre.select_episodes} episodes from seed {pre.select_seed})")
                    if not best or score > best["score"]:
                        best.update(stage=st, epoch=epoch, score=score)
                        save_model(model, best_file)
                    stats = {**stats, "validation_return": score}
                    model.logger.record("pretrain/validation_return", score)
                    model.logger.dump(epochs_before + epoch)
                write_atomic(state_file, json.dumps({"stage": st, "epoch": epoch, **stats, "best": best}))

            behaviour_clone(model.policy, config.env.id, env_kwargs, demos, epochs=n_epochs,
                            batch_size=pre.batch_size, learning_rate=pre.learning_rate, value_coef=pre.value_coef,
                            seed=seed + 7919 * stage, logger=model.logger, log=log, on_epoch=on_epoch,
                            start_epoch=start, log_step_offset=epochs_before)
        if stage >= done["stage"]:      # (earlier stages ended in the run that is resumed)
            end_stage(stage)
        epochs_before += n_epochs
    write_atomic(run_dir / "demonstrations_summary.json", json.dumps(demonstrations_summary(demos), indent=1))
    ckpt = run_dir / "checkpoints"
    ckpt.mkdir(parents=True, exist_ok=True)
    save_model(model, ckpt / "model_0_steps.zip")
    return model


def demonstrations_summary(demos) -> dict:
    """The number of demonstration episodes and the mean of every numeric entry that each episode's
    ``info`` has (what the expert's episodes record: FR before / after and solver time for VM
    rescheduling, the environment's own metrics elsewhere), so the summary fits any environment."""
    import numbers

    numeric = [{k: float(v) for k, v in d.info.items() if isinstance(v, numbers.Real) and not isinstance(v, bool)}
               for d in demos]
    common = set.intersection(*(set(n) for n in numeric)) if numeric else set()
    return {"episodes": len(demos), **{k: sum(n[k] for n in numeric) / len(numeric) for k in sorted(common)}}


def checkpoint_metadata(config: Config, venv) -> dict:
    """The environment record saved inside every checkpoint of a run (:mod:`rlsys_agents.checkpoint_env`)."""
    from .checkpoint_env import env_metadata

    return env_metadata(config.env.id, config.env.kwargs, venv.observation_space, venv.action_space,
                        config.eval_env_kwargs(), algo=config.algo.name, policy=config.algo.policy,
                        experiment=config.experiment)


def drop_pending_records(logger, keep_prefix: str) -> None:
    """Forget the values recorded in an SB3 ``logger`` since its last dump, except ``keep_prefix``'s."""
    for key in [k for k in logger.name_to_value if not k.startswith(keep_prefix)]:
        for table in (logger.name_to_value, logger.name_to_count, logger.name_to_excluded):
            table.pop(key, None)


def _reloaded(model, path: Path, venv, device: str):
    """``model`` loaded again from ``path`` (same class), keeping its environment record."""
    out = type(model).load(path, env=venv, device=device)
    if hasattr(model, "rlsys_env"):
        out.rlsys_env = model.rlsys_env
    return out


def configure_tensorboard(run_dir: Path, purge_step: int | None = None):
    """SB3's TensorBoard logger of a run folder; with ``purge_step``, the new event file starts with
    a session start at that step, which TensorBoard reads as a restart: it drops the points of the
    earlier files at steps >= ``purge_step``.

    TensorBoard's Python loader (``--load_fast false``) takes the first session start of a run for
    its beginning and purges only at later ones, so a run's first event file gets one at step 0
    (``purge_step=0``, nothing to drop) and a resumed run's file writes its own twice: the purge
    then also happens on runs whose first file has none (made before this was written)."""
    from stable_baselines3.common.logger import Logger, TensorBoardOutputFormat
    from tensorboard.compat.proto.event_pb2 import Event, SessionLog
    from torch.utils.tensorboard import SummaryWriter

    run_dir.mkdir(parents=True, exist_ok=True)
    fmt = TensorBoardOutputFormat.__new__(TensorBoardOutputFormat)
    fmt.writer = SummaryWriter(log_dir=str(run_dir), purge_step=purge_step)
    if purge_step:
        fmt.writer._get_file_writer().add_event(Event(step=purge_step, session_log=SessionLog(status=SessionLog.START)))
        fmt.writer.flush()
    fmt._is_closed = False
    return Logger(folder=str(run_dir), output_formats=[fmt])


def resumable_checkpoint(ckpt_dir: Path, algo, log=print, warn: bool = False) -> tuple[Path, int] | None:
    """The newest checkpoint of ``ckpt_dir`` that reads whole (with its replay buffer for off-policy
    algorithms); newer ones that do not (a run killed while writing them with an older version, a
    damaged disk) are skipped, with a warning naming each when ``warn``."""
    import pickle

    from .callbacks import checkpoints, unreadable_reason

    for path, steps in checkpoints(ckpt_dir):
        why = unreadable_reason(path)
        buf = ckpt_dir / f"replay_buffer_{steps}_steps.pkl"
        if why is None and algo.off_policy and buf.is_file():
            try:
                with open(buf, "rb") as fh:
                    pickle.load(fh)
            except (EOFError, pickle.UnpicklingError, OSError, ValueError, AttributeError) as exc:
                why = f"its replay buffer {buf.name} is unreadable ({type(exc).__name__}: {exc})"
        if why is None:
            return path, steps
        if warn:
            log(f"warning: skipping unreadable checkpoint {path} ({why}); trying the one before it")
    return None


def preflight(config: Config) -> None:
    """Fail fast, before any training, on a bad env kwarg, algorithm kwarg, policy or baseline name."""
    from .algorithms import check_action_space, check_algo_kwargs, get_algorithm, policy_spec
    from .config_checks import check_config_values, check_metrics, metric_names
    from .evaluation import episode_kwargs, make_env

    algo = get_algorithm(config.algo.name)
    check_algo_kwargs(algo, config.algo.kwargs)
    check_config_values(config)

    def made(kwargs, where):
        try:
            return make_env(config.env.id, kwargs)
        except TypeError as exc:        # a value of the wrong type (unknown names are caught above)
            raise ConfigError(f"{where}: {exc}") from None

    env = made(config.env.kwargs, "env.kwargs")
    try:
        check_action_space(algo, env.action_space, config.env.id)
        policy_spec(algo, config.algo.policy, env.observation_space, config.algo.policy_kwargs,
                    config.algo.extractor_kwargs)
        names = [metric_names(env, config.eval.seed)]
    finally:
        env.close()
    for kw in {json.dumps(k, sort_keys=True, default=str): k
               for k in episode_kwargs(config.eval_env_kwargs(), config.eval.episodes)}.values():
        env = made(kw, "eval.env_kwargs / eval.suite")
        try:
            names.append(metric_names(env, config.eval.seed))
        finally:
            env.close()
    check_metrics(config, None if None in names else {n for part in names for n in part})
    baseline_names(config)
    if config.pretrain.expert:
        from .imitation import expert_factory

        try:
            expert_factory(config.env.id, config.pretrain.expert)(**config.pretrain.expert_kwargs)
        except (TypeError, ValueError) as exc:     # unknown or bad kwarg (e.g. CP-SAT's scope)
            raise ConfigError(f"pretrain.expert_kwargs {config.pretrain.expert_kwargs!r}: {exc}") from None
    if config.eval.reference is not None and config.eval.reference not in baseline_names(config):
        raise ConfigError(f"eval.reference={config.eval.reference!r} is not among the evaluated baselines "
                          f"{baseline_names(config)}")


def run(config: Config, resume_dir: Path | None = None, log=print) -> dict[int, dict]:
    from .evaluation import format_table, summarise
    from .statistics import format_comparison

    if resume_dir is not None:
        seeds = [int(resume_dir.name.split("_", 1)[1])]
    else:
        seeds = list(config.train.seeds)
    all_results = {}
    for seed in seeds:
        all_results[seed] = train_seed(config, seed, resume=resume_dir is not None, log=log)
    # one table: the policy of every seed and the baselines (same evaluation episodes)
    merged = {}
    for seed, res in all_results.items():
        merged[f"policy (seed {seed})" if len(seeds) > 1 else "policy"] = res["policy"]
    first = all_results[seeds[0]]
    merged.update({k: v for k, v in first.items() if k != "policy"})
    summary = _table_columns(config, summarise(merged, config.eval.reference, config.eval.gap_metrics))
    env_kw = config.eval_env_kwargs()
    log("")
    log(format_table(summary, title=f"{config.experiment}: trained policy vs baselines on {config.env.id} "
                                    f"({config.eval.episodes} seeded eval episodes, mean per metric)"))
    if config.eval.reference and config.eval.gap_metrics:
        log(f"\ngap = (value - {config.eval.reference}) / {config.eval.reference}, averaged over episodes")
    if isinstance(env_kw, list):
        log(f"eval env kwargs: {json.dumps({**config.env.kwargs, **config.eval.env_kwargs}, default=str)}; "
            f"per-episode suite: {json.dumps(config.eval.suite, default=str)}")
    else:
        log(f"eval env kwargs: {json.dumps(env_kw, default=str)}")
    cmp = seeds_comparison(config, [all_results[s] for s in seeds])
    title = (f"{config.experiment}: {len(seeds)} seed(s) x {config.eval.episodes} eval episodes, "
             f"mean and IQM with {round(100 * cmp.confidence)}% CIs")
    text = format_comparison(cmp, title=title)
    log("")
    log(text)
    if resume_dir is None:      # a resumed run is one seed of the experiment: its summary stays as it was
        from .files import write_atomic

        folder = Path(config.train.run_dir) / config.experiment
        write_atomic(folder / "summary.md", text + "\n")
        write_atomic(folder / "summary.json", json.dumps({"seeds": seeds, **cmp.to_json()}, indent=1))
    return all_results


def seed_metrics(config: Config) -> list[str]:
    """Metrics of the confidence-interval tables: ``eval.metrics``, else the objective and the gap metrics."""
    out = list(config.eval.metrics) or [config.eval.objective] + list(config.eval.gap_metrics)
    return list(dict.fromkeys(out))


def seeds_comparison(config: Config, per_seed: list[dict]):
    """Mean / IQM intervals and the probability of improvement of the policy over the best baseline,
    from the results ``{"policy": metrics, <baseline>: metrics}`` of seeds on the same eval episodes."""
    from .statistics import compare

    baselines = [k for k in per_seed[0] if k != "policy"]
    results = {"policy": [r["policy"] for r in per_seed], **{b: [per_seed[0][b]] for b in baselines}}
    return compare(results, seed_metrics(config), ["policy"], baselines, objective=config.eval.objective,
                   higher_is_better=not config.eval.minimise, reference=config.eval.reference,
                   gap_metrics=config.eval.gap_metrics if config.eval.reference else (),
                   reps=config.eval.bootstrap_reps)


def parse_args(argv=None, prog=None):
    p = argparse.ArgumentParser(
        prog=prog, description="Train an rlsys experiment: python train.py (or rlsys train) [--config FILE_OR_NAME] "
                               "[key=value ...]",
        epilog="Overrides are dotted config keys with YAML values, e.g. train.total_timesteps=20000 "
               "train.seeds=[0,1,2] algo.kwargs.learning_rate=1e-3 env.kwargs.max_jobs=10")
    p.add_argument("--config", default=None,
                   help="YAML config file, or the name of a shipped config (rlsys list shows them; default: "
                        "default, i.e. configs/default.yaml)")
    p.add_argument("--resume", default=None, metavar="RUN_DIR", nargs="?", const=True,
                   help="continue runs/<experiment>/seed_<s> from its last checkpoint (its config.yaml is used); "
                        "with --sweep (no RUN_DIR): continue the sweep's unfinished trials")
    p.add_argument("--sweep", default=None, metavar="SWEEP_FILE",
                   help="run a grid or search of this config as Ray Tune trials (a file, or the name of a shipped "
                        "sweep of configs/sweeps/, e.g. smoke; docs/sweeps.md; "
                        'needs pip install -e ".[distributed]")')
    p.add_argument("--address", default=None,
                   help="with --sweep: an existing Ray cluster (ray://host:10001 or host:port; default $RAY_ADDRESS, "
                        "else a local Ray)")
    p.add_argument("overrides", nargs="*", help="dotted.key=value overrides")
    return p.parse_args(argv)


def _is_algo_kwargs_key(key: str) -> bool:
    return key == "algo.kwargs" or key.startswith("algo.kwargs.")


def with_algo_kwargs(model, kwargs: dict, venv, device: str):
    """``model`` reloaded with the hyperparameters ``kwargs`` (SB3 ``custom_objects``), e.g. the
    PPO settings of a fine-tuning that starts from a pretrained (cloned) policy."""
    import io

    unknown = [k for k in kwargs if not hasattr(model, k)]
    if unknown:
        raise ConfigError(f"algo.kwargs {', '.join(unknown)} cannot be applied to a saved {type(model).__name__} "
                          f"(not one of its saved hyperparameters); start a new run instead")
    buf = io.BytesIO()
    model.save(buf)
    buf.seek(0)
    out = type(model).load(buf, env=venv, device=device, custom_objects=dict(kwargs))
    if hasattr(model, "rlsys_env"):
        out.rlsys_env = model.rlsys_env
    return out


def main(argv=None, prog=None) -> int:
    """The one training entry point: ``python train.py``, ``rlsys train`` and ``python -m
    rlsys_agents.training`` all call it (``prog``: the command name their help shows)."""
    if hasattr(sys.stdout, "reconfigure"):  # progress lines appear at once even when redirected to a file
        sys.stdout.reconfigure(line_buffering=True)
    args = parse_args(argv, prog)
    if args.sweep:
        from .sweep import main_sweep

        return main_sweep(args)
    if args.resume is True:
        raise SystemExit("--resume needs a run folder (runs/<experiment>/seed_<s>), or --sweep SWEEP_FILE")
    if args.address:
        raise SystemExit("--address is for --sweep")
    try:
        if args.resume:
            resume_dir = Path(args.resume)
            cfg = resume_dir / "config.yaml"
            if not cfg.is_file():
                raise ConfigError(f"--resume {resume_dir}: no config.yaml there (not a run folder)")
            if not resume_dir.name.startswith("seed_"):
                raise ConfigError(f"--resume needs a runs/<experiment>/seed_<s> folder, got {resume_dir}")
            keys = [o.split("=", 1)[0] for o in args.overrides]
            frozen = [k for k in keys if k.split(".")[0] in ("algo", "pretrain") and k != "pretrain.dagger_rounds"
                      and not _is_algo_kwargs_key(k)]
            if frozen:
                raise ConfigError(f"--resume continues the checkpoint with its saved algorithm, pretraining and "
                                  f"hyperparameters, so {', '.join(frozen)} cannot be overridden (only "
                                  f"pretrain.dagger_rounds can be raised, and algo.kwargs changed before RL "
                                  f"starts); start a new run instead")
            config, saved = load_config(cfg, args.overrides), load_config(cfg)
            if config.algo.kwargs != saved.algo.kwargs:
                from .callbacks import latest_checkpoint

                found = latest_checkpoint(resume_dir / "checkpoints")
                if not config.pretrain.expert or (found is not None and found[1] > 0):
                    why = (f"has RL checkpoints ({found[0].name})" if config.pretrain.expert
                           else "has no pretraining")
                    raise ConfigError(f"--resume can change algo.kwargs only before RL starts (after a pretraining); "
                                      f"{resume_dir} {why}, so start a new run instead")
            saved_rounds = saved.pretrain.dagger_rounds
            if config.pretrain.dagger_rounds < saved_rounds:
                raise ConfigError(f"--resume can raise pretrain.dagger_rounds (adding DAgger rounds), not lower it: "
                                  f"the run has {saved_rounds}, got {config.pretrain.dagger_rounds}")
            # the run folder is where it is now, even if runs/ moved
            config.train.run_dir = str(resume_dir.parent.parent)
            config.experiment = resume_dir.parent.name
        else:
            resume_dir = None
            path = args.config or "default"     # the default experiment: configs/default.yaml, shipped
            config = load_config(path, args.overrides)
        preflight(config)
    except ValueError as exc:  # ConfigError and the registry's unknown env ID
        raise SystemExit(f"config error: {exc}") from None
    try:
        run(config, resume_dir)
    except (ConfigError, TypeError) as exc:
        raise SystemExit(f"config error: {exc}") from None
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main(prog="python -m rlsys_agents.training"))
