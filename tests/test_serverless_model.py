"""The serverless simulators: conservation, fast-vs-reference agreement, the paper's findings."""
import numpy as np
import pytest

from rlsys_envs.core import OnOffProcess, PoissonProcess
from rlsys_envs.serverless.eventsim import EventSimulator
from rlsys_envs.serverless.fluid import FluidSimulator
from rlsys_envs.serverless.kpa import KPAConfig
from rlsys_envs.serverless.model import PROFILES, ClusterConfig, Workload, make_simulator


def run(kind, profile, limit, warm=120.0, measure=60.0, seed=0, clients=500):
    sim = make_simulator(kind, ClusterConfig(), KPAConfig())
    sim.reset(np.random.default_rng(seed), Workload(PROFILES[profile], clients=clients), limit)
    sim.advance(warm)
    return sim.advance(measure)


def workloads():
    return {
        "closed": Workload(PROFILES["sleep"], clients=100),
        "poisson": Workload(PROFILES["cpu"], process=PoissonProcess(40.0)),
        "bursty_memory": Workload(PROFILES["memory"], process=OnOffProcess(150.0, 10.0, 20.0, 20.0)),
        "switching": Workload(PROFILES["cpu"], clients=300, switch_at=40.0, switch_profile=PROFILES["memory"]),
    }


@pytest.mark.parametrize("kind", ["fluid", "event"])
@pytest.mark.parametrize("name", ["closed", "poisson", "bursty_memory", "switching"])
@pytest.mark.parametrize("limit", [0, 30, 110])
def test_every_request_is_completed_failed_or_still_in_the_system(kind, name, limit):
    sim = make_simulator(kind, ClusterConfig(), KPAConfig())
    sim.reset(np.random.default_rng(3), workloads()[name], limit)
    for _ in range(3):
        sim.advance(30.0)
        tot = sim.total
        assert tot["arrived"] > 0
        lhs = tot["completed"] + tot["failed"] + sim.in_system()
        if kind == "event":
            assert lhs == tot["arrived"]
        else:
            assert lhs == pytest.approx(tot["arrived"], rel=1e-9, abs=1e-6)
        if name == "closed" or name == "switching":
            # a closed loop never holds more requests than it has clients
            assert sim.in_system() <= workloads()[name].clients + 1e-6


def rel(a, b):
    return abs(a - b) / max(abs(b), 1e-9)


@pytest.mark.parametrize("profile,limit", [("cpu", 10), ("memory", 30)])
def test_fluid_agrees_with_the_request_level_reference_short(profile, limit):
    ref = run("event", profile, limit, warm=90.0, measure=30.0)
    fast = run("fluid", profile, limit, warm=90.0, measure=30.0)
    assert rel(fast.throughput, ref.throughput) < 0.05
    assert rel(fast.latency(0.95), ref.latency(0.95)) < 0.05


@pytest.mark.slow
@pytest.mark.parametrize("profile,limit", [("cpu", 10), ("cpu", 30), ("cpu", 70), ("memory", 10), ("memory", 30),
                                           ("sleep", 10), ("sleep", 30), ("sleep", 70)])
def test_fluid_agrees_with_the_request_level_reference(profile, limit):
    ref = run("event", profile, limit)
    fast = run("fluid", profile, limit)
    assert rel(fast.throughput, ref.throughput) < 0.05
    assert rel(fast.latency(0.95), ref.latency(0.95)) < 0.05
    assert rel(fast.latency(0.5), ref.latency(0.5)) < 0.05


def sweep(profile, limits=(0, 10, 30, 50, 70, 90, 110, 150, 310)):
    return {limit: run("fluid", profile, limit, warm=150.0, measure=150.0) for limit in limits}


def test_cpu_heavy_prefers_a_low_limit():
    s = sweep("cpu")
    best = max((limit for limit in s if limit > 0), key=lambda limit: s[limit].throughput)
    assert best == 10
    assert s[10].throughput > 1.3 * s[0].throughput            # beats Knative's default clearly
    assert s[10].latency(0.95) < s[0].latency(0.95)


def test_memory_heavy_prefers_a_low_limit_and_fails_above_a_threshold():
    s = sweep("memory")
    best = max((limit for limit in s if limit > 0), key=lambda limit: s[limit].throughput)
    assert best == 10
    assert s[10].throughput > 1.3 * s[0].throughput
    assert s[10].error_rate == 0.0 and s[30].error_rate == 0.0
    # the default pod holds (512 - 62) / 10 = 45 requests: any limit above fails > 10 %
    for limit in (50, 70, 110, 310):
        assert s[limit].error_rate > 0.10
    assert s[0].error_rate > 0.10


def test_sleep_heavy_prefers_a_higher_limit():
    s = sweep("sleep")
    best = max((limit for limit in s if limit > 0), key=lambda limit: s[limit].throughput)
    assert best in (50, 70, 90)
    assert s[70].throughput > 2 * s[10].throughput
    assert s[70].throughput > 1.02 * s[310].throughput


def test_pods_are_bounded_by_the_node_resources():
    cl = ClusterConfig(n_nodes=2, node_cpu=4.0, pod_cpu=1.0)
    sim = FluidSimulator(cl, KPAConfig())
    sim.reset(np.random.default_rng(0), Workload(PROFILES["cpu"], clients=500), 10)
    sim.advance(60.0)
    ready, pending = sim.pod_counts()
    assert ready == 8 == cl.max_pods()
    assert pending > 0                          # KPA wants ~72 pods; the rest cannot be scheduled
    assert np.all(sim.pool.usage[:, 0] <= sim.pool.capacity[:, 0])


def test_oom_kills_fail_in_flight_requests_in_the_reference():
    sim = EventSimulator(ClusterConfig(), KPAConfig())
    sim.reset(np.random.default_rng(0), Workload(PROFILES["memory"], clients=500), 70)
    st = sim.advance(60.0)
    assert st.oom_kills > 0 and st.failed >= st.oom_kills * 46
