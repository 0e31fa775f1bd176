"""The canonical backtracking allocator (``rlsys_envs.malloc.search``) and the buffer-choice mode:
its answers agree with CP-SAT's packing model on small random instances, its packings are legal
and replay in the environment, and the choice mode's masks follow the allocation rules."""
import numpy as np
import pytest

from rlsys_envs.core import InvalidActionError, RandomMaskedPolicy, play_episode
from rlsys_envs.malloc.baselines import BASELINES, CanonicalSearchPolicy
from rlsys_envs.malloc.env import MemoryMappingEnv
from rlsys_envs.malloc.exact import solve_cpsat
from rlsys_envs.malloc.model import AcceleratorProfile, Program
from rlsys_envs.malloc.search import preorder, solve_canonical

UNIT = AcceleratorProfile("unit", peak_flops=1.0, bw_slow=1.0, bw_fast=2.0)


def packing(sizes, start, end, capacity):
    """A program of given buffers (one access each at its first position)."""
    t = int(max(end))
    return Program([0.0] * t, sizes, start, end, list(start), list(range(len(sizes))), [1.0] * len(sizes),
                   capacity, UNIT, "packing")


def random_packing(rng, n=9, horizon=6):
    start = rng.integers(0, horizon - 1, n)
    end = np.minimum(start + rng.integers(1, 4, n), horizon)
    sizes = rng.integers(1, 6, n)
    p = packing(sizes, start, end, 1)
    return p.with_capacity(int(p.peak_live_bytes() + rng.integers(0, 3)))


@pytest.mark.parametrize("seed", range(12))
def test_search_agrees_with_cpsat_packing_on_small_random_instances(seed):
    p = random_packing(np.random.default_rng(seed))
    mine = solve_canonical(p, time_limit=20)
    ref = solve_cpsat(p, objective="allocate", canonical=False, time_limit=20)
    assert ref.status in ("OPTIMAL", "FEASIBLE", "INFEASIBLE")
    assert mine.status == ("INFEASIBLE" if ref.status == "INFEASIBLE" else "FEASIBLE")
    if mine.status == "FEASIBLE":
        assert (mine.offsets >= 0).all()
        p.check_placement(mine.offsets)
        assert sorted(mine.sequence.tolist()) == list(range(p.n_buffers))


def test_search_on_a_hand_built_instance():
    """A and B live together and fill the capacity 6 (4 + 2); C, after A, fits on 0 only if it is
    placed before B is put on 0: the search must find a packing; one more byte is infeasible."""
    p = packing([4, 2, 3], [0, 0, 2], [2, 4, 4], 6)
    r = solve_canonical(p)
    assert r.status == "FEASIBLE"
    p.check_placement(r.offsets)
    assert solve_canonical(packing([4, 3, 3], [0, 0, 2], [2, 4, 4], 6)).status == "INFEASIBLE"
    assert solve_canonical(packing([7], [0], [1], 6)).status == "INFEASIBLE"    # larger than the memory


def test_preorder_letters_and_errors():
    p = packing([4, 2, 3], [0, 0, 2], [2, 4, 4], 6)
    assert preorder(p, "Z").tolist() == [0, 2, 1]           # by size, decreasing
    assert preorder(p, "LZ").tolist() == [1, 0, 2]          # B lives longest; then A (size 4) before C
    with pytest.raises(ValueError, match="heuristic"):
        preorder(p, "Q")


def choice_env(program, **kwargs):
    return MemoryMappingEnv(instance=program, objective="allocate", buffer_choice=True, max_candidates=4, **kwargs)


def test_buffer_choice_actions_masks_and_failure():
    """Action i * (K + 1) + k puts buffer i at its k-th offered offset; a buffer that fits nowhere
    leaves only its slow action, which ends the episode as a failure."""
    env = choice_env(packing([4, 2, 3], [0, 0, 2], [2, 4, 4], 6))     # A, B, C; capacity 6
    obs, info = env.reset(seed=0)
    slots = env.slots
    assert env.action_space.n == 3 * slots == len(info["action_mask"]) == len(obs["candidates_mask"])
    mask = info["action_mask"].reshape(3, slots)
    assert mask[:, 0].all() and mask.sum() == 3               # each at 0; no slow action while it fits
    env.step(0 * slots + 0)                                     # A at 0 over [0, 2)
    mask = env.action_masks().reshape(3, slots)
    assert not mask[0].any() and mask[1].tolist() == [True] + [False] * 4 and mask[2, 0]
    assert env.action_for(1, 4) == 1 * slots and env.action_for(1, 0) is None   # B: on top of A only
    with pytest.raises(InvalidActionError):
        env.step(0 * slots + 0)                                 # A is placed already
    env.step(env.action_for(1, 4))
    _, _, terminated, _, info = env.step(env.action_for(2, 0))  # C at 0 (A has ended)
    assert terminated and info["metrics"]["allocated"] == 1.0
    assert env.placement().tolist() == [0, 4, 0]

    env = choice_env(packing([4, 3, 3], [0, 0, 2], [2, 4, 4], 6))     # 4 + 3 > 6: infeasible
    env.reset(seed=0)
    env.step(1 * slots + 0)                                     # B at 0: A fits nowhere now
    mask = env.action_masks().reshape(3, slots)
    assert mask.sum() == 1 and mask[0, slots - 1] and env.current == 0
    _, reward, terminated, _, info = env.step(0 * slots + slots - 1)
    assert terminated and reward == 0 and info["metrics"]["allocated"] == 0.0


def test_buffer_choice_random_play_is_legal_and_search_allocates():
    env = MemoryMappingEnv(instance="small", objective="allocate", capacity_fraction=1.1, buffer_choice=True)
    for seed in range(3):
        ep = play_episode(env, RandomMaskedPolicy(), seed=seed)
        env.program.check_placement(env.placement())
        assert ep.steps <= env.program.n_buffers
        policy = CanonicalSearchPolicy(time_limit=20)
        ep = play_episode(env, policy, seed=seed)
        if policy.result.status == "FEASIBLE":
            assert ep.metrics["allocated"] == 1.0 and policy.fallbacks == 0
            assert np.array_equal(env.placement(), policy.result.offsets)


def test_fixed_order_rules_play_the_same_game_in_buffer_choice_mode():
    fixed = MemoryMappingEnv(instance="small")
    choice = MemoryMappingEnv(instance="small", buffer_choice=True)
    for name in ("xla_like", "first_fit", "greedy_density"):
        a = play_episode(fixed, BASELINES[name](), seed=1)
        b = play_episode(choice, BASELINES[name](), seed=1)
        assert a.total_return == pytest.approx(b.total_return)
        assert np.array_equal(fixed.placement(), choice.placement())


def test_minimalloc_benchmark_is_allocated_by_the_search(shared_data):
    path = shared_data / "minimalloc" / "B.1048576.csv"
    if not path.is_file():
        pytest.skip(f"{path} not found")
    env = MemoryMappingEnv(instance=str(path), objective="allocate", buffer_choice=True)
    policy = CanonicalSearchPolicy(time_limit=60)
    ep = play_episode(env, policy, seed=0)
    assert policy.result.status == "FEASIBLE", policy.result
    assert ep.metrics["allocated"] == 1.0 and ep.total_return == pytest.approx(1.0)
    env.program.check_placement(env.placement())
