"""Benchmark of the hybrid-storage environments (rlsys/HybridStorageParallel-v0 and its views).

    python benchmarks/bench_storage.py                 # full run (8 workloads x 3 configurations x 3 seeds)
    python benchmarks/bench_storage.py --quick         # a few minutes
    python benchmarks/bench_storage.py --placement-checkpoint agents/checkpoints/storage_placement_qrdqn.zip \
        --migration-checkpoint agents/checkpoints/storage_migration_ppo.zip --out storage_results.md

Tables (markdown, printed; ``--out FILE.md`` also writes them):

1. per configuration, every policy's mean request latency normalised to Fast-Only (the unbounded
   fast device) per workload, mean +- std over the seeds;
2. per configuration, the geometric means over workloads of mean latency, p99 latency and IOPS,
   each normalised to Fast-Only, evictions and migrations per 1,000 requests, and the change in
   mean latency against the best heuristic (CDE, HPS, LRU and their migration pairings) and the
   share of the gap from the best heuristic to the Oracle that a policy closes;
3. inference cost per decision (microseconds, wall clock, including the policy's feature access);
4. simulator throughput in requests per CPU-second on one core with random actions: the model
   alone, the parallel environment, the placement agent's single-agent view and the migration
   agent's (requests it plays per CPU-second).

Policies are played jointly (placement + migration) on the same seeded episodes; Fast-Only runs
on its bound system (``fast_capacity=1.0, initial_placement="fast_first"``) and the Oracle on
Belady's eviction (``eviction="belady"``). A placement checkpoint alone is the Sibyl-like agent
(no migration); with a migration checkpoint it is the two-agent (Harmonia-like) policy.
``--decomposition`` adds two rows that split the Oracle's margin: the Oracle's placement and
migration on the agents' system (LRU eviction) and LRU's placement on Belady's eviction. A
placement checkpoint plays on an environment with the observation kwargs of its env record
(``placement_features``). ``--png FILE`` saves the environment's picture of one episode of the last policy listed.
"""
from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench_common import table  # noqa: E402  (this folder: the script's own)
from rlsys_envs.core import Policy, RandomMaskedPolicy  # noqa: E402
from rlsys_envs.core.parallel import play_joint_episode  # noqa: E402
from rlsys_envs.storage import (HELD_OUT, HybridStorageEnv, HybridStorageMigrationEnv,  # noqa: E402
                                HybridStorageParallelEnv)
from rlsys_envs.storage.baselines import JOINT_BASELINES, MIGRATION_POLICIES, PLACEMENT_POLICIES, SYSTEM_OF  # noqa: E402

HEURISTICS = ("cde", "cde+hot_cold", "hps", "lru", "lru+hot_cold")
BASELINE_ROWS = ("slow_only", "fast_only") + HEURISTICS + ("oracle",)
FULL_WORKLOADS = HELD_OUT + ("zipf_oltp", "scan_hot", "phase_shift", "read_after_write")
QUICK_WORKLOADS = ("mixed_sizes", "hot_cold_split")


class Timed(Policy):
    """Wraps a policy and times its decisions (the migration agent's forced no-ops are not decisions)."""

    def __init__(self, inner: Policy, agent: str):
        self.inner, self.agent, self.name = inner, agent, getattr(inner, "name", agent)
        self.seconds, self.decisions = 0.0, 0

    def reset(self, env, seed=None):
        self.inner.reset(env, seed)

    def act(self, env, obs, info):
        if self.agent == "migration" and env.forced("migration"):
            return 0
        t = time.perf_counter()
        a = self.inner.act(env, obs, info)
        self.seconds += time.perf_counter() - t
        self.decisions += 1
        return a


_LOADED: dict = {}


def checkpoint_policy(path: str) -> Policy:
    """The greedy checkpoint (numpy copy of its MLP, the same actions as SB3's predict)."""
    from rlsys_agents.fast_inference import numpy_partner

    if path not in _LOADED:
        _LOADED[path] = numpy_partner(path)
    return _LOADED[path]()


def sb3_inference_cost(path: str, env, n: int = 2000) -> tuple[float, float]:
    """CPU microseconds per decision of SB3's ``predict`` and of the numpy copy, on ``n`` observations
    of ``env`` (a view of the checkpoint's agent) under random play."""
    import torch

    from rlsys_agents.evaluation import load_sb3
    from rlsys_agents.fast_inference import NumpyGreedyPolicy

    torch.set_num_threads(1)
    model, _ = load_sb3(path)
    fast = NumpyGreedyPolicy(model)
    obs, info = env.reset(seed=0)
    policy = RandomMaskedPolicy()
    policy.reset(env, 0)
    samples = []
    while len(samples) < n:
        samples.append((obs, info))
        obs, _, term, trunc, info = env.step(policy.act(env, obs, info))
        if term or trunc:
            obs, info = env.reset(seed=len(samples))
    t = time.process_time()
    for o, i in samples:
        model.predict(o, deterministic=True, action_masks=i["action_mask"])
    sb3 = (time.process_time() - t) / n * 1e6
    t = time.process_time()
    for o, i in samples:
        fast.act(None, o, i)
    return sb3, (time.process_time() - t) / n * 1e6


#: environment kwargs that shape a placement checkpoint's observation (taken from its env record)
OBSERVATION_KWARGS = ("placement_features",)

# The runs of the published tables (``python benchmarks/report.py`` runs each; see its docstring).
PUBLISHED = [
    {"args": "--decomposition --placement-checkpoint agents/checkpoints/storage_placement_ppo.zip "
             "--placement-checkpoint H&L=agents/checkpoints/storage_placement_bc_hl.zip "
             "--placement-checkpoint H&M&L=agents/checkpoints/storage_placement_ppo_hml.zip "
             "--migration-checkpoint agents/checkpoints/storage_migration_ppo.zip "
             "--migration-checkpoint H&L=agents/checkpoints/storage_migration_ppo_hl.zip",
     "about": "The three device configurations (H&M, H&L, H&M&L): mean request latency normalised to Fast-Only "
              "per workload (mean +- std over seeded episodes) and the geometric mean over the workloads, for "
              "every heuristic, the Oracle, where the Oracle's margin comes from (its placement on LRU "
              "eviction, LRU on Belady's eviction), the shipped placement agents (H&M's and H&M&L's "
              "MaskablePPO, H&L's clone of the Oracle's placement) and the two-agent system with the shipped "
              "migration agents (H&M's; on H&L the H&L agent trained against the clone); inference cost per "
              "decision and simulator throughput."},
    {"args": "--configs H&M --skip-throughput --placement-checkpoint agents/checkpoints/storage_placement_qrdqn.zip "
             "--migration-checkpoint agents/checkpoints/storage_migration_ppo.zip",
     "about": "H&M with the Sibyl-like QR-DQN placement agent, alone and with the migration agent (the "
              "migration agent was trained against this partner)."},
    {"args": "--configs H&L --skip-throughput "
             "--placement-checkpoint H&L=agents/checkpoints/storage_placement_qrdqn_hl.zip",
     "about": "H&L with the Sibyl-like QR-DQN placement agent trained on H&L (Sibyl's network and "
              "hyperparameters, 100,000 requests), beside the heuristics and the Oracle."},
]


def checkpoint_system(path: str) -> dict:
    """The observation kwargs a placement checkpoint was trained with (its ``rlsys_env.json``), so
    that it plays on an environment whose observation fits it; the dynamics stay the benchmark's."""
    from rlsys_agents.evaluation import recorded_env_kwargs

    return recorded_env_kwargs(path, OBSERVATION_KWARGS)


def per_config(values: list[str] | None) -> dict[str, str]:
    """``["H&L=path", "path"]`` -> {config: path} (a bare path is for H&M)."""
    out = {}
    for v in values or []:
        config, sep, path = v.partition("=")
        out[config if sep else "H&M"] = path if sep else v
    return out


def policies(args, config: str) -> dict:
    """name -> (factory of {agent: Policy}, env kwargs of its system) for one configuration."""
    rows = {name: (JOINT_BASELINES[name], SYSTEM_OF.get(name, {})) for name in BASELINE_ROWS}
    if args.decomposition:
        # where the Oracle's margin comes from: its placement on the agents' LRU eviction, and LRU's
        # placement on Belady's eviction
        rows["oracle on LRU eviction"] = (JOINT_BASELINES["oracle"], {})
        rows["lru on Belady eviction"] = (JOINT_BASELINES["lru"], SYSTEM_OF["oracle"])
    place = per_config(args.placement_checkpoint).get(config)
    mig = per_config(args.migration_checkpoint).get(config)
    if place:
        label = "sibyl-like (QR-DQN)" if "qrdqn" in Path(place).stem else f"placement agent ({Path(place).stem})"
        rows[label] = (lambda: {"placement": checkpoint_policy(place),
                                "migration": MIGRATION_POLICIES["none"]()}, checkpoint_system(place))
    if mig:
        rows[f"{args.migration_partner} + migration agent"] = (
            lambda: {"placement": PLACEMENT_POLICIES[args.migration_partner](),
                     "migration": checkpoint_policy(mig)}, {})
    if place and mig:
        rows["two-agent (Harmonia-like)"] = (lambda: {"placement": checkpoint_policy(place),
                                                      "migration": checkpoint_policy(mig)}, checkpoint_system(place))
    return rows


def run(args):
    rows: dict = {}         # config -> name -> (factory, system)
    results: dict = {}      # (config, workload, name) -> list of metric dicts
    timing: dict = {}       # name -> {agent: [seconds, decisions]}
    for config in args.configs:
        rows[config] = policies(args, config)
        for workload in args.workloads:
            for name, (make, system) in rows[config].items():
                env = HybridStorageParallelEnv(instance=workload, config=config, episode_requests=args.requests,
                                               **system)
                for seed in args.seeds:
                    joint = {a: Timed(p, a) for a, p in make().items()}
                    out = play_joint_episode(env, joint, seed)
                    results.setdefault((config, workload, name), []).append(out["metrics"])
                    for a, p in joint.items():
                        t = timing.setdefault(name, {}).setdefault(a, [0.0, 0])
                        t[0] += p.seconds
                        t[1] += p.decisions
            print(f"  {config} {workload}: done", file=sys.stderr)
    return rows, results, timing


def fmt(values, digits=2):
    v = np.asarray(values, float)
    return f"{v.mean():.{digits}f} +- {v.std():.{digits}f}" if len(v) > 1 else f"{v.mean():.{digits}f}"


def geomean(values):
    return float(math.exp(np.mean(np.log(np.maximum(values, 1e-12)))))


def tables(args, rows, results, timing) -> list[str]:
    out = []
    n = len(args.seeds)
    for config in args.configs:
        def norm(name, workload, key, invert=False):
            ref = [r[key] for r in results[(config, workload, "fast_only")]]
            vals = [r[key] for r in results[(config, workload, name)]]
            return [(b / a if invert else a / b) if b > 0 and a > 0 else float("nan") for a, b in zip(vals, ref)]

        header = ["policy"] + list(args.workloads)
        body = [[name] + [fmt(norm(name, w, "mean_latency_us")) for w in args.workloads] for name in rows[config]]
        out.append(f"### {config}: mean request latency / Fast-Only (mean +- std over {n} seeds, "
                   f"{args.requests} requests per episode)\n\n" + table(header, body))
        summary = {}
        for name in rows[config]:
            per_w = {k: [np.mean(norm(name, w, k)) for w in args.workloads] for k in ("mean_latency_us",
                                                                                      "p99_latency_us")}
            iops = [np.mean([b / a for a, b in zip([r["iops"] for r in results[(config, w, "fast_only")]],
                                                   [r["iops"] for r in results[(config, w, name)]])])
                    for w in args.workloads]
            summary[name] = {"lat": geomean(per_w["mean_latency_us"]), "p99": geomean(per_w["p99_latency_us"]),
                             "iops": geomean(iops),
                             "ev": np.mean([r["evictions_per_1k"] for w in args.workloads
                                            for r in results[(config, w, name)]]),
                             "mig": np.mean([r["migrations_per_1k"] for w in args.workloads
                                             for r in results[(config, w, name)]])}
        best = min(HEURISTICS, key=lambda h: summary[h]["lat"])
        b, o = summary[best]["lat"], summary["oracle"]["lat"]
        body = []
        for name, s in summary.items():
            change = 100.0 * (b - s["lat"]) / b
            gap = 100.0 * (b - s["lat"]) / (b - o) if b > o else float("nan")
            body.append([name, f"{s['lat']:.3f}", f"{s['p99']:.3f}", f"{s['iops']:.4f}", f"{s['ev']:.1f}",
                         f"{s['mig']:.1f}", f"{change:+.1f}", "-" if math.isnan(gap) else f"{gap:+.0f}"])
        out.append(f"### {config}: geometric mean over {len(args.workloads)} workloads (normalised to Fast-Only); "
                   f"best heuristic: {best}\n\n" + table(
                       ["policy", "mean latency", "p99 latency", "IOPS", "evictions / 1k", "migrations / 1k",
                        f"mean latency vs {best} %", "gap to Oracle closed %"], body))
    body = []
    for name, agents in timing.items():
        for agent, (sec, dec) in agents.items():
            if dec:
                body.append([name, agent, f"{1e6 * sec / dec:.1f}", str(dec)])
    out.append("### inference cost per decision (us, wall clock on a shared machine; checkpoints as numpy "
               "copies)\n\n" + table(["policy", "agent", "us / decision", "decisions"], body))
    body = []
    for config in args.configs:
        for agent, paths, view in (("placement", args.placement_checkpoint, HybridStorageEnv),
                                   ("migration", args.migration_checkpoint, HybridStorageMigrationEnv)):
            path = per_config(paths).get(config)
            if path:
                system = checkpoint_system(path) if agent == "placement" else {}   # its observation kwargs
                sb3, fast = sb3_inference_cost(path, view(instance="zipf_oltp", config=config,
                                                          episode_requests=2000, **system))
                body.append([config, agent, Path(path).name, f"{sb3:.1f}", f"{fast:.1f}"])
    if body:
        out.append("### checkpoint inference cost per decision (CPU us, one core): SB3 predict vs numpy copy\n\n"
                   + table(["config", "agent", "checkpoint", "SB3 predict", "numpy"], body))
    return out


def throughput(requests: int, seconds_each: float = 3.0) -> str:
    """Requests per CPU-second with uniformly random legal actions (process time, one core)."""
    rows = []
    env = HybridStorageParallelEnv(instance="zipf_oltp", episode_requests=requests)
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    acts = rng.integers(env.n_devices, size=requests).tolist()
    t0, n = time.process_time(), 0
    for a in acts:
        env.model.serve(a)
        n += 1
    rows.append(["model (StorageModel.serve)", f"{n / (time.process_time() - t0):,.0f}"])
    for label, make in (("parallel env (both agents, migration no-op)", lambda: env),
                        ("placement view rlsys/HybridStorage-v0", lambda: HybridStorageEnv(
                            instance="zipf_oltp", episode_requests=requests))):
        e = make()
        e.reset(seed=1)
        n, t0 = 0, time.process_time()
        while time.process_time() - t0 < seconds_each:
            if isinstance(e, HybridStorageParallelEnv):
                e.step({"placement": acts[n % len(acts)], "migration": 0})
                if not e.agents:
                    e.reset(seed=n)
            else:
                _, _, term, trunc, _ = e.step(acts[n % len(acts)])
                if term or trunc:
                    e.reset(seed=n)
            n += 1
        rows.append([label, f"{n / (time.process_time() - t0):,.0f}"])
    policy = RandomMaskedPolicy()
    e = HybridStorageEnv(instance="zipf_oltp", episode_requests=requests)
    obs, info = e.reset(seed=2)
    policy.reset(e, 2)
    n, t0 = 0, time.process_time()
    while time.process_time() - t0 < seconds_each:
        obs, _, term, trunc, info = e.step(policy.act(e, obs, info))
        n += 1
        if term or trunc:
            obs, info = e.reset(seed=n)
    rows.append(["placement view, RandomMaskedPolicy from info mask", f"{n / (time.process_time() - t0):,.0f}"])
    e = HybridStorageMigrationEnv(instance="zipf_oltp", episode_requests=requests, placement="cde")
    obs, info = e.reset(seed=3)
    policy.reset(e, 3)
    n, t0 = 0, time.process_time()
    while time.process_time() - t0 < seconds_each:
        before = e.parallel.model.i
        obs, _, term, trunc, info = e.step(policy.act(e, obs, info))
        n += e.parallel.model.i - before
        if term or trunc:
            obs, info = e.reset(seed=n)
    rows.append(["migration view rlsys/HybridStorageMigration-v0 (CDE placement, random migrations)",
                 f"{n / (time.process_time() - t0):,.0f}"])
    return ("### simulator throughput (requests per CPU-second, one core, random actions; episode resets "
            "included)\n\n" + table(["what", "requests / s"], rows))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="2 workloads, 2 seeds, 3,000-request episodes")
    p.add_argument("--configs", default="H&M,H&L,H&M&L")
    p.add_argument("--workloads", default=None, help="comma-separated shapes (default: held-out + 4 training)")
    p.add_argument("--seeds", type=int, default=None, help="seeded episodes per cell (default 3, quick 2)")
    p.add_argument("--first-seed", type=int, default=10_000)
    p.add_argument("--requests", type=int, default=None, help="requests per episode (default 10,000; quick 3,000)")
    p.add_argument("--placement-checkpoint", action="append", metavar="[CONFIG=]PATH",
                   help="a placement checkpoint of one configuration (bare path: H&M); repeatable")
    p.add_argument("--migration-checkpoint", action="append", metavar="[CONFIG=]PATH",
                   help="a migration checkpoint of one configuration (bare path: H&M); repeatable")
    p.add_argument("--migration-partner", default="cde", help="placement heuristic paired with the migration agent")
    p.add_argument("--decomposition", action="store_true",
                   help="also the Oracle (placement + migration) on LRU eviction and LRU on Belady's eviction")
    p.add_argument("--skip-throughput", action="store_true")
    p.add_argument("--out", default=None, help="also write the tables to this markdown file")
    p.add_argument("--png", default=None, help="save the picture of one episode here")
    args = p.parse_args(argv)
    args.configs = args.configs.split(",")
    args.workloads = tuple(args.workloads.split(",")) if args.workloads else (
        QUICK_WORKLOADS if args.quick else FULL_WORKLOADS)
    args.requests = args.requests or (3000 if args.quick else 10_000)
    args.seeds = list(range(args.first_seed, args.first_seed + (args.seeds or (2 if args.quick else 3))))
    start = time.perf_counter()
    rows, results, timing = run(args)
    parts = tables(args, rows, results, timing)
    if not args.skip_throughput:
        parts.append(throughput(20_000 if not args.quick else 5_000, 2.0 if args.quick else 5.0))
    text = "\n\n".join(parts) + f"\n\n(bench_storage.py {' '.join(argv if argv is not None else sys.argv[1:])}; " \
                                f"{time.perf_counter() - start:.0f} s)\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    if args.png:
        import matplotlib.pyplot as plt

        name, (make, system) = list(rows[args.configs[0]].items())[-1]
        env = HybridStorageParallelEnv(instance=args.workloads[0], config=args.configs[0],
                                       episode_requests=args.requests, render_mode="rgb_array", **system)
        play_joint_episode(env, make(), args.seeds[0])
        plt.imsave(args.png, env.render())


if __name__ == "__main__":
    main()
