"""Diagnostics of a VM rescheduling policy cloned from CP-SAT; prints markdown tables.

``accuracy``: per step of cached CP-SAT demonstrations (a run's ``demonstrations.jsonl`` or
``dagger_<r>.jsonl``; only the records of the current expert version and the given env kwargs),
how often the policy's most likely legal action is one the expert accepts, per phase, and per
phase from migration ``--late`` on.

``regret``: roll the policy out on generated M/high snapshots and, at the given migration counts,
ask CP-SAT (``--time-limit`` s, 1 worker, greedy-hinted) for the best FR still reachable with the
migrations left. Where that stays at the optimum, the policy's moves so far lose nothing; the
migration where it rises is where the policy goes wrong.

    python benchmarks/vm_clone_diagnostics.py accuracy agents/checkpoints/vm_gnn_bc.zip \\
        runs/vm_gnn_bc/seed_0/demonstrations.jsonl --episodes 10
    python benchmarks/vm_clone_diagnostics.py regret agents/checkpoints/vm_gnn_bc.zip --seeds 0 \\
        --at 0 20 30 35 40 45 --time-limit 15
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_common import table  # noqa: E402  (this folder: the script's own)

ENV_ID = "rlsys/VMRescheduling-v0"
#: the env kwargs of configs/vm_gnn_bc.yaml
ENV_KWARGS = {"size": "M", "workload": "high", "mnl": 50, "allow_stop": False, "observation": "graph"}


def accuracy(args, env, policy) -> str:
    import torch
    from stable_baselines3.common.utils import obs_as_tensor

    from rlsys_agents.imitation import demonstrations_key

    key = demonstrations_key(ENV_ID, ENV_KWARGS, "cpsat", {"time_limit": args.time_limit_key})
    records = [r for r in map(json.loads, Path(args.demonstrations).read_text().splitlines()) if r.get("key") == key]
    if not records:
        raise SystemExit(f"{args.demonstrations}: no record of the current CP-SAT expert with {ENV_KWARGS} "
                         f"and time_limit {args.time_limit_key} (key {key})")
    base = env.unwrapped
    hits = np.zeros((2, 2, 2), np.int64)          # [late, phase, (steps, accepted)]
    for rec in records[-args.episodes:]:
        obs, _ = env.reset(seed=rec["seed"])
        for i, (a, accepted) in enumerate(zip(rec["actions"], rec["targets"])):
            if i >= rec.get("prefix", 0):
                mask = base.action_masks()
                with torch.no_grad():
                    logits = policy.model.policy.logits(obs_as_tensor({k: v[None] for k, v in obs.items()}, "cpu"))
                logits = logits[0].numpy()
                logits[~mask] = -np.inf
                late = int(base.migrations >= args.late)
                hits[late, base.phase, 0] += 1
                hits[late, base.phase, 1] += int(np.argmax(logits)) in accepted
            obs, _r, terminated, truncated, _i = env.step(a)
            if terminated or truncated:
                break
    rows = []
    for name, part in (("all steps", hits.sum(0)), (f"from migration {args.late}", hits[1])):
        rows.append([name] + [f"{part[p, 1] / max(part[p, 0], 1):.3f} ({part[p, 0]})" for p in (0, 1)])
    return (f"{len(records[-args.episodes:])} demonstrations of {args.demonstrations}: the policy's most likely legal "
            f"action is accepted\n\n" + table(["steps", "VM (phase 0)", "destination (phase 1)"], rows))


def regret(args, env, policy) -> str:
    from rlsys_envs.vm.exact import plan_cpsat

    base = env.unwrapped
    rows = []
    for seed in args.seeds:
        obs, info = env.reset(seed=seed)
        policy.reset(base, seed)
        row = {}
        while True:
            if base.phase == 0 and base.migrations in args.at and base.migrations not in row:
                res, _seq, _dropped = plan_cpsat(base.cluster, base.mnl - base.migrations, args.time_limit)
                row[base.migrations] = (base.cluster.fragment_rate(), res.fr)
            obs, _r, terminated, truncated, info = env.step(policy.act(base, obs, info))
            if terminated or truncated:
                break
        for k in sorted(row):
            rows.append([seed, k, f"{row[k][0]:.4f}", f"{row[k][1]:.4f}"])
        rows.append([seed, f"end ({int(info['metrics']['migrations'])})", f"{info['metrics']['fr_final']:.4f}", ""])
    return (f"policy rolled out; CP-SAT {args.time_limit:g} s from its state with the migrations left\n\n"
            + table(["seed", "after migrations", "policy FR", "best FR still reachable (CP-SAT)"], rows))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="what", required=True)
    a = sub.add_parser("accuracy", help="agreement with cached CP-SAT demonstrations")
    a.add_argument("checkpoint")
    a.add_argument("demonstrations")
    a.add_argument("--episodes", type=int, default=10, help="the last N records of the file")
    a.add_argument("--late", type=int, default=35, help="also report the steps from this migration on")
    a.add_argument("--time-limit-key", type=float, default=8, help="the expert's time_limit of the records")
    r = sub.add_parser("regret", help="best FR still reachable along the policy's rollout")
    r.add_argument("checkpoint")
    r.add_argument("--seeds", type=int, nargs="+", default=[0])
    r.add_argument("--at", type=int, nargs="+", default=[0, 20, 30, 35, 40, 45])
    r.add_argument("--time-limit", type=float, default=15.0)
    args = ap.parse_args(argv)

    import gymnasium as gym
    import torch

    import rlsys_envs  # noqa: F401
    from rlsys_agents.evaluation import load_policy

    torch.set_num_threads(1)
    env = gym.make(ENV_ID, **ENV_KWARGS)
    policy = load_policy(args.checkpoint, ENV_ID, ENV_KWARGS)
    print(accuracy(args, env, policy) if args.what == "accuracy" else regret(args, env, policy))


if __name__ == "__main__":
    main()
