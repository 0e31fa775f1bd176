"""Benchmarks of ``rlsys/VMRescheduling-v0``; prints markdown tables.

(a) quality on generated M-size (279 PMs) high-workload snapshots, MNL 50: initial and final FR,
migrations and wall time per episode for no-op, random, best-of-16 random, greedy, greedy with a
two-move look-ahead, the fragmented CP-SAT model at each ``--fragmented`` limit, and staged CP-SAT
(fragmented model for a quarter of the limit, then the exact model; its proof and bound are the
exact model's) at each ``--cpsat`` limit (1 worker, hinted with the greedy plan); ``--checkpoint PATH`` adds a trained
policy, deterministic ("greedy"), best-of-16 sampled (VMR2L's risk-seeking evaluation), best of
the deterministic plan and 15 sampled ones, and the deterministic plan completed by the look-ahead
(:class:`rlsys_envs.vm.baselines.LookaheadCompletion`), loaded lazily with
``rlsys_agents.evaluation.load_policy``;
(b) the same table on both public VMR2L snapshots, whole (every cluster of the file pooled:
279 PMs / 2,089 VMs and 1,176 PMs / 4,546 VMs; ``--real-dir``, skipped when absent);
(c) throughput under random masked actions on M and L size: env steps and migrations per second
(with and without the episode resets, which generate a new snapshot), and the bare model;
(d) the dynamic setting (:mod:`rlsys_envs.vm.dynamic`; ``--skip-dynamic``): VMs arrive and leave while
the planner computes; final FR and FR reduction against doing nothing, against the solve time
charged, for greedy, look-ahead, CP-SAT at several limits, the longest CP-SAT plan declared to
have taken longer (300 s to 1 h: the hour-long MIP of VMR2L's argument), and the policy
(``--checkpoint``) step by step at a fixed cost per step; a PNG curve with ``--dynamic-png``.

    python benchmarks/bench_vm.py             # (a) 10 snapshots, CP-SAT 1 s / staged 60 s, (b), (c), (d): ~25 min
    python benchmarks/bench_vm.py --quick     # (a) 3 snapshots, CP-SAT 5 s / 20 s, (b), (c), (d) short: ~6 min
    python benchmarks/bench_vm.py --cpsat --fragmented 1 2 --skip-throughput --skip-real --skip-dynamic  # ~1 min
    python benchmarks/bench_vm.py --skip-generated --skip-throughput --skip-dynamic --cpsat 20 60 --fragmented 1 5 \
        --checkpoint agents/checkpoints/vm_gnn_bc.zip --skip-sampled                    # (b), both whole files: ~4 min
    python benchmarks/bench_vm.py --dynamic-only --checkpoint agents/checkpoints/vm_gnn_bc.zip \
        --dynamic-png docs/img/vm_dynamic.png                                            # (d): ~3 min
    python benchmarks/bench_vm.py --snapshots 2 --cpsat 300 --skip-throughput               # 300 s: ~10 min
    python benchmarks/bench_vm.py --snapshots 50 --first-seed 1000 --cpsat --fragmented 2 --skip-throughput \
        --checkpoint agents/checkpoints/vm_gnn_bc.zip --skip-sampled    # 50 other snapshots, policy rows: ~6 min

CP-SAT runs with 1 worker and its time limit is wall-clock, so on a loaded machine it explores less.
"""
from __future__ import annotations

import argparse
import sys
import time
import warnings
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_common import add_out_option, default_figure, figure_beside, table, tee_stdout  # noqa: E402  (this folder: the script's own)

from rlsys_envs.core import play_episode  # noqa: E402
from rlsys_envs.vm.baselines import (BestOfK, CPSatPolicy, GreedyPolicy, LegalRandomPolicy,  # noqa: E402
                                     LookaheadCompletion, LookaheadPolicy, NoOpPolicy)
from rlsys_envs.vm.env import VMReschedulingEnv  # noqa: E402
from rlsys_envs.vm.dynamic import DynamicCluster, run_plan, run_policy  # noqa: E402
from rlsys_envs.vm.exact import plan_cpsat  # noqa: E402
from rlsys_envs.vm.generator import generate_cluster  # noqa: E402
from rlsys_envs.vm.planning import greedy_plan, lookahead_plan  # noqa: E402

ENV_ID = "rlsys/VMRescheduling-v0"
REAL_DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "vmr2l"
REAL_FILES = ("reset_vm_pm_id_clear_big2.json", "reset_vm_pm_id_clear2.json")
BESIDE_OUT = "<beside --out>"     # the value of a bare --heatmap
# The runs of the published tables (``python benchmarks/report.py`` runs each; see its docstring).
PUBLISHED = [
    {"args": "--checkpoint agents/checkpoints/vm_gnn_bc.zip --skip-throughput --skip-real --skip-dynamic --cpsat "
             "--fragmented --heatmap",
     "about": "Generated M-size high-workload snapshots, seeds 0-9 (279 PMs, about 2,315 VMs each), MNL 50, means "
              "over the 10 snapshots: baselines, CP-SAT (1 worker, hinted with the greedy plan; 'fragmented': the "
              "restricted model alone; 'staged': the fragmented model for a quarter of the limit, then the exact "
              "model, its proof and bound) and the shipped policy (`allow_stop=False`, its training budget; best "
              "of 16 sampled; best of greedy + 15 sampled; completed by `LookaheadCompletion`)."},
    {"args": "--skip-throughput --skip-real --skip-dynamic --fragmented 1 2",
     "about": "The same snapshots: the fragmented CP-SAT model at short limits."},
    {"args": "--skip-throughput --skip-real --skip-dynamic --snapshots 2 --cpsat 300",
     "about": "CP-SAT with a 300 s limit on the first two snapshots: its proof of optimality where it gets one."},
    {"args": "--skip-throughput --skip-real --skip-dynamic --snapshots 50 --first-seed 1000 --cpsat --fragmented 2 "
             "--checkpoint agents/checkpoints/vm_gnn_bc.zip --skip-sampled",
     "about": "50 other generated snapshots (seeds 1000-1049, used for nothing else: not for training, "
              "validation or choosing a checkpoint); means over the 50."},
    {"args": "--skip-throughput --skip-real --skip-dynamic --snapshots 50 --first-seed 1000 --cpsat --fragmented 10",
     "about": "The same 50 snapshots: the fragmented model at 10 s."},
    {"args": "--skip-generated --skip-throughput --skip-dynamic --cpsat 20 60 --fragmented 1 5 "
             "--checkpoint agents/checkpoints/vm_gnn_bc.zip "
             "--skip-sampled",
     "about": "Both public files of VMR2L's repository, whole (every cluster pooled as VMR2L does: its L and M "
              "sizes; read from `--real-dir`, by default `../shared/data/vmr2l` beside the clone, skipped "
              "without them), MNL 50, one snapshot each (no spread). The shipped policy was trained on generated "
              "M / high snapshots only."},
    {"args": "--size L --snapshots 3 --cpsat 20 --fragmented 2 --skip-real --skip-throughput --skip-dynamic",
     "about": "Generated L-size high-workload snapshots, seeds 0-2 (1,176 PMs, about 5,285 VMs each): CP-SAT rows."},
    {"args": "--size L --snapshots 3 --cpsat --fragmented --skip-real --skip-throughput --skip-dynamic "
             "--checkpoint agents/checkpoints/vm_gnn_bc.zip "
             "--skip-sampled",
     "about": "The same L snapshots: baselines and the shipped policy (trained on M snapshots only), unchanged."},
    {"args": "--dynamic-only --checkpoint agents/checkpoints/vm_gnn_bc.zip",
     "about": "The dynamic setting (`rlsys_envs.vm.dynamic`): VMs arrive and leave while the planner computes "
              "(mean lifetime 2 h, arrivals keep the VM count stationary); generated M / high snapshots, seeds "
              "0-2, MNL 50. Plans are computed on the snapshot at time 0, charged their measured wall time or a "
              "declared one, and applied to the state at that time; the policy acts step by step at a fixed "
              "cost per step."},
    {"args": "--skip-generated --skip-real --skip-dynamic",
     "about": "Throughput: random masked actions, one process, the mask read from `info['action_mask']`; "
              "wall-clock and CPU-second rates (the latter what the loop does with a core to itself)."},
]


def run(env, policy, seed, options=None):
    """One episode (``core.play_episode``): its metrics and its wall time (planning included)."""
    t0 = time.perf_counter()
    episode = play_episode(env, policy, seed, options=options)
    return episode.metrics, time.perf_counter() - t0


def policies(args, env_kwargs):
    out = [("no-op", NoOpPolicy), ("random", LegalRandomPolicy),
           ("random best-of-16", lambda: BestOfK(LegalRandomPolicy, 16)), ("greedy", GreedyPolicy),
           ("greedy + look-ahead", LookaheadPolicy)]
    for limit in args.fragmented:
        out.append((f"CP-SAT fragmented {limit:g} s",
                    lambda limit=limit: CPSatPolicy(time_limit=limit, workers=1, scope="fragmented")))
    for limit in args.cpsat:
        out.append((f"CP-SAT staged {limit:g} s", lambda limit=limit: CPSatPolicy(time_limit=limit, workers=1)))
    if args.checkpoint:
        from rlsys_agents.evaluation import load_policy  # lazy: the learning side is optional here

        # loaded once per table (not per episode / rollout, which would time the zip loading): the
        # sampling policy re-seeds torch at each reset, so one object serves all 16 rollouts
        kwargs = policy_env_kwargs(args, env_kwargs)
        det = load_policy(args.checkpoint, ENV_ID, kwargs, deterministic=True)
        sto = load_policy(args.checkpoint, ENV_ID, kwargs, deterministic=False)
        out.append(("policy (greedy)", lambda: det))
        if not args.skip_sampled:
            out.append(("policy best-of-16", lambda: BestOfK(lambda: sto, 16)))
            # VMR2L-style risk seeking that keeps the deterministic plan as one of the 16 candidates
            out.append(("policy best of greedy + 15 sampled", lambda: BestOfK(lambda: sto, 16, first=lambda: det)))
        # the deterministic plan up to its lowest FR, then the look-ahead on the migrations left
        out.append(("policy + look-ahead completion", lambda: LookaheadCompletion(lambda: det)))
    return out


#: env kwargs of the policy rows: the shipped policy was trained with a fixed budget (no stop action,
#: as in VMR2L), so it is evaluated that way; the other rows may stop early
POLICY_ENV_KWARGS = {"allow_stop": False}
#: env kwargs that shape a checkpoint's observation, taken from its environment record
OBSERVATION_KWARGS = ("observation",)


def policy_env_kwargs(args, env_kwargs: dict) -> dict:
    """The env kwargs of the policy rows: the benchmark's instances, a fixed budget, and the
    observation the checkpoint was trained with (its ``rlsys_env.json``)."""
    from rlsys_agents.evaluation import recorded_env_kwargs  # lazy: the learning side is optional here

    return {**env_kwargs, **POLICY_ENV_KWARGS, **recorded_env_kwargs(args.checkpoint, OBSERVATION_KWARGS, ENV_ID)}


def quality(args, env_kwargs, episodes, title, options_of=None, first_seed=0):
    env = VMReschedulingEnv(**env_kwargs)
    # a second env (and, for a snapshot file, a second load) only when there are policy rows
    policy_env = VMReschedulingEnv(**policy_env_kwargs(args, env_kwargs)) if args.checkpoint else env
    rows = []
    for name, factory in policies(args, env_kwargs):
        frs0, frs, migs, walls, slots, notes = [], [], [], [], [], []
        for i in range(first_seed, first_seed + episodes):
            pol = factory()
            m, wall = run(policy_env if name.startswith("policy") else env, pol, i,
                          options_of(i) if options_of else None)
            if isinstance(pol, CPSatPolicy):
                notes.append((pol.result.status == "OPTIMAL", pol.result.fr_bound, pol.dropped, pol.result.scope))
            frs0.append(m["fr_initial"])
            frs.append(m["fr_final"])
            migs.append(m["migrations"])
            slots.append(m["slots16_gained"])
            walls.append(wall)
        note = ""
        # a fragmented answer's proof and bound hold for its restriction only
        exact = [n for n in notes if n[3] == "all"]
        if notes and not exact:
            note = f"restricted model optimal {sum(n[0] for n in notes)}/{len(notes)}"
        elif notes:
            note = (f"optimal {sum(n[0] for n in exact)}/{len(notes)}"
                    + (f", FR bound {np.mean([n[1] for n in exact]):.4f}" if len(exact) == len(notes) else
                       f", {len(notes) - len(exact)} without an exact-model answer (no bound)")
                    + (f", {sum(n[2] for n in notes)} moves dropped" if any(n[2] for n in notes) else ""))
        rows.append([name, f"{np.mean(frs0):.4f}", f"{np.mean(frs):.4f}", f"{np.mean(frs0) - np.mean(frs):.4f}",
                     f"{np.mean(slots):.1f}", f"{np.mean(migs):.1f}", f"{np.mean(walls):.2f}", note])
        print(f"  {title}: {name} done", file=sys.stderr)
    return f"### {title}\n\n" + table(["policy", "initial FR", "final FR", "FR reduction", "16-core slots gained",
                                       "migrations", "wall s / episode", "CP-SAT proof"], rows)


def _timed_loop(seconds, body):
    """Run ``body()`` (returns (steps, migrations) done) until ``seconds`` of wall time pass.

    Returns (steps, migrations, wall s, CPU s of this process): on a shared machine the CPU time
    is what the loop would take alone.
    """
    steps = migs = 0
    w0, c0 = time.perf_counter(), time.process_time()
    while time.perf_counter() - w0 < seconds:
        s, m = body()
        steps += s
        migs += m
    return steps, migs, time.perf_counter() - w0, time.process_time() - c0


def _steady_state_loop(rng, observation: str, size: str = "M"):
    """A loop body for :func:`_timed_loop`: 50 random masked steps of one long episode (no stop)."""
    env2 = VMReschedulingEnv(size=size, workload="high", mnl=100_000, allow_stop=False, observation=observation)
    state = {"info2": env2.reset(seed=0)[1]}

    def chunk():
        before, steps = env2.migrations, 0
        for _ in range(50):
            action = int(rng.choice(np.flatnonzero(state["info2"]["action_mask"])))
            state["obs2"], _, term, trunc, info = env2.step(action)
            state["info2"] = info
            steps += 1
            if term or trunc:
                break
        migs = env2.migrations - before
        if term or trunc:
            state["info2"] = env2.reset(seed=steps)[1]
        return steps, migs

    return chunk


def throughput(seconds, size="M"):
    rng = np.random.default_rng(0)
    rows = []

    def rate(x, t):
        return f"{x / t:,.0f}" if x else "-"

    # (1) MNL-50 episodes with resets (each reset generates a new M snapshot)
    # (as an agent's loop: the mask comes from info["action_mask"] and the observation is kept until
    # the next step returns the new one)
    env = VMReschedulingEnv(size=size, workload="high", mnl=50)
    state = {"eps": 0}
    state["info"] = env.reset(seed=0)[1]

    def episode():
        steps = 0
        while True:
            state["obs"], _, term, trunc, info = env.step(int(rng.choice(np.flatnonzero(state["info"]["action_mask"]))))
            state["info"] = info
            steps += 1
            if term or trunc:
                migs = env.migrations
                state["eps"] += 1
                state["info"] = env.reset(seed=state["eps"])[1]
                return steps, migs

    s, m, w, c = _timed_loop(seconds, episode)
    rows.append(["env, MNL-50 episodes incl. resets", rate(s, w), rate(m, w), rate(s, c), rate(m, c)])
    # (2) steady state: steps only (one long episode without the stop action)
    for observation in ("all", "graph"):
        s, m, w, c = _timed_loop(seconds, _steady_state_loop(rng, observation, size))
        rows.append([f"env, steps only (no resets), observation={observation!r}", rate(s, w), rate(m, w),
                     rate(s, c), rate(m, c)])
    # (3) the bare model: masks + move, no observation
    cl = generate_cluster(np.random.default_rng(0), size, "high")

    def move():
        sm = cl.shape_slot_mask()
        v = int(rng.choice(np.flatnonzero(cl.movable_mask(sm))))
        cl.migrate(v, int(rng.choice(np.flatnonzero(cl.vm_slot_mask(v, sm)))))
        return 0, 1

    s, m, w, c = _timed_loop(seconds, move)
    rows.append(["model only (masks + move)", "-", rate(m, w), "-", rate(m, c)])
    t0 = time.perf_counter()
    for i in range(5):
        generate_cluster(np.random.default_rng(i), size, "high")
    gen = (time.perf_counter() - t0) / 5
    return (f"### (c) Throughput, random masked actions, {size} size ({cl.n_pms} PMs, ~{cl.n_vms:,} VMs), 1 process\n\n"
            + table(["loop", "steps / wall s", "migrations / wall s", "steps / CPU s", "migrations / CPU s"], rows)
            + f"\n\nGenerating one {size} snapshot takes {gen * 1000:.0f} ms (part of every reset). "
            "On a shared machine the wall-clock rates include time spent waiting for a core; the CPU-second rates "
            "are what the loop does with a core to itself.")


def dynamic(args, snapshots):
    """(d): the dynamic setting on ``snapshots`` (name, cluster); returns (markdown, curve points)."""
    mnl = args.mnl
    rows, points = [], {}

    def record(label, kind, results):
        solve = np.mean([r.solve_s for r in results])
        gain = [r.fr_gain for r in results]
        points.setdefault(kind, []).append((solve, float(np.mean(gain))))
        rows.append([label, f"{solve:.2f}", f"{np.mean([r.fr_start for r in results]):.4f}",
                     f"{np.mean([r.fr_noop for r in results]):.4f}", f"{np.mean([r.fr_final for r in results]):.4f}",
                     f"{np.mean(gain):.4f} ± {np.std(gain):.4f}", f"{np.mean([r.planned for r in results]):.1f}",
                     f"{np.mean([r.applied for r in results]):.1f}",
                     f"{np.mean([r.dropped_departed for r in results]):.1f}",
                     f"{np.mean([r.dropped_illegal for r in results]):.1f}"])
        print(f"  (d) {label} done", file=sys.stderr)

    def worlds(cluster, seed):
        mix = "L" if args.size == "L" else "M"
        return lambda: DynamicCluster(cluster, seed=seed, lifetime_s=args.lifetime, mix=mix)

    planners = [("greedy", "greedy", lambda c, m: greedy_plan(c, m)),
                ("greedy + look-ahead", "look-ahead",
                 lambda c, m: lookahead_plan(c, m, np.random.default_rng(0)))]
    longest = max(args.dynamic_cpsat) if args.dynamic_cpsat else None
    plans: dict[int, list] = {}      # the longest CP-SAT plan of each snapshot, reused below

    def cpsat(limit, i):
        def planner(c, m):
            seq = plan_cpsat(c, m, limit, 1, 0)[1]
            if limit == longest:
                plans[i] = seq
            return seq
        return planner

    for limit in args.dynamic_cpsat:
        planners.append((f"CP-SAT staged {limit:g} s", "CP-SAT (solve time measured)",
                         lambda i, limit=limit: cpsat(limit, i)))
    for label, kind, planner in planners:
        record(label + " (measured)", kind,
               [run_plan(worlds(c, i), planner(i) if label.startswith("CP-SAT") else planner, mnl, name=label)
                for i, (_, c) in enumerate(snapshots)])
    # the longest CP-SAT plan, declared to have taken longer: a stale optimum
    if longest is not None:
        for declared in args.declared:
            record(f"CP-SAT {longest:g} s plan, declared {declared:g} s", "CP-SAT plan, solve time declared",
                   [run_plan(worlds(c, i), lambda cc, m, i=i: plans[i], mnl, solve_s=declared)
                    for i, (_, c) in enumerate(snapshots)])
    if args.checkpoint:
        from rlsys_agents.evaluation import load_policy  # lazy: the learning side is optional here

        for cost in args.step_cost:
            results = []
            for i, (_, c) in enumerate(snapshots):
                kw = policy_env_kwargs(args, dict(instance=c, mnl=mnl, max_vms=c.n_vms + 600))
                env = VMReschedulingEnv(**kw)
                pol = load_policy(args.checkpoint, ENV_ID, {**kw, "instance": "generated", "size": args.size},
                                  deterministic=True)
                results.append(run_policy(worlds(c, i), env, pol, mnl, seed=i, step_cost_s=cost))
            record(f"policy, {cost:g} s per step", "policy (fixed cost per step)", results)
    names = ", ".join(n for n, _ in snapshots)
    md = (f"### (d) Dynamic setting: {len(snapshots)} snapshot{'s' if len(snapshots) > 1 else ''} ({names}), "
          f"MNL {mnl}, mean VM lifetime "
          f"{args.lifetime:g} s (arrivals keep the VM count stationary)\n\n"
          "Solve time = simulated seconds charged before the plan is applied (policy: 2 steps per migration "
          "at the fixed cost); FR reduction = FR of the same world without migrations at the end minus the "
          "final FR (mean ± sd over snapshots); dropped = planned moves whose VM had left / that were no "
          "longer legal when applied.\n\n"
          + table(["planner", "solve time s", "FR at 0", "FR no migration (end)", "final FR", "FR reduction",
                   "planned", "applied", "dropped: VM left", "dropped: illegal"], rows))
    return md, points


def save_dynamic_png(path: str, points: dict, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2))
    markers = {"greedy": "o", "look-ahead": "s", "CP-SAT (solve time measured)": "^",
               "CP-SAT plan, solve time declared": "v", "policy (fixed cost per step)": "*"}
    for kind, pts in points.items():
        pts = sorted(pts)
        ax.plot([max(p[0], 1e-2) for p in pts], [p[1] for p in pts], marker=markers.get(kind, "o"),
                label=kind, linestyle="-" if len(pts) > 1 else "none", markersize=8)
    ax.set_xscale("log")
    ax.set_xlabel("solve time charged (simulated s, log scale)")
    ax.set_ylabel("FR reduction against no migration")
    ax.axhline(0.0, color="grey", lw=0.8)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    print(f"saved {path}", file=sys.stderr)


def save_heatmap(path: str) -> None:
    """The heat map of docs/envs/vm.md: M-size high-workload snapshot (seed 0) before and after greedy."""
    import matplotlib.pyplot as plt

    env = VMReschedulingEnv(size="M", workload="high", mnl=50, render_mode="rgb_array")
    run(env, GreedyPolicy(), 0)
    plt.imsave(path, env.render())
    print(f"saved {path}", file=sys.stderr)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="3 snapshots, CP-SAT 5 s and 20 s, 3 s throughput")
    ap.add_argument("--snapshots", type=int, default=None,
                    help="generated high-workload snapshots of --size (default 10; quick 3)")
    ap.add_argument("--cpsat", type=float, nargs="*", default=None,
                    help="staged CP-SAT time limits (default 60; quick 5 20)")
    ap.add_argument("--fragmented", type=float, nargs="*", default=[1.0],
                    help="time limits of the fragmented CP-SAT model alone (default 1)")
    ap.add_argument("--first-seed", type=int, default=0,
                    help="snapshot i of (a) is reset(seed=first_seed + i) (default 0: seeds 0-9)")
    ap.add_argument("--skip-sampled", action="store_true",
                    help="leave out the checkpoint's best-of-16 rows (about 12 s per M-size episode each)")
    ap.add_argument("--mnl", type=int, default=50)
    ap.add_argument("--size", default="M", choices=["tiny", "S", "M", "L"],
                    help="cluster size of the generated snapshots (a); default M")
    ap.add_argument("--checkpoint", default=None, help="a trained SB3 checkpoint (.zip) to add as two rows")
    ap.add_argument("--real-dir", default=str(REAL_DEFAULT), help="folder with the public VMR2L snapshots")
    ap.add_argument("--skip-real", action="store_true", help="leave out (b), the public snapshots")
    ap.add_argument("--real-files", nargs="*", default=list(REAL_FILES),
                    help=f"which public snapshots (default both: {', '.join(REAL_FILES)})")
    ap.add_argument("--skip-throughput", action="store_true")
    ap.add_argument("--throughput-sizes", nargs="*", default=["M", "L"], choices=["tiny", "S", "M", "L"])
    ap.add_argument("--skip-dynamic", action="store_true", help="leave out (d), the dynamic setting")
    ap.add_argument("--dynamic-only", action="store_true", help="only (d)")
    ap.add_argument("--dynamic-snapshots", type=int, default=None,
                    help="generated high-workload snapshots of --size in (d) (default 3; quick 1)")
    ap.add_argument("--dynamic-real", action="store_true",
                    help="(d) on the whole public 279-PM snapshot instead of generated ones")
    ap.add_argument("--dynamic-cpsat", type=float, nargs="*", default=None,
                    help="staged CP-SAT limits in (d) (default 1 5 20 60; quick 1 5)")
    ap.add_argument("--declared", type=float, nargs="*", default=None,
                    help="declared solve times of the longest CP-SAT plan in (d) (default 300 600 1800 3600; "
                         "quick 600 3600)")
    ap.add_argument("--step-cost", type=float, nargs="*", default=None,
                    help="simulated seconds per policy step in (d) (default 0.03 0.3; quick 0.03)")
    ap.add_argument("--lifetime", type=float, default=7200.0, help="mean VM lifetime in (d), s (default 7200)")
    ap.add_argument("--dynamic-png", default=None, metavar="PNG", help="save the (d) curve")
    ap.add_argument("--heatmap", nargs="?", const=BESIDE_OUT, default=None, metavar="PNG",
                    help="save the before / after heat map of greedy on M-high seed 0 to PNG (docs/img/"
                         "vm_heatmap.png), or, without PNG, as FILE_heatmap.png beside --out FILE.md")
    ap.add_argument("--skip-generated", action="store_true")
    add_out_option(ap, "the dynamic curve FILE_dynamic.png, and with a bare --heatmap the heat map FILE_heatmap.png")
    args = ap.parse_args(argv)
    if args.heatmap == BESIDE_OUT:              # one picture for the page, not one per published run
        if not args.out:
            ap.error("--heatmap without a PNG path needs --out FILE.md (the picture goes beside it)")
        args.heatmap = str(figure_beside(args.out, "heatmap"))
    if args.dynamic_only:
        args.skip_dynamic = False
        args.skip_generated = args.skip_real = args.skip_throughput = True
        args.heatmap = None
    if not args.skip_dynamic:
        default_figure(args, "dynamic_png", "dynamic")
    q = args.quick
    for name, full, quick in (("dynamic_snapshots", 3, 1), ("dynamic_cpsat", [1.0, 5.0, 20.0, 60.0], [1.0, 5.0]),
                              ("declared", [300.0, 600.0, 1800.0, 3600.0], [600.0, 3600.0]),
                              ("step_cost", [0.03, 0.3], [0.03])):
        if getattr(args, name) is None:
            setattr(args, name, quick if q else full)
    with tee_stdout(args.out):
        run_all(args)


def run_all(args):
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    n = args.snapshots if args.snapshots is not None else (3 if args.quick else 10)
    if args.cpsat is None:
        args.cpsat = [5.0, 20.0] if args.quick else [60.0]
    t_start = time.perf_counter()
    out = [f"## rlsys/VMRescheduling-v0 benchmark ({'quick' if args.quick else 'full'}; MNL {args.mnl}; "
           f"CP-SAT 1 worker, greedy-hinted)"]
    if not args.skip_generated:
        kw = dict(size=args.size, workload="high", mnl=args.mnl)
        seeds = f"seeds {args.first_seed}-{args.first_seed + n - 1}"
        out.append(quality(args, kw, n, f"(a) {n} generated {args.size}-size high-workload snapshots ({seeds}), "
                                        f"MNL {args.mnl}, means", first_seed=args.first_seed))
    if not args.skip_real:
        real = Path(args.real_dir)
        for fname in args.real_files:
            path = real / fname
            if not path.is_file():
                out.append(f"### (b) {fname}: not found under {real}, skipped")
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                env = VMReschedulingEnv(instance=str(path), mnl=args.mnl)
            title = (f"(b) public VMR2L snapshot {fname} ({env.max_pms} hosts, {env.max_vms} VMs), "
                     f"MNL {args.mnl}")
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                out.append(quality(args, dict(instance=str(path), mnl=args.mnl), 1, title))
    if not args.skip_throughput:
        for size in args.throughput_sizes:
            out.append(throughput(3.0 if args.quick else 5.0, size))
    if not args.skip_dynamic:
        if args.dynamic_real:
            path = Path(args.real_dir) / "reset_vm_pm_id_clear2.json"
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                from rlsys_envs.vm import load_vmr2l_json
                snaps = [(path.name, load_vmr2l_json(path)[0])]
        else:
            snaps = [(f"{args.size}/high seed {i}", generate_cluster(np.random.default_rng(i), args.size, "high"))
                     for i in range(args.first_seed, args.first_seed + args.dynamic_snapshots)]
        md, points = dynamic(args, snaps)
        out.append(md)
        if args.dynamic_png:
            save_dynamic_png(args.dynamic_png, points, f"VM rescheduling, dynamic setting: {len(snaps)} snapshots "
                             f"({snaps[0][0]}...), MNL {args.mnl}, mean VM lifetime {args.lifetime:g} s")
            if args.out:
                out.append(f"![final FR reduction against solve time]({Path(args.dynamic_png).name})")
    if args.heatmap:
        save_heatmap(args.heatmap)
        if args.out:
            out.append(f"![greedy on M-high seed 0: before / after]({Path(args.heatmap).name})")
    out.append(f"_total wall time {time.perf_counter() - t_start:.0f} s_")
    print("\n\n".join(out))


if __name__ == "__main__":
    main()
