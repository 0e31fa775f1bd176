"""A backtracking allocator in the spirit of MiniMalloc (Moffitt, ASPLOS 2023): every buffer gets
a fast-memory offset, or the search proves that no canonical packing exists.

**Canonical solutions.** Any packing can be pushed down until every buffer rests on 0 or on a
buffer that overlaps it in time; listed by increasing offset, each buffer then sits at its
*floor*, the highest end address of the buffers before it that overlap it in time. The search
therefore only chooses the *order*: at each node the unplaced buffers, sorted by (floor,
preorder rank), are tried in turn at their floor, and a node keeps the offsets non-decreasing
(a buffer below the last offset, or at it with a lower rank, is skipped: that packing is
reached through another order). This is sound and complete (MiniMalloc's lattice argument).

**Pruning** (MiniMalloc's rules, our implementation):

- *dominance*: a buffer whose floor is at or above the lowest top (floor + size) of the unplaced
  buffers would leave a gap below it that the other buffer could take; skipped;
- *section inference*: at every time position ``s``, the unplaced buffers live there sit above
  ``max(skyline[s], last offset, lowest unplaced floor there)``, so that plus their total size
  must be within the capacity; otherwise backtrack.

**Preorders and restarts.** The rank breaks ties between equal floors. As MiniMalloc does, a few
static preorders (letters: ``T`` the largest total size live at any position of the buffer's
range, ``A`` area = size x live length, ``Z`` size, ``L`` live length) are tried round-robin with
a node budget that doubles each round, until one succeeds, one exhausts its tree (then no
packing exists: ``INFEASIBLE``), or the wall-clock limit passes (``UNKNOWN``).

The search is pure numpy / Python on the time-compressed program of :mod:`.generator` (time
positions = MiniMalloc's sections). :func:`solve_canonical` returns the offsets and the placement
sequence, which the environment's buffer-choice mode replays action by action.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .model import Program

HEURISTICS = ("LAT", "TAL", "TLA", "ATZ", "TAZ", "ZTA")   # MiniMalloc's WAT, TAW, TWA (W = live length), then 3 more
_KEYS = {"T": "total", "A": "area", "Z": "size", "L": "length"}


@dataclass
class SearchResult:
    offsets: np.ndarray          # [N]; -1 everywhere unless status == "FEASIBLE"
    sequence: np.ndarray         # the buffers in placement order (non-decreasing offsets)
    status: str                  # FEASIBLE / INFEASIBLE (proven) / UNKNOWN (limit reached)
    nodes: int
    backtracks: int
    heuristic: str               # the preorder that found the answer ("" if none)
    wall_s: float
    stats: dict = field(default_factory=dict)


class _Limit(Exception):
    pass


def preorder(program: Program, heuristic: str) -> np.ndarray:
    """Rank of each buffer (0 first) under a preorder ``heuristic`` (letters of ``T A Z L``,
    each decreasing; ties: the lower index)."""
    bad = sorted(set(heuristic) - set(_KEYS))
    if not heuristic or bad:
        raise ValueError(f"heuristic must be letters of {''.join(_KEYS)} (got {heuristic!r})")
    p = program
    live = np.zeros((p.n_ops + 1,), np.int64)
    np.add.at(live, p.start, p.size)
    np.add.at(live, p.end, -p.size)
    live = np.cumsum(live)[:-1]
    values = {
        "total": np.array([live[s:e].max() for s, e in zip(p.start, p.end)], np.int64),
        "area": p.size * (p.end - p.start),
        "size": p.size,
        "length": p.end - p.start,
    }
    keys = [np.arange(p.n_buffers)] + [-values[_KEYS[c]] for c in reversed(heuristic)]
    order = np.lexsort(keys)
    rank = np.empty(p.n_buffers, np.int64)
    rank[order] = np.arange(p.n_buffers)
    return rank


def _tables(program: Program):
    """Per-solve constants: each buffer's time neighbours and the position x buffer liveness."""
    p = program
    s, e = p.start, p.end
    overlap = (s[:, None] < e[None, :]) & (s[None, :] < e[:, None])
    np.fill_diagonal(overlap, False)
    member = np.zeros((p.n_ops, p.n_buffers), bool)  # member[t, i]: buffer i live at position t
    for i in range(p.n_buffers):
        member[s[i]:e[i], i] = True
    return [np.flatnonzero(row) for row in overlap], member


class _Search:
    """One depth-first search under the preorder ``rank`` (:meth:`run`)."""

    def __init__(self, program: Program, rank: np.ndarray, tables, node_limit: int, deadline: float,
                 counters: dict):
        p = self.p = program
        self.rank, self.deadline, self.counters, self.budget = rank, deadline, counters, node_limit
        self.neighbours, self.member = tables
        self.skyline = np.zeros(p.n_ops, np.int64)     # highest top of the placed buffers per position
        self.total = self.member.astype(np.int64) @ p.size   # unplaced bytes live per position
        self.floor = np.zeros(p.n_buffers, np.int64)   # lowest offset each unplaced buffer can take
        self.placed = np.zeros(p.n_buffers, bool)
        self.sequence: list[int] = []

    def lowest_floor(self, un: np.ndarray, lo: int, hi: int) -> np.ndarray:
        """The lowest floor of the buffers ``un`` live at each position of ``[lo, hi)`` (0 where none)."""
        if not len(un):
            return np.zeros(hi - lo, np.int64)
        big = np.iinfo(np.int64).max // 4
        low = np.where(self.member[lo:hi, un], self.floor[un][None, :], big).min(axis=1)
        return np.where(low == big, 0, low)

    def fits(self, offset: int, low: np.ndarray, lo: int, hi: int) -> bool:
        """Section inference over ``[lo, hi)``: each position's unplaced bytes fit above its floor."""
        base = np.maximum(np.maximum(self.skyline[lo:hi], offset), low)
        return bool(np.all(base + self.total[lo:hi] <= self.p.capacity))

    def components(self, un: np.ndarray) -> list[tuple[np.ndarray, int, int]]:
        """``un`` split into groups that share no time position: ``(buffers, lo, hi)`` each."""
        p = self.p
        idx = np.argsort(p.start[un], kind="stable")
        un = un[idx]
        s, e = p.start[un], p.end[un]
        reach = np.maximum.accumulate(e)
        cuts = np.flatnonzero(s[1:] >= reach[:-1]) + 1
        bounds = np.concatenate([[0], cuts, [len(un)]])
        return [(un[a:b], int(s[a]), int(reach[b - 1])) for a, b in zip(bounds[:-1], bounds[1:])]

    def run(self):
        p = self.p
        everyone = np.arange(p.n_buffers)
        if np.any(p.size > p.capacity):
            return None
        for part, lo, hi in self.components(everyone):
            if not (self.fits(0, self.lowest_floor(part, lo, hi), lo, hi) and self.node(part, lo, hi, 0, -1)):
                return None
        return list(self.sequence)

    def node(self, part: np.ndarray, lo: int, hi: int, last_offset: int, last_rank: int) -> bool:
        """Place the unplaced buffers of ``part`` (live within ``[lo, hi)``) above ``last_offset``."""
        p, rank, floor, placed = self.p, self.rank, self.floor, self.placed
        self.budget -= 1
        self.counters["nodes"] += 1
        if self.budget < 0 or (self.counters["nodes"] & 63) == 0 and time.perf_counter() > self.deadline:
            raise _Limit
        un = part[~placed[part]]
        if not len(un):
            return True
        order = un[np.lexsort((rank[un], floor[un]))]
        fl, tops = floor[order], floor[order] + p.size[order]
        keep = ((fl < tops.min())                    # dominance: no gap another buffer could fill
                & ((fl > last_offset) | ((fl == last_offset) & (rank[order] > last_rank)))  # canonical
                & (tops <= p.capacity))
        parent_low = self.lowest_floor(un, lo, hi)
        for i in order[keep].tolist():
            off = int(floor[i])
            top = off + int(p.size[i])
            s, e = int(p.start[i]), int(p.end[i])
            saved_sky = self.skyline[s:e].copy()
            self.skyline[s:e] = top
            self.total[s:e] -= p.size[i]
            rest = un[un != i]
            # a quick bound with the parent's lowest floors first (they only rise once i is placed)
            ok = self.fits(off, np.where(self.total[lo:hi] > 0, parent_low, 0), lo, hi)
            nb = self.neighbours[i]
            if ok:
                placed[i] = True
                raised = nb[~placed[nb] & (floor[nb] < top)]
                saved_floor = floor[raised].copy()
                floor[raised] = top
                # exact floors: they change only where i or the raised buffers live
                low = np.where(self.total[lo:hi] > 0, parent_low, 0)
                changed = np.concatenate([[i], raised])
                a, b = max(int(p.start[changed].min()), lo), min(int(p.end[changed].max()), hi)
                low[a - lo:b - lo] = self.lowest_floor(rest, a, b)
                ok = self.fits(off, low, lo, hi)
                self.sequence.append(i)
                if ok and self.descend(rest, lo, hi, off, int(rank[i])):
                    return True
                self.sequence.pop()
                floor[raised] = saved_floor
                placed[i] = False
            self.total[s:e] += p.size[i]
            self.skyline[s:e] = saved_sky
            if not np.any(~placed[nb]):
                break       # "hatless": i's floor is final, so every later sibling fails as well
        self.counters["backtracks"] += 1
        return False

    def descend(self, rest: np.ndarray, lo: int, hi: int, offset: int, rank: int) -> bool:
        """Go on with ``rest``; once it falls apart into groups that share no position (dynamic
        decomposition), solve each on its own from offset 0 (all must succeed)."""
        if not len(rest):
            return True
        groups = self.components(rest)
        if len(groups) == 1:
            return self.node(rest, lo, hi, offset, rank)
        snapshot = (self.skyline.copy(), self.total.copy(), self.floor.copy(), self.placed.copy(),
                    len(self.sequence))
        for part, a, b in groups:
            if not self.node(part, a, b, 0, -1):
                for now, then in zip((self.skyline, self.total, self.floor, self.placed), snapshot[:4]):
                    now[:] = then                    # in place: the callers hold these arrays
                del self.sequence[snapshot[4]:]
                return False
        return True


def solve_canonical(program: Program, time_limit: float = 10.0, heuristics=HEURISTICS,
                    node_limit: int | None = None) -> SearchResult:
    """Allocate every buffer of ``program`` (module docstring). ``time_limit``: wall-clock seconds;
    ``heuristics``: the preorders tried round-robin; ``node_limit``: the first round's node
    budget per preorder (default: the number of buffers), doubled every round."""
    import sys

    p = program
    n = p.n_buffers
    t0 = time.perf_counter()
    deadline = t0 + float(time_limit)
    heuristics = tuple(heuristics)
    ranks = {h: preorder(p, h) for h in heuristics}
    tables = _tables(p)
    counters = {"nodes": 0, "backtracks": 0}
    limit = max(int(node_limit or n), 1)
    old_limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(old_limit, 4 * n + 1000))
    try:
        while True:
            for h in heuristics:
                try:
                    seq = _Search(p, ranks[h], tables, limit, deadline, counters).run()
                except _Limit:
                    if time.perf_counter() > deadline:
                        return _result(p, None, "UNKNOWN", counters, "", t0, limit)
                    continue
                if seq is None:
                    return _result(p, None, "INFEASIBLE", counters, h, t0, limit)
                return _result(p, seq, "FEASIBLE", counters, h, t0, limit)
            limit *= 2
    finally:
        sys.setrecursionlimit(old_limit)


def _result(program, sequence, status, counters, heuristic, t0, limit) -> SearchResult:
    n = program.n_buffers
    offsets = np.full(n, -1, np.int64)
    if sequence is not None:
        sky = np.zeros(program.n_ops, np.int64)
        for i in sequence:                           # replay: each buffer at its floor
            s, e = program.start[i], program.end[i]
            offsets[i] = sky[s:e].max()
            sky[s:e] = offsets[i] + program.size[i]
        program.check_placement(offsets)             # raises if the search were wrong
    return SearchResult(offsets, np.asarray(sequence if sequence is not None else [], np.int64), status,
                        counters["nodes"], counters["backtracks"], heuristic, time.perf_counter() - t0,
                        {"last_node_limit": limit})
