"""JobShop-v0 dynamics: schedule validity for every variant, rewards, deadlocks and swaps."""
from collections import defaultdict

import numpy as np
import pytest

from rlsys_envs.jobshop.env import JobShopEnv
from rlsys_envs.jobshop.model import JobShopInstance

VARIANTS = {
    "classic": {},
    "classic_active": {"rule": "active"},
    "blocking_swap": {"blocking": True},
    "blocking_noswap": {"blocking": True, "swap_allowed": False},
    "isbjssp_resume": {"blocking": True, "shutdown_prob": 0.1},
    "isbjssp_restart": {"blocking": True, "shutdown_prob": 0.1, "on_interrupt": "restart",
                        "shutdown_dist": "exponential"},
    "shutdown_only": {"shutdown_prob": 0.2, "shutdown_dist": "constant"},
}


def check_schedule(inst: JobShopInstance, rows: np.ndarray, *, blocking: bool, downs=(), on_interrupt="resume",
                   complete=True):
    """Independent checker of a schedule (rows: job, op_index, machine, start, end)."""
    segs = defaultdict(list)
    for j, k, m, s, e in rows.tolist():
        assert s < e or inst.durations[j, k] == 0, f"empty segment {j, k}"
        assert m == inst.machines[j, k], f"op {j, k} ran on machine {m}, not {inst.machines[j, k]}"
        segs[(j, k)].append((s, e))
    expected = {(j, k) for j in range(inst.n_jobs) for k in range(int(inst.n_ops[j]))}
    if complete:
        assert set(segs) == expected, "every operation is processed"
    first, last = {}, {}
    for (j, k), ss in segs.items():
        ss.sort()
        p = int(inst.durations[j, k])
        if on_interrupt == "resume":
            assert sum(e - s for s, e in ss) == p, f"op {j, k} processed {ss} for a time other than {p}"
        else:
            assert ss[-1][1] - ss[-1][0] == p, f"restarted op {j, k} must finish with a full run"
            assert all(e - s < p for s, e in ss[:-1])
        for (s1, e1), (s2, e2) in zip(ss, ss[1:]):
            assert e1 <= s2
        first[(j, k)], last[(j, k)] = ss[0][0], ss[-1][1]
    for (j, k) in segs:
        if (j, k + 1) in segs:
            assert first[(j, k + 1)] >= last[(j, k)], f"job {j}: op {k + 1} starts before op {k} ends"
    # machine capacity: processed segments never overlap
    per_m = defaultdict(list)
    for j, k, m, s, e in rows.tolist():
        per_m[m].append((s, e, j, k))
    for m, ss in per_m.items():
        ss.sort()
        for a, b in zip(ss, ss[1:]):
            assert a[1] <= b[0], f"machine {m} runs {a[2:]} and {b[2:]} at once"
    # blocking: a job occupies its machine until its next operation starts; occupancies may touch
    if blocking:
        occ = defaultdict(list)
        for (j, k) in segs:
            end = first[(j, k + 1)] if (j, k + 1) in segs else last[(j, k)]
            occ[int(inst.machines[j, k])].append((first[(j, k)], end, j, k))
        for m, ss in occ.items():
            ss.sort()
            for a, b in zip(ss, ss[1:]):
                assert a[1] <= b[0], f"blocking violated on machine {m}: {a} and {b}"
    # shutdowns: nothing is processed while a machine is down
    for m, ds, de in downs:
        for s, e, j, k in per_m.get(m, []):
            assert e <= ds or s >= de, f"op {j, k} runs [{s}, {e}) while machine {m} is down [{ds}, {de})"


def play(env, seed, rng, check_obs=False):
    obs, info = env.reset(seed=seed)
    lb0 = info.get("lower_bound")
    total, done, steps = 0.0, False, 0
    while not done:
        if check_obs:
            for k, v in obs.items():
                assert env.observation_space[k].contains(v), k
        a = int(rng.choice(np.flatnonzero(info["action_mask"])))
        obs, r, term, trunc, info = env.step(a)
        total += r
        steps += 1
        done = term or trunc
        assert not trunc
    return info, total, lb0


@pytest.mark.parametrize("name", list(VARIANTS))
def test_random_play_gives_valid_schedules(name):
    kw = VARIANTS[name]
    rng = np.random.default_rng(1)
    env = JobShopEnv(n_jobs=(2, 8), n_machines=(2, 6), **kw)
    deadlocks = 0
    for seed in range(25):
        info, _, _ = play(env, seed, rng, check_obs=seed < 3)
        md = env.model
        deadlocks += md.deadlock
        check_schedule(env.instance, env.schedule(), blocking=md.blocking, downs=md.down_log,
                       on_interrupt=kw.get("on_interrupt", "resume"), complete=not md.deadlock)
        if not md.deadlock:
            assert info["metrics"]["makespan"] == env.schedule()[:, 4].max()
        if kw.get("shutdown_prob"):
            assert info["metrics"]["shutdowns"] == len(md.down_log)
    if name == "blocking_noswap":
        assert deadlocks > 0, "random play without swaps should run into deadlocks"
    elif name != "blocking_swap" and "isbjssp" not in name:
        assert deadlocks == 0


@pytest.mark.parametrize("kw", [{}, {"rule": "active"}, {"blocking": True, "swap_allowed": False},
                                {"blocking": True, "shutdown_prob": 0.05, "reward": "lb"}])
def test_lb_reward_sums_to_initial_bound_minus_makespan(kw):
    env = JobShopEnv(reward="lb", **{k: v for k, v in kw.items() if k != "reward"})
    rng = np.random.default_rng(0)
    for seed in range(8):
        info, total, lb0 = play(env, seed, rng)
        ms = info["metrics"]["makespan"]
        assert total == pytest.approx(lb0 - ms)
        assert info["metrics"]["lower_bound0"] == lb0
        assert lb0 <= ms


@pytest.mark.parametrize("kw", [{}, {"rule": "active"}, {"blocking": True, "shutdown_prob": 0.1},
                                {"blocking": True, "swap_allowed": False}])
def test_makespan_reward_sums_to_minus_makespan(kw):
    env = JobShopEnv(reward="makespan", reward_scale=0.5, **kw)
    rng = np.random.default_rng(0)
    for seed in range(8):
        info, total, _ = play(env, seed, rng)
        assert total == pytest.approx(-0.5 * info["metrics"]["makespan"])


def test_makespan_is_the_default_reward_with_shutdowns():
    assert JobShopEnv(shutdown_prob=0.1).reward_kind == "makespan"
    assert JobShopEnv().reward_kind == "lb"


def _cyclic_instance():
    # J0: M0 then M1, J1: M1 then M0 -> after their first ops both are blocked, each waiting for
    # the machine the other holds
    return JobShopInstance(np.array([[0, 1], [1, 0]]), np.array([[2, 3], [2, 4]]), np.array([2, 2]), 2, name="cycle")


def test_swap_resolves_a_blocking_cycle():
    env = JobShopEnv(instance=_cyclic_instance(), blocking=True, swap_allowed=True)
    obs, info = env.reset(seed=0)
    obs, r, term, trunc, info = env.step(int(np.flatnonzero(info["action_mask"])[0]))
    assert term and not info["deadlock"]
    assert info["metrics"]["swaps"] == 1 and info["metrics"]["deadlock"] == 0
    rows = {(j, k): (m, s, e) for j, k, m, s, e in env.schedule().tolist()}
    assert rows[(0, 1)] == (1, 2, 5) and rows[(1, 1)] == (0, 2, 6)  # both moved at t=2
    assert info["metrics"]["makespan"] == 6


def test_deadlock_without_swaps_is_detected_and_penalised():
    env = JobShopEnv(instance=_cyclic_instance(), blocking=True, swap_allowed=False, reward="makespan",
                     deadlock_penalty=2.0)
    obs, info = env.reset(seed=0)
    obs, r, term, trunc, info = env.step(int(np.flatnonzero(info["action_mask"])[0]))
    assert term and info["deadlock"] is True
    m = info["metrics"]
    assert m["deadlock"] == 1.0 and m["swaps"] == 0
    # scored as lower bound at the deadlock (t=2 + remaining 4 on J1) + 2 * total work (11)
    assert m["makespan"] == 6 + 2 * 11
    assert r == -m["makespan"]
    assert not env.action_masks().any()


def test_blocking_keeps_the_machine_until_the_next_one_is_free():
    # J0: M0 (1) then M1 (1); J1: M1 (5). J0 must wait on M0 until J1 leaves M1 at t=5; J2 wants M0.
    inst = JobShopInstance(np.array([[0, 1], [1, -1], [0, -1]]), np.array([[1, 1], [5, 0], [1, 0]]),
                           np.array([2, 1, 1]), 2)
    env = JobShopEnv(instance=inst, blocking=True, rule="nondelay")
    obs, info = env.reset(seed=0)
    # dispatch J0 first on M0, J1 starts on M1 automatically
    obs, r, term, trunc, info = env.step(0)
    while not term:
        obs, r, term, trunc, info = env.step(int(np.flatnonzero(info["action_mask"])[0]))
    rows = {(j, k): (m, s, e) for j, k, m, s, e in env.schedule().tolist()}
    assert rows[(0, 1)][1] == 5           # J0 moves to M1 only when J1 has left it
    assert rows[(2, 0)][1] >= 5           # and M0 stayed blocked by J0 until then
    env2 = JobShopEnv(instance=inst, blocking=False)
    obs, info = env2.reset(seed=0)
    obs, r, term, trunc, info = env2.step(0)
    while not term:
        obs, r, term, trunc, info = env2.step(int(np.flatnonzero(info["action_mask"])[0]))
    rows = {(j, k): (m, s, e) for j, k, m, s, e in env2.schedule().tolist()}
    assert rows[(2, 0)][1] == 1           # without blocking M0 is free at t=1


def test_same_seed_same_episode_with_shutdowns():
    def run():
        env = JobShopEnv(blocking=True, shutdown_prob=0.1, on_interrupt="restart")
        info, total, _ = play(env, 7, np.random.default_rng(3))
        return env.schedule(), total, env.model.down_log
    a, b = run(), run()
    assert np.array_equal(a[0], b[0]) and a[1] == b[1] and a[2] == b[2]
    env = JobShopEnv(blocking=True, shutdown_prob=0.1)
    play(env, 8, np.random.default_rng(3))
    s8 = env.schedule()
    assert not np.array_equal(a[0], s8)


def test_decisions_need_two_candidates_and_nondelay_never_idles():
    env = JobShopEnv(instance="ft06")
    rng = np.random.default_rng(0)
    obs, info = env.reset(seed=0)
    done = False
    while not done:
        assert info["action_mask"].sum() >= 2
        obs, r, done, _, info = env.step(int(rng.choice(np.flatnonzero(info["action_mask"]))))
    # non-delay: whenever an op starts after its job was ready, its machine was busy until then
    rows = env.schedule()
    inst = env.instance
    by_m = defaultdict(list)
    for j, k, m, s, e in rows.tolist():
        by_m[m].append((s, e))
    ends = {(j, k): e for j, k, m, s, e in rows.tolist()}
    for j, k, m, s, e in rows.tolist():
        ready = ends.get((j, k - 1), 0)
        if s > ready:
            assert any(a < s and b >= s for a, b in by_m[m]) or any(b == s for a, b in by_m[m]), \
                f"op {j, k} waited on an idle machine"
    assert info["metrics"]["decisions"] + info["metrics"]["auto_dispatched"] == inst.total_ops


def test_graph_observation_is_consistent():
    env = JobShopEnv(instance="ft06", blocking=True)
    rng = np.random.default_rng(0)
    obs, info = env.reset(seed=0)
    done = False
    while not done:
        md = env.model
        an = obs["action_node"]
        nm = obs["graph_node_mask"]
        for j in np.flatnonzero(info["action_mask"]):
            node = an[j]
            assert node >= 0 and nm[node] == 1
            x = obs["graph_x"][node]
            assert x[0] == 1 and x[3] == 1  # waiting, candidate
            assert x[8] == pytest.approx((md.next_m[j] + 1) / env.max_machines)
        em = obs["graph_edge_mask"].astype(bool)
        ei = obs["graph_edge_index"][:, em]
        assert nm[ei].all(), "edges only between live nodes"
        assert (obs["graph_x"][nm == 0] == 0).all()
        assert nm.sum() == md.alive.sum()
        obs, r, done, _, info = env.step(int(rng.choice(np.flatnonzero(info["action_mask"]))))


def test_random_instances_vary_in_size_and_fit_the_padding():
    env = JobShopEnv(n_jobs=(3, 20), n_machines=(2, 20), observation="graph")
    sizes = set()
    for seed in range(15):
        obs, _ = env.reset(seed=seed)
        sizes.add((env.instance.n_jobs, env.instance.n_machines))
        assert obs["graph_x"].shape == (400, 11)
    assert len(sizes) > 5


def test_checker_catches_violations():
    """The schedule checker above is what the validity tests rely on: make sure it can fail."""
    env = JobShopEnv(instance="ft06")
    info, _, _ = play(env, 0, np.random.default_rng(0))
    rows = env.schedule().copy()
    check_schedule(env.instance, rows, blocking=False)
    bad = rows.copy()
    bad[5, 3:] -= 3  # shift an operation earlier: breaks job order or machine capacity
    with pytest.raises(AssertionError):
        check_schedule(env.instance, bad, blocking=False)
    with pytest.raises(AssertionError):
        check_schedule(env.instance, rows[1:], blocking=False)
    with pytest.raises(AssertionError):  # a classic schedule usually violates blocking
        check_schedule(env.instance, rows, blocking=True)
    m, s, e = int(rows[0, 2]), int(rows[0, 3]), int(rows[0, 4])
    with pytest.raises(AssertionError):
        check_schedule(env.instance, rows, blocking=False, downs=[(m, s, e)])


@pytest.mark.parametrize("kw", [{"rule": "active"}, {"blocking": True}, {}])
def test_graph_nodes_are_exactly_the_live_operations(kw):
    """Live = not yet dispatched, processing, or finished but blocking its machine."""
    env = JobShopEnv(instance="ft06", **kw)
    rng = np.random.default_rng(2)
    obs, info = env.reset(seed=0)
    done, seen_blocked = False, False
    while not done:
        md = env.model
        expect = np.zeros(env.max_nodes, np.int8)
        for j in range(md.n_jobs):
            for k in range(int(md.job_nops[j])):
                o = int(md.job_off[j]) + k
                waiting = k >= md.next_k[j]
                running = md.cur_op[j] == o and md.job_status[j] in (1, 2)
                expect[o] = waiting or running
                if running and md.job_status[j] == 2:
                    seen_blocked = True
                    assert obs["graph_x"][o, 2] == 1 and obs["graph_x"][o, 5] == 1  # blocked, complete
        assert np.array_equal(obs["graph_node_mask"], expect)
        obs, r, done, _, info = env.step(int(rng.choice(np.flatnonzero(info["action_mask"]))))
    assert obs["graph_node_mask"].sum() == 0
    assert seen_blocked == bool(kw.get("blocking"))
