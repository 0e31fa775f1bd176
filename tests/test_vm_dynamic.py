"""VM rescheduling, dynamic mode: arrivals and departures on a simulated decision clock."""
import numpy as np
import pytest

from rlsys_envs.vm import cluster_from_lists, generate_cluster
from rlsys_envs.vm.baselines import GreedyPolicy
from rlsys_envs.vm.dynamic import DynamicCluster, apply_plan, run_plan, run_policy
from rlsys_envs.vm.env import VMReschedulingEnv
from rlsys_envs.vm.planning import greedy_plan

G = 1024


@pytest.fixture(scope="module")
def snap():
    return generate_cluster(np.random.default_rng(1), "S", "low")   # greedy finds 4 migrations


def test_the_world_is_deterministic_and_independent_of_how_time_is_split(snap):
    a, b = DynamicCluster(snap, seed=3, lifetime_s=600), DynamicCluster(snap, seed=3, lifetime_s=600)
    a.advance(300.0)
    for _ in range(30):
        b.advance(10.0)
    assert (a.arrivals, a.departures, a.rejected) == (b.arrivals, b.departures, b.rejected)
    assert a.arrivals > 0 and a.departures > 0
    assert np.array_equal(a.uid, b.uid) and np.array_equal(a.cluster.vm_pm, b.cluster.vm_pm)
    a.cluster.check_invariants()
    c = DynamicCluster(snap, seed=4, lifetime_s=600)
    c.advance(300.0)
    assert (c.arrivals, c.departures) != (a.arrivals, a.departures) or not np.array_equal(c.uid, a.uid)
    # the world keeps the snapshot's load roughly stationary (arrival rate = n_vms / lifetime)
    assert abs(a.cluster.n_vms - snap.n_vms) < 0.3 * snap.n_vms


def test_run_plan_is_deterministic_and_accounts_for_every_move(snap):
    def make():
        return DynamicCluster(snap, seed=1, lifetime_s=900)

    def greedy(c, mnl):
        return greedy_plan(c, mnl)

    fresh = run_plan(make, greedy, 20, solve_s=0.0)
    assert fresh.dropped_departed == fresh.dropped_illegal == 0 and fresh.applied == fresh.planned > 0
    assert fresh.fr_final < fresh.fr_noop          # no time passed: the whole gain
    stale = [run_plan(make, greedy, 20, solve_s=3600.0) for _ in range(2)]
    assert stale[0].as_dict() == stale[1].as_dict()
    r = stale[0]
    assert r.planned == r.applied + r.dropped_departed + r.dropped_illegal == fresh.planned
    assert r.dropped_departed + r.dropped_illegal > 0
    assert r.fr_ready == r.fr_noop or r.applied > 0
    assert r.clock_s == 3600.0


def test_dropped_moves_are_counted_by_cause():
    # three PMs; vm0 (4 cores) on pm0 node 0, vm1 (4 cores) on pm0 node 1; plan: vm0 -> pm1 node 0
    # (slot 2) and vm1 -> pm2 node 0 (slot 4); an arrival fills slot 2, vm1 leaves: both dropped
    vms = [(4, 4 * G, 1, 0, 0), (4, 4 * G, 1, 0, 1)]
    c = cluster_from_lists([[44, 44]] * 3, [[184388] * 2] * 3, vms)
    world = DynamicCluster(c, seed=0, arrival_rate=0.0, lifetime_s=1e9)
    world._rebuild({1}, [(99, 44, 8 * G, 1, 1, 0)])        # vm1 leaves, a 44-core VM takes slot 2
    assert world.row_of(1) == -1 and world.row_of(99) == 1
    counts = apply_plan(world, [(0, 2), (1, 4)])
    assert counts == {"applied": 0, "dropped_departed": 1, "dropped_illegal": 1}
    assert apply_plan(world, [(0, 4)]) == {"applied": 1, "dropped_departed": 0, "dropped_illegal": 0}
    world.cluster.check_invariants()


def test_run_policy_acts_on_the_moving_world(snap):
    def make():
        return DynamicCluster(snap, seed=2, lifetime_s=60)   # fast churn: the world changes every step

    env = VMReschedulingEnv(instance=snap, mnl=10, max_vms=snap.n_vms + 100)
    runs = [run_policy(make, env, GreedyPolicy(), mnl=10, seed=0, step_cost_s=1.0) for _ in range(2)]
    assert runs[0].as_dict() == runs[1].as_dict()
    r = runs[0]
    assert r.dropped_illegal == r.dropped_departed == 0 and r.applied == r.planned
    assert r.clock_s == pytest.approx(2.0 * r.applied) and r.arrivals + r.departures > 0
    env.cluster.check_invariants()
