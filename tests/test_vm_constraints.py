"""VM rescheduling: VMR2L's constraints and objective variants (racks, affinity, out-of-service
hosts, memory that binds, emptying PMs, type-weighted FR, migration memory cost)."""
import numpy as np
import pytest

from rlsys_envs.core import play_episode
from rlsys_envs.vm import cluster_from_lists, generate_cluster
from rlsys_envs.vm.baselines import CPSatPolicy, GreedyPolicy, LegalRandomPolicy
from rlsys_envs.vm.env import VMReschedulingEnv
from rlsys_envs.vm.model import Cluster

G = 1024


def test_out_of_service_hosts_count_in_no_fr_and_receive_and_send_nothing():
    # pm 0 in service (free 44-8=36 -> 4 fragment cores on node 0), pm 1 out of service (free 44-6=38)
    vms = [(8, 8 * G, 1, 0, 0), (6, 6 * G, 1, 1, 0)]
    c = cluster_from_lists([[44, 44], [44, 44]], [[184388] * 2] * 2, vms, pm_accepting=[True, False])
    assert c.total_free_cpu == 36 + 44 and c.frag_total == 4 + 12
    assert np.isclose(c.fragment_rate(), 16 / 80)
    assert not c.vm_movable[1]                      # its VM stays
    assert not c.vm_slot_mask(0)[2:].any()          # nothing goes there
    c.check_invariants()


def test_memory_heavy_profile_makes_memory_bind():
    def blocked(c: Cluster) -> int:
        free = c.free
        n = 0
        for v in range(c.n_vms):
            cpu_ok = free[:, 0] >= c.vm_ncpu[v]
            n += int((cpu_ok & (free[:, 1] < c.vm_nmem[v])).sum())
        return n

    std = generate_cluster(np.random.default_rng(0), "S", "medium")
    heavy = generate_cluster(np.random.default_rng(0), "S", "medium", memory="heavy")
    assert blocked(std) == 0 and blocked(heavy) > 100 and heavy.movable_mask().sum() > 50
    heavy.check_invariants()
    # the standard profile is unchanged by the new option (same stream of draws)
    again = generate_cluster(np.random.default_rng(0), "S", "medium", memory="standard")
    assert np.array_equal(std.vm_pm, again.vm_pm) and np.array_equal(std.vm_nmem, again.vm_nmem)
    with pytest.raises(ValueError, match="memory must be one of"):
        generate_cluster(np.random.default_rng(0), "S", "high", memory="huge")


def test_cpsat_plan_respects_rack_anti_affinity():
    env = VMReschedulingEnv(size="S", workload="medium", mnl=20, n_affinity_groups=8,
                            affinity_granularity="rack", rack_size=5)
    for seed in range(2):
        ep = play_episode(env, CPSatPolicy(time_limit=1.0, scope="all"), seed)
        env.cluster.check_invariants()
        assert ep.metrics["fr_final"] <= ep.metrics["fr_initial"] + 1e-12


@pytest.mark.parametrize("objective", ["empty_pms", "weighted_fr"])
def test_objective_variants_return_their_measure(objective):
    env = VMReschedulingEnv(size="S", workload="low", mnl=30, allow_stop=False, objective=objective)
    ep = play_episode(env, LegalRandomPolicy(), 3)
    m = ep.metrics
    if objective == "empty_pms":
        expect = (m["empty_pms_final"] - m["empty_pms_initial"]) / env.n_active_pms
    else:
        expect = m["weighted_fr_initial"] - m["weighted_fr_final"]
    assert np.isclose(m["return"], expect)
    assert np.isclose(env.weighted_fr(), env._weighted_fragments())


def test_weighted_fr_with_the_fragment_unit_alone_is_the_fr():
    env = VMReschedulingEnv(size="S", mnl=10, objective="weighted_fr", type_weights={16: 1.0})
    ep = play_episode(env, GreedyPolicy(), 0)
    assert np.isclose(ep.metrics["weighted_fr_final"], ep.metrics["fr_final"])
    assert np.isclose(ep.metrics["return"], ep.metrics["fr_reduction"])
    with pytest.raises(ValueError, match="type_weights"):
        VMReschedulingEnv(size="S", type_weights={})


def test_migration_cost_is_charged_by_vm_memory():
    base = play_episode(VMReschedulingEnv(size="S", mnl=10), GreedyPolicy(), 1)
    env = VMReschedulingEnv(size="S", mnl=10, migration_cost=0.5)
    ep = play_episode(env, GreedyPolicy(), 1)
    mem_mb = base.metrics["migrated_mem_gb"] * 1024
    assert base.metrics["migrated_mem_gb"] > 0 and ep.metrics["migrated_mem_gb"] == base.metrics["migrated_mem_gb"]
    assert np.isclose(ep.metrics["return"], base.metrics["return"] - 0.5 * mem_mb / env.mem_scale)
