"""JobShop-v0 instances: generator, file loaders (and their error messages), benchmarks by name."""
import numpy as np
import pytest

from rlsys_envs.jobshop.env import JobShopEnv
from rlsys_envs.jobshop.generator import (InstanceFormatError, generate, load_benchmark, load_file, load_standard,
                                          load_taillard, resolve_instance, write_standard)


def test_generator_is_seeded_and_taillard_like():
    a = generate(np.random.default_rng(5), 15, 10)
    b = generate(np.random.default_rng(5), 15, 10)
    c = generate(np.random.default_rng(6), 15, 10)
    assert np.array_equal(a.machines, b.machines) and np.array_equal(a.durations, b.durations)
    assert not np.array_equal(a.durations, c.durations)
    assert a.machines.shape == (15, 10)
    assert all(sorted(row) == list(range(10)) for row in a.machines.tolist())  # each machine once
    assert a.durations.min() >= 1 and a.durations.max() <= 99
    big = generate(np.random.default_rng(0), 100, 20)
    assert big.total_ops == 2000


def test_standard_roundtrip_and_short_jobs(tmp_path):
    p = tmp_path / "inst.txt"
    p.write_text("# a comment\n3 3\n0 5 1 3 2 2\n2 4 0 1\n1 7\n")
    inst = load_standard(p)
    assert inst.n_jobs == 3 and inst.n_machines == 3
    assert inst.n_ops.tolist() == [3, 2, 1]
    assert inst.machines[1, :2].tolist() == [2, 0] and inst.durations[2, 0] == 7
    q = tmp_path / "out.txt"
    write_standard(inst, q)
    again = load_file(q)
    assert np.array_equal(again.machines, inst.machines) and np.array_equal(again.durations, inst.durations)
    env = JobShopEnv(instance=str(p))  # a file path is accepted as instance
    env.reset(seed=0)


def test_taillard_format(tmp_path):
    p = tmp_path / "ta.txt"
    p.write_text("2 3 12345 67890 10 5\nTimes\n4 5 6\n7 8 9\nMachines\n1 2 3\n3 1 2\n")
    inst = load_taillard(p)
    assert inst.machines.tolist() == [[0, 1, 2], [2, 0, 1]]
    assert inst.durations.tolist() == [[4, 5, 6], [7, 8, 9]]
    assert load_file(p).machines.tolist() == inst.machines.tolist()


@pytest.mark.parametrize("text, loader, match", [
    ("", load_standard, "empty"),
    ("2 x\n0 1\n0 1\n", load_standard, r"line 1.*'x' is not an integer"),
    ("2 2\n0 1 1 2\n", load_standard, "2 jobs but only 1"),
    ("2 2\n0 1 1\n0 1\n", load_standard, r"line 2: job 0 needs 'machine time' pairs"),
    ("2 2\n0 1 1 2\n0 1 5 2\n", load_standard, r"line 3: job 1 operation 1: machine 5 not in \[0, 1\]"),
    ("2 2\n0 1 1 -2\n0 1\n", load_standard, r"line 2: job 0 operation 1: negative time"),
    ("2 2\n0 1\n0 1\n1 1\n", load_standard, r"line 4: unexpected extra line"),
    ("2 2\n0 1.5\n0 1\n", load_standard, r"line 2.*'1.5' is not an integer"),
    ("2 2\n1 2\n3\n1 2\n2 1\n", load_taillard, r"line 3: expected 2 numbers, found 1"),
    ("2 2\n1 2\n3 4\n1 2\n0 1\n", load_taillard, r"line 5: machines must be numbered 1..2"),
    ("2 2\n1 2\n3 4\n1 2\n", load_taillard, r"expected 4 rows"),
])
def test_malformed_files_name_line_and_problem(tmp_path, text, loader, match):
    p = tmp_path / "bad.txt"
    p.write_text(text)
    with pytest.raises(InstanceFormatError, match=match) as exc:
        loader(p)
    assert str(p) in str(exc.value)


def test_benchmarks_by_name_carry_their_optimum():
    ft06 = load_benchmark("ft06")
    assert (ft06.n_jobs, ft06.n_machines, ft06.optimum) == (6, 6, 55)
    ta01 = resolve_instance("ta01")
    assert (ta01.n_jobs, ta01.n_machines, ta01.optimum) == (15, 15, 1231)
    la40 = load_benchmark("la40")
    assert la40.best_known() is not None
    ta80 = load_benchmark("ta80")
    assert (ta80.n_jobs, ta80.n_machines) == (100, 20)


def test_unknown_instance_name_is_named():
    with pytest.raises(ValueError, match="nope99"):
        JobShopEnv(instance="nope99")
    with pytest.raises(ValueError, match="does not exist"):
        JobShopEnv(instance="/no/such/file.txt")
