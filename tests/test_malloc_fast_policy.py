"""The numpy row-pointer inference (``rlsys_agents.fast_pointer``) gives the shipped memory mapping
checkpoint's logits and greedy actions, with the buffer table re-encoded incrementally."""
from pathlib import Path

import numpy as np
import pytest
import torch

from rlsys_envs.malloc.env import MemoryMappingEnv

CHECKPOINT = Path(__file__).resolve().parents[1] / "agents" / "checkpoints" / "malloc_ppo.zip"


@pytest.mark.parametrize("kwargs", [{"instance": "small"}, {"instance": "medium", "max_candidates": 8}])
def test_fast_greedy_matches_sb3(kwargs):
    from rlsys_agents.evaluation import load_sb3
    from rlsys_agents.fast_pointer import FastPointerPolicy, supports

    env = MemoryMappingEnv(**kwargs)
    model = load_sb3(str(CHECKPOINT), env=env)[0]
    assert supports(model)
    plain = FastPointerPolicy(model)
    toggled = FastPointerPolicy(model, toggles={"buffers_features": (9,)})
    obs, info = env.reset(seed=3)
    plain.reset(env, 3)
    toggled.reset(env, 3)
    for _ in range(60 if kwargs["instance"] == "medium" else 1000):
        with torch.no_grad():
            ref = model.policy.logits(model.policy.obs_to_tensor(obs)[0]).numpy().reshape(-1)
        mask = info["action_mask"]
        for fast in (plain, toggled):
            mine = fast.logits(obs)
            assert np.allclose(mine[mask], ref[mask], atol=1e-4), np.abs(mine[mask] - ref[mask]).max()
        action = int(np.argmax(np.where(mask, ref, -np.inf)))
        assert toggled.act(env, obs, info) == action
        obs, _, terminated, _, info = env.step(action)
        if terminated:
            break


def test_toggle_columns_are_checked():
    from rlsys_agents.evaluation import load_sb3
    from rlsys_agents.fast_pointer import FastPointerPolicy

    env = MemoryMappingEnv(instance="small")
    model = load_sb3(str(CHECKPOINT), env=env)[0]
    with pytest.raises(ValueError, match="toggles"):
        FastPointerPolicy(model, toggles={"nope": (9,)})
    policy = FastPointerPolicy(model, toggles={"buffers_features": (3,)})   # column 3 is not 0/1
    obs, _ = env.reset(seed=0)
    with pytest.raises(ValueError, match="toggle column 3"):
        policy.logits(obs)
