"""rlsys_agents.fast_inference: the numpy copy of an MLP checkpoint takes SB3's greedy action (QR-DQN on
the storage placement view, MaskablePPO on its migration view) and plays as a partner."""
import numpy as np
import pytest
import torch

from rlsys_agents.fast_inference import NumpyGreedyPolicy, numpy_partner, supports
from rlsys_agents.masked_q import MaskableQRDQN
from rlsys_envs.core import RandomMaskedPolicy
from rlsys_envs.storage import HybridStorageEnv, HybridStorageMigrationEnv

KW = dict(instance="zipf_oltp", episode_requests=400, migration_interval=20)


def _observations(env, n):
    policy = RandomMaskedPolicy()
    obs, info = env.reset(seed=0)
    policy.reset(env, 0)
    out = []
    for _ in range(n):
        out.append((obs, info))
        obs, _, term, trunc, info = env.step(policy.act(env, obs, info))
        if term or trunc:
            obs, info = env.reset(seed=len(out))
    return out


def test_qrdqn_numpy_copy_takes_the_same_greedy_actions(tmp_path):
    torch.manual_seed(0)
    env = HybridStorageEnv(**KW)
    model = MaskableQRDQN("MultiInputPolicy", env, learning_starts=50, buffer_size=500, seed=0,
                          policy_kwargs={"net_arch": [20, 30], "n_quantiles": 11, "activation_fn": torch.nn.ELU})
    model.learn(200)
    fast = NumpyGreedyPolicy(model)
    for obs, info in _observations(HybridStorageEnv(**{**KW, "instance": "mixed_sizes"}), 300):
        q = model.policy.quantile_net(model.policy.obs_to_tensor(obs)[0]).mean(1).detach().numpy()[0]
        assert np.allclose(fast.forward(obs), q, atol=1e-5)
        assert fast.act(None, obs, info) == int(model.predict(obs, deterministic=True,
                                                              action_masks=info["action_mask"])[0])
    model.save(tmp_path / "q.zip")
    # as a placement partner of the migration view (by path): the same episode as SB3's predict
    ours = HybridStorageMigrationEnv(placement=str(tmp_path / "q.zip"), **KW)
    assert type(ours.partner_factories["placement"]()) is NumpyGreedyPolicy


def test_maskable_ppo_numpy_copy_takes_the_mode_of_the_masked_distribution(tmp_path):
    from sb3_contrib import MaskablePPO

    env = HybridStorageMigrationEnv(**KW)
    model = MaskablePPO("MultiInputPolicy", env, n_steps=32, batch_size=32, seed=0, policy_kwargs={"net_arch": [16]})
    model.learn(64)
    assert supports(model)
    fast = NumpyGreedyPolicy(model)
    for obs, info in _observations(HybridStorageMigrationEnv(**KW), 150):
        want = int(model.predict(obs, deterministic=True, action_masks=info["action_mask"])[0])
        assert fast.act(None, obs, info) == want
    model.save(tmp_path / "ppo.zip")
    make = numpy_partner(tmp_path / "ppo.zip")
    assert isinstance(make(), NumpyGreedyPolicy) and make().n_actions == env.action_space.n


def test_unsupported_layers_are_refused():
    from rlsys_agents.fast_inference import _layers

    with pytest.raises(ValueError, match="not supported"):
        _layers(torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Softplus()))


@pytest.mark.parametrize("algo", ["maskable_ppo", "ppo", "qrdqn"])
def test_checkpoint_partner_plays_the_numpy_copy_with_the_actions_of_sb3_predict(tmp_path, algo):
    import copy

    import toy_parallel
    from sb3_contrib import MaskablePPO
    from stable_baselines3 import PPO

    from rlsys_agents.multiagent import CheckpointPartner

    view = toy_parallel.make_placer_view(n_slots=3, horizon=20)
    if algo == "qrdqn":      # untrained networks: their actions vary with the observation
        model = MaskableQRDQN("MultiInputPolicy", view, buffer_size=200, seed=0,
                              policy_kwargs={"net_arch": [16], "n_quantiles": 5})
    else:
        cls = MaskablePPO if algo == "maskable_ppo" else PPO
        model = cls("MultiInputPolicy", view, n_steps=32, batch_size=32, seed=0, policy_kwargs={"net_arch": [16]})
    model.save(tmp_path / "m.zip")
    fast, slow = CheckpointPartner(tmp_path / "m.zip"), CheckpointPartner(tmp_path / "m.zip", fast=False)
    par = view.parallel
    fast.reset(par, 0)
    slow.reset(par, 0)
    assert fast.uses_numpy and not slow.uses_numpy and copy.deepcopy(fast).uses_numpy
    policy = RandomMaskedPolicy()
    obs, infos = par.reset(seed=3)
    policy.reset(par, 3)
    masked_differs, seen = 0, set()
    for _ in range(120):
        o, i = obs["placer"], infos["placer"]
        a = fast.act(par, o, i)
        assert a == slow.act(par, o, i)
        seen.add(a)
        masked_differs += not i["action_mask"][a]
        obs, _, term, trunc, infos = par.step({ag: policy.act(par, obs[ag], infos[ag]) for ag in par.agents})
        if not par.agents:
            obs, infos = par.reset(seed=len(obs))
    assert len(seen) > 1
    if algo != "ppo":
        assert masked_differs == 0          # maskable algorithms choose among the legal actions only
