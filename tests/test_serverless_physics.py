"""Physics of the serverless simulators: Little's law, conservation under random episodes, seeds
that change the episode."""
import gymnasium as gym
import numpy as np
import pytest

import rlsys_envs  # noqa: F401
from rlsys_envs.core import PoissonProcess
from rlsys_envs.serverless import ServerlessAutoscalingEnv
from rlsys_envs.serverless.kpa import KPAConfig
from rlsys_envs.serverless.model import PROFILES, ClusterConfig, Profile, Workload, make_simulator


def little(kind, wl, limit, pods, warm, measure, seed=0):
    """(L, lambda W, X) over ``measure`` seconds after ``warm``, on a fixed number of pods: the time
    average of the in-system count against the completion rate times the mean latency."""
    sim = make_simulator(kind, ClusterConfig(initial_pods=pods), KPAConfig(min_scale=pods, max_scale=pods))
    sim.reset(np.random.default_rng(seed), wl, limit)
    sim.advance(warm)
    t0 = dict(sim.total)
    sim.advance(measure)
    d = {k: sim.total[k] - t0[k] for k in ("in_system_s", "latency_s", "completed", "failed")}
    assert d["failed"] == 0
    x = d["completed"] / measure
    return d["in_system_s"] / measure, x * d["latency_s"] / d["completed"], x


CASES = {   # name -> (workload, limit, pods)
    "open_cpu_fast_requests": (lambda: Workload(PROFILES["cpu"], process=PoissonProcess(50.0)), 10, 9),
    "open_cpu_no_limit": (lambda: Workload(PROFILES["cpu"], process=PoissonProcess(30.0)), 0, 4),
    "open_memory": (lambda: Workload(PROFILES["memory"], process=PoissonProcess(60.0)), 10, 9),
    "open_sleep": (lambda: Workload(PROFILES["sleep"], process=PoissonProcess(60.0)), 30, 3),
    "closed_cpu_queued": (lambda: Workload(PROFILES["cpu"], clients=200), 10, 9),
    "closed_sleep": (lambda: Workload(PROFILES["sleep"], clients=60), 30, 3),
}


@pytest.mark.parametrize("kind", ["fluid", "event"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_littles_law(kind, name):
    make, limit, pods = CASES[name]
    wl = make()
    L, lam_w, x = little(kind, wl, limit, pods, warm=30.0, measure=90.0 if kind == "event" else 240.0)
    assert x > 0
    assert L == pytest.approx(lam_w, rel=0.03)
    if wl.clients:
        assert L == pytest.approx(wl.clients, rel=0.01)      # a closed loop with no think time


def test_fluid_holds_a_fast_request_for_its_service_time_not_a_step():
    # the case: 100 ms requests, 0.5 s steps. The fluid's L and W agree with the reference's.
    wl = lambda: Workload(PROFILES["cpu"], process=PoissonProcess(50.0))  # noqa: E731
    L_f, lw_f, _ = little("fluid", wl(), 10, 9, 30.0, 120.0)
    L_e, lw_e, _ = little("event", wl(), 10, 9, 30.0, 60.0)
    assert L_f == pytest.approx(L_e, rel=0.1) and lw_f == pytest.approx(lw_e, rel=0.1)
    assert L_f < 0.2 * 50 * 0.5 + 5.0      # far below "every request held a whole step" (25 in system)


def _random_env(rng):
    kw = dict(workload=str(rng.choice(["paper", "poisson", "bursty", "diurnal", "switching"])),
              profile=str(rng.choice(list(PROFILES))), switch_profile=str(rng.choice(list(PROFILES))),
              clients=int(rng.integers(1, 800)), action_type="absolute",
              decision_interval=float(rng.choice([2.0, 10.0, 30.0])), episode_decisions=6,
              cpu_s=float(rng.choice([0.005, 0.05, 0.3])), sleep_s=float(rng.choice([0.0, 0.2, 1.5])),
              mem_mb=float(rng.choice([0.5, 10.0, 100.0, 226.0, 300.0, 449.0, 600.0])),
              work_cv=float(rng.choice([0.0, 0.1, 0.8])),
              arrival_rate=float(rng.choice([5.0, 80.0, 400.0])),
              cluster={"n_nodes": int(rng.integers(1, 4)), "restart_backoff": float(rng.choice([0.0, 10.0]))})
    return ServerlessAutoscalingEnv(**kw), kw


def _check_counters(env, kw):
    sim = env.unwrapped.sim
    tot = sim.total
    for k in ("arrived", "completed", "failed", "in_system_s", "latency_s", "pod_seconds"):
        assert tot[k] >= 0, (k, kw)
    counts = (list(sim.q) + list(sim.n) + [sim.act_n]) if hasattr(sim, "q") else [sim.in_system()]
    assert min(counts) >= 0.0, kw
    assert tot["completed"] + tot["failed"] + sim.in_system() == pytest.approx(tot["arrived"], rel=1e-9, abs=1e-6), kw


def test_conservation_and_non_negative_counters_over_random_episodes_and_profiles():
    rng = np.random.default_rng(12345)
    for ep in range(40):
        env, kw = _random_env(rng)
        env.reset(seed=ep)
        done = False
        while not done:
            _, r, term, trunc, info = env.step(int(rng.integers(16)))
            assert np.isfinite(r)
            _check_counters(env, kw)
            done = term or trunc
        m = info["metrics"]
        assert m["arrived"] == pytest.approx(m["completed"] + m["failed"] + env.sim.in_system(), rel=1e-9, abs=1e-6)


@pytest.mark.parametrize("mem_mb", [226.0, 300.0, 450.0])
def test_a_pod_that_holds_one_request_does_not_crash_the_step(mem_mb):
    # issue 16 section 5: mem_mb in (225, 450] used to raise ZeroDivisionError on the second step
    env = gym.make("rlsys/ServerlessAutoscaling-v0", mem_mb=mem_mb)
    env.reset(seed=0)
    for _ in range(3):
        env.step(1)
        _check_counters(env, {"mem_mb": mem_mb})


@pytest.mark.parametrize("kind", ["fluid", "event"])
def test_oom_kill_fails_in_flight_and_queued_requests_only(kind):
    sim = make_simulator(kind, ClusterConfig(), KPAConfig())
    sim.reset(np.random.default_rng(0), Workload(Profile("m", cpu_s=0.05, sleep_s=0.2, mem_mb=10.0), clients=300), 70)
    st = sim.advance(20.0)
    assert st.oom_kills > 0 and st.failed > 0
    lhs = sim.total["completed"] + sim.total["failed"] + sim.in_system()
    assert lhs == pytest.approx(sim.total["arrived"], rel=1e-9)


def test_crash_loop_back_off_doubles_and_is_capped():
    cl = ClusterConfig(restart_backoff=10.0, restart_backoff_max=40.0, cold_start_sigma=0.0, cold_start_median=1.0)
    sim = make_simulator("fluid", cl, KPAConfig())
    sim.reset(np.random.default_rng(0), Workload(PROFILES["cpu"], clients=1), 10)
    delays = []
    for k in range(5):
        sim.now = 100.0 * k
        sim._crash(0)
        delays.append(sim.down_until[0] - sim.now)
    assert delays == pytest.approx([11.0, 21.0, 41.0, 41.0, 41.0])
    sim.now = 100.0 * 4 + cl.backoff_reset + 1.0     # up long enough: the back-off resets
    sim._crash(0)
    assert sim.down_until[0] - sim.now == pytest.approx(11.0)


def test_cold_start_pulls_the_image_once_per_node():
    cl = ClusterConfig(image_mb=200.0, pull_mb_per_s=50.0, cold_start_sigma=0.0, cold_start_median=1.0,
                       initial_pods=0)
    sim = make_simulator("fluid", cl, KPAConfig())
    sim.reset(np.random.default_rng(0), Workload(PROFILES["cpu"], clients=1), 10)
    starts = [sim._place_pod() for _ in range(4)]
    ready = [sim.ready_at[s] for s in starts]
    assert ready == pytest.approx([5.0, 5.0, 5.0, 5.0])   # 3 per node: the next pods on node 0 wait for its pull
    sim.now = 10.0
    s = sim._place_pod()
    assert sim.ready_at[s] - sim.now == pytest.approx(1.0)  # image already on the node: no pull


@pytest.mark.parametrize("kind", ["fluid", "event"])
@pytest.mark.parametrize("workload", ["paper", "poisson"])
def test_different_seeds_give_different_episodes(kind, workload):
    def metrics(seed):
        env = ServerlessAutoscalingEnv(workload=workload, simulator=kind, action_type="absolute", episode_decisions=2,
                                       decision_interval=10.0, clients=100)
        env.reset(seed=seed)
        for _ in range(2):
            *_, info = env.step(1)
        return info["metrics"]
    a, b, a2 = metrics(0), metrics(1), metrics(0)
    assert a == a2
    assert a["throughput"] != b["throughput"] and a["p95_latency"] != b["p95_latency"]


# ------------------------------------------------------------------------- Knative request path


@pytest.mark.parametrize("kind", ["fluid", "event"])
def test_a_full_queue_proxy_answers_503_when_the_activator_is_out_of_the_path(kind):
    # target_burst_capacity 0: the activator leaves the path once a pod is ready; 3 pods at limit 2
    # hold 2 in flight + 20 queued each, so 200 clients overflow the queues
    cl = ClusterConfig(target_burst_capacity=0.0, initial_pods=3)
    sim = make_simulator(kind, cl, KPAConfig(min_scale=3, max_scale=3))
    sim.reset(np.random.default_rng(0), Workload(PROFILES["cpu"], clients=200), 2)
    sim.advance(4.0)
    st = sim.advance(10.0)
    assert not sim.act_in_path and st.failed > 0 and st.oom_kills == 0
    load = sim._pod_load()
    assert load.max() <= 2 + 10 * 2 + 1e-9


@pytest.mark.parametrize("kind", ["fluid", "event"])
def test_the_activator_holds_what_the_pods_cannot_admit_without_errors(kind):
    sim = make_simulator(kind, ClusterConfig(initial_pods=3), KPAConfig(min_scale=3, max_scale=3))
    sim.reset(np.random.default_rng(0), Workload(PROFILES["cpu"], clients=200), 2)
    sim.advance(4.0)
    st = sim.advance(10.0)
    assert sim.act_in_path and st.failed == 0
    assert sim._pod_load().max() <= 2 + 1e-9          # no queue builds at the pods
    assert sim.snapshot()["queued"] > 150              # the activator holds the rest


@pytest.mark.parametrize("kind", ["fluid", "event"])
def test_requests_waiting_past_the_timeout_fail(kind):
    cl = ClusterConfig(request_timeout=5.0, initial_pods=1)
    sim = make_simulator(kind, cl, KPAConfig(min_scale=1, max_scale=1))
    sim.reset(np.random.default_rng(0), Workload(PROFILES["cpu"], clients=200), 10)
    st = sim.advance(30.0)
    assert st.failed > 50 and st.oom_kills == 0
    assert st.latency(0.99) < 5.0 + 1.5               # nobody completes long after the deadline


@pytest.mark.parametrize("kind", ["fluid", "event"])
def test_a_limit_change_rolls_out_a_new_revision(kind):
    sim = make_simulator(kind, ClusterConfig(), KPAConfig())
    sim.reset(np.random.default_rng(0), Workload(PROFILES["sleep"], clients=60), 30)
    sim.advance(20.0)
    starts = sim.total["cold_starts"]
    sim.set_limit(70)
    assert sim.rev == 1 and sim.serving_rev == 0      # the old revision serves until a new pod is ready
    assert set(sim.pod_limit[(sim.pod_rev == 0) & (sim.state != 0)]) == {30.0}
    sim.advance(30.0)
    assert sim.serving_rev == 1 and sim.total["cold_starts"] > starts
    live = sim.state != 0
    assert set(sim.pod_limit[live & (sim.pod_rev == 1)]) == {70.0}
    assert set(sim.pod_limit[live & (sim.pod_rev == 0)]) <= {30.0}    # old pods keep their limit while they last
    # the free change (a named variant) applies at once, with no cold start
    free = make_simulator(kind, ClusterConfig(), KPAConfig(), rollout=False)
    free.reset(np.random.default_rng(0), Workload(PROFILES["sleep"], clients=60), 30)
    free.advance(20.0)
    c0 = free.total["cold_starts"]
    free.set_limit(70)
    assert free.rev == 0 and set(free.pod_limit[free.state != 0]) == {70.0} and free.total["cold_starts"] == c0


def test_the_limit_change_variant_is_a_constructor_argument():
    with pytest.raises(ValueError, match="limit_change"):
        ServerlessAutoscalingEnv(limit_change="free")
    env = gym.make("rlsys/ServerlessAutoscaling-v0", limit_change="instant", action_type="absolute")
    env.reset(seed=0)
    env.step(0)
    assert env.unwrapped.sim.rev == 0
