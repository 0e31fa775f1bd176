"""Used as a library: every registered environment in Gymnasium's vector envs (sync and async) and in
SB3's subprocess vector env started from ``python -c`` (workers that never imported rlsys_envs)."""
import subprocess
import sys
import textwrap

import gymnasium as gym
import numpy as np
import pytest

import rlsys_envs

SINGLE = [e for e in rlsys_envs.ENVIRONMENTS if e.kind == "single"]
CASES = [pytest.param(e.id, kwargs, id=f"{e.id.split('/')[1]}-{name}")
         for e in SINGLE for name, kwargs in {"default": {}, **e.variants}.items()]
#: sizes that make two sub-envs end on the same step with instances of different sizes
JOBSHOP_MIXED = [{"instance": "ft06", "observation": "flat"}, {"instance": "la01", "observation": "flat"}]


def batch_actions(envs, infos, rng):
    space = envs.single_action_space
    if isinstance(space, gym.spaces.Discrete) and "action_mask" not in infos:   # unmasked (penalty variant)
        return rng.integers(space.start, space.start + space.n, envs.num_envs)
    if isinstance(space, gym.spaces.Discrete):
        # (after a sub-env's last step its mask may be empty: Gymnasium's default "next step"
        # autoreset ignores that sub-env's next action and resets it)
        masks = infos["action_mask"]
        return np.array([rng.choice(np.flatnonzero(m)) if m.any() else 0 for m in masks], dtype=np.int64)
    if isinstance(space, gym.spaces.MultiDiscrete):   # flat per-dimension masks (task allocation)
        from rlsys_envs.core import split_mask
        return np.stack([np.array([rng.choice(np.flatnonzero(p)) if p.any() else 0 for p in split_mask(m, space.nvec)],
                                  space.dtype) for m in infos["action_mask"]])
    return np.stack([rng.uniform(space.low, space.high).astype(space.dtype) for _ in range(envs.num_envs)])


def run_vector(envs, steps, seed=0):
    rng = np.random.default_rng(seed)
    _obs, infos = envs.reset(seed=seed)
    ended = 0
    for _ in range(steps):
        _obs, _r, term, trunc, infos = envs.step(batch_actions(envs, infos, rng))
        ended += int(np.sum(term | trunc))
    return ended


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("env_id, kwargs", CASES)
def test_make_vec_steps_and_closes(env_id, kwargs, mode):
    envs = gym.make_vec(env_id, num_envs=2, vectorization_mode=mode, **kwargs)
    try:
        run_vector(envs, 60)
    finally:
        envs.close()


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_sub_envs_with_different_instance_sizes_end_together(mode):
    """ft06 (6x6) and la01 (10x5) in one vector env, both ending on the same steps many times."""
    fns = [lambda kw=kw: gym.make("rlsys/JobShop-v0", **kw) for kw in JOBSHOP_MIXED]
    cls = gym.vector.SyncVectorEnv if mode == "sync" else gym.vector.AsyncVectorEnv
    envs = cls(fns)
    try:
        # every decision of ft06 and la01 under random dispatching: they end together at some steps
        assert run_vector(envs, 400) > 4
    finally:
        envs.close()


def test_sync_and_async_trajectories_are_identical():
    def trace(mode):
        envs = gym.make_vec("rlsys/VMRescheduling-v0", num_envs=2, vectorization_mode=mode, size="S", mnl=5)
        rng = np.random.default_rng(0)
        obs, infos = envs.reset(seed=3)
        out = [obs["pm_features"].copy()]
        for _ in range(30):
            obs, r, term, trunc, infos = envs.step(batch_actions(envs, infos, rng))
            out.append(obs["pm_features"].copy())
        envs.close()
        return np.stack(out)

    assert np.array_equal(trace("sync"), trace("async"))


def test_sb3_subprocess_envs_from_python_c_with_the_module_prefix():
    """``python -c`` workers (forkserver) never imported rlsys_envs: the documented ID form
    ``rlsys_envs:rlsys/<Name>`` makes Gymnasium import it in each worker."""
    code = textwrap.dedent("""
        from stable_baselines3.common.env_util import make_vec_env
        from stable_baselines3.common.vec_env import SubprocVecEnv
        venv = make_vec_env("rlsys_envs:rlsys/JobShop-v0", n_envs=2, vec_env_cls=SubprocVecEnv,
                            env_kwargs={"observation": "flat"})
        venv.reset()
        masks = venv.env_method("action_masks")
        import numpy as np
        venv.step(np.array([int(np.flatnonzero(m)[0]) for m in masks]))
        venv.close()
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180, cwd="/")
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-2000:]
