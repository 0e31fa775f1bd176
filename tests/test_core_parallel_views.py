"""The single-agent view's fast path (``lazy_partners=True``) plays the same episode as the plain
view, never calls a partner that has one legal action, and builds partners' observations only
when they are called; ``step_without_observations`` and ``trusted`` checks keep the contract."""
import numpy as np
import pytest
import toy_parallel

from rlsys_envs.core import EventClock, InvalidActionError, RandomMaskedPolicy
from rlsys_envs.core.parallel import SingleAgentView


class CountingEvictor(toy_parallel.EvictOldest):
    calls = 0

    def act(self, env, obs, info):
        CountingEvictor.calls += 1
        assert int(np.count_nonzero(info["action_mask"])) > 1      # never asked when forced
        assert set(obs) == {"slots", "item", "action_mask"}
        return super().act(env, obs, info)


def views(**kw):
    make = lambda lazy, partner: SingleAgentView(  # noqa: E731
        parallel_env=lambda: toy_parallel.ToySlotsParallelEnv(**kw), agent="placer",
        partners={"evictor": partner}, lazy_partners=lazy)
    return make(False, toy_parallel.EvictOldest), make(True, CountingEvictor)


@pytest.mark.parametrize("seed", [0, 5])
def test_lazy_view_plays_the_same_episode_as_the_plain_view(seed):
    plain, lazy = views(n_slots=3, horizon=40)
    obs_a, info_a = plain.reset(seed=seed)
    obs_b, info_b = lazy.reset(seed=seed)
    pa, pb = RandomMaskedPolicy(), RandomMaskedPolicy()
    pa.reset(plain, seed)
    pb.reset(lazy, seed)
    CountingEvictor.calls = 0
    forced = 0
    while True:
        assert all(np.array_equal(obs_a[k], obs_b[k]) for k in obs_a) and obs_a.keys() == obs_b.keys()
        assert np.array_equal(info_a["action_mask"], info_b["action_mask"])
        assert np.array_equal(plain.action_masks(), lazy.action_masks())
        forced += lazy.parallel.forced("evictor")
        a = pa.act(plain, obs_a, info_a)
        assert pb.act(lazy, obs_b, info_b) == a
        obs_a, ra, ta, tra, info_a = plain.step(a)
        obs_b, rb, tb, trb, info_b = lazy.step(a)
        assert (ra, ta, tra) == (rb, tb, trb) and info_a["partner_actions"] == info_b["partner_actions"]
        if ta or tra:
            break
    assert info_a["metrics"] == info_b["metrics"]
    assert forced > 0 and 0 < CountingEvictor.calls < 40      # the forced steps were skipped


def test_lazy_view_mask_is_a_copy_and_illegal_actions_are_refused_unchanged():
    _, lazy = views(n_slots=2, horizon=10)
    lazy.reset(seed=1)
    mask = lazy.action_masks()
    mask[:] = False
    assert lazy.action_masks().any()
    lazy.step(0)
    before = lazy.get_state()
    with pytest.raises(InvalidActionError, match="masked out"):
        lazy.step(0)                          # slot 0 is taken
    after = lazy.get_state()
    assert np.array_equal(before.attributes["parallel"].attributes["slot_value"],
                          after.attributes["parallel"].attributes["slot_value"])


def test_parallel_forced_step_without_observations_and_trusted_checks():
    env = toy_parallel.ToySlotsParallelEnv(n_slots=2, horizon=5)
    env.reset(seed=0)
    assert env.forced("evictor") and env.forced_action("evictor") == 2      # nothing to evict yet
    assert not env.forced("placer")
    obs, info = env.observe_agent("placer")
    assert set(obs) == {"slots", "item", "action_mask"} and "action_mask" in info
    with pytest.raises(InvalidActionError, match="missing \\['evictor'\\]"):
        env.step_without_observations({"placer": 0})
    with pytest.raises(InvalidActionError, match="masked out"):
        env.step_without_observations({"placer": 0, "evictor": 0})          # slot 0 is empty
    rewards, term, trunc = env.step_without_observations({"placer": 0, "evictor": 2}, trusted=("evictor",))
    assert set(rewards) == {"placer", "evictor"} and not term and not trunc
    with pytest.raises(KeyError, match="unknown agent"):
        env.forced("nobody")


def test_event_clock_pop_until_without_events_only_moves_time():
    clock = EventClock(5.0)
    assert clock.pop_until(3.0) == [] and clock.now == 5.0
    assert clock.pop_until(7.5) == [] and clock.now == 7.5
    clock.schedule(9.0, "x")
    assert [e.kind for e in clock.pop_until(10.0)] == ["x"] and clock.now == 10.0


def test_discrete_action_checks_refuse_what_they_refused_before():
    plain, lazy = views(n_slots=2, horizon=10)
    for env in (plain, lazy):
        env.reset(seed=0)
        for bad in (True, 1.0, "1", None, 3, -1, np.array([0.5])):
            with pytest.raises(InvalidActionError):
                env.step(bad)
        env.step(np.int64(0))
