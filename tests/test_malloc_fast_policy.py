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


@pytest.mark.parametrize("kwargs,seeds", [({"instance": "small"}, (0, 1, 2)), ({"instance": "medium"}, (0,))])
def test_fast_greedy_plays_the_same_episode_as_sb3_predict(kwargs, seeds):
    """Whole episodes: the numpy player (which skips the network where one action is legal and
    scores only the legal rows) takes every action SB3's ``predict(deterministic=True)`` takes."""
    from rlsys_agents.evaluation import SB3Policy, load_sb3
    from rlsys_agents.fast_pointer import FastPointerPolicy
    from rlsys_envs.core import play_episode

    torch.set_num_threads(1)
    env = MemoryMappingEnv(**kwargs)
    model = load_sb3(str(CHECKPOINT), env=env)[0]
    for seed in seeds:
        ref = play_episode(env, SB3Policy(model, True, True), seed=seed)
        fast = play_episode(env, FastPointerPolicy(model, toggles={"buffers_features": (9,)}), seed=seed)
        assert fast.actions == ref.actions, f"seed {seed}: first difference at step " \
            f"{next(i for i, (a, b) in enumerate(zip(fast.actions, ref.actions)) if a != b)}"
        assert fast.metrics == ref.metrics


def test_incremental_pooling_equals_pooling_from_scratch():
    """The running sum and block maxima of a context table, after random row changes and toggle
    flips, equal the mean and max computed from scratch (also for a table larger than a block)."""
    from rlsys_agents.fast_pointer import _PooledTable

    rng = np.random.default_rng(0)
    layers = [("linear", rng.normal(size=(5, 8)).astype(np.float32), rng.normal(size=8).astype(np.float32)),
              ("act", lambda x: np.maximum(x, 0.0))]
    n = 3 * _PooledTable.BLOCK + 7
    table = rng.random((n, 5)).astype(np.float32)
    table[:, 2] = rng.random(n) < 0.5                     # the toggle column
    table[n - 5:] = 0.0                                   # padded rows
    pooled = _PooledTable(layers, table.shape, 2, "t")
    for step in range(40):
        got = pooled.update(table.copy())
        real = (table != 0).any(1)
        h = np.maximum(table[real] @ layers[0][1] + layers[0][2], 0.0)
        want = np.concatenate([h.mean(0), h.max(0)])
        assert np.allclose(got, want, atol=1e-5), step
        rows = rng.choice(n - 5, size=rng.integers(0, 12), replace=False)
        table[rows, 2] = 1.0 - table[rows, 2]             # flips
        other = rng.choice(n - 5, size=rng.integers(0, 3), replace=False)
        table[other, 0] = rng.random(len(other))          # feature changes
        if step == 20:
            table[3] = 0.0                                # a row becomes padding
        if step == 30:
            table[3, 1] = 0.5                             # and real again
