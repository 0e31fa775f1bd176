"""JobShop-v0 env surface: kwargs validation, spaces, metrics, rendering, baselines and CP-SAT."""
import numpy as np
import pytest

from rlsys_envs.core import InvalidActionError
from rlsys_envs.core import play_episode
from rlsys_envs.jobshop.baselines import BASELINES, RULES, solve_cpsat
from rlsys_envs.jobshop.env import JobShopEnv
from rlsys_envs.jobshop.generator import load_benchmark


@pytest.mark.parametrize("kwargs, field", [
    ({"rule": "greedy"}, "rule"),
    ({"n_jobs": (8, 3)}, "n_jobs"),
    ({"n_jobs": (2, 3, 4)}, "n_jobs"),
    ({"n_machines": 0}, "n_machines"),
    ({"max_jobs": 1}, "max_jobs"),
    ({"shutdown_prob": 1.5}, "shutdown_prob"),
    ({"shutdown_dist": "weibull"}, "shutdown_dist"),
    ({"on_interrupt": "skip"}, "on_interrupt"),
    ({"reward": "profit"}, "reward"),
    ({"observation": "image"}, "observation"),
    ({"blocking": "yes"}, "blocking"),
    ({"rule": "active", "blocking": True}, "active"),
    ({"instance": "ta71"}, "max_jobs"),          # 100 jobs do not fit max_jobs=20
    ({"instance": "ft06", "max_machines": 5}, "max_machines"),
    ({"duration_range": (5, 1)}, "duration_range"),
])
def test_bad_kwargs_raise_value_error_naming_the_field(kwargs, field):
    with pytest.raises(ValueError, match=field):
        JobShopEnv(**kwargs)


def test_large_instances_fit_with_larger_padding():
    env = JobShopEnv(instance="ta71", max_jobs=100, observation="flat")
    obs, info = env.reset(seed=0)
    assert obs["jobs"].shape == (100, 12) and info["action_mask"].sum() == 100


def test_masked_action_raises_and_state_is_unchanged():
    env = JobShopEnv(instance="ft06", blocking=True)
    obs, info = env.reset(seed=0)
    env.step(int(np.flatnonzero(info["action_mask"])[0]))
    illegal = int(np.flatnonzero(~env.action_masks())[0])
    before = env.model.schedule_rows().copy(), env.model.t
    with pytest.raises(InvalidActionError):
        env.step(illegal)
    with pytest.raises(InvalidActionError):
        env.step(20)
    assert np.array_equal(env.model.schedule_rows(), before[0]) and env.model.t == before[1]


def test_metrics_and_gap_on_a_benchmark():
    env = JobShopEnv(instance="ft06")
    info = play_episode(env, BASELINES["MWKR"](), seed=0).info
    m = info["metrics"]
    assert m["gap"] == pytest.approx(m["makespan"] / 55 - 1)
    assert {"makespan", "swaps", "deadlock", "shutdowns", "decisions"} <= set(m)
    assert all(isinstance(v, float) for v in m.values())
    assert "gap" not in play_episode(JobShopEnv(), BASELINES["SPT"](), seed=0).info["metrics"]  # no optimum known


def test_every_rule_finishes_every_variant():
    for kw in [{}, {"rule": "active"}, {"blocking": True, "shutdown_prob": 0.1}]:
        env = JobShopEnv(instance="ft06", **kw)
        for name in RULES:
            info = play_episode(env, BASELINES[name](), seed=1).info
            assert info["metrics"]["makespan"] >= 55, name


def test_rules_follow_their_priority():
    env = JobShopEnv(instance="ft06")
    obs, info = env.reset(seed=0)
    md = env.model
    cand = np.flatnonzero(md.cand)
    for name, key in [("SPT", md.next_p), ("LPT", -md.next_p), ("MWKR", -md.job_rem), ("LWKR", md.job_rem)]:
        a = BASELINES[name]().act(env, obs, info)
        assert a in cand and key[a] == key[cand].min(), name


def test_cpsat_finds_ft06_optimum_and_its_replay_reaches_it():
    res = solve_cpsat(load_benchmark("ft06"), time_limit=10, workers=1)
    assert res["makespan"] == 55 and res["status"] == "OPTIMAL"
    assert res["schedule"].shape == (36, 5)
    info = play_episode(JobShopEnv(instance="ft06", rule="active"), BASELINES["cpsat"](), seed=0).info
    assert info["metrics"]["makespan"] == 55
    nondelay = play_episode(JobShopEnv(instance="ft06", rule="nondelay"), BASELINES["cpsat"](), seed=0).info
    assert nondelay["metrics"]["makespan"] >= 55  # non-delay schedules may exclude the optimum


def test_cpsat_blocking_plan_respects_blocking():
    from test_jobshop_model import check_schedule
    inst = load_benchmark("ft06")
    res = solve_cpsat(inst, time_limit=10, workers=1, blocking=True)
    assert res["makespan"] >= 55
    check_schedule(inst, res["schedule"], blocking=True)


def test_renderers():
    env = JobShopEnv(instance="ft06", render_mode="rgb_array", blocking=True, shutdown_prob=0.1)
    play_episode(env, BASELINES["MWKR"](), seed=0).info
    img = env.render()
    assert img.ndim == 3 and img.shape[2] == 3 and img.dtype == np.uint8 and img.std() > 0
    env = JobShopEnv(instance="ft06", render_mode="ansi")
    env.reset(seed=0)
    text = env.render()
    assert "M0" in text and "J5" in text
