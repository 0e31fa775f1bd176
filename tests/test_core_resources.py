"""Property tests of the shared resource pool: capacity is never exceeded, refused operations
change nothing, and usage always equals the sum of the placed demands."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from rlsys_envs.core import CapacityError, ResourcePool

N_RES, N_DIMS = 4, 2

ops = st.lists(
    st.one_of(
        st.tuples(st.just("place"), st.integers(0, 9), st.lists(st.integers(0, N_RES - 1), min_size=1, max_size=2,
                                                                unique=True),
                  st.lists(st.integers(0, 12), min_size=N_DIMS, max_size=N_DIMS)),
        st.tuples(st.just("release"), st.integers(0, 9)),
        st.tuples(st.just("move"), st.integers(0, 9), st.lists(st.integers(0, N_RES - 1), min_size=1, max_size=2,
                                                               unique=True)),
    ),
    max_size=60,
)


def snapshot(pool):
    return pool.usage.copy(), {c: (pool.placement(c).resources.copy(), pool.placement(c).demand.copy())
                               for c in pool.consumers()}


def assert_same(a, b):
    assert np.array_equal(a[0], b[0])
    assert a[1].keys() == b[1].keys()
    for k in a[1]:
        assert np.array_equal(a[1][k][0], b[1][k][0]) and np.array_equal(a[1][k][1], b[1][k][1])


def check_invariants(pool):
    assert np.all(pool.usage <= pool.capacity), "usage exceeds capacity"
    assert np.all(pool.usage >= 0)
    expected = np.zeros_like(pool.usage)
    for c in pool.consumers():
        p = pool.placement(c)
        np.add.at(expected, p.resources, p.demand)
    assert np.array_equal(pool.usage, expected), "usage differs from the sum of placed demands"


@given(capacity=st.lists(st.lists(st.integers(0, 30), min_size=N_DIMS, max_size=N_DIMS), min_size=N_RES,
                         max_size=N_RES), ops=ops)
def test_random_operations_keep_invariants(capacity, ops):
    pool = ResourcePool(np.array(capacity), ("cpu", "mem"))
    for op in ops:
        before = snapshot(pool)
        try:
            if op[0] == "place":
                _, c, res, dem = op
                pool.place(c, res, dem)
            elif op[0] == "release":
                pool.release(op[1])
            else:
                _, c, res = op
                old = pool.placement(c)
                # a move keeps the total demand; spread it evenly when the number of resources changes
                total = old.demand.sum(axis=0)
                if len(res) == len(old.resources):
                    pool.move(c, res)
                elif np.all(total % len(res) == 0):
                    pool.move(c, res, np.tile(total // len(res), (len(res), 1)))
                else:
                    continue
        except (CapacityError, KeyError, ValueError):
            assert_same(before, snapshot(pool))  # a refused operation leaves the pool unchanged
        check_invariants(pool)


def test_fits_matches_place():
    pool = ResourcePool([[8, 16], [4, 4], [0, 0]], ("cpu", "mem"))
    assert pool.fits([4, 4]).tolist() == [True, True, False]
    assert pool.fits([5, 4]).tolist() == [True, False, False]
    pool.place("a", 0, [6, 10])
    assert pool.fits([4, 4]).tolist() == [False, True, False]
    with pytest.raises(CapacityError, match="cpu capacity of resource 0"):
        pool.place("b", 0, [4, 1])


def test_move_frees_own_usage_first():
    pool = ResourcePool([[8, 8], [8, 8]], ("cpu", "mem"))
    pool.place("vm", [0, 1], [[6, 6], [6, 6]])
    pool.move("vm", [1, 0])  # swapping halves of a split consumer must be legal
    with pytest.raises(ValueError, match="keep its total demand"):
        pool.move("vm", [0], [[4, 4]])
    with pytest.raises(CapacityError):
        pool.move("vm", [0], [[12, 12]])
    assert pool.usage.tolist() == [[6, 6], [6, 6]]


def test_errors_name_the_problem():
    pool = ResourcePool([[2, 2]], ("cpu", "mem"))
    with pytest.raises(KeyError, match="'ghost' is not placed"):
        pool.release("ghost")
    pool.place("a", 0, [1, 1])
    with pytest.raises(ValueError, match="already placed"):
        pool.place("a", 0, [1, 1])
    with pytest.raises(IndexError, match="out of range"):
        pool.place("b", 3, [1, 1])
    with pytest.raises(ValueError, match="non-negative"):
        pool.place("b", 0, [-1, 1])
    with pytest.raises(ValueError, match="2 dimensions but dims names 1"):
        ResourcePool([[1, 1]], ("cpu",))


def test_fragmentation_and_utilisation():
    pool = ResourcePool([[44, 100], [44, 100]], ("cpu", "mem"))
    pool.place("a", 0, [20, 50])  # 24 free -> 8 fragmented (mod 16)
    pool.place("b", 1, [12, 25])  # 32 free -> 0 fragmented
    assert pool.fragments("cpu", 16).tolist() == [8, 0]
    assert pool.fragment_rate("cpu", 16) == pytest.approx(8 / 56)
    assert pool.utilisation()[:, 0].tolist() == pytest.approx([20 / 44, 12 / 44])
    assert pool.total_utilisation().tolist() == pytest.approx([32 / 88, 75 / 200])


def test_copy_is_independent():
    pool = ResourcePool([[4, 4]], ("cpu", "mem"))
    other = pool.copy()
    other.place("a", 0, [4, 4])
    assert pool.usage.sum() == 0 and "a" not in pool
