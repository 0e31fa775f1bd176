"""Task-allocation baselines and the exact reference: the Almighty optimum (35) and trap (28), CP-SAT
equal to brute force on tiny epochs, the cover-cost bound, GA seeding, and plans paid as scored."""
import numpy as np
import pytest

import rlsys_envs
from rlsys_envs.core import play_episode
from rlsys_envs.taskalloc.baselines import BASELINES, GAPolicy, _with_declines, defer_expensive
from rlsys_envs.taskalloc.env import TaskAllocationEnv
from rlsys_envs.taskalloc.model import ASSIGN
from rlsys_envs.taskalloc.exact import Epoch, brute_force_epoch, cover_cost_bound, solve_epoch


@pytest.mark.parametrize("mode", ["two_stage", "sequential"])
def test_almighty_optimum_35_by_cpsat_and_trap_28_by_greedy_and_sequential(mode):
    env = TaskAllocationEnv(scenario="almighty", mode=mode)
    scores = {name: play_episode(env, BASELINES[name](), seed=0).metrics for name in ("cpsat", "greedy", "sequential")}
    assert scores["cpsat"]["total_net_value"] == 35.0 and scores["cpsat"]["optimality_gap"] == 0.0
    assert scores["greedy"]["total_net_value"] == 28.0
    assert scores["sequential"]["total_net_value"] == 28.0
    env.reset(seed=0)
    plan, value, status = solve_epoch(Epoch.of(env.model))
    assert status == "OPTIMAL" and value == 35.0
    assert plan[8] == [24], "the all-skill entity goes to the all-skill task"


def test_greedy_spends_the_all_skill_entity_on_a_small_task():
    env = TaskAllocationEnv(scenario="almighty")
    env.reset(seed=0)
    policy = BASELINES["greedy"]()
    policy.reset(env, 0)
    plan = policy.plan(env, Epoch.of(env.model))
    small = [s for s, ents in plan.items() if s < 8 and 24 in ents]
    assert small and len(plan[8]) == 8


def random_epoch(rng, n, m, d):
    cap = rng.integers(0, 4, (n, d))
    req = rng.integers(0, 6, (m, d))
    return Epoch(np.arange(n), np.arange(m), cap, req, rng.uniform(0, 10, m), rng.uniform(0, 3, (n, m)))


@pytest.mark.parametrize("seed", range(12))
def test_cpsat_equals_brute_force_on_tiny_epochs(seed):
    rng = np.random.default_rng(seed)
    epoch = random_epoch(rng, int(rng.integers(2, 7)), int(rng.integers(1, 4)), int(rng.integers(1, 3)))
    plan, value, status = solve_epoch(epoch)
    assert status == "OPTIMAL"
    assert value == pytest.approx(brute_force_epoch(epoch), abs=1e-3)
    assert value == pytest.approx(epoch.score(plan))


@pytest.mark.parametrize("seed", range(8))
def test_cover_cost_bound_is_a_lower_bound(seed):
    rng = np.random.default_rng(100 + seed)
    n, d = 6, 2
    cap, cost, req = rng.integers(0, 4, (n, d)), rng.uniform(0.1, 3, n), rng.integers(1, 6, d)
    best = np.inf
    for bits in range(1, 2 ** n):
        rows = [i for i in range(n) if bits >> i & 1]
        if np.all(cap[rows].sum(0) >= req):
            best = min(best, cost[rows].sum())
    assert cover_cost_bound(cap, cost, req) <= best + 1e-9


def test_the_environment_pays_what_the_cpsat_plan_scores_on_one_epoch():
    env = TaskAllocationEnv(scenario="electric", n_entities=8, n_tasks=5)
    env.reset(seed=3)
    plan, value, status = solve_epoch(Epoch.of(env.model))
    policy = BASELINES["cpsat"]()
    policy.reset(env, 3)
    obs, info, paid = None, {}, 0.0
    epochs = env.model.epochs
    while env.model.epochs == epochs and not env._episode_over:
        obs, r, *_ = env.step(policy.act(env, obs, info))
        paid += r
    assert status == "OPTIMAL" and paid == pytest.approx(value)   # electric: no travel, tasks finish next step


def test_cpsat_is_deterministic_when_its_work_limit_cuts_the_search():
    """A hard RBF-like epoch (not proven optimal in 10 s) cut by the deterministic work limit: two
    searches give the same plan, whatever the machine's load (the wall-clock cap is far away)."""
    env = TaskAllocationEnv(scenario="rbf")
    env.reset(seed=1)
    plans = []
    for _ in range(2):
        policy = BASELINES["cpsat"](deterministic_time=0.2)
        policy.reset(env, 1)
        plans.append(policy.plan(env, Epoch.of(env.model)))
        assert policy.statuses == ["FEASIBLE"], "the work limit, not optimality, ends this search"
    assert plans[0] == plans[1] and plans[0]
    assert BASELINES["cpsat"]().deterministic_time == pytest.approx(3.0)     # the documented default
    with pytest.raises(ValueError, match="deterministic_time"):
        BASELINES["cpsat"](deterministic_time=0)


def test_ga_is_seeded_and_validates_its_arguments():
    env = TaskAllocationEnv(scenario="electric")
    a = play_episode(env, GAPolicy(population=16, generations=5), seed=2)
    b = play_episode(env, GAPolicy(population=16, generations=5), seed=2)
    assert a.metrics == b.metrics
    with pytest.raises(ValueError, match="population"):
        GAPolicy(population=1)
    assert play_episode(TaskAllocationEnv(scenario="almighty"), GAPolicy(), seed=0).metrics["total_net_value"] == 35.0


def test_every_baseline_finishes_an_episode_in_both_modes():
    for mode in ("two_stage", "sequential"):
        env = TaskAllocationEnv(scenario="electric", mode=mode, n_entities=10, n_tasks=8)
        for name, factory in rlsys_envs.baselines("rlsys/TaskAllocation-v0").items():
            ep = play_episode(env, factory(), seed=1)
            assert ep.total_return == pytest.approx(ep.metrics["total_net_value"]), (mode, name)


def test_ga_defer_leaves_out_exactly_the_tasks_that_busy_entities_would_cover_for_less():
    """``defer_expensive`` on RBF-like epochs with busy entities: a margin of infinity keeps the plan;
    a margin of 0 drops a task exactly when its cheapest cover by the free entities costs more than
    by all of them; near the step cap nothing is dropped."""
    env = TaskAllocationEnv(scenario="rbf")
    obs, info = env.reset(seed=30009)
    greedy = BASELINES["greedy"]()
    greedy.reset(env, 30009)
    dropped = 0
    while not env._episode_over and env.model.t < 60:
        m = env.model
        if m.phase == ASSIGN and (~m._epoch_avail).any():     # stage 1 with some entities busy
            epoch = Epoch.of(m)
            plan = greedy.plan(env, epoch)
            assert defer_expensive(env, epoch, plan, float("inf"), 20) == plan
            assert defer_expensive(env, epoch, plan, 0.0, m.inst.max_steps) == plan     # within the horizon
            kept = defer_expensive(env, epoch, plan, 0.0, 20)
            free = np.zeros(m.E, bool)
            free[epoch.entities] = True
            for s in plan:
                j = list(epoch.slots).index(s)
                best = cover_cost_bound(m.inst.entity_cap, m.pair_cost()[:, s], epoch.req[j])
                best_free = cover_cost_bound(m.inst.entity_cap[free], m.pair_cost()[free, s], epoch.req[j])
                assert (s not in kept) == (best_free > best and epoch.value[j] > best)
                dropped += s not in kept
        obs, _r, _t, _tr, info = env.step(greedy.act(env, obs, info))
    assert dropped > 0
    with pytest.raises(ValueError, match="defer"):
        GAPolicy(defer=-1)


@pytest.mark.parametrize("name, kwargs", [("ga", {}), ("cpsat", {"deterministic_time": 0.5})])
def test_searching_baselines_defer_the_tasks_defer_expensive_drops(name, kwargs):
    """``defer`` on ``ga`` and ``cpsat``: the plan of the same search (same seed), with the tasks
    :func:`defer_expensive` drops left out, on RBF-like epochs; and it does drop some."""
    env = TaskAllocationEnv(scenario="rbf")
    obs, info = env.reset(seed=30009)
    greedy = BASELINES["greedy"]()
    greedy.reset(env, 30009)
    differ = 0
    while not env._episode_over and env.model.t < 40 and differ < 2:
        m = env.model
        if m.phase == ASSIGN and (~m._epoch_avail).any():
            epoch = Epoch.of(m)
            plain, deferring = BASELINES[name](**kwargs), BASELINES[name](defer=0.0, **kwargs)
            plain.reset(env, 5)
            deferring.reset(env, 5)
            full, kept = plain.plan(env, epoch), deferring.plan(env, epoch)
            assert kept == _with_declines(env, epoch, defer_expensive(env, epoch, full, 0.0, 20))
            differ += kept != full
        obs, _r, _t, _tr, info = env.step(greedy.act(env, obs, info))
    assert differ > 0
    with pytest.raises(ValueError, match="defer"):
        BASELINES[name](defer=-1)
    with pytest.raises(ValueError, match="defer_horizon"):
        BASELINES[name](defer_horizon=-1)
