"""Hybrid storage environments: the two single-agent views replay the parallel episode, the
migration view steps only at decision points and keeps the agent's return, the rewards' exact
terms, partners by name, instances (held-out shapes, trace files, windows of long traces)."""
import inspect

import gymnasium as gym
import numpy as np
import pytest

import rlsys_envs
from rlsys_envs.core import play_episode
from rlsys_envs.storage import HELD_OUT, HybridStorageEnv, HybridStorageMigrationEnv, HybridStorageParallelEnv
from rlsys_envs.storage.baselines import CDE, HotColdMigration, HPSDemotion, MIGRATION_POLICIES
from rlsys_envs.storage.generator import BlockTrace, generate_trace, write_msr_csv
from rlsys_envs.storage.model import PROFILES

PAGE = 4096
KW = dict(instance="zipf_oltp", episode_requests=1200, migration_interval=50)


def view_and_twin(view, seed, view_policy, twin_policy):
    """``view`` and a parallel twin reset with ``seed``, with the policy that plays each."""
    par = HybridStorageParallelEnv(**KW)
    obs, info = view.reset(seed=seed)
    pobs, pinfo = par.reset(seed=seed)
    view_policy.reset(view, seed)
    twin_policy.reset(par, seed + 1)
    return par, (obs, info), (pobs, pinfo)


def test_placement_view_is_the_parallel_episode_with_its_migration_partner():
    view, placement, partner = HybridStorageEnv(migration="hps", **KW), CDE(), HPSDemotion()
    par, (obs, info), (pobs, pinfo) = view_and_twin(view, 4, placement, partner)
    total = ptotal = 0.0
    while True:
        a = placement.act(view, obs, info)
        m = partner.act(par, pobs["migration"], pinfo["migration"])
        obs, r, term, trunc, info = view.step(a)
        pobs, prew, _, _, pinfo = par.step({"placement": a, "migration": m})
        assert info["partner_actions"] == {"migration": m}
        assert all(np.array_equal(obs[k], pobs["placement"][k]) for k in obs)
        total, ptotal = total + r, ptotal + prew["placement"]
        if term or trunc:
            break
    assert total == ptotal and info["metrics"] == pinfo["placement"]["metrics"]
    assert info["metrics"]["migrations"] > 0


def test_migration_view_steps_only_at_decision_points_and_keeps_the_agents_return():
    view, agent, placement = HybridStorageMigrationEnv(placement="cde", **KW), HotColdMigration(), CDE()
    par, (obs, info), (pobs, pinfo) = view_and_twin(view, 2, agent, placement)

    def par_step(migration):
        nonlocal pobs, pinfo
        pobs, prew, _, _, pinfo = par.step({"placement": placement.act(par, pobs["placement"], pinfo["placement"]),
                                            "migration": migration})
        return prew["migration"]

    def skippable():
        return par.agents and par.forced("migration") and par.model.i < par.model.tr.n - 1

    while skippable():                       # the view starts at the first decision point
        par_step(0)
    steps, total, ptotal = 0, 0.0, 0.0
    while True:
        assert not par.forced("migration") or par.model.i == par.model.tr.n - 1
        assert all(np.array_equal(obs[k], pobs["migration"][k]) for k in obs)
        a = agent.act(view, obs, info)
        obs, r, term, trunc, info = view.step(a)
        ptotal += par_step(a)
        while skippable():
            ptotal += par_step(0)
        total += r
        steps += 1
        if term or trunc:
            break
    assert not par.agents
    assert total == pytest.approx(ptotal) and info["metrics"] == pinfo["migration"]["metrics"]
    assert info["metrics"]["migrations"] > 0
    assert steps < KW["episode_requests"] / 10        # one step per decision, not per request


def _two_page_env(spacing_s=1.0, **kw):
    # page A read ten times, page B once: the fast device holds one page (10 % of 2 rounds to 0 -> 1)
    pages = [1] + [0] * 10
    tr = BlockTrace("two_pages", np.arange(11.0) * spacing_s, np.zeros(11, np.int64), np.asarray(pages) * PAGE,
                    np.full(11, PAGE), np.zeros(11, bool))
    kw = {"queueing": False, **kw}
    return HybridStorageParallelEnv(instance=tr, config="H&L", episode_requests=11, migration_interval=5,
                                    migration_budget=1, candidates=1, **kw)


def _promote_a_at_5(env):
    env.reset(seed=0)
    rewards = []
    for i in range(11):
        mig = 0
        if i == 5:                                    # the first decision point: page A is the hot candidate
            assert not env.forced("migration") and env.hot[0][1:] == (1, 0)
            mig = 1                                   # promote it
        _, r, _, _, _ = env.step({"placement": 0 if i >= 5 else 1, "migration": mig})
        rewards.append(r)
    return rewards


def test_rewards_have_the_documented_terms():
    fast, hdd = PROFILES["optane"], PROFILES["hdd"]
    scale = hdd.service_us(False, False, PAGE)
    hdd_read, fast_read = hdd.service_us(False, False, PAGE), fast.service_us(False, False, PAGE)
    cost = hdd_read + fast.service_us(True, False, PAGE)         # read on the source, write on the destination
    env = _two_page_env()
    assert env.latency_scale_us == scale
    rewards = _promote_a_at_5(env)
    assert rewards[0]["placement"] == pytest.approx(-hdd_read / scale)
    assert rewards[5]["placement"] == pytest.approx(-fast_read / scale)
    # the gain counts at the page's first read after the migration, then the placement decides
    assert rewards[5]["migration"] == pytest.approx((hdd_read - fast_read) / scale)
    assert [r["migration"] for r in rewards[6:]] == [0.0] * 5 and rewards[4]["migration"] == 0.0
    # migration_io_weight charges the migration's device time on top
    rewards = _promote_a_at_5(_two_page_env(migration_io_weight=1.0))
    assert rewards[5]["migration"] == pytest.approx((hdd_read - fast_read - cost) / scale)
    # the gain counts only for a read within migration_window requests of the migration
    pages = [1, 0, 0, 0, 0, 1, 1, 1, 0, 1, 1]           # A promoted at request 5, read again at request 8
    tr = BlockTrace("window", np.arange(11.0), np.zeros(11, np.int64), np.asarray(pages) * PAGE,
                    np.full(11, PAGE), np.zeros(11, bool))
    for window, gain in ((3, 0.0), (4, (hdd_read - fast_read) / scale)):
        env = HybridStorageParallelEnv(instance=tr, config="H&L", episode_requests=11, migration_interval=5,
                                       migration_budget=1, candidates=1, queueing=False, migration_window=window)
        env.reset(seed=0)
        got = [env.step({"placement": 0 if i == 8 else 1, "migration": 1 if i == 5 else 0})[1]["migration"]
               for i in range(11)]
        assert got[8] == pytest.approx(gain) and got[5:8] == [0.0] * 3 and got[9:] == [0.0, 0.0]


def test_migration_reward_charges_the_queueing_delay_its_io_adds_to_the_requests():
    fast, hdd = PROFILES["optane"], PROFILES["hdd"]
    scale = hdd.service_us(False, False, PAGE)
    hdd_read, fast_read = hdd.service_us(False, False, PAGE), fast.service_us(False, False, PAGE)
    fast_write = fast.service_us(True, False, PAGE)
    # requests 20 ms apart: the migration starts when request 4 completes, the devices are idle
    # again when request 5 arrives, so it delays nothing
    rewards = _promote_a_at_5(_two_page_env(spacing_s=0.02, queueing=True))
    assert rewards[5]["migration"] == pytest.approx((hdd_read - fast_read) / scale)
    # requests 1 ms apart: the HDD queue is long, the migration enters the queues at request 5's
    # arrival, and its write on the fast device delays request 5's read of the page by its service
    env = _two_page_env(spacing_s=0.001, queueing=True)
    rewards = _promote_a_at_5(env)
    assert rewards[5]["placement"] == pytest.approx(-(fast_write + fast_read) / scale)
    assert rewards[5]["migration"] == pytest.approx((hdd_read - fast_read - fast_write) / scale)
    assert rewards[6]["migration"] == 0.0


def test_placement_reward_is_the_latency_plus_weighted_background_io_and_the_sibyl_variant_is_the_codes_formula():
    env = HybridStorageParallelEnv(instance="zipf_write", episode_requests=600, placement_io_weight=0.5)
    env.reset(seed=1)
    m = env.model
    seen_bg = False
    for _ in range(600):
        bg0, i = m.bg_io_us, m.i
        _, r, _, _, _ = env.step({"placement": 0, "migration": 0})
        bg = m.bg_io_us - bg0
        seen_bg |= bg > 0
        assert r["placement"] == pytest.approx(-(m.lat[i] + 0.5 * bg) / env.latency_scale_us)
        if not env.agents:
            break
    assert seen_bg
    env = HybridStorageParallelEnv(instance="zipf_write", episode_requests=600)      # default: the latency only
    env.reset(seed=1)
    for _ in range(100):
        i = env.model.i
        _, r, _, _, _ = env.step({"placement": 0, "migration": 0})
        assert r["placement"] == pytest.approx(-env.model.lat[i] / env.latency_scale_us)
    env = HybridStorageParallelEnv(instance="zipf_write", episode_requests=600, reward="sibyl")
    env.reset(seed=1)
    m = env.model
    for _ in range(300):
        ev0, i = m.evictions, m.i
        _, r, _, _, _ = env.step({"placement": 0, "migration": 0})
        assert r["placement"] == pytest.approx(0.1 / (m.lat[i] / 1000) - (m.evictions - ev0) ** 0.09)


def test_reuse_features_are_the_last_reuse_distance_and_the_fast_devices_lru_age():
    # pages A A A B B C A (all 4 KiB reads); the fast device holds one page (10 % of 3 rounds to 0 -> 1)
    pages = [0, 0, 0, 1, 1, 2, 0]
    tr = BlockTrace("reuse", np.arange(7.0), np.zeros(7, np.int64), np.asarray(pages) * PAGE, np.full(7, PAGE),
                    np.zeros(7, bool))
    env = HybridStorageParallelEnv(instance=tr, config="H&L", episode_requests=10, placement_features="reuse")
    obs, _ = env.reset(seed=0)
    assert env.observation_space("placement")["features"].shape == (6 + 3 * 2 + 2,)
    feats = []
    for a in (0, 0, 0, 1, 1, 0, 0):
        feats.append(obs["placement"]["features"][-2:].tolist())
        obs, _, _, _, _ = env.step({"placement": a, "migration": 0})
    log_norm = [np.log2(1 + x) / np.log2(1 + 2 ** 20) for x in range(5)]
    # [shortest last reuse distance of the request's pages (1: none yet), fast device's LRU age (1: free room)]
    assert feats[0] == [1.0, 1.0] and feats[1] == [1.0, pytest.approx(log_norm[1])]
    assert feats[2] == pytest.approx([log_norm[1], log_norm[1]])      # A: its last two accesses 1 apart; idle since 1
    assert feats[3] == pytest.approx([1.0, log_norm[1]])              # B: first access; A idle since 2
    assert feats[4] == pytest.approx([1.0, log_norm[2]])              # B stayed on the HDD: A idle since 2
    assert feats[5] == pytest.approx([1.0, log_norm[3]])
    assert feats[6] == pytest.approx([log_norm[1], log_norm[1]])      # A: its last two accesses 1 apart; C idle since 5
    # the default observation is unchanged by the option
    base = HybridStorageParallelEnv(instance=tr, config="H&L", episode_requests=10)
    base_obs, _ = base.reset(seed=0)
    assert base.observation_space("placement")["features"].shape == (12,)
    obs, _ = env.reset(seed=0)
    assert np.array_equal(obs["placement"]["features"][:12], base_obs["placement"]["features"])
    with pytest.raises(ValueError, match="placement_features must be one of"):
        HybridStorageParallelEnv(placement_features="future")


def test_views_take_the_parallel_envs_keyword_arguments_and_validate_partners():
    params = inspect.signature(HybridStorageEnv.__init__).parameters
    assert {"config", "fast_capacity", "migration", "render_mode"} <= set(params)
    assert "placement" in inspect.signature(HybridStorageMigrationEnv.__init__).parameters
    with pytest.raises(ValueError, match="migration must be one of"):
        HybridStorageEnv(migration="smart")
    with pytest.raises(ValueError, match="placement: checkpoint"):
        HybridStorageMigrationEnv(placement="no/such/model.zip")
    with pytest.raises(ValueError, match="config must be one of"):
        gym.make("rlsys/HybridStorage-v0", config="H&X")
    assert set(MIGRATION_POLICIES) <= set(rlsys_envs.baselines("rlsys/HybridStorageMigration-v0"))


def test_heldout_instance_draws_only_held_out_shapes():
    env = HybridStorageParallelEnv(instance="heldout", episode_requests=200)
    names = {(env.reset(seed=s), env.trace.name)[1] for s in range(12)}
    assert names <= set(HELD_OUT) and len(names) > 1


def test_trace_files_long_traces_and_untimed_traces(tmp_path):
    long = generate_trace("zipf_oltp", 3000, np.random.default_rng(0))
    path = write_msr_csv(long, tmp_path / "hm_0.csv")
    env = HybridStorageEnv(instance=str(path), episode_requests=500)
    env.reset(seed=3)
    window = env.parallel.trace
    assert window.n_requests == 500 and window.time_s[0] == 0.0
    first = int(np.flatnonzero(long.offset == window.offset[0])[0])
    assert first > 0 or window.offset[1] == long.offset[1]        # a window at a random offset
    sibyl = tmp_path / "sibyl.csv"
    sibyl.write_text("".join(f"{o},4096,{'Write' if w else 'Read'}\n" for o, w in
                             zip(long.offset[:300].tolist(), long.is_write[:300].tolist())))
    with pytest.raises(ValueError, match="arrival='closed'"):
        HybridStorageEnv(instance=str(sibyl)).reset(seed=0)
    run = play_episode(HybridStorageEnv(instance=str(sibyl), arrival="closed"), CDE(), seed=0)
    assert run.metrics["requests"] == 300.0 and run.metrics["iops"] > 0
    with pytest.raises(ValueError, match="instance: file"):
        HybridStorageEnv(instance=str(tmp_path / "missing.csv"))


def test_render_marks_the_migrations():
    env = HybridStorageParallelEnv(render_mode="rgb_array", **KW)
    from rlsys_envs.core.parallel import play_joint_episode
    from rlsys_envs.storage.baselines import JOINT_BASELINES
    play_joint_episode(env, JOINT_BASELINES["hps"](), 0)
    assert env.migration_marks and len(env.history) == KW["episode_requests"] // KW["migration_interval"] + 1
    frame = env.render()
    assert frame.ndim == 3 and frame.std() > 0
    env.render_mode = "ansi"
    assert "migrations" in env.render()
