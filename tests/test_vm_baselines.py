"""VM rescheduling baselines: exact CP-SAT checked by brute force, greedy, best-of-K, the policy table."""
from dataclasses import replace

import numpy as np
import pytest

import rlsys_envs
from rlsys_envs.core import Policy
from rlsys_envs.core import best_of_k
from rlsys_envs.vm import Cluster, exact
from rlsys_envs.vm.baselines import (BASELINES, BestOfK, CPSatPolicy, GreedyPolicy, LegalRandomPolicy,
                                     LookaheadCompletion, fewest_fragments, rollout)
from rlsys_envs.vm.exact import plan_cpsat, solve_cpsat
from rlsys_envs.vm.expert import CPSatExpert
from rlsys_envs.vm.planning import (best_migration, complete_with_lookahead, greedy_plan, lookahead_plan,
                                    neutral_migrations, sequence_moves)
from rlsys_envs.vm.env import VMReschedulingEnv


def tiny_cluster(seed: int, n_pms: int = 3, cap: int = 10, unit: int = 4) -> Cluster:
    """A random small cluster (NUMA nodes of ``cap`` cores) that brute force can enumerate."""
    rng = np.random.default_rng(seed)
    free = np.full(2 * n_pms, cap)
    vms = []
    for _ in range(40):
        span = 2 if rng.random() < 0.2 else 1
        cpu = int(rng.choice([1, 2, 3, 5]))
        if span == 1:
            ok = np.flatnonzero(free >= cpu)
            if len(ok) == 0:
                continue
            s = int(rng.choice(ok))
            free[s] -= cpu
            vms.append((cpu, 0, 1, s // 2, s % 2))
        else:
            ok = np.flatnonzero((free[0::2] >= cpu) & (free[1::2] >= cpu))
            if len(ok) == 0:
                continue
            p = int(rng.choice(ok))
            free[2 * p: 2 * p + 2] -= cpu
            vms.append((cpu, 0, 2, p, -1))
        if len(vms) == 7:
            break
    a = np.array(vms)
    return Cluster(numa_cpu=np.full((n_pms, 2), cap), numa_mem=np.full((n_pms, 2), 100), vm_ncpu=a[:, 0],
                   vm_nmem=a[:, 1], vm_span=a[:, 2], vm_pm=a[:, 3], vm_numa=a[:, 4], frag_unit=unit)


def brute_force_min_fragments(c: Cluster, mnl: int) -> int:
    """Fewest fragmented cores reachable with at most ``mnl`` sequential legal migrations."""
    best = c.frag_total
    frontier = [c]
    seen = {c.free[:, 0].tobytes() + c.vm_pm.tobytes() + c.vm_numa.tobytes()}
    for _ in range(mnl):
        nxt = []
        for state in frontier:
            for v, s in np.argwhere(state.joint_mask()):
                child = state.copy()
                child.migrate(int(v), int(s))
                key = child.free[:, 0].tobytes() + child.vm_pm.tobytes() + child.vm_numa.tobytes()
                if key not in seen:
                    seen.add(key)
                    best = min(best, child.frag_total)
                    nxt.append(child)
        frontier = nxt
    return best


@pytest.mark.parametrize("seed", range(4))
def test_cpsat_is_optimal_on_tiny_clusters_by_brute_force(seed):
    c = tiny_cluster(seed)
    mnl = 2
    exact = brute_force_min_fragments(c, mnl)
    res = solve_cpsat(c, mnl, time_limit=20)
    assert res.status == "OPTIMAL"
    assert res.fragments <= exact                   # simultaneous moves: a lower bound on sequential play
    seq, dropped = sequence_moves(c, res.moves, mnl)
    sim = c.copy()
    for v, s in seq:
        sim.migrate(v, s)
    assert sim.frag_total >= exact                  # the replay is a sequential plan
    if dropped == 0 and len(seq) == len(res.moves):
        assert res.fragments == sim.frag_total == exact


def replay(c: Cluster, moves, budget: int) -> tuple[Cluster, int]:
    """The cluster after ``moves`` sequenced into single legal migrations, and how many were dropped."""
    seq, dropped = sequence_moves(c, moves, budget)
    sim = c.copy()
    for v, s in seq:
        sim.migrate(v, s)   # raises if a step were illegal
    return sim, dropped


@pytest.mark.parametrize("seed", range(4))
def test_fragmented_scope_is_optimal_on_tiny_clusters_by_brute_force(seed):
    c = tiny_cluster(seed)
    res = solve_cpsat(c, 2, time_limit=20, scope="fragmented")
    assert res.scope == "fragmented" and res.status == "OPTIMAL"
    sim, dropped = replay(c, res.moves, 2)
    assert dropped == 0 and sim.frag_total == res.fragments == brute_force_min_fragments(c, 2)


def test_fragmented_scope_moves_only_what_can_change_fragments():
    """Only VMs whose cores per node are not a multiple of the unit move, only to nodes with
    fragmented cores; the plan replays legally and is never worse than its greedy hint."""
    env = VMReschedulingEnv(size="S", workload="high", mnl=12)
    for seed in (0, 2, 4):
        env.reset(seed=seed)
        c = env.cluster
        hint = greedy_plan(c, 12)
        res = solve_cpsat(c, 12, time_limit=5, scope="fragmented", hint=hint)
        fragmented = c.free[:, 0] % c.frag_unit != 0
        assert res.moves
        for v, s in res.moves:
            assert c.vm_ncpu[v] % c.frag_unit != 0 and fragmented[s:s + c.vm_span[v]].any(), (seed, v, s)
        sim, dropped = replay(c, res.moves, 12)
        assert dropped == 0 and sim.frag_total == res.fragments <= replay(c, hint, 12)[0].frag_total


def test_staged_plan_reports_the_exact_model_and_is_never_worse_than_the_fragmented_one():
    env = VMReschedulingEnv(size="S", workload="high", mnl=12)
    env.reset(seed=4)
    c = env.cluster
    frag = solve_cpsat(c, 12, time_limit=2, scope="fragmented", hint=greedy_plan(c, 12))
    res, seq, dropped = plan_cpsat(c, 12, time_limit=4)           # scope "staged" by default
    assert res.scope == "all" and res.status in ("OPTIMAL", "FEASIBLE")
    assert res.stats["fragmented"]["status"] == "OPTIMAL"
    assert res.bound <= res.fragments <= frag.fragments
    sim, _ = replay(c, res.moves, 12)
    assert dropped == 0 and sim.frag_total == res.fragments


def test_a_deterministic_limit_gives_the_same_plan_whatever_the_load():
    """Under CP-SAT's deterministic limit, one worker, the plan does not depend on wall-clock time:
    the same plan with a generous and with a tight wall-clock safety net."""
    env = VMReschedulingEnv(size="S", workload="high", mnl=12)
    env.reset(seed=1)
    plans = [plan_cpsat(env.cluster, 12, time_limit=t, deterministic_time=0.5) for t in (60.0, 30.0)]
    assert plans[0][1] == plans[1][1] and plans[0][0].fragments == plans[1][0].fragments
    with pytest.raises(ValueError, match="deterministic_time"):
        solve_cpsat(env.cluster, 12, time_limit=1, deterministic_time=0)


def test_staged_plan_falls_back_to_the_fragmented_answer_when_the_exact_model_has_none(monkeypatch):
    solve = exact.solve_cpsat

    def no_answer_from_the_exact_model(cluster, mnl, *args, scope="all", **kwargs):
        res = solve(cluster, mnl, *args, scope=scope, **kwargs)
        if scope == "all":      # as when the time limit ends before CP-SAT loads its hint
            res = replace(res, status="UNKNOWN", moves=[], fragments=cluster.frag_total)
        return res

    monkeypatch.setattr(exact, "solve_cpsat", no_answer_from_the_exact_model)
    c = tiny_cluster(0)
    res, seq, dropped = plan_cpsat(c, 2, time_limit=4)
    assert res.scope == "fragmented" and res.stats["all_status"] == "UNKNOWN"
    assert res.fragments == brute_force_min_fragments(c, 2) < c.frag_total and len(seq) == len(res.moves)


@pytest.mark.parametrize("scope", ["all", "fragmented"])
def test_cpsat_with_no_answer_in_time_returns_its_hint_not_an_empty_plan(scope):
    env = VMReschedulingEnv(size="M", workload="high")
    env.reset(seed=0)
    c = env.cluster
    hint = greedy_plan(c, 50)
    greedy = c.copy()
    for v, s in hint:
        greedy.migrate(v, s)
    res = solve_cpsat(c, 50, time_limit=1e-3, hint=hint, scope=scope)      # too short to load the model
    assert res.status == "UNKNOWN" and res.fragments == greedy.frag_total < c.frag_total
    assert res.bound == 0                                                  # nothing proven
    sim, dropped = replay(c, res.moves, 50)
    assert dropped == 0 and sim.frag_total == res.fragments


def test_unknown_cpsat_scope_is_an_error_that_names_the_choices():
    c = tiny_cluster(0)
    with pytest.raises(ValueError, match="scope must be one of all, fragmented; got 'staged'"):
        solve_cpsat(c, 2, time_limit=1, scope="staged")      # staged is a plan, not a model
    for make in (lambda: plan_cpsat(c, 2, 1, scope="frag"), lambda: CPSatPolicy(scope="frag"),
                 lambda: CPSatExpert(scope="frag")):
        with pytest.raises(ValueError, match="all, fragmented, staged; got 'frag'"):
            make()


def test_cpsat_policy_replays_an_optimal_plan_in_the_env():
    c = tiny_cluster(1)
    env = VMReschedulingEnv(size="tiny", mnl=2, frag_unit=4, max_vms=8)
    obs, info = env.reset(seed=0, options={"instance": c})
    pol = CPSatPolicy(time_limit=20)
    pol.reset(env, 0)
    while True:
        obs, r, term, trunc, info = env.step(pol.act(env, obs, info))
        if term or trunc:
            break
    exact = brute_force_min_fragments(c, 2)
    assert info["metrics"]["fr_final"] == pytest.approx(exact / c.total_free_cpu)


def test_cpsat_respects_unmovable_vms_anti_affinity_and_mnl():
    c = tiny_cluster(2)
    c = Cluster(numa_cpu=c.numa_cpu, numa_mem=c.numa_mem, vm_ncpu=c.vm_ncpu, vm_nmem=c.vm_nmem, vm_span=c.vm_span,
                vm_pm=c.vm_pm, vm_numa=c.vm_numa, vm_movable=[i % 3 != 0 for i in range(c.n_vms)],
                vm_group=[0 if i in (1, 2) and c.vm_pm[1] != c.vm_pm[2] else -1 for i in range(c.n_vms)],
                frag_unit=4)
    res = solve_cpsat(c, 3, time_limit=20)
    assert res.status == "OPTIMAL" and len(res.moves) <= 3
    assert all(c.vm_movable[v] for v, _ in res.moves)
    sim, _ = replay(c, res.moves, 3)   # raises if any step were illegal
    sim.check_invariants()


def test_sequencing_parks_a_vm_to_break_a_swap_cycle():
    # two full NUMA nodes swap their 5-core VMs: one of them must be parked elsewhere first
    c = Cluster(numa_cpu=[[8, 8], [8, 8]], numa_mem=[[10, 10], [10, 10]], vm_ncpu=[3, 5, 3, 5, 2],
                vm_nmem=[0, 0, 0, 0, 0], vm_span=[1, 1, 1, 1, 1], vm_pm=[0, 0, 0, 0, 1], vm_numa=[0, 0, 1, 1, 0],
                frag_unit=4)
    plan = [(1, 1), (3, 0)]
    assert not c.is_legal(1, 1) and not c.is_legal(3, 0)
    seq, dropped = sequence_moves(c, plan, budget=3)
    assert dropped == 0 and len(seq) == 3
    sim = c.copy()
    for v, s in seq:
        sim.migrate(v, s)
    assert sim.vm_numa[1] == 1 and sim.vm_numa[3] == 0 and sim.vm_pm[1] == sim.vm_pm[3] == 0
    assert sequence_moves(c, plan, budget=2) == ([], 2)  # no budget to park: both dropped


def test_greedy_takes_the_best_single_migration():
    c = tiny_cluster(3)
    v, s, drop = best_migration(c)
    jm = c.joint_mask()
    brute = max(c.migration_delta(int(a), int(b)) for a, b in np.argwhere(jm))
    assert drop == brute and jm[v, s] and c.migration_delta(v, s) == drop


def test_greedy_beats_random_on_m_size_high_workload():
    env = VMReschedulingEnv(size="M", workload="high", mnl=30)
    out = {}
    for name in ("greedy", "random", "noop"):
        obs, info = env.reset(seed=0)
        pol = BASELINES[name]()
        pol.reset(env, 0)
        while True:
            obs, r, term, trunc, info = env.step(pol.act(env, obs, info))
            if term or trunc:
                break
        out[name] = info["metrics"]
    assert out["noop"]["fr_final"] == out["noop"]["fr_initial"] and out["noop"]["migrations"] == 0
    assert out["greedy"]["fr_final"] < out["random"]["fr_final"]
    assert out["greedy"]["fr_reduction"] > 0.1


def test_neutral_migrations_are_exactly_the_legal_ones_that_keep_the_fragments():
    c = tiny_cluster(5)
    jm = c.joint_mask()
    brute = {(int(a), int(b)) for a, b in np.argwhere(jm) if c.migration_delta(int(a), int(b)) == 0}
    vms, slots = neutral_migrations(c)
    assert set(zip(vms.tolist(), slots.tolist())) == brute and brute


def test_lookahead_makes_greedys_moves_then_neutral_ones_that_open_a_gain():
    env = VMReschedulingEnv(size="M", workload="high", mnl=50)
    gains = []
    for seed in range(2):
        env.reset(seed=seed)
        c = env.cluster
        greedy = greedy_plan(c, 50)
        plan = lookahead_plan(c, 50, np.random.default_rng(seed))
        assert plan[:len(greedy)] == greedy                  # greedy's moves first, in its order
        assert plan == lookahead_plan(c, 50, np.random.default_rng(seed))   # seeded
        sim = c.copy()
        fr = [sim.fragment_rate()]
        for v, s in plan:
            assert sim.is_legal(v, s)
            sim.migrate(v, s)
            fr.append(sim.fragment_rate())
        extra = np.diff(fr[len(greedy):])
        assert (extra <= 1e-12).all() and len(plan) > len(greedy)   # each added move keeps or lowers FR
        gains.append(fr[len(greedy)] - fr[-1])
    assert min(gains) > 0.02          # ... and beyond greedy's stopping point it lowers FR further


class _StallingPolicy(Policy):
    """Greedy's first ``gains`` migrations, then FR-neutral ones: a policy that stops seeing gains."""

    name = "stalling"

    def __init__(self, gains: int):
        self.gains = gains

    def reset(self, env, seed=None):
        super().reset(env, seed)
        self._queue = []

    def act(self, env, obs, info):
        if not self._queue:
            if env.migrations < self.gains:
                v, s, _ = best_migration(env.cluster)
            else:
                vms, slots = neutral_migrations(env.cluster)
                v, s = vms[0], slots[0]
            self._queue = env.encode_migration(int(v), int(s))
        return self._queue.pop(0)


def _frag_after(cluster, plan) -> int:
    sim = cluster.copy()
    for v, s in plan:
        assert sim.is_legal(v, s)
        sim.migrate(v, s)
    return sim.frag_total


def test_lookahead_completion_spends_a_stalled_policys_neutral_tail_on_gains():
    env = VMReschedulingEnv(size="M", workload="high", mnl=20, allow_stop=False)
    env.reset(seed=0)
    c = env.cluster.copy()
    stalled = rollout(env, _StallingPolicy(3), 0)[1]
    assert len(stalled) == 20 and _frag_after(c, stalled) == _frag_after(c, stalled[:3])
    completed = complete_with_lookahead(c, stalled, 20, np.random.default_rng(0))
    assert completed[:3] == stalled[:3] and len(completed) <= 20
    greedy = greedy_plan(c, 20)
    assert len(greedy) > 3          # greedy had gains left that the stalled policy did not take ...
    # ... the completion takes them (the look-ahead starts as greedy does) and maybe more
    assert _frag_after(c, completed) <= _frag_after(c, greedy) < _frag_after(c, stalled)
    # a plan without a neutral tail is kept as it is
    assert complete_with_lookahead(c, greedy, len(greedy), np.random.default_rng(0)) == greedy

    obs, info = env.reset(seed=0)
    pol = LookaheadCompletion(lambda: _StallingPolicy(3))
    pol.reset(env, 0)
    assert pol.policy_plan == stalled and pol.sequence == completed     # seeded by the reset seed
    while True:
        obs, r, term, trunc, info = env.step(pol.act(env, obs, info))
        if term or trunc:
            break
    assert env.plan[:len(completed)] == completed and info["metrics"]["migrations"] == 20
    assert env.cluster.frag_total == _frag_after(c, completed)   # budget left after it: neutral moves


def test_best_of_k_keeps_the_best_seeded_rollout_and_replays_it():
    env = VMReschedulingEnv(size="S", workload="medium", mnl=10)
    env.reset(seed=3)
    best, runs = best_of_k(env, [LegalRandomPolicy] * 6, list(range(6)), fewest_fragments)
    all_fr = [r.metrics["fr_final"] for r in runs]
    assert runs[best].metrics["fr_final"] == min(all_fr) and len(all_fr) == 6 and len(set(all_fr)) > 1
    again, runs_again = best_of_k(env, [LegalRandomPolicy] * 6, list(range(6)), fewest_fragments)
    assert runs_again[again].actions == runs[best].actions  # seeded
    assert env.migrations == 0 and env.phase == 0            # the env is left where it was
    res = {"fr_final": runs[best].metrics["fr_final"]}
    obs, info = env.reset(seed=3)
    pol = BestOfK(LegalRandomPolicy, 6)
    pol.reset(env, 0)
    while True:
        obs, r, term, trunc, info = env.step(pol.act(env, obs, info))
        if term or trunc:
            break
    assert info["metrics"]["fr_final"] == pytest.approx(res["fr_final"])


def test_best_of_k_with_a_first_policy_is_never_worse_than_that_policy():
    env = VMReschedulingEnv(size="S", workload="high", mnl=10, allow_stop=False)
    env.reset(seed=5)
    greedy_fr = rollout(env, GreedyPolicy(), 0)[0].metrics["fr_final"]
    pol = BestOfK(LegalRandomPolicy, 4, first=GreedyPolicy)
    pol.reset(env, 0)
    all_fr = [r.metrics["fr_final"] for r in pol.runs]
    assert all_fr[0] == pytest.approx(greedy_fr)  # rollout 0 is the first policy's
    assert pol.runs[pol.best_index].metrics["fr_final"] <= greedy_fr and len(all_fr) == 4


def test_baselines_are_reachable_by_name_and_work_in_every_action_mode():
    table = rlsys_envs.baselines("rlsys/VMRescheduling-v0")
    assert {"noop", "random", "greedy", "lookahead", "cpsat", "cpsat_fragmented", "random_best16"} <= set(table)
    for kwargs in (dict(size="tiny", workload="low", action_mode="joint", mnl=4),
                   dict(size="S", action_mode="penalty", mnl=4), dict(size="S", allow_stop=False, mnl=4)):
        env = VMReschedulingEnv(**kwargs)
        for name in ("noop", "greedy", "random", "cpsat_fragmented"):
            pol = table[name]()
            assert isinstance(pol, Policy)
            obs, info = env.reset(seed=1)
            pol.reset(env, 1)
            while True:
                obs, r, term, trunc, info = env.step(pol.act(env, obs, info))
                if term or trunc:
                    break
            assert info["metrics"]["invalid_actions"] == 0.0
