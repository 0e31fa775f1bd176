"""The memory mapping model: roofline costs, generated programs, and the CSV loader's errors."""
from pathlib import Path

import numpy as np
import pytest

from rlsys_envs.malloc.generator import InstanceFormatError, LayeredPrograms, capacity_from_name, load_csv
from rlsys_envs.malloc.model import AcceleratorProfile, MemoryState, Program

MINIMALLOC = Path(__file__).resolve().parents[2] / "shared" / "data" / "minimalloc"
UNIT = AcceleratorProfile("unit", peak_flops=1.0, bw_slow=1.0, bw_fast=2.0)


def two_buffer_program(compute):
    # one op reading two buffers of 10 bytes each: memory time 20 (HBM), 15 with one fast, 10 with both
    return Program([compute], [10, 10], [0, 0], [1, 1], [0, 0], [0, 1], [10.0, 10.0], 100, UNIT)


def test_roofline_savings_are_not_additive():
    p = two_buffer_program(compute=12.0)
    assert p.slow_time == 20.0
    assert p.program_time(np.array([True, False])) == 15.0
    assert p.program_time(np.array([True, True])) == 12.0     # compute-bound: saves 8, not 10
    st = MemoryState(p)
    assert st.place(0, 0) == 5.0
    assert st.gain_of(1) == 3.0 and st.place(1, 10) == 3.0
    assert st.time == p.program_time(st.fast)


def test_state_refuses_overlap_and_changes_nothing():
    from rlsys_envs.core import CapacityError

    p = two_buffer_program(compute=0.0)
    st = MemoryState(p)
    st.place(0, 0)
    before = (st.time, st.memory.copy(), st.fast.copy())
    with pytest.raises(CapacityError):
        st.place(1, 5)
    assert (st.time, st.memory.tolist(), st.fast.tolist()) == (before[0], before[1].tolist(), before[2].tolist())


@pytest.mark.parametrize("size, low, high", [("small", 40, 64), ("medium", 250, 384), ("large", 1900, 2100)])
def test_generated_presets_and_determinism(size, low, high):
    a = LayeredPrograms(size)(np.random.default_rng(5))
    b = LayeredPrograms(size)(np.random.default_rng(5))
    assert low <= a.n_buffers <= high
    for field in ("compute", "size", "start", "end", "acc_op", "acc_buf", "acc_bytes"):
        assert np.array_equal(getattr(a, field), getattr(b, field)), field
    assert a.capacity == b.capacity and 0 < a.capacity < a.peak_live_bytes()
    assert np.all(a.size % 64 == 0)
    kinds = set(a.kinds)
    assert {"weight", "optimizer", "activation", "gradient", "temporary"} <= kinds
    # weights live for the whole program, temporaries for one op, activations from forward to backward
    T = a.n_ops
    w = [i for i, k in enumerate(a.kinds) if k == "weight"]
    assert all(a.start[i] == 0 and a.end[i] == T for i in w)
    tmp = [i for i, k in enumerate(a.kinds) if k == "temporary"]
    assert all(a.end[i] - a.start[i] == 1 for i in tmp)
    # a mix of compute- and memory-bound ops in the all-HBM program
    assert 0 < a.fast_time < a.slow_time


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.mark.parametrize("text, match", [
    ("id,lower,upper,size\n0,0,4,-8\n", r"line 2, field 'size'"),
    ("id,lower,upper,size\n0,0,4,8\n1,5,5,8\n", r"line 3, field 'upper'"),
    ("id,lower,upper,size\n0,0,4,8\n1,x,5,8\n", r"line 3, field 'lower': 'x' is not an integer"),
    ("id,lower,upper,size\n0,0,4,8\n0,1,5,8\n", r"line 3, field 'id': duplicate id '0'"),
    ("name,from,to\n0,0,4\n", r"line 1: header"),
    ("id,lower,upper,size,gaps\n0,0,4,8,1-2\n", r"line 1: column\(s\) gaps not supported"),
    ("", r"line 1: empty file"),
])
def test_loader_errors_name_file_line_and_field(tmp_path, text, match):
    path = write(tmp_path, "bad.csv", text)
    with pytest.raises(InstanceFormatError, match=match) as err:
        load_csv(path)
    assert "bad.csv" in str(err.value)


def test_loader_formats_and_capacity(tmp_path):
    half_open = load_csv(write(tmp_path, "x.64.csv", "id,lower,upper,size\na,0,3,4\nb,3,9,4\nc,0,9,4\n"))
    legacy = load_csv(write(tmp_path, "y.64.csv", "buffer,start,end,size\na,0,2,4\nb,3,8,4\nc,0,8,4\n"))
    assert half_open.capacity == legacy.capacity == 64 == capacity_from_name(Path("x.64.csv"))
    for p in (half_open, legacy):   # same overlaps: a and b disjoint, c overlaps both
        assert p.start[0] < p.end[0] <= p.start[1] and p.start[2] < p.end[0] and p.end[2] > p.start[1]
    assert load_csv(write(tmp_path, "z.csv", "id,lower,upper,size\na,0,3,4\n"), capacity=9).capacity == 9
    # the synthetic access model is seeded: same file and seed, same program
    again = load_csv(tmp_path / "x.64.csv")
    assert np.array_equal(again.compute, half_open.compute)


@pytest.mark.skipif(not MINIMALLOC.is_dir(), reason="MiniMalloc benchmarks not present")
def test_minimalloc_benchmarks_load():
    p = load_csv(MINIMALLOC / "A.1048576.csv")
    assert p.n_buffers == 154 and p.capacity == 1048576
    assert p.peak_live_bytes() <= p.capacity
    small = load_csv(MINIMALLOC / "input.12.csv", capacity=12)
    assert small.n_buffers == 5 and small.names[0] == "b1"
