"""The task-allocation attention policy: its vectorised masked distribution equals sb3-contrib's
MultiDiscrete one, inactive-stage components carry no parameter-dependent log-probability, and the
same weights act legally on other entity / task counts (zero-shot)."""
import numpy as np
import pytest
import torch
from sb3_contrib.common.maskable.distributions import MaskableMultiCategoricalDistribution

from rlsys_agents.policies import AllocationPolicy, GroupedCategorical
from rlsys_envs.core import multi_discrete_legal
from rlsys_envs.taskalloc.env import TaskAllocationEnv

torch.set_num_threads(1)


def make_policy(env, seed=0):
    torch.manual_seed(seed)
    return AllocationPolicy(env.observation_space, env.action_space, lambda _: 3e-4,
                            features_extractor_kwargs={"hidden": 32, "layers": 1, "heads": 2, "ff": 64})


def batch(obs):
    return {k: torch.as_tensor(v[None]).float() for k, v in obs.items()}


def test_grouped_categorical_equals_sb3_multicategorical():
    torch.manual_seed(0)
    E, K = 5, 3
    nvec = [K + 1] * E + [E + 1]
    logits = torch.randn(4, sum(nvec))
    masks = torch.rand(4, sum(nvec)) > 0.4
    offsets = np.cumsum([0] + nvec)
    for b in range(4):                      # every component keeps a legal value
        for d in range(len(nvec)):
            masks[b, offsets[d]] = True
    ref = MaskableMultiCategoricalDistribution(nvec).proba_distribution(logits)
    ref.apply_masking(masks)
    ours = GroupedCategorical([logits[:, : E * (K + 1)].reshape(4, E, K + 1), logits[:, E * (K + 1):].unsqueeze(1)],
                              masks)
    actions = ours.sample()
    assert torch.allclose(ours.log_prob(actions), ref.log_prob(actions), atol=1e-4)
    assert torch.allclose(ours.entropy(), ref.entropy(), atol=1e-4)
    assert torch.equal(ours.mode(), ref.mode())
    for b in range(4):
        assert multi_discrete_legal(masks[b].numpy(), nvec, actions[b].numpy())


@pytest.mark.parametrize("mode", ["two_stage", "sequential"])
def test_policy_acts_legally_and_inactive_components_are_parameter_free(mode):
    env = TaskAllocationEnv(scenario="electric", mode=mode)
    policy = make_policy(env)
    obs, _ = env.reset(seed=0)
    for _ in range(12):
        mask = torch.as_tensor(env.action_masks()[None])
        with torch.no_grad():
            action, _, _ = policy(batch(obs), deterministic=False, action_masks=mask)
        a = action[0].numpy()
        env.check_action(a if mode == "two_stage" else int(a))
        if mode == "two_stage" and env.stage == 1:
            logits, _ = policy.logits_and_values(batch(obs))
            assert torch.all(logits[0, -(env.max_entities + 1):] == 0), "the ignored stage-2 component"
        obs, _, term, trunc, _ = env.step(a if mode == "two_stage" else int(a))
        if term or trunc:
            break


def test_the_same_weights_run_on_twice_the_entities_and_tasks():
    small = TaskAllocationEnv(scenario="rbf", n_entities=20, n_tasks=10, n_slots=3)
    big = TaskAllocationEnv(scenario="rbf", n_entities=120, n_tasks=60, n_slots=10)
    trained = make_policy(small)
    other = make_policy(big, seed=1)
    other.load_state_dict(trained.state_dict())           # no parameter depends on the counts
    obs, _ = big.reset(seed=0)
    steps = 0
    while True:
        with torch.no_grad():
            action, _, _ = other(batch(obs), deterministic=True, action_masks=torch.as_tensor(big.action_masks()[None]))
        obs, _, term, trunc, info = big.step(action[0].numpy())
        steps += 1
        if term or trunc or steps > 3000:
            break
    assert term and info["metrics"]["epochs"] >= 1


def test_the_shipped_almighty_checkpoint_escapes_the_trap():
    from pathlib import Path

    from rlsys_agents.evaluation import load_policy
    from rlsys_envs.core import play_episode

    path = Path(__file__).resolve().parents[1] / "agents" / "checkpoints" / "taskalloc_almighty_ppo.zip"
    if not path.is_file():
        pytest.skip("the Almighty checkpoint is not in this checkout")
    policy = load_policy(str(path), "rlsys/TaskAllocation-v0", {"scenario": "almighty"})
    for mode_seed in (0, 1):
        ep = play_episode(TaskAllocationEnv(scenario="almighty"), policy, seed=mode_seed)
        assert ep.metrics["total_net_value"] == 35.0
