"""Revision roll-outs: every revision has its own autoscaler; the old one's pods follow their own
falling load down; nothing is lost across a roll-out; the activator's queue is bounded."""
import numpy as np
import pytest

from rlsys_envs.core import PoissonProcess
from rlsys_envs.serverless.kpa import KPAConfig
from rlsys_envs.serverless.model import PROFILES, READY, ClusterConfig, Profile, Workload, make_simulator


def _rolled_out(kind, profile="sleep", clients=60, limit=30, new_limit=70, warm=90.0, cluster=None):
    sim = make_simulator(kind, cluster or ClusterConfig(), KPAConfig())
    sim.reset(np.random.default_rng(0), Workload(PROFILES[profile], clients=clients), limit)
    sim.advance(warm)
    sim.set_limit(new_limit)
    return sim


def _old(sim):
    """(pods, requests held) of revision 0."""
    mine = (sim.pod_rev == 0) & (sim.state != 0)
    return int(mine.sum()), float(sim._pod_load()[mine].sum())


@pytest.mark.parametrize("kind", ["fluid", "event"])
def test_the_old_revision_scales_down_by_its_own_autoscaler_as_its_load_falls(kind):
    sim = _rolled_out(kind)
    pods0, load0 = _old(sim)
    assert pods0 == 3 and load0 > 25                       # 60 clients on 3 pods at target 21
    assert set(sim.kpas) == {0, 1} and sim.kpas[0] is not sim.kpas[1]
    trace = []
    for _ in range(70):
        sim.advance(2.0)
        trace.append(_old(sim))
    assert sim.serving_rev == 1
    pods = [p for p, _ in trace]
    assert all(a >= b for a, b in zip(pods, pods[1:]))     # the old revision only scales down
    assert trace[3][1] < 1.0                               # it takes no new requests: its load is gone in seconds
    assert trace[5][0] == 3                                # ... but its pods stay while its stable window remembers it
    assert 0 < pods[15] < 3                                # then they follow the falling stable average down
    assert pods[-1] == 0 and set(sim.kpas) == {1}          # to zero (60 s idle + grace), and its autoscaler goes
    new = (sim.pod_rev == 1) & (sim.state == READY)
    assert new.sum() == 2                                  # the new revision's own KPA: 60 / (70 x 0.7) -> 2 pods


@pytest.mark.parametrize("kind", ["fluid", "event"])
def test_no_request_is_lost_across_roll_outs(kind):
    sim = make_simulator(kind, ClusterConfig(), KPAConfig())
    sim.reset(np.random.default_rng(1), Workload(PROFILES["sleep"], clients=60), 30)
    for limit in (30, 70, 10, 10, 150, 50, 50, 30):
        sim.set_limit(limit)
        st = sim.advance(15.0)
        tot = sim.total
        assert tot["completed"] + tot["failed"] + sim.in_system() == pytest.approx(tot["arrived"], rel=1e-9)
        assert st.failed == 0 and st.completed > 0
    assert sim.rev == 5


@pytest.mark.parametrize("kind", ["fluid", "event"])
def test_littles_law_holds_across_a_roll_out(kind):
    sim = make_simulator(kind, ClusterConfig(), KPAConfig())
    sim.reset(np.random.default_rng(2), Workload(PROFILES["sleep"], clients=60), 30)
    sim.advance(30.0)
    t0 = dict(sim.total)
    sim.advance(30.0)
    sim.set_limit(110)                      # the roll-out, with the old revision draining, inside the window
    sim.advance(120.0)
    d = {k: sim.total[k] - t0[k] for k in ("in_system_s", "latency_s", "completed", "failed")}
    assert d["failed"] == 0
    x = d["completed"] / 150.0
    L, lam_w = d["in_system_s"] / 150.0, x * d["latency_s"] / d["completed"]
    assert L == pytest.approx(lam_w, rel=0.03) and L == pytest.approx(60, rel=0.01)


@pytest.mark.parametrize("kind", ["fluid", "event"])
def test_a_panicking_old_revision_holds_a_full_cluster(kind):
    # 500 clients at limit 10 want 72 pods of the 9 that fit: the KPA panics. After the route moves
    # to the new revision, the old one stays in panic (no scale-down) for a stable window, so its
    # idle pods hold the nodes and the new revision's pods wait for a node.
    sim = _rolled_out(kind, profile="cpu", clients=500, limit=10, new_limit=30, warm=60.0)
    sim.advance(10.0)
    assert sim.serving_rev == 1
    pods, load = _old(sim)
    assert pods == 8 and load < 1.0 and sim.unscheduled > 0
    sim.advance(70.0)
    assert _old(sim)[0] <= 1 and ((sim.pod_rev == 1) & (sim.state != 0)).sum() >= 8


@pytest.mark.parametrize("kind", ["fluid", "event"])
def test_the_activator_answers_503_past_its_queue_depth(kind):
    # no pod for the first 20 s (a slow cold start from zero): the activator holds the open-loop
    # arrivals up to its queue depth and answers 503 beyond
    cl = dict(initial_pods=0, cold_start_median=20.0, cold_start_sigma=0.0)
    runs = {}
    for depth in (50.0, 10000.0):
        sim = make_simulator(kind, ClusterConfig(activator_queue_depth=depth, **cl), KPAConfig())
        sim.reset(np.random.default_rng(3), Workload(PROFILES["cpu"], process=PoissonProcess(20.0)), 10)
        st = sim.advance(10.0)
        runs[depth] = (st.failed, sim.snapshot()["queued"], sim.activator_503)
    failed, queued, shed = runs[50.0]
    assert queued == pytest.approx(50.0) and failed == pytest.approx(shed) and failed > 100
    assert runs[10000.0][0] == 0 and runs[10000.0][1] > 150


def test_the_activator_queue_depth_is_checked():
    with pytest.raises(ValueError, match="cluster.activator_queue_depth"):
        ClusterConfig(activator_queue_depth=-1.0)


@pytest.mark.parametrize("kind", ["fluid", "event"])
def test_the_activator_forwards_on_completions_within_a_step(kind):
    # 10 ms requests at limit 10 on 9 pods, the activator in the path (9 x 10 < 200): a pod takes
    # about 90 requests a second. The fluid's activator used to forward only at step starts
    # (limit / dt = 20 a second per pod, 180 in all): 400 req/s now go through with no backlog.
    sim = make_simulator(kind, ClusterConfig(initial_pods=9), KPAConfig(min_scale=9, max_scale=9))
    sim.reset(np.random.default_rng(4), Workload(Profile("light", 0.01, 0.0, 1.0),
                                                 process=PoissonProcess(400.0)), 10)
    sim.advance(10.0)
    st = sim.advance(30.0)
    assert sim.act_in_path
    assert st.throughput == pytest.approx(400.0, rel=0.05) and st.failed == 0
    assert sim.snapshot()["queued"] < 40 and st.latency(0.95) < 0.5
