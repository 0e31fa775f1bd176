"""The general policy-guided MCTS (rlsys_agents.mcts): it leaves the environment where it was, and with
enough simulations and uninformed priors it finds the best action sequence of a small
deterministic game (checked against brute force over the memory mapping game's tiny programs)."""
import numpy as np
import pytest

from rlsys_agents.mcts import MCTS, MCTSPolicy
from rlsys_envs.core import SeededDraw, play_episode
from rlsys_envs.malloc.baselines import BestFitPolicy
from rlsys_envs.malloc.env import MemoryMappingEnv
from rlsys_envs.malloc.generator import LayeredPrograms

from exhaustive import best_return


def uniform(obs, mask):
    return np.ones(len(mask)), 0.0



def test_search_leaves_the_env_unchanged():
    env = MemoryMappingEnv(instance="small", instance_seed=0)
    env.reset(seed=0)
    env.step(int(np.flatnonzero(env.action_masks())[0]))
    before = env.observe()[0]
    MCTS(uniform, simulations=20).search(env)
    after = env.observe()[0]
    assert all(np.array_equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_mcts_finds_the_optimum_of_tiny_programs(seed):
    program = SeededDraw(LayeredPrograms("tiny", capacity_fraction=0.4), seed).instance
    env = MemoryMappingEnv(instance=program)
    env.reset(seed=0)
    optimum = best_return(env)
    ep = play_episode(env, MCTSPolicy(uniform, simulations=300), seed=0)
    assert ep.total_return == pytest.approx(optimum, abs=1e-12)
    assert ep.total_return >= play_episode(env, BestFitPolicy(), seed=0).total_return - 1e-12
