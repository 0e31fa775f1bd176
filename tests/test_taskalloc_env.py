"""Task allocation (rlsys/TaskAllocation-v0): coverage and exclusivity invariants under random play,
the decline, decay, refill and travel rules, determinism, counts that change between episodes,
and the per-dimension MultiDiscrete mask helpers of the core."""
import gymnasium as gym
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import rlsys_envs  # noqa: F401
from rlsys_envs.core import InvalidActionError, MaskedMultiDiscrete, multi_discrete_legal, play_episode, split_mask
from rlsys_envs.taskalloc.baselines import BASELINES, RandomPolicy
from rlsys_envs.taskalloc.env import TaskAllocationEnv
from rlsys_envs.taskalloc.generator import TaskAllocInstance
from rlsys_envs.taskalloc.model import OPEN, WORKING

ID = "rlsys/TaskAllocation-v0"


def tiny(**over):
    """2 entities (caps [2], [1]; cost 1 each), tasks of value 5 needing 3 units, no travel."""
    kw = dict(name="tiny", entity_cost=[1.0, 1.0], entity_cap=[[2], [1]], entity_pos=np.zeros((2, 2)),
              dist_coef=[0.0, 0.0], task_value=[5.0, 5.0], task_req=[[3], [3]], task_pos=np.zeros((2, 2)),
              task_home=[-1, -1], n_slots=1, refill_every=1, max_steps=10)
    kw.update(over)
    return TaskAllocInstance(**kw)


def check_invariants(env):
    m, inst = env.model, env.inst
    # every working task is covered by its entities, and they are on it in the pool
    seen = set()
    for s, (entities, net, finish) in m.working.items():
        assert m.slot_state[s] == WORKING
        q = int(m.slot_task[s])
        assert np.all(inst.entity_cap[list(entities)].sum(0) >= inst.task_req[q])
        assert not seen & set(entities), "an entity on two tasks at once"
        seen |= set(entities)
        assert set(m.pool.placement(("task", q)).resources.tolist()) == set(entities)
        assert net > 0
    assert np.all(m.pool.usage[:, 0] <= 1)
    assert set(np.flatnonzero(m.pool.usage[:, 0]).tolist()) == seen
    # every completed task was covered
    for q, entities in m.completed_log:
        assert np.all(inst.entity_cap[list(entities)].sum(0) >= inst.task_req[q])
    assert m.completed == len(m.completed_log)


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 10_000), scenario=st.sampled_from(["rbf", "material", "electric", "almighty"]),
       mode=st.sampled_from(["two_stage", "sequential"]))
def test_coverage_and_exclusivity_hold_under_random_play(seed, scenario, mode):
    env = TaskAllocationEnv(scenario=scenario, mode=mode, n_entities=None if scenario == "almighty" else (5, 20),
                            n_tasks=None if scenario == "almighty" else (3, 10))
    obs, info = env.reset(seed=seed)
    policy = RandomPolicy()
    policy.reset(env, seed)
    total, done = 0.0, False
    while not done:
        obs, r, term, trunc, info = env.step(policy.act(env, obs, info))
        total += r
        done = term or trunc
        check_invariants(env)
        assert env.observation_space.contains(obs)
    metrics = info["metrics"]
    assert total == pytest.approx(metrics["total_net_value"])
    shown = metrics["tasks_completed"] + metrics["tasks_declined"] + metrics["tasks_expired"]
    assert shown <= env.inst.n_tasks


def test_decline_rule_discards_an_unprofitable_cover_and_frees_the_slot():
    env = TaskAllocationEnv(scenario="electric", mode="sequential",
                            instance=tiny(task_value=[1.5, 5.0], n_slots=1, entity_cap=[[2], [1]]))
    env.reset(seed=0)
    env.step(0)
    obs, r, *_ = env.step(1)       # covers task 0 (3 units) at cost 2 > value 1.5: declined
    m = env.model
    assert m.declined == 1 and m.completed == 0 and r == 0.0
    assert m.pool.usage[:, 0].sum() == 0, "the declined allocation was discarded"
    assert m.slot_task[0] == 1 and m.slot_state[0] == OPEN, "the freed slot was refilled at the next step"


def test_value_decays_only_while_open_after_decay_after_steps():
    inst = tiny(task_req=[[10], [3]], decay_after=2, decay=0.5, max_steps=6)  # task 0 can never be covered
    env = TaskAllocationEnv(scenario="electric", mode="sequential", instance=inst)
    env.reset(seed=0)
    values = []
    while True:
        values.append(env.model.value[0])
        _, _, term, trunc, _ = env.step(env.max_entities)       # END: leave the task open
        if term or trunc:
            break
    assert values[:5] == [5.0, 5.0, 5.0, 2.5, 1.25]


def test_entities_are_busy_until_the_task_completes_after_travel():
    inst = tiny(entity_cost=[1.0] * 3, entity_cap=[[2], [1], [1]], entity_pos=np.zeros((3, 2)), dist_coef=[0.0] * 3,
                task_pos=[[3, 0], [0, 0]], travel="manhattan", speed=1.0, map_size=3.0, task_req=[[3], [1]],
                n_slots=2)
    env = TaskAllocationEnv(scenario="electric", mode="sequential", instance=inst)
    env.reset(seed=0)
    env.step(0)
    _, r, *_ = env.step(1)         # task 0 committed at t=0: 3 steps of travel + 1 of work
    m = env.model
    assert r == 0.0 and m.working[0][2] == 4 and m.current_slot == 1
    assert np.flatnonzero(env.action_masks()).tolist() == [2, 3], "entities 0 and 1 are busy"
    _, r, term, _, info = env.step(2)   # task 1 (no travel) completes at t=1; then nothing to decide until t=4
    assert term and m.t == 4 and r == pytest.approx((5 - 1) + (5 - 2))
    assert np.allclose(m.pos[:2], [[3, 0], [3, 0]]) and np.allclose(m.pos[2], [0, 0])
    assert info["metrics"]["tasks_completed"] == 2


def test_slots_refill_from_the_queue_every_refill_every_steps():
    inst = tiny(task_value=[5.0] * 4, task_req=[[1]] * 4, task_pos=np.zeros((4, 2)), task_home=[-1] * 4,
                refill_every=3, n_slots=1, max_steps=20)
    env = TaskAllocationEnv(scenario="electric", mode="sequential", instance=inst)
    env.reset(seed=0)
    starts = []
    while not env._episode_over:
        starts.append((env.model.t, int(env.model.slot_task[0])))
        env.step(0)
    assert [s for s in starts] == [(0, 0), (3, 1), (6, 2), (9, 3)]


def test_the_episode_ends_when_queue_and_slots_are_empty():
    env = TaskAllocationEnv(scenario="almighty")
    ep = play_episode(env, BASELINES["cpsat"](), seed=0)
    assert env.model.t == 1 and ep.metrics["tasks_expired"] == 0


def test_same_seed_same_episode_and_different_seeds_differ():
    env = gym.make(ID)
    a = play_episode(env, BASELINES["greedy"](), seed=4)
    b = play_episode(env, BASELINES["greedy"](), seed=4)
    c = play_episode(env, BASELINES["greedy"](), seed=5)
    assert a.metrics == b.metrics and a.total_return == b.total_return
    assert [np.asarray(x).tolist() for x in a.actions] == [np.asarray(x).tolist() for x in b.actions]
    assert a.metrics != c.metrics


def test_counts_change_between_episodes_under_one_padding():
    env = gym.make(ID, n_entities=(10, 60), n_tasks=(5, 30))
    counts = set()
    for seed in range(6):
        obs, _ = env.reset(seed=seed)
        n = int(obs["entities_mask"].sum())
        assert n == env.unwrapped.inst.n_entities and obs["entities_features"].shape == (60, env.unwrapped.entity_dim)
        assert not obs["entities_features"][n:].any()
        counts.add((n, env.unwrapped.inst.n_tasks))
        ep = play_episode(env, BASELINES["greedy"](), seed=seed)
        assert ep.metrics["tasks_completed"] >= 1
    assert len(counts) >= 4


def test_two_stage_masks_are_per_dimension_and_refuse_other_stage_values():
    env = TaskAllocationEnv(scenario="almighty")
    env.reset(seed=0)
    E, K = env.max_entities, env.max_slots
    parts = split_mask(env.action_masks(), env.nvec)
    assert len(parts) == E + 1 and all(p.shape == (K + 1,) for p in parts[:E]) and parts[E].shape == (E + 1,)
    assert all(p.all() for p in parts[:E]) and parts[E].all()   # stage 1: every slot or none; last ignored
    a = np.full(E + 1, K, np.int64)
    a[24] = 8                                       # the all-skill entity pre-assigned to the big task
    a[0] = 0
    env.step(a)
    assert env.stage == 2 and env.model.current_slot == 0
    parts = split_mask(env.action_masks(), env.nvec)
    assert all(p.tolist() == [False] * K + [True] for p in parts[:E])
    assert np.flatnonzero(parts[E]).tolist() == [0, E]
    bad = np.full(E + 1, K, np.int64)
    bad[E] = 5                                       # not a candidate of slot 0
    with pytest.raises(InvalidActionError, match="masked out"):
        env.step(bad)
    bad = np.full(E + 1, K, np.int64)
    bad[E], bad[3] = 0, 1                            # a stage-1 component in stage 2
    with pytest.raises(InvalidActionError):
        env.step(bad)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="n_entities"):
        TaskAllocationEnv(n_entities=(30, 10))
    with pytest.raises(ValueError, match="max_entities"):
        TaskAllocationEnv(n_entities=60, max_entities=10)
    with pytest.raises(ValueError, match="almighty"):
        TaskAllocationEnv(scenario="almighty", n_entities=30).reset(seed=0)
    with pytest.raises(ValueError, match="task_req"):
        tiny(task_req=[[1, 2], [3, 4]])
    env = TaskAllocationEnv(scenario="rbf")
    with pytest.raises(ValueError, match="does not fit"):
        env.reset(seed=0, options={"instance": tiny()})


def test_graph_view_is_bipartite_over_real_nodes():
    env = TaskAllocationEnv(scenario="electric", observation="graph")
    obs, _ = env.reset(seed=1)
    em = obs["graph_edge_mask"].astype(bool)
    ei = obs["graph_edge_index"][:, em]
    E = env.max_entities
    assert em.any() and np.all(ei[0] < E) and np.all(ei[1] >= E)
    assert np.all(obs["graph_node_mask"][ei[0]] == 1) and np.all(obs["graph_node_mask"][ei[1]] == 1)
    assert env.observation_space.contains(obs)


def test_core_multi_discrete_mask_helpers():
    nvec = [3, 2]
    mask = np.array([True, False, True, False, True])
    assert [p.tolist() for p in split_mask(mask, nvec)] == [[True, False, True], [False, True]]
    assert multi_discrete_legal(mask, nvec, [2, 1]) and not multi_discrete_legal(mask, nvec, [1, 1])
    class Holder:
        def mask(self):
            return mask
    h = Holder()
    space = MaskedMultiDiscrete(nvec, h.mask, seed=0)
    assert all(multi_discrete_legal(mask, nvec, space.sample()) for _ in range(50))
    import pickle
    assert type(pickle.loads(pickle.dumps(space))) is gym.spaces.MultiDiscrete


def _fresh_view(env):
    """Observation and mask of the env's state rebuilt from scratch (a twin with its caches cleared)."""
    twin = env.spawn()
    twin.set_state(env.get_state())
    twin._step_cache, twin._pair_cost_cache, twin._mask_cache = (-1, None, None), (-1, None), None
    return twin.observe()


@pytest.mark.parametrize("kwargs", [dict(scenario="rbf"), dict(scenario="electric", n_entities=15, max_entities=20,
                                                               max_slots=7, observation="graph"),
                                    dict(scenario="material", mode="sequential")])
def test_cached_observation_parts_match_a_rebuild_at_every_step(kwargs):
    """The per-episode, per-time-step and per-epoch caches of the observation and the mask never go
    stale: every step's observation equals one rebuilt from scratch, declines and refills included."""
    env = TaskAllocationEnv(**kwargs)
    policy = RandomPolicy()
    obs, info = env.reset(seed=3)
    policy.reset(env, 3)
    done, steps = False, 0
    while not done and steps < 400:
        ref_obs, ref_info = _fresh_view(env)
        assert obs.keys() == ref_obs.keys()
        for k in obs:
            np.testing.assert_array_equal(obs[k], ref_obs[k], err_msg=f"{k} at step {steps}")
        np.testing.assert_array_equal(info["action_mask"], ref_info["action_mask"])
        obs["entities_features"][:] = 1.0         # a consumer writing into an observation changes nothing
        obs["pair_cost"][:] = 1.0
        obs, r, term, trunc, info = env.step(policy.act(env, obs, info))
        done, steps = term or trunc, steps + 1


def test_fast_action_check_refuses_what_the_full_check_refuses():
    env = TaskAllocationEnv(scenario="electric")
    env.reset(seed=0)
    E, K = env.max_entities, env.max_slots
    none = np.full(E + 1, K, np.int64)
    none[E] = 0
    env.check_action(none)                         # stage 1: everyone to none, the ignored component any value
    env.check_action(none.astype(np.int32))        # other integer dtypes take the full check
    for bad, what in [(-1, "outside the action space"), (K + 1, "outside the action space")]:
        a = none.copy()
        a[0] = bad
        with pytest.raises(InvalidActionError, match=what):
            env.check_action(a)
    closed = np.flatnonzero(env.model.slot_state != OPEN)
    unavailable = np.flatnonzero(~env.model._epoch_avail)
    a = none.copy()
    if len(closed):
        a[0] = closed[0]
    else:                                          # every slot open: an unavailable entity on one
        a[unavailable[0]] = 0
    with pytest.raises(InvalidActionError, match="masked out"):
        env.check_action(a)
    with pytest.raises(InvalidActionError):
        env.check_action(none[:-1])
