"""Benchmarks of ``rlsys/TaskAllocation-v0``; prints markdown tables.

(a) quality per scenario (two-stage mode): total net value of every baseline (random, sequential,
greedy, ga, cpsat = the per-epoch optimum) and of the trained checkpoints (``--checkpoint
SCENARIO=PATH``, default: the shipped ``taskalloc_rbf_bc.zip`` on rbf, ``taskalloc_material_bc.zip``
on material, ``taskalloc_electric_bc.zip`` on electric and ``taskalloc_almighty_ppo.zip`` on
almighty), mean +- std over seeded episodes, with the wall time
per decision (env step) and per decision epoch; (b) zero-shot: the checkpoint of
``--zero-shot`` (default electric) on twice the entities, tasks and slots, unchanged;
(c) throughput: steps/s of random masked play per scenario and mode.

    python benchmarks/bench_taskalloc.py --quick     # a few minutes
    python benchmarks/bench_taskalloc.py             # the published tables (about an hour on 2 shared cores)
    python benchmarks/bench_taskalloc.py --only a --scenarios rbf --cache /tmp/taskalloc.json

``--cache FILE.json`` keeps the baselines' results, so a rerun (e.g. with another checkpoint)
reuses them.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_common import add_out_option, table, tee_stdout  # noqa: E402  (this folder: the script's own)

from rlsys_envs.core import play_episode  # noqa: E402
from rlsys_envs.taskalloc.baselines import BASELINES, RandomPolicy  # noqa: E402
from rlsys_envs.taskalloc.env import TaskAllocationEnv  # noqa: E402
from rlsys_envs.taskalloc.generator import SCENARIOS  # noqa: E402

ENV_ID = "rlsys/TaskAllocation-v0"

# The runs of the published tables (``python benchmarks/report.py`` runs each; see its docstring).
PUBLISHED = [
    {"args": "",
     "about": "Two-stage mode, seeded episodes 10000.. of the same instances for every policy. `cpsat` is the "
              "exact one-step allocation of every decision epoch (one worker, fixed seed, at most 3 CP-SAT "
              "deterministic work units per epoch, so the same figures on every machine): on the dynamic "
              "scenarios a per-epoch optimum, not the optimum of the episode. The shipped checkpoints play on "
              "RBF-like (`taskalloc_rbf_bc.zip`, with pairwise features, cloned from CP-SAT with deferral, "
              "then PPO), "
              "Material (`taskalloc_material_bc.zip`, cloned from CP-SAT; like ga and cpsat, on the first 10 "
              "episodes), "
              "Electric (`taskalloc_electric_bc.zip`, cloned from CP-SAT) and Almighty "
              "(`taskalloc_almighty_ppo.zip`); the zero-shot table plays the Electric one on twice the "
              "entities, tasks and slots, unchanged."},
]
NAMES = ["random", "sequential", "greedy", "ga", "cpsat"]
ROOT = Path(__file__).resolve().parents[1]
DEFAULT_CHECKPOINTS = [f"rbf={ROOT / 'agents/checkpoints/taskalloc_rbf_bc.zip'}",
                       f"material={ROOT / 'agents/checkpoints/taskalloc_material_bc.zip'}",
                       f"electric={ROOT / 'agents/checkpoints/taskalloc_electric_bc.zip'}",
                       f"almighty={ROOT / 'agents/checkpoints/taskalloc_almighty_ppo.zip'}"]


def _policy(name, ckpt, kwargs):
    if name == "policy":
        from rlsys_agents.evaluation import load_policy  # lazy: torch only when asked
        return load_policy(ckpt, ENV_ID, kwargs, deterministic=True)
    return BASELINES[name]()


CACHE: dict = {}
CACHE_PATH: list = []


def evaluate(kwargs, names, episodes, seed, ckpt=None):
    """{name: dict of per-episode lists} over ``episodes`` seeded episodes (baselines' results are
    kept in ``--cache FILE.json`` when given, so a rerun with a checkpoint reuses them)."""
    env = TaskAllocationEnv(**kwargs)
    out = {}
    for name in names:
        key = json.dumps([kwargs, name, episodes, seed], sort_keys=True)
        if name != "policy" and key in CACHE:
            out[name] = {**CACHE[key], "statuses": Counter(CACHE[key]["statuses"])}
            continue
        policy = _policy(name, ckpt, kwargs)
        vals, steps, epochs, wall, statuses = [], 0, 0, 0.0, Counter()
        for i in range(episodes):
            if hasattr(policy, "statuses"):
                policy.statuses = []
            t0 = time.perf_counter()
            ep = play_episode(env, policy, seed + i)
            wall += time.perf_counter() - t0
            vals.append(ep.metrics["total_net_value"])
            steps += ep.steps
            epochs += int(ep.metrics["epochs"])
            statuses.update(getattr(policy, "statuses", []))
            completed = ep.metrics["tasks_completed"]
        out[name] = {"value": vals, "ms_step": 1000 * wall / max(steps, 1), "ms_epoch": 1000 * wall / max(epochs, 1),
                     "completed": completed, "statuses": statuses}
        if name != "policy":
            CACHE[key] = {**out[name], "statuses": dict(statuses)}
            if CACHE_PATH:
                Path(CACHE_PATH[0]).write_text(json.dumps(CACHE))
    return out


def quality_table(title, results, reference="cpsat"):
    ref = np.asarray(results[reference]["value"]) if reference in results else None
    rows = []
    for name, r in results.items():
        v = np.asarray(r["value"])
        k = min(len(v), len(ref)) if ref is not None else 0
        gap = "-" if ref is None else f"{100 * np.mean((v[:k] - ref[:k]) / np.maximum(np.abs(ref[:k]), 1e-9)):+.1f}%"
        proven = ""
        if r["statuses"]:
            proven = f"{r['statuses'].get('OPTIMAL', 0)}/{sum(r['statuses'].values())} epochs proven"
        rows.append([name, f"{v.mean():.2f} +- {v.std():.2f}", gap, f"{r['ms_step']:.2f}", f"{r['ms_epoch']:.1f}",
                     proven])
    return f"### {title}\n\n" + table(["policy", "total net value (mean +- std)", f"vs {reference}",
                                       "ms / decision", "ms / epoch", "CP-SAT status"], rows)


def bench_quality(args):
    parts = []
    for scenario in args.scenarios:
        names = list(NAMES)
        ckpt = args.checkpoints.get(scenario)
        if ckpt:
            names.append("policy")
        n = 1 if scenario == "almighty" else args.episodes
        slow = n if scenario != "material" else min(n, args.expensive_episodes)
        kwargs = {"scenario": scenario}
        # the checkpoint plays the episodes of ga and cpsat, so that its mean compares with theirs
        compared = ("ga", "cpsat", "policy")
        res = evaluate(kwargs, [x for x in names if x not in compared], n, args.seed, ckpt)
        res.update(evaluate(kwargs, [x for x in names if x in compared], slow, args.seed, ckpt))
        which = f"{n} seeded episodes (seeds {args.seed}..{args.seed + n - 1})"
        if slow < n:
            which += (f"; ga, cpsat and the checkpoint (policy) on the first {slow} (their gap column compares "
                      "those episodes only)")
        parts.append(quality_table(f"(a) {scenario}: {which}, two-stage mode", res))
        if "policy" in res and "ga" in res:
            parts.append(paired_line(res["policy"]["value"], res["ga"]["value"], "ga"))
    return "\n\n".join(parts)


def paired_line(policy, other, name: str) -> str:
    """The checkpoint minus ``name`` on the same episodes: mean difference with its 95% bootstrap
    interval over episodes (``rlsys_agents.statistics``), and the episodes the checkpoint wins."""
    from rlsys_agents.statistics import mean_interval   # lazy, as the checkpoint's torch

    k = min(len(policy), len(other))
    diff = np.asarray(policy[:k], float) - np.asarray(other[:k], float)
    ahead = f"the policy is ahead on {int((diff > 0).sum())} of {k}, level on {int((diff == 0).sum())}."
    if k < 2:                       # one episode (a deterministic scenario such as Almighty): no interval
        return f"policy - {name} on the same {k} episode: {diff.sum():+.2f} net value; {ahead}"
    ci = mean_interval(diff)
    return (f"policy - {name}, paired on the same {k} episodes: {ci.point:+.2f} net value per episode "
            f"(95% bootstrap CI [{ci.low:+.2f}, {ci.high:+.2f}]); {ahead}")


def bench_zero_shot(args):
    scenario = args.zero_shot
    sizes = SCENARIOS[scenario]
    kwargs = {"scenario": scenario, "n_entities": 2 * sizes["n_entities"],
              "n_tasks": 2 * sizes["n_tasks"], "n_slots": 2 * sizes["n_slots"]}
    ckpt = args.checkpoints.get(scenario)
    names = ["random", "sequential", "greedy", "ga"] + (["policy"] if ckpt else [])
    res = evaluate(kwargs, names, args.zero_shot_episodes, args.seed, ckpt)
    return quality_table(f"(b) zero-shot: {scenario} with 2x entities / tasks / slots "
                         f"({kwargs['n_entities']}, {kwargs['n_tasks']}, {kwargs['n_slots']}), "
                         f"{args.zero_shot_episodes} episodes; the checkpoint unchanged", res, reference="greedy")


def bench_throughput(args):
    secs = 2.0 if args.quick else 6.0
    rows = []
    for scenario in ["rbf", "material", "electric", "almighty"]:
        for mode in ["two_stage", "sequential"]:
            env, policy = TaskAllocationEnv(scenario=scenario, mode=mode), RandomPolicy()
            steps = episodes = 0
            t0, c0 = time.perf_counter(), time.process_time()
            while time.perf_counter() - t0 < secs:
                obs, info = env.reset(seed=episodes)
                policy.reset(env, episodes)
                done = False
                while not done:
                    obs, r, term, trunc, info = env.step(policy.act(env, obs, info))
                    steps += 1
                    done = term or trunc
                episodes += 1
            dt, cpu = time.perf_counter() - t0, time.process_time() - c0
            rows.append([scenario, mode, f"{steps / dt:,.0f}", f"{steps / max(cpu, 1e-9):,.0f}",
                         f"{steps / episodes:.0f}"])
    return (f"### (c) Throughput: uniformly random legal actions (the `random` baseline), one process, {secs:.0f} s "
            "each, episode resets included\n\n"
            + table(["scenario", "mode", "steps/s", "steps per CPU-s", "steps/episode"], rows))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="3 episodes per scenario, short throughput runs")
    ap.add_argument("--episodes", type=int, default=None, help="seeded episodes per scenario (default 20)")
    ap.add_argument("--seed", type=int, default=10_000)
    ap.add_argument("--expensive-episodes", type=int, default=10,
                    help="episodes of ga and cpsat on material (default 10; rbf always gets --episodes)")
    ap.add_argument("--scenarios", default=",".join(SCENARIOS), help="comma-separated scenarios of (a)")
    ap.add_argument("--checkpoint", action="append", default=None, metavar="SCENARIO=PATH",
                    help="a trained checkpoint (.zip) and the scenario it plays (repeatable; default: the shipped "
                         "ones; 'none' for no checkpoint)")
    ap.add_argument("--zero-shot", default="electric", choices=list(SCENARIOS),
                    help="scenario of (b): its checkpoint on twice the entities, tasks and slots")
    ap.add_argument("--only", default="abc", help="sections to run, e.g. 'ac'")
    ap.add_argument("--cache", default=None, metavar="FILE.json", help="keep / reuse the baselines' results here")
    add_out_option(ap)
    args = ap.parse_args(argv)
    args.episodes = args.episodes or (3 if args.quick else 20)
    args.zero_shot_episodes = args.episodes
    args.checkpoints = {}
    for item in args.checkpoint if args.checkpoint is not None else DEFAULT_CHECKPOINTS:
        if item == "none":
            continue
        scenario, _, path = item.partition("=")
        if scenario not in SCENARIOS or not path:
            ap.error(f"--checkpoint takes SCENARIO=PATH with a scenario of {', '.join(SCENARIOS)}; got {item!r}")
        if Path(path).is_file():
            args.checkpoints[scenario] = path
        elif args.checkpoint is not None:
            ap.error(f"--checkpoint: {path} does not exist")
    args.scenarios = [x for x in args.scenarios.split(",") if x]
    unknown = [x for x in args.scenarios if x not in SCENARIOS]
    if unknown:
        ap.error(f"unknown scenario(s) {unknown}; known: {', '.join(SCENARIOS)}")
    args.checkpoint_kwargs = {}
    import torch
    torch.set_num_threads(1)
    if args.cache:
        CACHE_PATH.append(args.cache)
        if Path(args.cache).is_file():
            CACHE.update(json.loads(Path(args.cache).read_text()))
    run(args)


def run(args):
    with tee_stdout(args.out):
        print("## Task allocation\n")
        if "a" in args.only:
            print(bench_quality(args) + "\n")
        if "b" in args.only:
            print(bench_zero_shot(args) + "\n")
        if "c" in args.only:
            print(bench_throughput(args) + "\n")


if __name__ == "__main__":
    main()
