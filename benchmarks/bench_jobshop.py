"""Benchmarks of ``rlsys/JobShop-v0``; prints markdown tables.

(a) CP-SAT on ft06 / ft10 (60 s, 2 workers); (b) throughput on ta01 under random legal actions:
this env with flat and with graph observations vs the ``JSSEnv`` package's ``jss-v1``;
(c) quality on ta01-ta10: gap to the optimum of every dispatching rule under both candidate
rules; (d) the ISBJSSP (blocking + swaps) at shutdown probabilities 0 / 0.05 / 0.1: mean makespan
per rule over seeded episodes on ta01-ta10; (e) the default experiment: ``python train.py`` (the
shipped ``configs/default.yaml``) over ``--train-seeds``, in a temporary run folder, and its tables
(per seed and over seeds, with confidence intervals). ``--checkpoint PATH`` adds a trained policy (loaded
with ``rlsys_agents.evaluation.load_policy``) as rows of (c) (greedy, and best of ``--best-of`` K sampled
episodes) and of (d) (``--isbjssp-checkpoint`` gives (d) its own policy); ``--sets`` runs (c) on
other instance ranges (e.g. ``ta21-ta30``), ``--episodes-d`` sets the episodes per instance in (d).

    python benchmarks/bench_jobshop.py            # full (about 6 minutes on 2 shared cores)
    python benchmarks/bench_jobshop.py --quick    # short run
    python benchmarks/bench_jobshop.py --only cd --checkpoint agents/checkpoints/jobshop_gnn_ppo.zip \
        --isbjssp-checkpoint agents/checkpoints/jobshop_isbjssp_gnn_ppo.zip --sets ta01-ta10,ta21-ta30 \
        --episodes-d 20
    python benchmarks/bench_jobshop.py --only e --train-seeds 0,1,2   # the default experiment, 3 seeds
"""
from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_common import add_out_option, default_figure, run_sections, table, tee_stdout  # noqa: E402  (this folder: the script's own)

from rlsys_envs.core import best_of_k, episode_key, play_episode  # noqa: E402
from rlsys_envs.jobshop.baselines import BASELINES, RULES, solve_cpsat  # noqa: E402
from rlsys_envs.jobshop.env import JobShopEnv  # noqa: E402
from rlsys_envs.jobshop.generator import load_benchmark, write_standard  # noqa: E402

ENV_ID = "rlsys/JobShop-v0"

# The runs of the published tables (``python benchmarks/report.py`` runs each; see its docstring).
PUBLISHED = [
    {"args": "--only e --train-seeds 0,1,2",
     "about": "The default experiment, as a user runs it (`python train.py`, `configs/default.yaml`: MaskablePPO, "
              "row-pointer policy, flat observation, random 6x6..10x10 instances) for "
              "three training seeds, then the tables it prints. Training is deterministic on one machine; "
              "floating-point differences between machines part the curves after the first updates, so read "
              "the policy rows as a range over seeds. Baselines are deterministic (CP-SAT: one worker, seed 0, "
              "deterministic time limit)."},
    {"args": "--only ab",
     "about": "(a) CP-SAT on the classic ft06 / ft10 (60 s wall clock, 2 workers); (b) steps per second of "
              "random legal play on ta01, flat and graph observations."},
    {"args": "--only c --checkpoint agents/checkpoints/jobshop_gnn_ppo.zip --sets ta01-ta10,ta21-ta30",
     "about": "Classic JSSP on the Taillard instances (gap to the best known makespan): every dispatching rule "
              "under both candidate rules, and the shipped GNN policy (trained on random 6x6..15x15 "
              "instances, never on these), greedy and best of 16 sampled episodes."},
    {"args": "--only d --isbjssp-checkpoint agents/checkpoints/jobshop_isbjssp_gnn_ppo.zip --episodes-d 20",
     "about": "ISBJSSP (blocking buffers, swaps, machine shutdowns) at three shutdown probabilities: mean "
              "makespan of each rule and of the shipped ISBJSSP policy over seeded episodes on ta01-ta10."},
]


# ------------------------------------------------------------------------------ (a) CP-SAT
def bench_cpsat(quick):
    rows = []
    for name in ["ft06", "ft10"]:
        inst = load_benchmark(name)
        limit = 10 if quick else 60
        res = solve_cpsat(inst, time_limit=limit, workers=2)
        rows.append([name, f"{inst.n_jobs}x{inst.n_machines}", int(inst.optimum), res["makespan"], res["status"],
                     f"{res['wall_s']:.1f}", limit])
    return "### (a) CP-SAT reference (2 workers)\n\n" + table(
        ["instance", "size", "optimum", "CP-SAT makespan", "status", "time s", "limit s"], rows)


# --------------------------------------------------------------------------- (b) throughput
def _loop(reset, step, mask_of, seconds, seed=0):
    rng = np.random.default_rng(seed)
    steps = episodes = 0
    t0 = time.perf_counter()
    c0 = time.process_time()
    while time.perf_counter() - t0 < seconds:
        obs, info = reset(episodes)
        done = False
        while not done:
            legal = np.flatnonzero(mask_of(obs, info))
            a = int(legal[int(rng.random() * len(legal))])
            obs, r, term, trunc, info = step(a)
            steps += 1
            done = term or trunc
        episodes += 1
    dt = time.perf_counter() - t0
    cpu = time.process_time() - c0
    return steps / dt, episodes / dt, steps / max(episodes, 1), steps / max(cpu, 1e-9)


def bench_throughput(quick):
    secs = 3 if quick else 10
    inst = load_benchmark("ta01")
    results = []
    for kind in ["flat", "graph"]:
        env = JobShopEnv(instance="ta01", observation=kind)
        sps, eps, spe, cps = _loop(lambda s: env.reset(seed=s), env.step, lambda o, i: i["action_mask"], secs)
        results.append((f"rlsys/JobShop-v0 ({kind} obs)", sps, eps, spe, cps))
    jss_note = ""
    try:
        import gymnasium as gym
        import JSSEnv  # noqa: F401  (registers jss-v1)

        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "ta01")
            write_standard(inst, path)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                env = gym.make("jss-v1", env_config={"instance_path": path}, disable_env_checker=True).unwrapped
                # JSSEnv 1.1 keeps the old reset() signature (no seed, returns the observation only)
                sps, eps, spe, cps = _loop(lambda s: (env.reset(), {}), env.step, lambda o, i: o["action_mask"], secs)
        results.append(("JSSEnv jss-v1 (its obs)", sps, eps, spe, cps))
    except Exception as exc:  # report why rather than fail the whole benchmark
        jss_note = f"\n\nJSSEnv could not be run: {type(exc).__name__}: {exc}"
    base = next((r for r in results if r[0].startswith("JSSEnv")), None)
    rows = []
    for name, sps, eps, spe, cps in results:
        ratio = f"{sps / base[1]:.1f}x" if base else "n/a"
        eratio = f"{eps / base[2]:.1f}x" if base else "n/a"
        rows.append([name, f"{sps:,.0f}", f"{cps:,.0f}", ratio, f"{spe:.0f}", f"{eps:.1f}", eratio])
    return (f"### (b) Throughput on ta01 (15x15), uniformly random legal actions, one process, {secs} s each\n\n"
            + table(["env", "steps/s", "steps per CPU-s", "vs JSSEnv", "steps/episode", "episodes/s",
                     "episodes/s vs JSSEnv"], rows)
            + "\n\nOur env asks only when >= 2 operations can start (non-delay); JSSEnv asks at every legal "
              "allocation and has a no-op action, so it needs more steps per episode; episodes/s compares "
              "the work done. steps per CPU-s divides by the process's CPU time, which on a shared machine "
              "is closer to what one free core gives." + jss_note)


# ------------------------------------------------------------------------------ policies
class _Checkpoint:
    """A trained checkpoint, loaded once per env configuration (greedy or sampling)."""

    def __init__(self, path, extra_kwargs=None):
        self.path = path
        self.extra = dict(extra_kwargs or {})
        self.cache = {}

    def policy_for(self, kwargs, deterministic=True):
        key = (repr(sorted(kwargs.items())), deterministic)
        if key not in self.cache:
            from rlsys_agents.evaluation import load_policy  # lazy: torch only when asked
            self.cache[key] = load_policy(self.path, ENV_ID, kwargs, deterministic=deterministic)
        return self.cache[key]


def _mean_metric(kwargs, make_policy, instances, seeds, metric):
    vals = []
    for name in instances:
        env = JobShopEnv(instance=name, **kwargs)
        for s in seeds:
            info = play_episode(env, make_policy(), s).info
            vals.append(info["metrics"][metric])
    return float(np.mean(vals)), vals


def _best_of_k(kwargs, policy, instances, seeds, metric, k):
    """Mean over instances x seeds of the best ``metric`` among ``k`` sampled episodes.

    Sample ``j`` of (instance, seed ``s``) resets the env with ``s`` (same instance, same
    shutdown draws as the greedy run) and the sampling policy with ``1000 * s + j + 1`` (torch seed).
    """
    vals = []
    for name in instances:
        env = JobShopEnv(instance=name, **kwargs)
        for s in seeds:
            env.reset(seed=s)
            best, runs = best_of_k(env, [lambda: policy] * k, [1000 * s + j + 1 for j in range(k)], episode_key(metric))
            vals.append(runs[best].metrics[metric])
    return float(np.mean(vals)), vals


def _instances(spec):
    """'ta01-ta10' -> ['ta01', ..., 'ta10']; 'ft06' -> ['ft06']."""
    if "-" not in spec:
        return [spec]
    a, b = spec.split("-")
    prefix = a.rstrip("0123456789")
    width = len(a) - len(prefix)
    return [f"{prefix}{i:0{width}d}" for i in range(int(a[len(prefix):]), int(b[len(prefix):]) + 1)]


# ------------------------------------------------------------------------------ (c) quality
def bench_quality(quick, ckpt, instance_set="ta01-ta10", best_of=16):
    instances = _instances(instance_set)
    if quick:
        instances = instances[:3]
    rand_seeds = range(3 if quick else 10)
    cols = ["nondelay", "active"]
    names = list(RULES)
    if ckpt:
        names += ["policy (greedy)"] + ([f"policy (best of {best_of} sampled)"] if best_of else [])
    rows = []
    t_pol = {}
    for name in names:
        row = [name]
        for rule in cols:
            ts = time.perf_counter()
            if name.startswith("policy"):
                kw = {"rule": rule, "observation": "graph", **ckpt.extra}
                probe = {"instance": instances[0], **kw}
                if name == "policy (greedy)":
                    mean, _ = _mean_metric(kw, lambda: ckpt.policy_for(probe), instances, [0], "gap")
                else:
                    mean, _ = _best_of_k(kw, ckpt.policy_for(probe, deterministic=False), instances, [0], "gap",
                                         best_of)
                t_pol[(name, rule)] = time.perf_counter() - ts
            else:
                kw = {"rule": rule, "observation": "flat"}
                seeds = rand_seeds if name == "random" else [0]
                mean, _ = _mean_metric(kw, BASELINES[name], instances, seeds, "gap")
            row.append(f"{100 * mean:.1f}%")
        rows.append(row)
    title = (f"### (c) Mean gap to the optimum (or best known upper bound) on {instances[0]}-{instances[-1]} "
             f"(classic JSSP; random: mean of {len(rand_seeds)} seeds)")
    note = ""
    if ckpt:
        note = ("\n\nPolicy: " + str(ckpt.path) + (f", env kwargs {ckpt.extra}" if ckpt.extra else "")
                + "; wall time of the policy cells: "
                + ", ".join(f"{n} {r} {t:.0f} s" for (n, r), t in t_pol.items()))
    return (title + "\n\n" + table(["rule", "non-delay candidates", "active (Giffler-Thompson) candidates"], rows)
            + note)


# ------------------------------------------------------------------------------- (d) ISBJSSP
def bench_isbjssp(quick, ckpt, episodes=5, best_of=0):
    instances = [f"ta{i:02d}" for i in range(1, 4 if quick else 11)]
    seeds = range(2 if quick else episodes)
    probs = [0.0, 0.05, 0.1]
    names = list(RULES)
    if ckpt:
        names += ["policy (greedy)"] + ([f"policy (best of {best_of} sampled)"] if best_of else [])
    rows = []
    swaps = {}
    t_pol = {}
    for name in names:
        row = [name]
        for p in probs:
            kw = {"blocking": True, "swap_allowed": True, "shutdown_prob": p}
            ts = time.perf_counter()
            if name.startswith("policy"):
                kw.update({"observation": "graph", **ckpt.extra})
                probe = {"instance": "ta01", **kw}
                if name == "policy (greedy)":
                    mean, _ = _mean_metric(kw, lambda: ckpt.policy_for(probe), instances, seeds, "makespan")
                else:
                    mean, _ = _best_of_k(kw, ckpt.policy_for(probe, deterministic=False), instances, seeds,
                                         "makespan", best_of)
                t_pol[(name, p)] = time.perf_counter() - ts
            else:
                kw["observation"] = "flat"
                mean, _ = _mean_metric(kw, BASELINES[name], instances, seeds, "makespan")
                if name == "MWKR":
                    swaps[p] = _mean_metric(kw, BASELINES[name], instances[:2], seeds, "swaps")[0]
            row.append(f"{mean:.0f}")
        rows.append(row)
    best = {}
    rule_rows = [r for r, n in zip(rows, names) if n in RULES]
    for i, p in enumerate(probs):
        vals = [float(r[i + 1]) for r in rule_rows]
        best[p] = list(RULES)[int(np.argmin(vals))]
    note = ""
    if ckpt:
        note = ("\n\nPolicy: " + str(ckpt.path) + (f", env kwargs {ckpt.extra}" if ckpt.extra else "")
                + "; wall time of the policy cells: "
                + ", ".join(f"{n} p={p} {t:.0f} s" for (n, p), t in t_pol.items()))
    return (f"### (d) ISBJSSP (blocking + swaps, non-delay): mean makespan on {instances[0]}-{instances[-1]}, "
            f"{len(seeds)} seeded episodes per instance (episode seed s: env.reset(seed=s), s = 0..{len(seeds) - 1}"
            f", the same shutdown draws for every policy only as long as their schedules agree)\n\n"
            + table(["rule"] + [f"shutdown_prob={p}" for p in probs], rows)
            + "\n\nBest rule per column: " + ", ".join(f"p={p}: {best[p]}" for p in probs)
            + ". Mean swaps per episode (MWKR, ta01-ta02): " + ", ".join(f"p={p}: {swaps[p]:.1f}" for p in probs)
            + note)


def save_ft06_gantt(path):
    """The optimal ft06 schedule (CP-SAT plan replayed under Giffler-Thompson candidates)."""
    from rlsys_envs.jobshop.render import save_gantt

    env = JobShopEnv(instance="ft06", rule="active")
    info = play_episode(env, BASELINES["cpsat"](), 0).info
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    save_gantt(env.schedule(), 6, 6, path, title=f"ft06, CP-SAT plan replayed by the env: makespan "
                                                   f"{info['metrics']['makespan']:.0f} (optimum 55)")
    print(f"saved {path}\n", file=sys.stderr)


def bench_default_experiment(quick, seeds):
    """(e) ``python train.py train.seeds=[...]`` on the shipped default config, in a temporary run folder:
    the per-seed table of the first seed and the over-seeds comparison (mean / IQM with 95 % CIs).
    ``quick``: 2,048 steps and 4 evaluation episodes, to check the path."""
    from rlsys_agents.config import load_config
    from rlsys_agents.training import run

    overrides = [f"train.seeds=[{','.join(map(str, seeds))}]", "train.progress_bar=false"]
    if quick:
        overrides += ["train.total_timesteps=2048", "eval.episodes=4", "eval.freq=0", "train.checkpoint_freq=0"]
    with tempfile.TemporaryDirectory(prefix="rlsys_bench_train_") as tmp:
        config = load_config("default", overrides + [f"train.run_dir={tmp}"])
        t0 = time.perf_counter()
        run(config, log=lambda *a, **k: print(*a, file=sys.stderr, **k))
        wall = time.perf_counter() - t0
        folder = Path(tmp) / config.experiment
        out = [f"### (e) The default experiment: `python train.py train.seeds=[{','.join(map(str, seeds))}]`"
               f"{' (quick: ' + ' '.join(overrides[2:]) + ')' if quick else ''}\n",
               f"{config.train.total_timesteps:,} steps per seed, {wall:.0f} s for {len(seeds)} seed(s) "
               f"(training and evaluation).\n"]
        for seed in seeds:
            out.append((folder / f"seed_{seed}" / "results.md").read_text().strip() + "\n")
        out.append((folder / "summary.md").read_text().strip())
    return "\n".join(out)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short run")
    ap.add_argument("--checkpoint", default=None,
                    help="trained policy (.zip) to add as rows of (c) (and of (d) unless --isbjssp-checkpoint)")
    ap.add_argument("--checkpoint-kwargs", default="{}", metavar="JSON",
                    help='env kwargs for the checkpoint rows, e.g. \'{"observation": "flat"}\' '
                         '(default: graph observation, default padding 20x20)')
    ap.add_argument("--isbjssp-checkpoint", default=None,
                    help="trained policy for the rows of (d) (default: --checkpoint)")
    ap.add_argument("--best-of", type=int, default=16, metavar="K",
                    help="also the best of K sampled episodes of the checkpoint in (c) (0: greedy only; default 16)")
    ap.add_argument("--best-of-d", type=int, default=0, metavar="K",
                    help="best of K sampled episodes of the checkpoint in (d) (default 0: greedy only)")
    ap.add_argument("--sets", default="ta01-ta10", metavar="SETS",
                    help="comma-separated instance ranges for (c), one table each (e.g. ta01-ta10,ta21-ta30)")
    ap.add_argument("--episodes-d", type=int, default=5, metavar="N",
                    help="seeded episodes per instance in (d) (default 5)")
    ap.add_argument("--train-seeds", default="0", metavar="SEEDS",
                    help="training seeds of (e), comma-separated (default 0)")
    ap.add_argument("--only", default="abcd", help="sections to run, e.g. 'bc' (e, the training run, only if named)")
    ap.add_argument("--gantt", default=None, metavar="PNG",
                    help="also save a Gantt chart of the CP-SAT plan of ft06 replayed through the env")
    add_out_option(ap, "the Gantt chart FILE_gantt.png")
    args = ap.parse_args(argv)
    if "a" in args.only:            # the Gantt chart belongs to the CP-SAT section
        default_figure(args, "gantt", "gantt")
    with tee_stdout(args.out):
        run(args)


def run(args):
    if args.gantt:
        save_ft06_gantt(args.gantt)
        if args.out:
            print(f"![ft06: the CP-SAT plan replayed by the env]({Path(args.gantt).name})\n")
    try:
        import torch
        torch.set_num_threads(1)
    except ImportError:
        pass
    import json
    extra = json.loads(args.checkpoint_kwargs)
    ckpt = _Checkpoint(args.checkpoint, extra) if args.checkpoint else None
    ckpt_d = _Checkpoint(args.isbjssp_checkpoint, extra) if args.isbjssp_checkpoint else ckpt
    t0 = time.perf_counter()
    print(f"## JobShop-v0 benchmark ({'quick' if args.quick else 'full'})\n")
    sections = [("a", lambda: bench_cpsat(args.quick)), ("b", lambda: bench_throughput(args.quick))]
    sections += [("c", lambda s=s: bench_quality(args.quick, ckpt, s, args.best_of)) for s in args.sets.split(",")]
    sections += [("d", lambda: bench_isbjssp(args.quick, ckpt_d, args.episodes_d, args.best_of_d))]
    sections += [("e", lambda: bench_default_experiment(args.quick, [int(x) for x in args.train_seeds.split(",")]))]
    run_sections(sections, args.only, t0)


if __name__ == "__main__":
    main()
