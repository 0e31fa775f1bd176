"""An address range shared over time: rectangles (live range x address range) that may not overlap.

:class:`ResourcePool` counts usage against a capacity; some resources are instead an *address
range* ``[0, capacity)`` over time, where a consumer holds a contiguous block of addresses for a
time interval: buffers in a scratchpad memory (static memory allocation, memory mapping), also
contiguous slots of a device over a schedule. Two consumers whose time intervals overlap may not
overlap in address. :class:`TimeAddressMap` keeps the placed rectangles in numpy arrays and answers,
for a new block of ``size`` addresses live over ``[t0, t1)``:

* :meth:`~TimeAddressMap.canonical_offsets`: the *canonical* positions, 0 and the end addresses of
  the placed blocks that overlap it in time (the search space of MiniMalloc and TelaMalloc: a
  packing can always be pushed down until every block rests on 0 or on another block), lowest
  first, with whether the block fits there and the free span (gap) above each position;
* :meth:`~TimeAddressMap.candidates`: the same and the peak address over ``[t0, t1)`` in one pass;
* :meth:`~TimeAddressMap.fits`: whether it fits at one offset;
* :meth:`~TimeAddressMap.place` / :meth:`~TimeAddressMap.release`: checked changes that raise
  :class:`~rlsys_envs.core.resources.CapacityError` and leave the map untouched on a conflict.

Time and addresses are integers; intervals are half-open.
"""
from __future__ import annotations

from typing import Hashable

import numpy as np

from .resources import CapacityError


class TimeAddressMap:
    """Non-overlapping rectangles ``[t0, t1) x [offset, offset + size)`` in ``[0, capacity)``.

    ``max_blocks`` preallocates the arrays (they grow if needed).
    """

    def __init__(self, capacity: int, max_blocks: int = 64):
        if int(capacity) < 0:
            raise ValueError(f"capacity must be non-negative, got {capacity}")
        self.capacity = int(capacity)
        n = max(int(max_blocks), 1)
        self.t0 = np.zeros(n, np.int64)
        self.t1 = np.zeros(n, np.int64)
        self.lo = np.zeros(n, np.int64)
        self.hi = np.zeros(n, np.int64)
        self.n = 0
        self._row: dict[Hashable, int] = {}
        self._ids: list[Hashable] = []

    # ------------------------------------------------------------------------------ queries
    def __len__(self) -> int:
        return self.n

    def __contains__(self, block: Hashable) -> bool:
        return block in self._row

    def blocks(self) -> list[Hashable]:
        return list(self._ids)

    def block(self, block: Hashable) -> tuple[int, int, int, int]:
        """``(t0, t1, offset, size)`` of a placed block."""
        try:
            r = self._row[block]
        except KeyError:
            raise KeyError(f"block {block!r} is not placed") from None
        return int(self.t0[r]), int(self.t1[r]), int(self.lo[r]), int(self.hi[r] - self.lo[r])

    def overlapping(self, t0: int, t1: int) -> np.ndarray:
        """Rows of the placed blocks whose time interval overlaps ``[t0, t1)``."""
        n = self.n
        return np.flatnonzero((self.t0[:n] < t1) & (self.t1[:n] > t0))

    def peak(self, t0: int, t1: int) -> int:
        """The highest address in use at any time of ``[t0, t1)`` (0 when nothing is placed there)."""
        rows = self.overlapping(t0, t1)
        return int(self.hi[rows].max()) if len(rows) else 0

    def used_bytes(self, t: int) -> int:
        """Addresses in use at time ``t``."""
        n = self.n
        live = (self.t0[:n] <= t) & (self.t1[:n] > t)
        return int((self.hi[:n][live] - self.lo[:n][live]).sum())

    def fits(self, t0: int, t1: int, offset: int, size: int) -> bool:
        """Whether ``[offset, offset + size)`` over ``[t0, t1)`` is inside the range and free."""
        if offset < 0 or size < 0 or offset + size > self.capacity:
            return False
        rows = self.overlapping(t0, t1)
        return not bool(np.any((self.lo[rows] < offset + size) & (self.hi[rows] > offset)))

    def canonical_offsets(self, t0: int, t1: int, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The canonical positions of a block of ``size`` over ``[t0, t1)``, lowest first.

        Returns ``(offsets, fits, gaps)``: the distinct positions 0 and the end addresses of the
        placed blocks that overlap ``[t0, t1)`` in time (below ``capacity``), whether the block
        fits at each, and the free span above each position (up to the next block above it or
        ``capacity``; 0 where the position is inside a block). A block that fits anywhere fits at
        one of these positions (push it down until it rests on 0 or on another block).
        """
        return self.candidates(t0, t1, size)[:3]

    def candidates(self, t0: int, t1: int, size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
        """:meth:`canonical_offsets` and :meth:`peak` of ``[t0, t1)`` from one pass over the map:
        ``(offsets, fits, gaps, peak)``.

        Vectorised over the blocks live in ``[t0, t1)``: sorted by start address, the running
        maximum of their end addresses says whether a position is inside one of them (the last
        block starting at or below it reaches above it), and the first start address above a
        free position bounds its gap; O(M log M) for M live blocks, in a dozen numpy calls.
        """
        n, cap = self.n, self.capacity
        live = self.t0[:n] < t1
        live &= self.t1[:n] > t0
        hi = self.hi[:n][live]
        m = len(hi)
        if not m:
            offsets = np.zeros(1, np.int64)
            return offsets, offsets + size <= cap, offsets + cap, 0
        lo = self.lo[:n][live]
        # 0 and the distinct end addresses below the capacity (ends are > 0: blocks are not empty)
        ends = np.zeros(m + 1, np.int64)
        ends[1:] = hi
        ends[1:].sort()
        peak = int(ends[m])
        keep = np.empty(m + 1, bool)
        keep[0] = True
        np.not_equal(ends[1:], ends[:-1], out=keep[1:])
        if peak >= max(cap, 1):
            keep[np.searchsorted(ends, max(cap, 1)):] = False
        offsets = ends[keep]
        order = np.argsort(lo)
        starts = np.empty(m + 1, np.int64)              # start addresses, lowest first, then the capacity
        starts[:m] = lo[order]
        starts[m] = cap
        reach = np.empty(m + 1, np.int64)               # reach[j]: highest end of the j lowest-starting blocks
        reach[0] = -1
        np.maximum.accumulate(hi[order], out=reach[1:])
        k = np.searchsorted(starts[:m], offsets, side="right")   # blocks starting at or below each position
        inside = reach[k] > offsets
        gaps = np.minimum(starts[k], cap) - offsets
        gaps[inside] = 0
        return offsets, ~inside & (gaps >= size), gaps, peak

    # ---------------------------------------------------------------------------- mutations
    def place(self, block: Hashable, t0: int, t1: int, offset: int, size: int) -> None:
        """Place ``block``; raises :class:`CapacityError` (nothing changes) if it leaves the range or
        overlaps a placed block in time and address, ``ValueError`` for a bad interval or a block
        placed already."""
        if block in self._row:
            raise ValueError(f"block {block!r} is placed already")
        if t1 <= t0 or size <= 0:
            raise ValueError(f"block {block!r} needs t1 > t0 and size > 0, got [{t0}, {t1}) and size {size}")
        if offset < 0 or offset + size > self.capacity:
            raise CapacityError(f"block {block!r} at [{offset}, {offset + size}) leaves the address range "
                                f"[0, {self.capacity})")
        rows = self.overlapping(t0, t1)
        clash = rows[(self.lo[rows] < offset + size) & (self.hi[rows] > offset)]
        if len(clash):
            other = self._ids[int(clash[0])]
            raise CapacityError(f"block {block!r} at [{offset}, {offset + size}) over [{t0}, {t1}) overlaps block "
                                f"{other!r} at [{self.lo[clash[0]]}, {self.hi[clash[0]]}) over "
                                f"[{self.t0[clash[0]]}, {self.t1[clash[0]]})")
        if self.n == len(self.t0):
            for name in ("t0", "t1", "lo", "hi"):
                setattr(self, name, np.concatenate([getattr(self, name), np.zeros(len(self.t0), np.int64)]))
        r = self.n
        self.t0[r], self.t1[r], self.lo[r], self.hi[r] = t0, t1, offset, offset + size
        self._row[block] = r
        self._ids.append(block)
        self.n += 1

    def release(self, block: Hashable) -> tuple[int, int, int, int]:
        """Remove ``block``; returns its ``(t0, t1, offset, size)``."""
        out = self.block(block)
        r = self._row.pop(block)
        last = self.n - 1
        if r != last:  # move the last row into the hole
            for arr in (self.t0, self.t1, self.lo, self.hi):
                arr[r] = arr[last]
            moved = self._ids[last]
            self._ids[r] = moved
            self._row[moved] = r
        self._ids.pop()
        self.n -= 1
        return out

    def copy(self) -> "TimeAddressMap":
        other = TimeAddressMap(self.capacity, len(self.t0))
        for name in ("t0", "t1", "lo", "hi"):
            getattr(other, name)[:] = getattr(self, name)
        other.n, other._row, other._ids = self.n, dict(self._row), list(self._ids)
        return other

    def __repr__(self) -> str:
        return f"TimeAddressMap(capacity={self.capacity}, blocks={self.n})"


__all__ = ["TimeAddressMap", "CapacityError"]
