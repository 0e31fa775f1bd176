"""Benchmarks of ``rlsys/MemoryMapping-v0``; prints markdown tables.

(a) throughput: steps per second of random masked play on medium and large programs (one process),
and (d) the wall time of a whole greedy episode (env alone, SB3's predict, the numpy inference);
(b) quality on held-out generated programs (reset seeds 0 .. n-1 of ``small`` / ``medium`` /
``large``): run time saved by every baseline (each in its own order), CP-SAT (small: to proof,
medium: a wall-clock limit, with its bound), the LP and all-fast upper bounds, and with
``--checkpoint`` the trained policy (greedy, best of ``--best-of`` samples, MCTS at the
``--mcts`` budgets), with wins / mean / worst difference against ``xla_like`` and wall time per
program; (c) MiniMalloc's A-K benchmarks in allocation mode (``--minimalloc DIR``, skipped when
absent): which ones each method allocates completely, and in what time, including the canonical
backtracking search (``rlsys_envs.malloc.search``) replayed in the ``buffer_choice`` mode.

    python benchmarks/bench_malloc.py --quick
    python benchmarks/bench_malloc.py --checkpoint agents/checkpoints/malloc_ppo.zip
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_common import add_out_option, run_sections, table, tee_stdout  # noqa: E402  (this folder: the script's own)

from rlsys_envs.core import BestOfK, RandomMaskedPolicy, play_episode  # noqa: E402
from rlsys_envs.malloc.baselines import BASELINES, PREFERRED_ORDER, CPSatPolicy  # noqa: E402
from rlsys_envs.malloc.env import MemoryMappingEnv  # noqa: E402
from rlsys_envs.malloc.exact import lp_bound  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
#: the buffer table's 0/1 column "overlaps the current buffer" (flips for many rows per step)
FAST_TOGGLES = {"buffers_features": (9,)}
MINIMALLOC = ROOT.parent / "shared" / "data" / "minimalloc"

# The runs of the published tables (``python benchmarks/report.py`` runs each; see its docstring).
PUBLISHED = [
    {"args": "--checkpoint agents/checkpoints/malloc_ppo.zip --only ab --episodes small=50 "
             "--search-episodes small=30 --mcts 8,32",
     "about": "Small programs (about 50 buffers), reset seeds 0..49 (the shipped policy trained on seeds 20000+): "
              "run time saved (% of the all-HBM run time) by every baseline in its own order, CP-SAT's proven "
              "optimum, the upper bounds, and the policy (greedy, best of 16, MCTS), against `xla_like`; and "
              "the throughput of random masked play."},
    {"args": "--checkpoint agents/checkpoints/malloc_ppo.zip --only b --episodes medium=20 --search-episodes medium=3 "
             "--mcts 8 --cpsat-medium 3",
     "about": "Medium programs (about 300 buffers), the same policy unchanged; CP-SAT under a wall-clock limit, "
              "hinted with `xla_like`'s placement."},
    {"args": "--checkpoint agents/checkpoints/malloc_ppo.zip --only b --episodes large=3 --search-episodes large=0",
     "about": "Large programs (about 2,000 buffers), the same policy unchanged."},
    {"args": "--only c --search-limit 60",
     "about": "MiniMalloc's A-K benchmarks in allocation mode (read from `--minimalloc`, by default "
              "`../shared/data/minimalloc` beside the clone; skipped without them): which ones each method "
              "allocates completely and in what time."},
    {"args": "--only d --checkpoint agents/checkpoints/malloc_ppo.zip",
     "about": "The wall time of a whole greedy episode on a large program: the env alone, SB3's predict, and "
              "the numpy inference of `rlsys_agents.fast_pointer`."},
]


def pct(values) -> str:
    v = 100 * np.asarray(values, float)
    return f"{v.mean():.2f} ± {v.std():.2f}"


# ---------------------------------------------------------------------------- (a) throughput
def bench_throughput(quick):
    """Steps of random masked play (episodes from seed 0 on, resets included) per wall second and
    per CPU second of this process; the CPU figure depends much less on what else runs."""
    rows = []
    for size in ("medium", "large"):
        env = MemoryMappingEnv(instance=size)
        steps, t0, c0, seed = 0, time.perf_counter(), time.process_time(), 0
        budget = 2.0 if quick else 8.0
        while time.perf_counter() - t0 < budget:
            steps += play_episode(env, RandomMaskedPolicy(), seed=seed).steps
            seed += 1
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
        rows.append((size, env.program.n_buffers, seed, steps, f"{steps / dt:,.0f}", f"{steps / cpu:,.0f}"))
    return "### (a) Throughput: random masked play, one process\n\n" + table(
        ("programs", "buffers (last)", "episodes", "steps", "steps / wall s", "steps / CPU s"), rows)


# ------------------------------------------------------------------------------- (b) quality
class Checkpoint:
    def __init__(self, path):
        self.path = path
        self._models = {}

    def model(self, env):
        from rlsys_agents.evaluation import load_sb3

        key = (env.max_buffers, env.max_candidates)
        if key not in self._models:
            self._models[key] = load_sb3(self.path, env=env)[0]
        return self._models[key]

    def policy(self, env, deterministic=True, name="policy", fast=True):
        """Greedy: the numpy inference (same actions as SB3's predict, tested); sampling: SB3."""
        from rlsys_agents.evaluation import SB3Policy
        from rlsys_agents.fast_pointer import FastPointerPolicy, supports

        model = self.model(env)
        if deterministic and fast and supports(model):
            return FastPointerPolicy(model, toggles=FAST_TOGGLES, name=name)
        return SB3Policy(model, True, deterministic, name=name)

    def mcts(self, env, simulations):
        from rlsys_agents.mcts import MCTSPolicy, sb3_evaluator

        return MCTSPolicy(sb3_evaluator(self.model(env)), simulations, name=f"mcts{simulations}")


def run_method(size, seeds, make_policy, order="xla"):
    env = MemoryMappingEnv(instance=size, order=order)
    saved, walls = [], []
    for s in seeds:
        t0 = time.perf_counter()
        ep = play_episode(env, make_policy(env), seed=int(s))
        walls.append(time.perf_counter() - t0)
        saved.append(ep.metrics["saved_fraction"])
    return np.array(saved), np.array(walls)


def bench_quality(size, n, quick, ckpt, best_of, mcts_budgets, cpsat_limit, cpsat_n, search_n):
    seeds = list(range(n))
    results = {}
    for name in ("xla_like", "first_fit", "best_fit_size", "greedy_density", "random"):
        results[name] = run_method(size, seeds, lambda env, name=name: BASELINES[name](), PREFERRED_ORDER[name])
    env = MemoryMappingEnv(instance=size)
    programs = []
    for s in seeds:
        env.reset(seed=s)
        programs.append(env.program)
    fast = np.array([(p.slow_time - p.fast_time) / p.slow_time for p in programs])
    t0 = time.perf_counter()
    lp = np.array([lp_bound(p) for p in programs])
    lp_wall = (time.perf_counter() - t0) / len(programs)
    notes = []
    proven = False
    if cpsat_n:
        sub = seeds[:cpsat_n]
        policies = []

        def make(env, limit=cpsat_limit):
            pol = CPSatPolicy(time_limit=limit, wall_limit=None if size == "small" else limit)
            policies.append(pol)
            return pol

        results["cpsat"] = run_method(size, sub, make)
        status = [p.result.status for p in policies]
        proven = all(x == "OPTIMAL" for x in status)
        bound = np.array([p.result.bound_fraction for p in policies])
        hinted = sum(bool(p.result.stats.get("returned_hint")) for p in policies)
        best_bound = np.minimum(bound, lp[: len(bound)])
        notes.append(f"cpsat: {status.count('OPTIMAL')} of {len(status)} proven optimal ({', '.join(status)}); "
                     f"{hinted} kept the xla_like placement it was hinted with; mean CP-SAT bound "
                     f"{100 * bound.mean():.2f} %, min(CP-SAT, LP) bound {100 * best_bound.mean():.2f} %; limit "
                     f"{cpsat_limit:g} {'units of deterministic time' if size == 'small' else 's wall clock'}, "
                     f"1 worker")
    if ckpt is not None:
        results["policy (greedy)"] = run_method(size, seeds, lambda env: ckpt.policy(env))
        if best_of and search_n:
            sub = seeds[:search_n]
            results[f"policy best-of-{best_of}"] = run_method(
                size, sub, lambda env: BestOfK(lambda: ckpt.policy(env, deterministic=False), k=best_of,
                                               first=lambda: ckpt.policy(env)))
        for sims in mcts_budgets if search_n else []:
            sub = seeds[:search_n]
            results[f"policy MCTS {sims}"] = run_method(size, sub, lambda env, sims=sims: ckpt.mcts(env, sims))
    xla = results["xla_like"][0]
    rows = []
    for name, (saved, walls) in results.items():
        k = len(saved)
        diff = saved - xla[:k]
        ref = results.get("cpsat") if proven else None     # a gap only to a proven optimum
        gap = ""
        if ref is not None and name != "cpsat":
            m = min(k, len(ref[0]))
            gap = f"{100 * np.mean(ref[0][:m] - saved[:m]):.2f}"
        rows.append((name, k, pct(saved), f"{100 * np.mean(diff > 1e-9):.0f} %", f"{100 * diff.mean():+.2f}",
                     f"{100 * diff.min():+.2f}", gap, f"{walls.mean():.3f}"))
    rows.append(("LP bound", n, pct(lp), "", "", "", "", f"{lp_wall:.3f}"))
    rows.append(("all-fast bound", n, pct(fast), "", "", "", "", "0"))
    head = (f"### (b) {size}: run time saved on held-out programs (seeds 0-{n - 1}, "
            f"{np.mean([p.n_buffers for p in programs]):.0f} buffers on average)\n\n")
    cols = ("method", "programs", "saved % (mean ± sd)", "beats xla_like", "vs xla_like (pp, mean)",
            "vs xla_like (pp, worst)", "below cpsat (pp)", "wall s / program")
    return head + table(cols, rows) + ("\n\n" + "\n".join(f"- {x}" for x in notes) if notes else "")


# ------------------------------------------------------------------------------- (d) timing
def bench_timing(ckpt, size="large", seed=0, repeats=3):
    """Wall and CPU (process) time of one whole greedy episode (every decision) on a generated
    program: the env alone (xla_like), SB3's predict and the numpy inference, best of ``repeats``
    (SB3: one run); and whether the numpy player took every action SB3's predict took."""
    env = MemoryMappingEnv(instance=size)
    rows = []
    methods = [("env only (xla_like)", lambda: BASELINES["xla_like"]())]
    if ckpt is not None:
        methods += [("policy greedy, SB3 predict", lambda: ckpt.policy(env, fast=False)),
                    ("policy greedy, numpy incremental", lambda: ckpt.policy(env))]
    actions = {}
    for name, make in methods:
        best, cpu, ep = float("inf"), float("inf"), None
        for _ in range(repeats if "SB3" not in name else 1):
            t0, c0 = time.perf_counter(), time.process_time()
            ep = play_episode(env, make(), seed=seed)
            best, cpu = min(best, time.perf_counter() - t0), min(cpu, time.process_time() - c0)
        actions[name] = ep.actions
        same = ""
        if "numpy" in name and "policy greedy, SB3 predict" in actions:
            same = "yes" if ep.actions == actions["policy greedy, SB3 predict"] else "NO"
        rows.append((name, ep.steps, f"{100 * ep.metrics['saved_fraction']:.3f}", f"{best:.2f}", f"{cpu:.2f}",
                     f"{1e3 * best / ep.steps:.3f}", same))
    return (f"### (d) Greedy decisions of one {size} program (seed {seed}, {env.program.n_buffers} buffers), "
            f"one process\n\n" + table(("method", "decisions", "saved %", "wall s (episode)", "CPU s (episode)",
                                          "wall ms / decision", "same actions as SB3"), rows))


# --------------------------------------------------------------------------- (c) MiniMalloc
def bench_minimalloc(folder, quick, cpsat_limit, search_limit):
    """Per instance: which method places every buffer, and in what wall time."""
    from rlsys_envs.malloc.baselines import CanonicalSearchPolicy
    from rlsys_envs.malloc.exact import solve_cpsat

    files = sorted(Path(folder).glob("[A-K].*.csv"))
    if not files:
        return f"### (c) MiniMalloc A-K\n\n(no files in {folder})"
    rows, solved = [], 0
    for path in files[:3] if quick else files:
        row = [path.stem.split(".")[0]]
        for name, order in (("xla_like", "size"), ("first_fit", "size"), ("xla_like", "start")):
            env = MemoryMappingEnv(instance=str(path), objective="allocate", order=order)
            t0 = time.perf_counter()
            ep = play_episode(env, BASELINES[name](), seed=0)
            row.append(f"{'yes' if ep.metrics['allocated'] else 'no'} ({100 * ep.metrics['allocated_fraction']:.0f} %,"
                       f" {time.perf_counter() - t0:.2f} s)")
        row.insert(1, env.program.n_buffers)
        for canonical in (True, False):
            if not cpsat_limit:
                row.append("(skipped)")
                continue
            r = solve_cpsat(env.program, env.order_index, "allocate", canonical, cpsat_limit, wall_limit=cpsat_limit)
            row.append(f"{'yes' if r.status in ('OPTIMAL', 'FEASIBLE') else 'no'} ({r.status}, {r.wall_s:.1f} s)")
        # the canonical search, replayed action by action in the buffer-choice mode
        choice = MemoryMappingEnv(instance=str(path), objective="allocate", buffer_choice=True)
        policy = CanonicalSearchPolicy(time_limit=search_limit)
        t0 = time.perf_counter()
        ep = play_episode(choice, policy, seed=0)
        wall = time.perf_counter() - t0
        r = policy.result
        row.append(f"{'yes' if r.status == 'FEASIBLE' else 'no'} ({r.status}, {r.wall_s:.1f} s, {r.nodes} nodes)")
        row.append(f"{'yes' if ep.metrics['allocated'] else 'no'} ({100 * ep.metrics['allocated_fraction']:.0f} %, "
                   f"{wall:.1f} s)")
        solved += bool(ep.metrics["allocated"])
        rows.append(row)
    cols = ("instance", "buffers", "best fit, size order", "first fit, size order", "best fit, start order",
            "CP-SAT canonical in size order", "CP-SAT packing", "canonical search (ours)",
            "search replayed, buffer_choice env")
    return (f"### (c) MiniMalloc A-K in allocation mode (capacity 1 MiB; CP-SAT {cpsat_limit:g} s, 1 worker; "
            f"canonical search {search_limit:g} s)\n\n" + table(cols, rows)
            + f"\n\n- allocated completely in the environment: {solved} of {len(rows)}")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="short run")
    ap.add_argument("--checkpoint", default=None, help="trained policy (.zip) to add to (b)")
    ap.add_argument("--best-of", type=int, default=16, metavar="K")
    ap.add_argument("--mcts", default="8,32", metavar="BUDGETS", help="MCTS simulations per decision, e.g. 8,32")
    ap.add_argument("--episodes", default="small=50,medium=50,large=10", metavar="SIZE=N,...")
    ap.add_argument("--search-episodes", default="small=50,medium=10,large=0", metavar="SIZE=N,...",
                    help="programs for best-of-K and MCTS per size")
    ap.add_argument("--cpsat-medium", type=int, default=5, metavar="N", help="medium programs given to CP-SAT")
    ap.add_argument("--minimalloc", default=str(MINIMALLOC), metavar="DIR")
    ap.add_argument("--cpsat-minimalloc", type=float, default=30.0, metavar="S",
                    help="wall seconds of each CP-SAT model per MiniMalloc instance in (c); 0 skips them")
    ap.add_argument("--search-limit", type=float, default=60.0, metavar="S",
                    help="wall seconds of the canonical search per MiniMalloc instance in (c)")
    ap.add_argument("--only", default="abcd", help="sections to run, e.g. 'bc'")
    add_out_option(ap)
    args = ap.parse_args(argv)
    with tee_stdout(args.out):
        run(args)


def _sizes(spec):
    return {k: int(v) for k, v in (item.split("=") for item in spec.split(",") if item)}


def run(args):
    try:
        import torch
        torch.set_num_threads(1)
    except ImportError:
        pass
    t0 = time.perf_counter()
    print(f"## MemoryMapping-v0 benchmark ({'quick' if args.quick else 'full'})\n")
    ckpt = Checkpoint(args.checkpoint) if args.checkpoint else None
    episodes = _sizes("small=5,medium=3,large=1" if args.quick else args.episodes)
    search = _sizes("small=3,medium=1,large=0" if args.quick else args.search_episodes)
    budgets = [int(b) for b in args.mcts.split(",") if b]
    sections = [("a", lambda: bench_throughput(args.quick))]
    for size, n in episodes.items():
        cp_n = n if size == "small" else (min(args.cpsat_medium, n) if size == "medium" else 0)
        limit = 10.0 if size == "small" else (10.0 if args.quick else 60.0)
        if args.quick and size == "medium":
            cp_n = 1
        sections.append(("b", lambda size=size, n=n, cp_n=cp_n, limit=limit: bench_quality(
            size, n, args.quick, ckpt, args.best_of, budgets if size != "large" else [], limit, cp_n,
            search.get(size, 0))))
    sections.append(("c", lambda: bench_minimalloc(args.minimalloc, args.quick,
                                                   10.0 if args.quick else args.cpsat_minimalloc,
                                                   10.0 if args.quick else args.search_limit)))
    sections.append(("d", lambda: bench_timing(ckpt, "medium" if args.quick else "large")))
    run_sections(sections, args.only, t0)


if __name__ == "__main__":
    main()
