"""The memory mapping game: legal placements under random play, the return as the run time saved,
XLA's rule on a hand-built program, allocation mode, and the baselines."""
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import rlsys_envs
from rlsys_envs.core import InvalidActionError, RandomMaskedPolicy, play_episode
from rlsys_envs.malloc.baselines import BASELINES, BestFitPolicy, FirstFitPolicy
from rlsys_envs.malloc.env import MemoryMappingEnv
from rlsys_envs.malloc.model import AcceleratorProfile, Program

ID = "rlsys/MemoryMapping-v0"
MINIMALLOC = Path(__file__).resolve().parents[2] / "shared" / "data" / "minimalloc"
UNIT = AcceleratorProfile("unit", peak_flops=1.0, bw_slow=1.0, bw_fast=2.0)


def independent_time(program, offsets):
    """The roofline program time of a placement, op by op in plain Python."""
    memory = [0.0] * program.n_ops
    for op, buf, nbytes in zip(program.acc_op, program.acc_buf, program.acc_bytes):
        bw = program.profile.bw_fast if offsets[buf] >= 0 else program.profile.bw_slow
        memory[op] += nbytes / bw
    return sum(max(c, m) for c, m in zip(program.compute, memory))


def assert_legal(program, offsets):
    fast = np.flatnonzero(offsets >= 0)
    for i in fast:
        assert 0 <= offsets[i] and offsets[i] + program.size[i] <= program.capacity
    for a in fast:
        for b in fast:
            if a < b and program.start[a] < program.end[b] and program.start[b] < program.end[a]:
                assert offsets[a] + program.size[a] <= offsets[b] or offsets[b] + program.size[b] <= offsets[a], \
                    f"buffers {a} and {b} overlap in time and address"


@pytest.mark.parametrize("kwargs", [{"instance": "small"}, {"instance": "medium", "max_candidates": 4},
                                    {"instance": "small", "order": "start", "capacity_fraction": 0.6}])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_random_play_is_legal_and_the_return_is_the_time_saved(kwargs, seed):
    env = gym.make(ID, **kwargs)
    ep = play_episode(env, RandomMaskedPolicy(), seed=seed)
    base = env.unwrapped
    p, offsets = base.program, base.placement()
    assert ep.steps == p.n_buffers
    assert_legal(p, offsets)
    slow = independent_time(p, np.full(p.n_buffers, -1))
    saved = (slow - independent_time(p, offsets)) / slow
    assert ep.total_return == pytest.approx(saved, abs=1e-9)
    assert ep.metrics["saved_fraction"] == pytest.approx(saved, abs=1e-9)
    assert 0 <= ep.metrics["saved_of_max"] <= 1 + 1e-9


def hand_program():
    """Memory-bound ops (compute 0), bw_slow 1, bw_fast 2, capacity 12 (docstring of the test)."""
    sizes = [4, 2, 3, 3]                 # P, Q, R, S
    start, end = [0, 0, 0, 2], [2, 4, 4, 4]
    nbytes = [80.0, 20.0, 20.0, 10.0]    # saving / sqrt(size): 20, 7.07, 5.77, 2.89 -> order P, Q, R, S
    return Program([0.0] * 4, sizes, start, end, [0, 0, 0, 2], [0, 1, 2, 3], nbytes, 12, UNIT, "hand",
                   ["P", "Q", "R", "S"])


def test_xla_like_on_a_hand_built_program():
    """P at 0 (empty memory); Q over P at 4; R at 6 (0 and 4 are taken); S, live over [2, 4) when P
    is dead, has canonical positions 0 (gap 4, up to Q) and 9 (gap 3, up to the capacity): best fit
    takes 9, first fit 0. Everything is fast: time 130 -> 65, half the run time saved."""
    env = MemoryMappingEnv(instance=hand_program())
    env.reset(seed=0)
    assert env.order_index.tolist() == [0, 1, 2, 3]
    ep = play_episode(env, BestFitPolicy(), seed=0)
    assert env.placement().tolist() == [0, 4, 6, 9]
    assert ep.total_return == pytest.approx(0.5)
    play_episode(env, FirstFitPolicy(), seed=0)
    assert env.placement().tolist() == [0, 4, 6, 0]


def test_masked_actions_are_refused_and_slow_is_always_legal_in_map_mode():
    env = MemoryMappingEnv(instance=hand_program(), max_candidates=3)
    obs, info = env.reset(seed=0)
    assert info["action_mask"].tolist() == [True, False, False, True]
    with pytest.raises(InvalidActionError):
        env.step(1)
    assert env.step(0)[1] == pytest.approx(40 / 130)
    assert env.observation_space.contains(env.observe()[0])


def test_allocation_mode_fails_when_a_buffer_fits_nowhere():
    tight = hand_program().with_capacity(6)   # P [0, 4); Q at 4; R fits nowhere
    env = MemoryMappingEnv(instance=tight, objective="allocate")
    env.reset(seed=0)
    env.step(0)
    env.step(0)
    mask = env.action_masks()
    assert mask.tolist() == [False] * 16 + [True]        # only "give up"
    _, reward, terminated, _, info = env.step(16)
    assert terminated and reward == 0 and info["metrics"]["allocated"] == 0.0
    ok = MemoryMappingEnv(instance=hand_program(), objective="allocate")
    ep = play_episode(ok, BestFitPolicy(), seed=0)
    assert ep.metrics["allocated"] == 1.0 and ep.total_return == pytest.approx(1.0)
    ok.reset(seed=0)
    assert not ok.action_masks()[16]                     # a buffer that fits must be placed


@pytest.mark.skipif(not MINIMALLOC.is_dir(), reason="MiniMalloc benchmarks not present")
def test_minimalloc_example_is_allocated():
    env = MemoryMappingEnv(instance=str(MINIMALLOC / "input.12.csv"), objective="allocate", order="size")
    assert env.instance_source.instance.capacity == 12   # from the file name
    for policy in (BestFitPolicy(), BASELINES["cpsat"]()):
        ep = play_episode(env, policy, seed=0)
        assert_legal(env.program, env.placement())
        assert ep.metrics["allocated"] == 1.0 and ep.total_return == pytest.approx(1.0)


def test_baselines_play_legal_episodes_and_search_beats_xla_somewhere():
    env = gym.make(ID, instance="small")
    table = rlsys_envs.baselines(ID)
    assert set(table) == set(BASELINES)
    results = {}
    for name in ("xla_like", "first_fit", "best_fit_size", "greedy_density", "random"):
        ep = play_episode(env, table[name](), seed=0)
        assert_legal(env.unwrapped.program, env.unwrapped.placement())
        results[name] = ep.metrics["saved_fraction"]
    assert results["xla_like"] > 0
