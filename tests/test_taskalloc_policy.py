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


def make_policy(env, seed=0, **kwargs):
    torch.manual_seed(seed)
    return AllocationPolicy(env.observation_space, env.action_space, lambda _: 3e-4,
                            features_extractor_kwargs={"hidden": 32, "layers": 1, "heads": 2, "ff": 64}, **kwargs)


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


@pytest.mark.parametrize("pair_features", [False, True])
@pytest.mark.parametrize("mode", ["two_stage", "sequential"])
def test_policy_acts_legally_and_inactive_components_are_parameter_free(mode, pair_features):
    env = TaskAllocationEnv(scenario="electric", mode=mode)
    policy = make_policy(env, pair_features=pair_features)
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


@pytest.mark.parametrize("pair_features", [False, True])
def test_the_same_weights_run_on_twice_the_entities_and_tasks(pair_features):
    small = TaskAllocationEnv(scenario="rbf", n_entities=20, n_tasks=10, n_slots=3)
    big = TaskAllocationEnv(scenario="rbf", n_entities=120, n_tasks=60, n_slots=10)
    trained = make_policy(small, pair_features=pair_features)
    other = make_policy(big, seed=1, pair_features=pair_features)
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


def test_pair_features_are_the_coverage_and_travel_of_the_model():
    """``pair_features=True``: in stage 2 of an RBF-like epoch, the features of (entity, current
    task) are its cost, the share of the *remaining* requirement it covers, whether it covers all of
    it (in the model's integer units) and the Manhattan distance the entity would walk."""
    env = TaskAllocationEnv(scenario="rbf")
    policy = make_policy(env, pair_features=True)
    obs, _ = env.reset(seed=3)
    seen = 0
    for _ in range(400):
        m = env.model
        if env.stage == 2 and m.picks:                       # a partly covered current task
            s, q = m.current_slot, int(m.slot_task[m.current_slot])
            pairs = policy._pairs(batch(obs))[0, : m.E, s].numpy()
            scale = env.skill_scale
            share = np.minimum(m.inst.entity_cap / scale, m.remaining / scale).sum(1) / (m.remaining / scale).sum()
            dist = np.abs(m.pos - m.inst.task_pos[q]).sum(1) / m.inst.map_size
            assert np.allclose(pairs[:, 0], obs["pair_cost"][: m.E, s])
            assert np.allclose(pairs[:, 1], share, atol=1e-5)
            assert np.array_equal(pairs[:, 2] == 1.0, np.all(m.inst.entity_cap >= m.remaining, axis=1))
            assert np.allclose(pairs[:, 3], dist, atol=1e-5)
            seen += 1
        mask = torch.as_tensor(env.action_masks()[None])
        with torch.no_grad():
            action, _, _ = policy(batch(obs), deterministic=False, action_masks=mask)
        obs, _, term, trunc, _ = env.step(action[0].numpy())
        if term or trunc or seen >= 5:
            break
    assert seen >= 5


def test_pair_features_start_as_the_plain_policy_and_are_saved():
    """Its MLPs start at zero (the plain policy's logits, same weights otherwise), and the flag is
    a constructor parameter (saved with a checkpoint), only when on."""
    env = TaskAllocationEnv(scenario="rbf")
    plain, paired = make_policy(env), make_policy(env, pair_features=True)
    paired.load_state_dict(plain.state_dict(), strict=False)
    obs, _ = env.reset(seed=0)
    with torch.no_grad():
        assert torch.equal(plain.logits_and_values(batch(obs))[0], paired.logits_and_values(batch(obs))[0])
    assert paired._get_constructor_parameters()["pair_features"] is True
    assert "pair_features" not in plain._get_constructor_parameters()


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
