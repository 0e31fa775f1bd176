"""Event clock ordering and the seeded workload processes (rates, determinism, trace loading)."""
import numpy as np
import pytest

from rlsys_envs.core import (DiurnalProcess, EventClock, MMPPProcess, OnOffProcess, PoissonProcess, TraceReplay,
                             load_azure_functions_trace)


def test_clock_orders_by_time_then_schedule_order():
    clock = EventClock()
    clock.schedule(5, "b")
    clock.schedule(1, "a")
    e = clock.schedule(5, "c")
    clock.schedule(5, "d")
    clock.cancel(e)
    assert len(clock) == 3
    assert [ev.kind for ev in clock.pop_until(10)] == ["a", "b", "d"]
    assert clock.now == 10
    with pytest.raises(ValueError, match="before the current time"):
        clock.schedule(3, "late")
    assert clock.peek_time() == float("inf")


@pytest.mark.parametrize("process, mean_rate", [
    (PoissonProcess(5.0), 5.0),
    (OnOffProcess(rate_on=10.0, rate_off=0.0, mean_on=50, mean_off=50), 5.0),
    (DiurnalProcess(4.0, amplitude=0.8, period=600), 4.0),
    (TraceReplay([60, 180], interval=60), 2.0),
])
def test_long_run_rate_and_determinism(process, mean_rate):
    def run(seed):
        process.reset(np.random.default_rng(seed))
        return np.concatenate([process.arrivals(t, t + 30) for t in range(0, 60000, 30)])

    a, b = run(1), run(1)
    assert np.array_equal(a, b), "same seed must give the same arrivals"
    assert np.all(np.diff(a) >= 0) and a.min() >= 0 and a.max() < 60000
    assert len(a) / 60000 == pytest.approx(mean_rate, rel=0.1)
    assert not np.array_equal(a[:50], run(2)[:50])


def test_windows_must_be_in_order():
    p = PoissonProcess(1.0)
    p.reset(np.random.default_rng(0))
    p.arrivals(0, 10)
    with pytest.raises(ValueError, match="in order"):
        p.arrivals(5, 15)


def test_mmpp_validates_transition():
    with pytest.raises(ValueError, match="stochastic"):
        MMPPProcess([1, 2], [1, 1], [[0, 0.5], [1, 0]])


def write_trace(path, rows, minutes=1440, header=None):
    header = header or ["HashOwner", "HashApp", "HashFunction", "Trigger"] + [str(i) for i in range(1, minutes + 1)]
    path.write_text(",".join(header) + "\n" + "\n".join(",".join(map(str, r)) for r in rows) + "\n")
    return path


def test_azure_trace_loader(tmp_path):
    counts = list(range(1440))
    p = write_trace(tmp_path / "t.csv", [["o", "a", "f1", "http"] + counts, ["o", "a", "f2", "timer"] + [1] * 1440])
    assert load_azure_functions_trace(p, "f1").tolist() == counts
    assert load_azure_functions_trace(p)[5] == 6


@pytest.mark.parametrize("mutate, message", [
    (lambda rows, hdr: (rows, hdr[1:]), "lacks column"),
    (lambda rows, hdr: ([r[:-1] for r in rows], hdr), "expected 1444 fields"),
    (lambda rows, hdr: ([r[:10] + ["x"] + r[11:] for r in rows], hdr), "minute 7 is not an integer"),
    (lambda rows, hdr: ([r[:10] + [-3] + r[11:] for r in rows], hdr), "negative"),
    (lambda rows, hdr: (rows, hdr[:-1] + ["9999"]), "expected minute columns"),
])
def test_azure_trace_loader_rejects_malformed(tmp_path, mutate, message):
    hdr = ["HashOwner", "HashApp", "HashFunction", "Trigger"] + [str(i) for i in range(1, 1441)]
    rows, hdr = mutate([["o", "a", "f", "http"] + [1] * 1440], hdr)
    p = write_trace(tmp_path / "bad.csv", rows, header=hdr)
    with pytest.raises(ValueError, match=message):
        load_azure_functions_trace(p)


def test_azure_trace_loader_unknown_function(tmp_path):
    p = write_trace(tmp_path / "t.csv", [["o", "a", "f1", "http"] + [0] * 1440])
    with pytest.raises(ValueError, match="no row for function 'nope'"):
        load_azure_functions_trace(p, "nope")
    with pytest.raises(FileNotFoundError):
        load_azure_functions_trace(tmp_path / "missing.csv")
