"""The CP-SAT reference equals brute force over every action sequence on tiny programs, and the
bounds hold: game optimum <= packing optimum <= LP bound <= all-fast saving."""
import pytest

from rlsys_envs.core import SeededDraw, play_episode
from rlsys_envs.malloc.baselines import BestFitPolicy, CPSatPolicy
from rlsys_envs.malloc.env import MemoryMappingEnv
from rlsys_envs.malloc.exact import lp_bound, solve_cpsat
from rlsys_envs.malloc.generator import LayeredPrograms

from exhaustive import best_return



@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("fraction", [0.3, 0.6])
def test_cpsat_equals_brute_force_on_tiny_programs(seed, fraction):
    program = SeededDraw(LayeredPrograms("tiny", capacity_fraction=fraction), seed).instance
    env = MemoryMappingEnv(instance=program, max_candidates=64)
    env.reset(seed=0)
    optimum = best_return(env)
    result = solve_cpsat(program, env.order_index, canonical=True, time_limit=30)
    assert result.status == "OPTIMAL"
    # the integer model's rounding is below 1e-6 of the run time per op
    assert result.saved_fraction == pytest.approx(optimum, abs=program.n_ops * 2e-6)
    assert result.bound_fraction >= optimum - 1e-9
    # the replayed plan reaches the optimum in the environment
    ep = play_episode(env, CPSatPolicy(time_limit=30), seed=0)
    assert ep.total_return == pytest.approx(result.saved_fraction, abs=1e-9)
    packing = solve_cpsat(program, canonical=False, time_limit=30)
    assert packing.saved_fraction >= optimum - program.n_ops * 2e-6
    lp = lp_bound(program)
    assert packing.saved_fraction <= lp + 1e-6
    assert lp <= (program.slow_time - program.fast_time) / program.slow_time + 1e-9


def test_cpsat_at_least_xla_on_small_and_allocate_feasibility():
    env = MemoryMappingEnv(instance="small", instance_seed=0)
    xla = play_episode(env, BestFitPolicy(), seed=0).total_return
    ep = play_episode(env, CPSatPolicy(time_limit=1), seed=0)
    assert ep.total_return >= xla - 1e-9
    roomy = MemoryMappingEnv(instance="small", instance_seed=0, objective="allocate", capacity_fraction=1.5)
    ep = play_episode(roomy, CPSatPolicy(time_limit=1), seed=0)
    assert ep.metrics["allocated"] == 1.0


def test_cpsat_expert_demonstrates_its_plan_and_takes_over_after_a_prefix():
    from rlsys_envs.malloc.expert import CPSatExpert

    program = SeededDraw(LayeredPrograms("tiny", capacity_fraction=0.4), 1).instance
    env = MemoryMappingEnv(instance=program)
    demo = CPSatExpert(time_limit=5).demonstrate(env, seed=0)
    assert demo.prefix == 0 and len(demo.actions) == program.n_buffers
    reached = env.total_return
    env.reset(seed=0)
    assert reached == pytest.approx(best_return(env), abs=program.n_ops * 2e-6)
    late = CPSatExpert(time_limit=5).demonstrate(env, seed=0, prefix=[env.slow_action])
    assert late.prefix == 1 and late.actions[0] == env.slow_action
    assert env.state.decided.all() and not env.state.fast[env.order_index[0]]


@pytest.mark.parametrize("canonical", [True, False])
def test_cpsat_is_never_worse_than_its_hint_even_without_time(canonical):
    env = MemoryMappingEnv(instance="small")
    for seed in range(3):
        xla = play_episode(env, BestFitPolicy(), seed=seed).total_return
        r = solve_cpsat(env.program, env.order_index, "map", canonical, time_limit=1e-4, hint=env.placement())
        assert r.saved_fraction >= xla - 1e-12
        env.program.check_placement(r.offsets)
