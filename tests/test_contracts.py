"""Contracts every registered environment keeps (ARCHITECTURE.md), run for each ID and variant:
Gymnasium's and SB3's ``check_env`` (PettingZoo's ``parallel_api_test`` for several agents),
bit-for-bit determinism under a seed, state snapshots that branch and restore exactly, refusal of
an action outside the mask without touching state, self-ending episodes with ``info["metrics"]``,
keyword-only constructors, renderers, and baselines reachable by name. A toy two-agent
environment (``toy_parallel``) runs through the same checks as the built-in ones."""
import importlib
import inspect
import math
import warnings

import gymnasium as gym
import numpy as np
import pytest
import toy_parallel

import rlsys_envs
from rlsys_envs.core import InvalidActionError, Policy, split_mask

toy_parallel.register()
SINGLE = [e for e in rlsys_envs.entries() if e.kind == "single"]
PARALLEL = [e for e in rlsys_envs.entries() if e.kind == "parallel"]
CASES = [pytest.param(e.id, kwargs, id=f"{e.id.split('/')[1]}-{name}")
         for e in SINGLE for name, kwargs in {"default": {}, **e.variants}.items()]
DEFAULTS = [pytest.param(e.id, id=e.id.split("/")[1]) for e in SINGLE]
PARALLEL_CASES = [pytest.param(e.id, kwargs, id=f"{e.id.split('/')[1]}-{name}")
                  for e in PARALLEL for name, kwargs in {"default": {}, **e.variants}.items()]
MAX_STEPS = 20_000


def legal_action(env, rng):
    """A random action the environment accepts: among the mask for Discrete, uniform for Box."""
    space = env.action_space
    if isinstance(space, gym.spaces.Discrete):
        return int(rng.choice(np.flatnonzero(env.unwrapped.action_masks())))
    if isinstance(space, gym.spaces.MultiDiscrete):   # per-dimension masks, concatenated
        parts = split_mask(env.unwrapped.action_masks(), space.nvec)
        return np.array([rng.choice(np.flatnonzero(p)) for p in parts], space.dtype)
    return rng.uniform(space.low, space.high).astype(space.dtype)


def rollout(env_id, kwargs, seed, n_steps=MAX_STEPS):
    env = gym.make(env_id, **kwargs)
    rng = np.random.default_rng(seed)
    obs, info = env.reset(seed=seed)
    trace = [(obs, info.get("action_mask"))]
    for _ in range(n_steps):
        obs, reward, terminated, truncated, info = env.step(legal_action(env, rng))
        trace.append((obs, reward, terminated, truncated, info.get("action_mask"), info.get("metrics")))
        if terminated or truncated:
            break
    return trace, info, terminated or truncated


def assert_same(a, b, path="trace"):
    if isinstance(a, dict):
        assert a.keys() == b.keys(), path
        for k in a:
            assert_same(a[k], b[k], f"{path}.{k}")
    elif isinstance(a, (tuple, list)):
        assert len(a) == len(b), path
        for i, (x, y) in enumerate(zip(a, b)):
            assert_same(x, y, f"{path}[{i}]")
    elif isinstance(a, np.ndarray):
        assert np.array_equal(a, b, equal_nan=True), path
    elif isinstance(a, float) and math.isnan(a):
        assert isinstance(b, float) and math.isnan(b), path
    else:
        assert a == b, path


@pytest.mark.parametrize("env_id, kwargs", CASES)
def test_gymnasium_check_env(env_id, kwargs):
    from gymnasium.utils.env_checker import check_env

    env = gym.make(env_id, **kwargs)
    # check_env draws one action from the space before a seeded reset: seed the space so the
    # whole check is reproducible (MaskedDiscrete samples among the legal actions)
    env.action_space.seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(env.unwrapped, skip_render_check=True)


@pytest.mark.parametrize("env_id, kwargs", CASES)
def test_sb3_check_env(env_id, kwargs):
    from stable_baselines3.common.env_checker import check_env

    env = gym.make(env_id, **kwargs)
    env.action_space.seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        check_env(env.unwrapped, warn=False)


@pytest.mark.parametrize("env_id, kwargs", CASES)
def test_same_seed_same_trajectory(env_id, kwargs):
    first, _, _ = rollout(env_id, kwargs, seed=3, n_steps=200)
    second, _, _ = rollout(env_id, kwargs, seed=3, n_steps=200)
    assert_same(first, second)


@pytest.mark.parametrize("env_id, kwargs", CASES)
def test_episode_ends_with_metrics(env_id, kwargs):
    _, info, done = rollout(env_id, kwargs, seed=0)
    assert done, f"episode did not end within {MAX_STEPS} steps"
    metrics = info["metrics"]
    assert metrics and all(isinstance(v, float) for v in metrics.values())


@pytest.mark.parametrize("env_id, kwargs", [c for c in CASES if "penalty" not in c.id])
def test_illegal_action_raises_and_leaves_state_unchanged(env_id, kwargs):
    env, twin = gym.make(env_id, **kwargs), gym.make(env_id, **kwargs)
    rng, twin_rng = np.random.default_rng(0), np.random.default_rng(0)
    env.reset(seed=5)
    twin.reset(seed=5)
    for _ in range(3):
        a, b = legal_action(env, rng), legal_action(twin, twin_rng)
        out = env.step(a)
        twin.step(b)
        if out[2] or out[3]:
            pytest.skip("episode ended before an illegal action could be tried")
    space = env.action_space
    if isinstance(space, gym.spaces.Discrete):
        illegal = np.flatnonzero(~env.unwrapped.action_masks())
        bad = [int(illegal[0]) if len(illegal) else int(space.start + space.n), int(space.start + space.n), -1]
    elif isinstance(space, gym.spaces.MultiDiscrete):
        good = legal_action(env, np.random.default_rng(1))
        bad = [space.nvec.copy(), np.full(space.shape, -1, space.dtype), good.astype(float)]
        for d, part in enumerate(split_mask(env.unwrapped.action_masks(), space.nvec)):
            if not part.all():           # one component set to a value its dimension's mask refuses
                wrong = good.copy()
                wrong[d] = int(np.flatnonzero(~part)[0])
                bad.append(wrong)
                break
    else:
        bad = [np.full(space.shape, np.nan, space.dtype), (space.high + 1).astype(space.dtype)]
    for action in bad:
        with pytest.raises(InvalidActionError):
            env.step(action)
    a, b = legal_action(env, rng), legal_action(twin, twin_rng)
    assert_same(env.step(a), twin.step(b), "step after the refused actions")


@pytest.mark.parametrize("env_id", DEFAULTS)
def test_renderers(env_id):
    env = gym.make(env_id, render_mode="rgb_array")
    env.reset(seed=0)
    rng = np.random.default_rng(0)
    for _ in range(5):
        if any(env.step(legal_action(env, rng))[2:4]):
            break
    frame = env.render()
    assert isinstance(frame, np.ndarray) and frame.ndim == 3 and frame.shape[2] == 3 and frame.dtype == np.uint8
    assert frame.std() > 0, "the picture is blank"
    text_env = gym.make(env_id, render_mode="ansi")
    text_env.reset(seed=0)
    assert isinstance(text_env.render(), str) and text_env.render().strip()


@pytest.mark.parametrize("env_id", DEFAULTS)
def test_baselines_reachable_by_name(env_id):
    table = rlsys_envs.baselines(env_id)
    assert "random" in table
    for name, factory in table.items():
        assert isinstance(factory(), Policy), name


def test_unknown_env_id_is_named():
    with pytest.raises(ValueError, match="unknown environment ID 'rlsys/Nope-v0'"):
        rlsys_envs.get_entry("rlsys/Nope-v0")


def _bad_value(default):
    """A value of the right kind but out of any sensible range, or of the wrong kind."""
    if isinstance(default, bool):
        return "yes"
    if isinstance(default, int):
        return -10**9
    if isinstance(default, float):
        return float("nan")
    if isinstance(default, str):
        return "no-such-choice"
    return None


def _entry_class(entry):
    if not isinstance(entry.entry_point, str):
        return entry.entry_point
    module, _, cls = entry.entry_point.partition(":")
    return getattr(importlib.import_module(module), cls)


def _constructor_kwargs():
    for e in rlsys_envs.entries():
        try:
            sig = inspect.signature(_entry_class(e).__init__)
        except ImportError as err:  # reported as a failing case instead of breaking collection
            yield pytest.param(e.id, "<import>", err, id=f"{e.id.split('/')[1]}-import")
            continue
        for name, p in sig.parameters.items():
            if name == "self" or p.default is inspect.Parameter.empty or p.default is None:
                continue
            if _bad_value(p.default) is not None:
                yield pytest.param(e.id, name, _bad_value(p.default), id=f"{e.id.split('/')[1]}-{name}")


@pytest.mark.parametrize("env_id, field, value", list(_constructor_kwargs()))
def test_bad_constructor_kwarg_raises_value_error_naming_it(env_id, field, value):
    if field == "<import>":
        raise value
    with pytest.raises(ValueError, match=field):
        make(env_id, **{field: value})


def make(env_id, **kwargs):
    """``gym.make`` for single-agent IDs, ``rlsys_envs.make_parallel`` for parallel ones."""
    if rlsys_envs.get_entry(env_id).kind == "parallel":
        return rlsys_envs.make_parallel(env_id, **kwargs)
    return gym.make(env_id, **kwargs)


@pytest.mark.parametrize("env_id", [pytest.param(e.id, id=e.id.split("/")[1]) for e in rlsys_envs.entries()
                                    if inspect.isclass(e.entry_point) or isinstance(e.entry_point, str)])
def test_constructors_take_keyword_arguments_only(env_id):
    cls = _entry_class(rlsys_envs.get_entry(env_id))
    params = [p for name, p in inspect.signature(cls.__init__).parameters.items() if name != "self"]
    assert all(p.kind in (p.KEYWORD_ONLY, p.VAR_KEYWORD) for p in params), [p.name for p in params]
    with pytest.raises(TypeError, match="keyword arguments only"):
        cls(None)


@pytest.mark.parametrize("env_id, kwargs", CASES)
def test_a_snapshot_branches_and_restores_the_rest_of_the_episode_bit_for_bit(env_id, kwargs):
    """Play a few steps, snapshot, play on (A), restore, play the same actions again (B): A == B;
    the snapshot also restores into a spawned twin, and a failed step after a restore changes nothing."""
    env = gym.make(env_id, **kwargs).unwrapped
    rng = np.random.default_rng(1)
    env.reset(seed=11)
    for _ in range(3):
        if env.step(legal_action(env, rng))[2:4] != (False, False):
            env.reset(seed=11)
    state = env.get_state()
    actions, first = [], []
    for _ in range(40):
        a = legal_action(env, rng)
        out = env.step(a)
        actions.append(a)
        first.append(out)
        if out[2] or out[3]:
            break
    for target in (env, env.spawn()):
        target.set_state(state)
        again = [target.step(a) for a in actions]
        assert_same(first, again, f"replay after set_state on {'the env' if target is env else 'a twin'}")


@pytest.mark.parametrize("env_id, kwargs", PARALLEL_CASES)
def test_pettingzoo_parallel_api_test(env_id, kwargs):
    from pettingzoo.test import parallel_api_test

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        parallel_api_test(rlsys_envs.make_parallel(env_id, **kwargs), num_cycles=200)


def parallel_rollout(env_id, kwargs, seed, n_steps=MAX_STEPS):
    env = rlsys_envs.make_parallel(env_id, **kwargs)
    rng = np.random.default_rng(seed)
    obs, infos = env.reset(seed=seed)
    trace = [(obs, infos)]
    for _ in range(n_steps):
        actions = {a: int(rng.choice(np.flatnonzero(env.action_masks(a)))) for a in env.agents}
        out = env.step(actions)
        trace.append(out)
        if not env.agents:
            break
    return trace, env


@pytest.mark.parametrize("env_id, kwargs", PARALLEL_CASES)
def test_parallel_same_seed_same_trajectory_and_metrics_at_the_end(env_id, kwargs):
    first, env = parallel_rollout(env_id, kwargs, seed=3)
    second, _ = parallel_rollout(env_id, kwargs, seed=3)
    assert_same(first, second)
    assert not env.agents, f"episode did not end within {MAX_STEPS} steps"
    for agent, info in first[-1][4].items():
        assert info["metrics"] and all(isinstance(v, float) for v in info["metrics"].values()), agent


@pytest.mark.parametrize("env_id, kwargs", PARALLEL_CASES)
def test_parallel_illegal_action_of_any_agent_raises_and_changes_nothing(env_id, kwargs):
    env, twin = rlsys_envs.make_parallel(env_id, **kwargs), rlsys_envs.make_parallel(env_id, **kwargs)
    env.reset(seed=5)
    twin.reset(seed=5)
    legal = {a: int(np.flatnonzero(env.action_masks(a))[0]) for a in env.agents}
    for agent in env.agents:
        space = env.action_space(agent)
        illegal = np.flatnonzero(~env.action_masks(agent))
        for bad in ([int(illegal[0])] if len(illegal) else []) + [int(space.n), -1, 1.5, None, "0", True]:
            with pytest.raises(InvalidActionError, match=agent):
                env.step({**legal, agent: bad})
    with pytest.raises(InvalidActionError, match="missing"):
        env.step({a: v for a, v in list(legal.items())[1:]})
    with pytest.raises(InvalidActionError, match="unknown"):
        env.step({**legal, "nobody": 0})
    assert_same(env.step(legal), twin.step(legal), "step after the refused actions")


@pytest.mark.parametrize("env_id, kwargs", PARALLEL_CASES)
def test_parallel_snapshot_restores_the_rest_of_the_episode(env_id, kwargs):
    trace, env = parallel_rollout(env_id, kwargs, seed=4, n_steps=3)
    state = env.get_state()
    rng = np.random.default_rng(0)
    actions, first = [], []
    while env.agents and len(actions) < 30:
        acts = {a: int(rng.choice(np.flatnonzero(env.action_masks(a)))) for a in env.agents}
        actions.append(acts)
        first.append(env.step(acts))
    env.set_state(state)
    assert_same(first, [env.step(a) for a in actions])


def test_failed_reset_leaves_no_episode_to_step():
    env = gym.make("rlsys/JobShop-v0").unwrapped
    env.reset(seed=0)
    with pytest.raises(ValueError, match="options"):
        env.reset(seed=1, options={"instance": "no-such-instance"})
    with pytest.raises(RuntimeError, match="reset"):
        env.step(0)
    with pytest.raises(ValueError, match="unknown option"):
        env.reset(seed=1, options={"clusterr": 1})
