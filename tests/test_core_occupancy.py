"""Property tests of the shared time x address map: placed blocks never overlap, refused placements
change nothing, and the canonical positions contain every lowest fitting offset."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rlsys_envs.core import CapacityError, TimeAddressMap

CAP = 20
blocks = st.lists(st.tuples(st.integers(0, 9), st.integers(1, 5), st.integers(0, CAP + 2), st.integers(1, 8)),
                  max_size=25)


def brute_free(m, t0, t1, size):
    """Every offset where a block fits, by brute force over addresses."""
    out = []
    for off in range(0, CAP - size + 1):
        ok = True
        for b in m.blocks():
            s0, s1, lo, sz = m.block(b)
            if s0 < t1 and s1 > t0 and lo < off + size and lo + sz > off:
                ok = False
        if ok:
            out.append(off)
    return out


@settings(max_examples=60, deadline=None)
@given(blocks)
def test_no_overlap_and_refusals_change_nothing(items):
    m = TimeAddressMap(CAP, max_blocks=2)
    for k, (t0, length, off, size) in enumerate(items):
        t1 = t0 + length
        before = (m.n, m.blocks(), m.lo[:m.n].copy())
        expected = off in brute_free(m, t0, t1, size)
        assert m.fits(t0, t1, off, size) == expected
        if expected:
            m.place(k, t0, t1, off, size)
        else:
            with pytest.raises(CapacityError):
                m.place(k, t0, t1, off, size)
            assert (m.n, m.blocks()) == before[:2] and np.array_equal(m.lo[:m.n], before[2])
    rects = [m.block(b) for b in m.blocks()]
    for i, (a0, a1, lo, sz) in enumerate(rects):
        assert 0 <= lo and lo + sz <= CAP
        for b0, b1, lo2, sz2 in rects[i + 1:]:
            assert not (a0 < b1 and b0 < a1 and lo < lo2 + sz2 and lo2 < lo + sz)


@settings(max_examples=60, deadline=None)
@given(blocks, st.integers(0, 9), st.integers(1, 5), st.integers(1, 8))
def test_canonical_positions_hold_the_lowest_fit_and_gaps(items, t0, length, size):
    m = TimeAddressMap(CAP)
    for k, (s0, ln, off, sz) in enumerate(items):
        if m.fits(s0, s0 + ln, off, sz):
            m.place(k, s0, s0 + ln, off, sz)
    t1 = t0 + length
    offsets, fits, gaps = m.canonical_offsets(t0, t1, size)
    free = brute_free(m, t0, t1, size)
    live = [m.block(b) for b in m.blocks() if m.block(b)[0] < t1 and m.block(b)[1] > t0]
    assert list(offsets) == sorted({0} | {lo + sz for _, _, lo, sz in live if lo + sz < CAP})
    *same, peak = m.candidates(t0, t1, size)
    assert all(np.array_equal(a, b) for a, b in zip(same, (offsets, fits, gaps)))
    assert peak == m.peak(t0, t1) == max([lo + sz for _, _, lo, sz in live], default=0)
    for off, ok, gap in zip(offsets, fits, gaps):
        assert ok == (off in free)
        assert (gap == 0) == any(lo <= off < lo + sz for _, _, lo, sz in live)
        if gap > 0:   # the gap is the largest free block starting there
            assert m.fits(t0, t1, int(off), int(gap)) and not m.fits(t0, t1, int(off), int(gap) + 1)
    if free:
        assert free[0] in set(offsets[fits].tolist())


def test_release_and_copy():
    m = TimeAddressMap(10)
    m.place("a", 0, 4, 0, 5)
    m.place("b", 2, 6, 5, 5)
    twin = m.copy()
    assert m.release("a") == (0, 4, 0, 5)
    assert m.blocks() == ["b"] and m.fits(0, 4, 0, 5)
    assert not twin.fits(0, 4, 0, 5) and twin.peak(0, 3) == 10
    with pytest.raises(ValueError, match="placed already"):
        twin.place("a", 0, 1, 0, 1)
    with pytest.raises(CapacityError, match="address range"):
        m.place("c", 0, 1, 8, 3)
