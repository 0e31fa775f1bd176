"""Knative Pod Autoscaler decision rule against hand-computed cases, and scale to zero in the simulator."""
import numpy as np
import pytest

from rlsys_envs.core import TraceReplay
from rlsys_envs.serverless.eventsim import EventSimulator
from rlsys_envs.serverless.fluid import FluidSimulator
from rlsys_envs.serverless.kpa import KPA, KPAConfig
from rlsys_envs.serverless.model import PROFILES, ClusterConfig, Workload


def fill(kpa, values):
    for v in values:
        kpa.record(v)


def test_target_is_limit_times_utilisation_or_default():
    cfg = KPAConfig()
    assert cfg.target(10) == pytest.approx(7.0)
    assert cfg.target(0) == pytest.approx(70.0)      # no hard limit: 100 x 0.7
    assert cfg.panic_window == pytest.approx(6.0)


def test_stable_mode_uses_the_60s_average():
    kpa = KPA(KPAConfig())
    fill(kpa, [70.0] * 60)
    # 70 / 7 = 10 pods; with 10 ready the panic ratio is 1 < 2: stable
    assert kpa.decide(now=60, ready=10, limit=10) == 10
    assert not kpa.panicking
    # 5 ready: panic pods 10 / 5 = 2 >= 2 -> panic, but the desired count is the same 10
    kpa2 = KPA(KPAConfig())
    fill(kpa2, [70.0] * 60)
    assert kpa2.decide(now=60, ready=5, limit=10) == 10
    assert kpa2.panicking


def test_panic_window_reacts_to_a_burst_the_stable_window_hides():
    kpa = KPA(KPAConfig())
    fill(kpa, [0.0] * 54 + [70.0] * 6)
    # stable average 7 -> 1 pod; panic average 70 -> 10 pods; 10 / 2 ready = 5 >= 2: panic -> 10
    assert kpa.averages() == pytest.approx((7.0, 70.0))
    assert kpa.decide(now=60, ready=2, limit=10) == 10
    assert kpa.panicking


def test_no_scale_down_while_panicking_and_exit_after_a_stable_window():
    kpa = KPA(KPAConfig())
    fill(kpa, [0.0] * 54 + [70.0] * 6)
    assert kpa.decide(now=60, ready=2, limit=10) == 10
    # the burst is gone (6 zero buckets: panic average 0) but we stay at 10 pods while panicking
    fill(kpa, [0.0] * 6)
    assert kpa.decide(now=66, ready=10, limit=10) == 10
    assert kpa.panicking
    fill(kpa, [0.0] * 52)
    assert kpa.decide(now=118, ready=10, limit=10) == 10      # 58 s after the last over-threshold tick
    fill(kpa, [0.0] * 2)
    # 60 s after: panic ends; stable average 0 -> scale down, limited to floor(10 / 2) = 5
    assert kpa.decide(now=120, ready=10, limit=10) == 5
    assert not kpa.panicking


def test_scale_down_rate_limit():
    kpa = KPA(KPAConfig())
    fill(kpa, [7.0] * 60)              # 1 pod wanted
    assert kpa.decide(now=60, ready=10, limit=10) == 5        # floor(10 / 2)
    assert kpa.decide(now=62, ready=5, limit=10) == 2         # floor(5 / 2)
    assert kpa.decide(now=64, ready=2, limit=10) == 1


def test_scale_up_rate_limit():
    kpa = KPA(KPAConfig(max_scale_up_rate=2.0))
    fill(kpa, [70.0] * 60)             # 70 / 7 = 10 wanted
    assert kpa.decide(now=60, ready=3, limit=10) == 6         # ceil(2 x 3)
    kpa = KPA(KPAConfig(max_scale_up_rate=1.001))   # Knative: must be > 1
    fill(kpa, [70.0] * 60)
    assert kpa.decide(now=60, ready=3, limit=10) == 4         # at least one pod more


def test_scale_to_zero_waits_for_the_grace_period():
    kpa = KPA(KPAConfig())
    fill(kpa, [0.0] * 60)
    assert kpa.decide(now=100, ready=1, limit=10) == 1        # grace period starts
    assert kpa.decide(now=128, ready=1, limit=10) == 1
    assert kpa.decide(now=130, ready=1, limit=10) == 0        # 30 s later
    kpa = KPA(KPAConfig(enable_scale_to_zero=False))
    fill(kpa, [0.0] * 60)
    for t in (100, 200, 300):
        assert kpa.decide(now=t, ready=1, limit=10) == 1


@pytest.mark.parametrize("sim_cls", [FluidSimulator, EventSimulator])
def test_simulator_scales_to_zero_after_idle_and_back_up(sim_cls):
    # 30 requests/min for the first minute, nothing for 3 minutes, then traffic again
    counts = np.array([30, 0, 0, 0, 30])
    kwargs = {} if sim_cls is EventSimulator else {"dt": 0.5}
    sim = sim_cls(ClusterConfig(), KPAConfig(), **kwargs)
    sim.reset(np.random.default_rng(1), Workload(PROFILES["cpu"], process=TraceReplay(counts, interval=60.0)), 10)
    sim.advance(120)
    assert sim.pod_counts()[0] >= 1          # traffic ended at most 60 s ago: still a pod
    # the last request ends just after t = 60 s; its bucket leaves the 60 s window at t = 122 s
    # (a tick), the grace period ends at t = 152 s (a tick): at t = 154 s no pod is left
    sim.advance(34)
    ready, pending = sim.pod_counts()
    assert ready == 0 and pending == 0
    sim.advance(86)                          # t = 240 s: traffic is back; the activator woke a pod
    st = sim.advance(60)
    assert sim.pod_counts()[0] >= 1 and st.completed > 0
