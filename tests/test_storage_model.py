"""Hybrid storage simulator: device service times from the specs, queues, LRU eviction and its
cost, migrations (a read on the source, a write on the destination), the page pool, page
conservation under random play, and the orderings Fast-Only <= every policy <= Slow-Only and
Oracle <= every heuristic (mean latency, queueing off)."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlsys_envs.core import CapacityError, ResourcePool
from rlsys_envs.core.parallel import play_joint_episode
from rlsys_envs.storage import HybridStorageParallelEnv
from rlsys_envs.storage.baselines import (JOINT_BASELINES, MIGRATION_POLICIES, PLACEMENT_POLICIES, SYSTEM_OF,
                                          FastOnly, SlowOnly)
from rlsys_envs.storage.generator import BlockTrace, EpisodeTrace
from rlsys_envs.storage.model import CONFIGS, PROFILES, PagePool, StorageModel

PAGE = 4096


def trace(pages, writes, times_s=None, sizes=None):
    n = len(pages)
    return BlockTrace("hand", np.asarray(times_s if times_s is not None else np.arange(n) * 1.0, float),
                      np.zeros(n, np.int64), np.asarray(pages, np.int64) * PAGE,
                      np.asarray(sizes if sizes is not None else [PAGE] * n, np.int64), np.asarray(writes, bool))


def hl_model(pages, writes, fast_pages, **kw):
    ep = EpisodeTrace(trace(pages, writes, kw.pop("times_s", None)))
    devices = [PROFILES[k] for k in CONFIGS["H&L"]]
    return StorageModel(ep, devices, [fast_pages, ep.n_pages], **kw), devices


def test_service_times_are_the_spec_numbers():
    optane, sata, hdd = PROFILES["optane"], PROFILES["sata_tlc"], PROFILES["hdd"]
    assert optane.service_us(False, False, PAGE) == pytest.approx(10 + PAGE / 2400)
    assert sata.service_us(False, False, PAGE) == pytest.approx(110 + PAGE / 500)
    assert sata.service_us(True, False, PAGE) == pytest.approx(52 + PAGE / 490)
    assert sata.service_us(True, True, PAGE) == pytest.approx(36 + PAGE / 490)
    assert hdd.service_us(False, False, PAGE) == pytest.approx(4160 + 8500 + PAGE / 210)
    # every configuration's tiers are ordered: each device at least as slow as the one before, for any I/O
    for devices in CONFIGS.values():
        for a, b in zip(devices, devices[1:]):
            for w in (False, True):
                for seq in (False, True):
                    for size in (512, PAGE, 1 << 20):
                        assert PROFILES[a].service_us(w, seq, size) <= PROFILES[b].service_us(w, seq, size)


def test_a_write_to_the_full_fast_device_evicts_its_lru_page_at_the_cost_of_a_read_and_a_write():
    # pages 0, 1 written to fast (capacity 2); then page 2: page 0 (least recently used) goes to the HDD
    m, (fast, hdd) = hl_model([0, 1, 0, 2], [True, True, False, True], fast_pages=2)
    for _ in range(3):
        m.serve(0)
    assert m.evictions == 0 and m.placement_moves == 2
    m.lru[0].move_to_end(m.tr.pid[0])           # (request 2 read page 0 again: page 1 is now the LRU one)
    latency, bg, ev = m.serve(0)
    assert ev == 1 and m.pool.loc[m.tr.pid[1]] == 1 and m.pool.loc[m.tr.pid[3]] == 0
    read, write = fast.service_us(False, False, PAGE), hdd.service_us(True, False, PAGE)
    assert bg == pytest.approx(read + write)
    # the eviction's read is queued on the fast device before the write it makes room for
    assert latency == pytest.approx(read + fast.service_us(True, False, PAGE))
    assert m.busy[1] == pytest.approx(3e6 + write)
    m.check_invariants()


def test_without_queueing_background_io_costs_no_request_any_time():
    m, (fast, _) = hl_model([0, 1, 2], [True, True, True], fast_pages=1, queueing=False)
    lat = [m.serve(0)[0] for _ in range(3)]
    assert lat == pytest.approx([fast.service_us(True, False, PAGE)] * 3)
    assert m.evictions == 2 and m.bg_io_us > 0


def test_queueing_delays_requests_behind_a_busy_device():
    m, (_, hdd) = hl_model([0, 5], [False, False], fast_pages=1, times_s=[0.0, 0.001])
    first = m.serve(1)[0]
    second = m.serve(1)[0]
    assert first == pytest.approx(hdd.service_us(False, False, PAGE))
    assert second == pytest.approx(2 * first - 1000.0)        # waits for the first read, 1 ms after it
    # a request that starts where the previous one ended is sequential (no seek, no rotation)
    m, _ = hl_model([0, 1], [False, False], fast_pages=1, times_s=[0.0, 1.0])
    m.serve(1)
    assert m.serve(1)[0] == pytest.approx(hdd.service_us(False, True, PAGE)) == pytest.approx(50 + PAGE / 210)


def test_a_read_with_another_action_moves_the_page_with_a_background_write():
    m, (fast, hdd) = hl_model([5, 5], [False, False], fast_pages=4)
    latency, bg, _ = m.serve(0)                    # served from the HDD, then promoted
    assert latency == pytest.approx(hdd.service_us(False, False, PAGE))
    assert bg == pytest.approx(fast.service_us(True, False, PAGE)) and m.pool.loc[m.tr.pid[0]] == 0
    assert m.serve(0)[0] == pytest.approx(fast.service_us(False, False, PAGE))
    assert m.fast_accesses == 1 and m.accesses == 2


def test_a_migration_costs_a_read_on_the_source_and_a_write_on_the_destination():
    m, (fast, hdd) = hl_model([0, 1, 2], [False, False, False], fast_pages=1)
    m.serve(1)
    p = m.tr.pid[0]
    cost = m.migrate(p, 0)
    assert cost == pytest.approx(hdd.service_us(False, False, PAGE) + fast.service_us(True, False, PAGE))
    assert m.migrations == 1 and m.pool.loc[p] == 0 and m.tracked == {p: (1, 1 + 1000)}
    with pytest.raises(ValueError, match="already"):
        m.migrate(p, 0)
    m.check_invariants()


def test_page_pool_is_a_resource_pool_that_refuses_overflow_without_changing_state():
    pool = PagePool([1, 3], 3)
    assert isinstance(pool, ResourcePool) and pool.dims == ("pages",)
    pool.place_many([0, 1, 2], [1, 1, 1])
    pool.move(0, 0)
    assert pool.usage.ravel().tolist() == [1, 2] and pool.fits([1]).tolist() == [False, True]
    with pytest.raises(CapacityError):
        pool.move(1, 0)
    assert pool.usage.ravel().tolist() == [1, 2] and pool.loc.tolist() == [0, 1, 1]
    assert pool.placement(0).resources.tolist() == [0] and 2 in pool and pool.consumers() == [0, 1, 2]
    with pytest.raises(ValueError, match="exactly one device"):
        pool.move(1, [0, 1])
    released = pool.release(2)
    assert released.resources.tolist() == [1] and 2 not in pool and pool.copy().used == pool.used


@settings(max_examples=12, deadline=None)
@given(seed=st.integers(0, 10_000), config=st.sampled_from(sorted(CONFIGS)),
       shape=st.sampled_from(["zipf_oltp", "mixed_sizes", "scan_hot", "phase_shift_fast"]),
       eviction=st.sampled_from(["lru", "belady"]))
def test_every_page_is_on_exactly_one_device_and_no_capacity_is_exceeded_under_random_play(
        seed, config, shape, eviction):
    env = HybridStorageParallelEnv(instance=shape, config=config, episode_requests=300, migration_interval=20,
                                   migration_budget=3, candidates=4, fast_capacity=0.05, middle_capacity=0.1,
                                   eviction=eviction)
    env.reset(seed=seed)
    rng = np.random.default_rng(seed)
    while env.agents:
        env.step({a: int(rng.choice(np.flatnonzero(env.action_masks(a)))) for a in env.agents})
        env.model.check_invariants()
    assert env.model.i == env.model.tr.n


def _mean_latency(config, shape, name, seed=0, **kw):
    env = HybridStorageParallelEnv(instance=shape, config=config, episode_requests=1500, queueing=False,
                                   **{**SYSTEM_OF.get(name, {}), **kw})
    policies = JOINT_BASELINES[name]()
    return play_joint_episode(env, policies, seed)["metrics"]["mean_latency_us"]


@pytest.mark.parametrize("config", ["H&M", "H&L", "H&M&L"])
def test_fast_only_bound_le_every_policy_le_slow_only_without_queueing(config):
    shape = "scan_hot"
    fast = _mean_latency(config, shape, "fast_only")
    slow = _mean_latency(config, shape, "slow_only")
    assert fast < slow
    for name in JOINT_BASELINES:
        if name in ("sibyl", "harmonia") and len(CONFIGS[config]) != 2:
            continue                                   # the shipped agents see two-device observations
        value = _mean_latency(config, shape, name)
        assert fast <= value <= slow, name
    # also the bound against the placement heuristics alone on the bounded system
    for name in PLACEMENT_POLICIES:
        env = HybridStorageParallelEnv(instance=shape, config=config, episode_requests=1500, queueing=False)
        run = play_joint_episode(env, {"placement": PLACEMENT_POLICIES[name](), "migration": MIGRATION_POLICIES[
            "random"]()}, 0)
        assert fast <= run["metrics"]["mean_latency_us"] <= slow, name


@pytest.mark.parametrize("config, shape", [("H&M", "zipf_oltp"), ("H&M", "loop"), ("H&L", "read_after_write"),
                                           ("H&L", "mixed_sizes"), ("H&L", "phase_shift")])
def test_oracle_is_at_least_as_good_as_every_heuristic_without_queueing(config, shape):
    oracle = _mean_latency(config, shape, "oracle")
    for name in ("cde", "cde+hot_cold", "hps", "lru", "lru+hot_cold", "slow_only"):
        assert oracle <= _mean_latency(config, shape, name) + 1e-9, name


def test_fast_only_bound_serves_everything_from_the_fast_device():
    env = HybridStorageParallelEnv(instance="zipf_oltp", episode_requests=500, **SYSTEM_OF["fast_only"])
    run = play_joint_episode(env, {"placement": FastOnly(), "migration": MIGRATION_POLICIES["none"]()}, 0)
    assert run["metrics"]["fast_access_share"] == 1.0 and run["metrics"]["evictions"] == 0.0
    bounded = HybridStorageParallelEnv(instance="zipf_oltp", episode_requests=500)
    slow = play_joint_episode(bounded, {"placement": SlowOnly(), "migration": MIGRATION_POLICIES["none"]()}, 0)
    assert slow["metrics"]["fast_access_share"] == 0.0
    assert bounded.model.pool.cap[0] == round(0.10 * bounded.model.tr.n_pages)    # 10 % of the working set
