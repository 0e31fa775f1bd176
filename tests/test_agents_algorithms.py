"""Algorithm registry: every algorithm builds on a real suite env; masked DQN never plays an illegal action."""
import gymnasium as gym
import pytest
import torch

import rlsys_envs  # noqa: F401
from rlsys_agents.algorithms import ALGORITHMS, check_action_space, get_algorithm, policy_spec

torch.set_num_threads(1)
SMALL = dict(n_jobs=(3, 5), n_machines=(3, 4), max_jobs=6, max_machines=6, observation="flat")


def test_registry_names():
    assert set(ALGORITHMS) == {"ppo", "maskable_ppo", "gnn_ppo", "dqn", "qrdqn", "sac"}
    with pytest.raises(ValueError, match="unknown algorithm"):
        get_algorithm("a3c")


@pytest.mark.parametrize("name", ["dqn", "qrdqn"])
def test_masked_q_learning_trains_and_evaluates_on_jobshop(name, tmp_path):
    from rlsys_agents.evaluation import evaluate, load_policy

    algo = get_algorithm(name)
    env = gym.make("rlsys/JobShop-v0", **SMALL)
    check_action_space(algo, env.action_space, "rlsys/JobShop-v0")
    policy, kwargs = policy_spec(algo, "auto", env.observation_space, {"net_arch": [16]}, {})
    # exploration 0 after warm-up: every greedy action must be legal, or the env raises
    model = algo.load_class()(policy, env, learning_starts=30, buffer_size=500, exploration_final_eps=0.0,
                              exploration_fraction=0.01, train_freq=4, seed=0, policy_kwargs=kwargs)
    model.learn(150)
    model.save(tmp_path / "q.zip")
    res = evaluate("rlsys/JobShop-v0", load_policy(str(tmp_path / "q.zip"), "rlsys/JobShop-v0", SMALL), 2, 0, SMALL)
    assert len(res["makespan"]) == 2


def test_gnn_ppo_builds_graph_extractor():
    env = gym.make("rlsys/JobShop-v0", max_jobs=6, max_machines=6, n_jobs=(3, 5), n_machines=(3, 4))
    policy, kwargs = policy_spec(get_algorithm("gnn_ppo"), "auto", env.observation_space, {}, {"hidden": 8})
    from sb3_contrib import MaskablePPO

    model = MaskablePPO(policy, env, n_steps=16, batch_size=16, n_epochs=1, policy_kwargs=kwargs, seed=0)
    model.learn(16)
    assert type(model.policy.features_extractor).__name__ == "GraphExtractor"


def test_pointer_needs_maskable_ppo_and_ppo_refuses_discrete_masked_envs():
    env = gym.make("rlsys/JobShop-v0", max_jobs=6, max_machines=6, n_jobs=(3, 5), n_machines=(3, 4))
    with pytest.raises(ValueError, match="MaskablePPO"):
        policy_spec(get_algorithm("dqn"), "pointer", env.observation_space, {}, {})
    with pytest.raises(ValueError, match="use maskable_ppo"):
        check_action_space(get_algorithm("ppo"), env.action_space, "rlsys/JobShop-v0")
