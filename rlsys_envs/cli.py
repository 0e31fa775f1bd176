"""The ``rlsys`` command line: list environments, evaluate policies, benchmark, compare.

    rlsys list
    rlsys train [--config FILE_OR_NAME] [key=value ...]     (the same as python train.py)
    rlsys evaluate ENV_ID --policy NAME_OR_CHECKPOINT [--episodes N] [--seed S] [--env-kwargs JSON] [--json]
    rlsys bench ENV_ID [--env-kwargs JSON] [--seconds T] [--json]
    rlsys compare ENV_ID [--policies A B ...] [--episodes N] [--seed S] [--env-kwargs JSON] [--png PATH]
                  [--objective METRIC [--minimise]] [--reference B --gap M ...]

torch and stable-baselines3 are imported only when a checkpoint is loaded, so ``rlsys list`` and
baseline evaluations start fast. ``--env-kwargs`` is a JSON object of constructor arguments, or a
JSON list of objects cycled over the episodes (episode ``i`` uses item ``i % len``); for a checkpoint
it is laid over the env kwargs the checkpoint was evaluated on (``--replace-env-kwargs``: alone).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def _configs_by_env() -> dict[str, list[str]]:
    """Names of the shipped configs (``--config NAME``) by env ID (``rlsys_agents.shipped``: yaml only)."""
    from rlsys_agents.shipped import configs_by_env

    return configs_by_env()


def _shipped_checkpoint(name: str, env_id: str) -> str:
    """The path of the shipped checkpoint ``name`` (``jobshop_gnn_ppo``, from any directory), else
    ``name`` as given (a baseline, a file, or unknown: reported where it is loaded)."""
    from rlsys_agents.shipped import resolve_checkpoint

    from .registry import baselines

    try:
        if name in baselines(env_id):
            return name
    except ValueError:           # an unknown env ID: reported by the command
        return name
    return str(resolve_checkpoint(name))


def _env_kwargs(text: str | None):
    if not text:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise SystemExit(f"--env-kwargs is not valid JSON: {exc}") from None
    if not isinstance(value, (dict, list)):
        raise SystemExit("--env-kwargs must be a JSON object (or a list of objects)")
    return value


def _check_env_id(env_id: str) -> None:
    from .registry import get_entry

    try:
        get_entry(env_id)
    except ValueError as exc:
        raise SystemExit(str(exc)) from None


def _is_checkpoint(name: str) -> bool:
    return name.endswith(".zip") or Path(name).is_file() or Path(name + ".zip").is_file()


def _default_kwargs_for(policy: str, env_kwargs, env_id: str | None = None, replace: bool = False):
    """The env kwargs a checkpoint is evaluated on: those of the eval env of the run it came from
    (the environment record inside the zip, else the run folder's config.yaml) with ``--env-kwargs``
    laid over them (``merge_env_kwargs``); ``replace`` (``--replace-env-kwargs``): ``--env-kwargs`` alone.
    A baseline gets ``--env-kwargs`` as given."""
    if replace or not _is_checkpoint(policy):
        return env_kwargs
    from rlsys_agents.evaluation import checkpoint_env_kwargs, merge_env_kwargs

    path = policy if policy.endswith(".zip") or Path(policy).is_file() else policy + ".zip"
    return merge_env_kwargs(checkpoint_env_kwargs(path, env_id), env_kwargs)


def _load(policy: str, env_id: str, env_kwargs, sample: bool):
    from rlsys_agents.evaluation import episode_kwargs, load_policy

    first = episode_kwargs(env_kwargs, 1)[0]
    try:
        return load_policy(policy, env_id, first, deterministic=not sample)
    except (ValueError, FileNotFoundError) as exc:
        raise SystemExit(str(exc)) from None


def _evaluate(env_id, policy, episodes, seed, env_kwargs):
    from rlsys_agents.evaluation import evaluate

    try:
        return evaluate(env_id, policy, episodes, seed, env_kwargs)
    except (ValueError, TypeError) as exc:
        raise SystemExit(f"evaluation failed: {exc}") from None


# --------------------------------------------------------------------------------- commands
def cmd_list(args) -> int:
    from .registry import entries

    configs = _configs_by_env()
    rows = []
    for e in entries():                  # the built-in environments and any added with rlsys_envs.register
        try:
            from .registry import baselines

            names = ", ".join(baselines(e.id))
        except Exception as exc:  # an env still being written must not break the listing
            names = f"(unavailable: {type(exc).__name__})"
        try:
            from .registry import experts

            expert_names = list(experts(e.id))
        except Exception:  # as for baselines: never break the listing
            expert_names = []
        rows.append((e.id, names, ", ".join(configs.get(e.id, [])) or "-", e.summary, expert_names))
    from rlsys_agents import shipped

    if args.json:
        print(json.dumps([{"env_id": r[0], "baselines": r[1].split(", ") if not r[1].startswith("(") else [],
                           "configs": r[2].split(", ") if r[2] != "-" else [], "summary": r[3],
                           "experts": r[4]} for r in rows]))
        return 0
    for env_id, names, cfgs, summary, expert_names in rows:
        print(env_id)
        print(f"  {summary}")
        print(f"  baselines: {names}")
        if expert_names:
            print(f"  experts:   {', '.join(expert_names)} (behaviour cloning: config section pretrain)")
        print(f"  configs:   {cfgs}")
    print(f"\nconfigs (rlsys train --config NAME): {shipped.configs_dir()}")
    print(f"sweeps (rlsys train --sweep NAME):   {', '.join(shipped.sweep_names()) or '-'}")
    print(f"checkpoints (rlsys evaluate ENV_ID --policy NAME; notes: README.md there): {shipped.checkpoints_dir()}")
    import textwrap

    print(textwrap.fill(", ".join(shipped.checkpoint_names()) or "-", 110, initial_indent="  ",
                        subsequent_indent="  "))
    return 0


def cmd_evaluate(args) -> int:
    _check_env_id(args.env_id)
    env_kwargs = _default_kwargs_for(args.policy, _env_kwargs(args.env_kwargs), args.env_id, args.replace_env_kwargs)
    policy = _load(args.policy, args.env_id, env_kwargs, args.sample or args.best_of > 1)
    start = time.perf_counter()
    if args.best_of > 1:
        from rlsys_agents.evaluation import best_of_k

        try:
            res = best_of_k(args.env_id, lambda: policy, args.best_of, args.episodes, args.seed, args.metric,
                            minimise=not args.maximise, env_kwargs=env_kwargs)
        except (ValueError, KeyError) as exc:
            raise SystemExit(f"evaluation failed: {exc!r}") from None
    else:
        res = _evaluate(args.env_id, policy, args.episodes, args.seed, env_kwargs)
    seconds = time.perf_counter() - start
    if args.json:
        print(json.dumps({"env_id": args.env_id, "policy": args.policy, "episodes": args.episodes, "seed": args.seed,
                          "env_kwargs": env_kwargs or {},
                          "metrics": {k: {"values": v, "mean": sum(v) / len(v)} for k, v in res.items()}}))
        return 0
    from rlsys_agents.evaluation import format_table, summarise

    print(format_table(summarise({args.policy: res}),
                       title=f"{args.env_id}: {args.episodes} episodes, "
                             f"seeds {args.seed}..{args.seed + args.episodes - 1}"))
    print(f"\n{seconds:.2f} s")
    return 0


def cmd_bench(args) -> int:
    _check_env_id(args.env_id)
    import numpy as np

    from rlsys_agents.evaluation import episode_kwargs, make_env

    kwargs = episode_kwargs(_env_kwargs(args.env_kwargs), 1)[0]
    try:
        env = make_env(args.env_id, kwargs)
    except ValueError as exc:
        raise SystemExit(str(exc)) from None
    base = env.unwrapped
    rng = np.random.default_rng(args.seed)
    steps = episodes = 0
    env_time = 0.0
    seed = args.seed
    t = time.perf_counter()
    env.reset(seed=seed)
    env_time += time.perf_counter() - t
    wall = time.perf_counter()
    while time.perf_counter() - wall < args.seconds:
        mask = base.action_masks()
        space = base.action_space
        if hasattr(space, "n"):
            action = int(rng.choice(np.flatnonzero(mask)))
        else:
            action = space.sample()
        t = time.perf_counter()
        _, _, term, trunc, _ = env.step(action)
        steps += 1
        if term or trunc:
            episodes += 1
            seed += 1
            env.reset(seed=seed)
        env_time += time.perf_counter() - t
    env.close()
    out = {"env_id": args.env_id, "env_kwargs": kwargs, "steps": steps, "episodes": episodes,
           "env_seconds": env_time, "steps_per_s": steps / env_time if env_time else 0.0,
           "episodes_per_s": episodes / env_time if env_time else 0.0}
    if args.json:
        print(json.dumps(out))
    else:
        print("| env | kwargs | steps/s | episodes/s | steps | episodes |")
        print("|---|---|---|---|---|---|")
        print(f"| {args.env_id} | {json.dumps(kwargs)} | {out['steps_per_s']:.0f} | {out['episodes_per_s']:.2f} "
              f"| {steps} | {episodes} |")
        print("\nrandom masked actions; time of env.step/reset only (action sampling excluded)")
    return 0


def cmd_compare(args) -> int:
    _check_env_id(args.env_id)
    from . import baselines as all_baselines

    names = list(all_baselines(args.env_id)) if args.baselines is None else list(args.baselines)
    names += list(args.policies or [])
    env_kwargs = _env_kwargs(args.env_kwargs)
    for p in args.policies or []:        # every policy plays the first checkpoint's env (+ --env-kwargs)
        if _is_checkpoint(p):
            env_kwargs = _default_kwargs_for(p, env_kwargs, args.env_id, args.replace_env_kwargs)
            break
    results = {}
    for name in names:
        policy = _load(name, args.env_id, env_kwargs, sample=False)
        start = time.perf_counter()
        results[name] = _evaluate(args.env_id, policy, args.episodes, args.seed, env_kwargs)
        print(f"  {name}: {time.perf_counter() - start:.1f} s", file=sys.stderr)
    from rlsys_agents.evaluation import format_table, summarise
    from rlsys_agents.statistics import compare, format_comparison, plot_comparison

    summary = summarise(results, args.reference, args.gap or [])
    if args.metrics:
        summary = {k: {m: v for m, v in row.items() if m in args.metrics or
                       (m.startswith("gap_") and m[4:] in args.metrics)} for k, row in summary.items()}
    shown = (f"{len(env_kwargs)} per-episode env kwargs" if isinstance(env_kwargs, list)
             else f"env kwargs {json.dumps(env_kwargs or {})}")
    title = f"{args.env_id}: {args.episodes} episodes, seeds {args.seed}..{args.seed + args.episodes - 1}, {shown}"
    print(format_table(summary, title=title))
    if args.reference is not None and args.reference not in results:
        raise SystemExit(f"--reference {args.reference!r} is not among the compared policies {list(results)}")
    metrics = list(args.metrics or [args.objective] + list(args.gap or []))
    cmp = compare({name: [res] for name, res in results.items()}, list(dict.fromkeys(metrics)),
                  candidates=list(args.policies or []), baselines=[n for n in names if n not in (args.policies or [])],
                  objective=args.objective, higher_is_better=not args.minimise, reference=args.reference,
                  gap_metrics=args.gap or [], reps=args.reps)
    print()
    print(format_comparison(cmp, title=f"{args.episodes} episodes: mean and IQM with "
                                       f"{round(100 * cmp.confidence)}% CIs"))
    if args.png:
        plot_comparison(cmp, args.png, title, metrics)
        print(f"\nchart: {args.png}")
    return 0


def _report(argv: list[str]) -> int:
    """``rlsys report``: ``benchmarks/report.py`` of the source checkout this package is installed from
    (the benchmark scripts and the results page belong to the repository, not to the wheel)."""
    import importlib.util
    from pathlib import Path

    script = Path(__file__).resolve().parents[1] / "benchmarks" / "report.py"
    if not script.is_file():
        raise SystemExit(f"rlsys report runs the benchmark scripts of a source checkout ({script} is not there: "
                         "this package is installed from a wheel); clone the repository, install it with "
                         "pip install -e . and run rlsys report (or python benchmarks/report.py) there")
    spec = importlib.util.spec_from_file_location("rlsys_report", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return int(module.main(argv, prog="rlsys report") or 0)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rlsys",
                                description="rlsys environments: list, train, evaluate, bench, compare, report")
    sub = p.add_subparsers(dest="command", required=True)

    # `rlsys train ARGS` is `python train.py ARGS` (main() hands the arguments over before parsing)
    sub.add_parser("train", add_help=False, help="train an experiment, as python train.py (rlsys train --help)")
    # `rlsys report ARGS` is `python benchmarks/report.py ARGS` in a source checkout
    sub.add_parser("report", add_help=False,
                   help="run the benchmarks and write docs/results.md, as python benchmarks/report.py")

    s = sub.add_parser("list", help="environment IDs, their baselines and configs")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_list)

    s = sub.add_parser("evaluate", help="a baseline or a checkpoint on seeded episodes")
    s.add_argument("env_id")
    s.add_argument("--policy", required=True,
                   help="baseline name, checkpoint .zip, or shipped checkpoint name (see `rlsys list`)")
    s.add_argument("--episodes", type=int, default=10)
    s.add_argument("--seed", type=int, default=0, help="episode i uses env.reset(seed=SEED+i)")
    s.add_argument("--env-kwargs", default=None, help="JSON object (or list of objects, one per episode)")
    s.add_argument("--replace-env-kwargs", action="store_true",
                   help="use --env-kwargs alone, not laid over the env kwargs the checkpoint was evaluated on")
    s.add_argument("--sample", action="store_true", help="sample the checkpoint's actions instead of greedy")
    s.add_argument("--best-of", type=int, default=1, metavar="K",
                   help="sample K runs per episode and keep the best by --metric (implies --sample)")
    s.add_argument("--metric", default="makespan", help="metric for --best-of (default: makespan)")
    s.add_argument("--maximise", action="store_true", help="--best-of keeps the highest --metric")
    s.add_argument("--json", action="store_true", help="one JSON object on stdout")
    s.set_defaults(func=cmd_evaluate)

    s = sub.add_parser("bench", help="env steps/s and episodes/s under random masked actions")
    s.add_argument("env_id")
    s.add_argument("--env-kwargs", default=None)
    s.add_argument("--seconds", type=float, default=5.0)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=cmd_bench)

    s = sub.add_parser("compare", help="every baseline and the given checkpoints on the same episodes")
    s.add_argument("env_id")
    s.add_argument("--policies", nargs="*", default=[],
                   help="checkpoints, files or shipped names (or extra baseline names)")
    s.add_argument("--baselines", nargs="*", default=None, help="baselines to include (default: all)")
    s.add_argument("--episodes", type=int, default=10)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--env-kwargs", default=None)
    s.add_argument("--replace-env-kwargs", action="store_true",
                   help="use --env-kwargs alone, not laid over the env kwargs the checkpoint was evaluated on")
    s.add_argument("--metrics", nargs="*", default=None, help="metrics to show (default: all)")
    s.add_argument("--reference", default=None, help="baseline for gap columns, e.g. cpsat")
    s.add_argument("--gap", nargs="*", default=None, help="metrics to report a gap to --reference for")
    s.add_argument("--objective", default="return",
                   help="metric of the probability of improvement of --policies over the best baseline")
    s.add_argument("--minimise", action="store_true", help="lower --objective is better (e.g. makespan)")
    s.add_argument("--reps", type=int, default=10_000, help="bootstrap resamples per confidence interval")
    s.add_argument("--png", default=None,
                   help="write a chart of the means and IQMs with their CIs (and a panel per --gap metric) here")
    s.set_defaults(func=cmd_compare)
    return p


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["train"]:
        from rlsys_agents.training import main as train

        return int(train(argv[1:], prog="rlsys train") or 0)
    if argv[:1] == ["report"]:
        return _report(argv[1:])
    args = build_parser().parse_args(argv)
    if getattr(args, "policy", None) is not None:
        args.policy = _shipped_checkpoint(args.policy, args.env_id)
    if getattr(args, "policies", None):
        args.policies = [_shipped_checkpoint(p, args.env_id) for p in args.policies]
    if getattr(args, "episodes", 1) is not None and getattr(args, "episodes", 1) < 1:
        raise SystemExit("--episodes must be >= 1")
    if getattr(args, "reps", 100) < 100:
        raise SystemExit(f"--reps must be >= 100, got {args.reps}")
    return int(args.func(args) or 0)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
