"""The memory mapping problem in numpy: a program's buffers, a roofline cost model, fast-memory state.

A **program** is a schedule of ``T`` operations (positions ``0 .. T-1``). Operation ``o`` has a
compute time ``compute[o]`` (its flops over the accelerator's peak rate) and accesses buffers; an
*access* ``(op, buffer, bytes)`` moves ``bytes`` of that buffer between the memory that holds it
and the core. Buffer ``i`` has a size in bytes (aligned), a half-open live range
``[start[i], end[i])`` over positions, and its accesses lie inside the range.

**Roofline cost (XLA's cost analysis).** With the set ``F`` of buffers in fast memory,

    memory_time(o) = sum over accesses (o, i, b) of  b / bw_fast  if i in F  else  b / bw_slow
    time(o)        = max(compute[o], memory_time(o))
    program time   = sum over o of time(o)

so putting ``i`` in fast memory saves ``d = b (1 / bw_slow - 1 / bw_fast)`` of memory time at each
of its accesses, but an operation saves only until it is compute-bound: benefits are not additive.

**Fast memory** is an address range ``[0, capacity)`` over program positions: two fast buffers
whose live ranges overlap may not overlap in address (``core.TimeAddressMap``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from rlsys_envs.core import TimeAddressMap


@dataclass(frozen=True)
class AcceleratorProfile:
    """Peak compute rate and memory bandwidths (see ``docs/envs/malloc.md`` for the numbers' source)."""

    name: str = "tpu_v4_like"
    peak_flops: float = 275e12          # bf16 FLOP/s
    bw_slow: float = 1.2e12             # HBM, bytes/s
    bw_fast: float = 16 * 1.2e12        # on-chip memory, bytes/s (16x HBM: our assumption)

    def __post_init__(self):
        for name in ("peak_flops", "bw_slow", "bw_fast"):
            v = getattr(self, name)
            if not (np.isfinite(v) and v > 0):
                raise ValueError(f"AcceleratorProfile.{name} must be a positive number, got {v!r}")
        if self.bw_fast < self.bw_slow:
            raise ValueError(f"AcceleratorProfile: bw_fast ({self.bw_fast}) must be >= bw_slow ({self.bw_slow})")


DEFAULT_PROFILE = AcceleratorProfile()


@dataclass
class Program:
    """An instance: the buffers, the operations and their accesses, the fast-memory capacity.

    Arrays: ``compute`` float64 ``[T]`` (seconds); ``size``, ``start``, ``end`` int64 ``[N]``;
    accesses ``acc_op``, ``acc_buf`` int64 ``[M]`` and ``acc_bytes`` float64 ``[M]``.
    ``capacity``: fast-memory bytes. ``names``: buffer names (ids of a loaded file).
    """

    compute: np.ndarray
    size: np.ndarray
    start: np.ndarray
    end: np.ndarray
    acc_op: np.ndarray
    acc_buf: np.ndarray
    acc_bytes: np.ndarray
    capacity: int
    profile: AcceleratorProfile = DEFAULT_PROFILE
    name: str = "program"
    names: list = field(default_factory=list)
    kinds: list = field(default_factory=list)

    def __post_init__(self):
        self.compute = np.asarray(self.compute, np.float64)
        self.size = np.asarray(self.size, np.int64)
        self.start = np.asarray(self.start, np.int64)
        self.end = np.asarray(self.end, np.int64)
        self.acc_op = np.asarray(self.acc_op, np.int64)
        self.acc_buf = np.asarray(self.acc_buf, np.int64)
        self.acc_bytes = np.asarray(self.acc_bytes, np.float64)
        self.capacity = int(self.capacity)
        n, t = len(self.size), len(self.compute)
        if n == 0 or t == 0:
            raise ValueError(f"program {self.name!r} needs at least one buffer and one operation")
        if not (len(self.start) == len(self.end) == n):
            raise ValueError(f"program {self.name!r}: size, start and end must have one entry per buffer")
        if not (len(self.acc_op) == len(self.acc_buf) == len(self.acc_bytes)):
            raise ValueError(f"program {self.name!r}: acc_op, acc_buf, acc_bytes must have the same length")
        if np.any(self.size <= 0):
            raise ValueError(f"program {self.name!r}: buffer {int(np.argmax(self.size <= 0))} has size <= 0")
        bad = np.flatnonzero((self.start < 0) | (self.end <= self.start) | (self.end > t))
        if len(bad):
            i = int(bad[0])
            raise ValueError(f"program {self.name!r}: buffer {i} has live range [{self.start[i]}, {self.end[i]}) "
                             f"outside 0 <= start < end <= {t}")
        if np.any(self.compute < 0) or not np.all(np.isfinite(self.compute)):
            raise ValueError(f"program {self.name!r}: compute times must be finite and >= 0")
        if len(self.acc_op):
            if np.any((self.acc_buf < 0) | (self.acc_buf >= n)):
                raise ValueError(f"program {self.name!r}: an access names a buffer outside [0, {n})")
            inside = (self.acc_op >= self.start[self.acc_buf]) & (self.acc_op < self.end[self.acc_buf])
            if not inside.all():
                k = int(np.argmin(inside))
                raise ValueError(f"program {self.name!r}: access of buffer {self.acc_buf[k]} at op {self.acc_op[k]} "
                                 f"is outside its live range")
            if np.any(self.acc_bytes < 0):
                raise ValueError(f"program {self.name!r}: access bytes must be >= 0")
        if self.capacity < 0:
            raise ValueError(f"program {self.name!r}: capacity must be >= 0")
        if not self.names:
            self.names = [str(i) for i in range(n)]
        if not self.kinds:
            self.kinds = ["buffer"] * n
        # accesses of one buffer at one op merged (sorted by buffer, then op): per-buffer access
        # lists (CSR), the memory time saved per access when fast, the all-slow state
        key, inverse = np.unique(self.acc_buf * t + self.acc_op, return_inverse=True)
        self.acc_bytes = np.bincount(inverse.reshape(-1), weights=self.acc_bytes, minlength=len(key))
        self.acc_buf, self.acc_op = key // t, key % t
        self.acc_ptr = np.concatenate([[0], np.cumsum(np.bincount(self.acc_buf, minlength=n))]).astype(np.int64)
        self.acc_saving = self.acc_bytes * (1.0 / self.profile.bw_slow - 1.0 / self.profile.bw_fast)
        # the same accesses by op (CSR): which buffers an op touches
        self.op_buf = self.acc_buf[np.argsort(self.acc_op, kind="stable")]
        self.op_ptr = np.concatenate([[0], np.cumsum(np.bincount(self.acc_op, minlength=t))]).astype(np.int64)
        self.slow_memory = np.bincount(self.acc_op, weights=self.acc_bytes / self.profile.bw_slow, minlength=t)
        self.slow_time = float(np.maximum(self.compute, self.slow_memory).sum())
        self.fast_time = float(np.maximum(self.compute, self.slow_memory - np.bincount(
            self.acc_op, weights=self.acc_saving, minlength=t)).sum())
        self.standalone = self.marginal_saving(self.slow_memory)

    @property
    def n_buffers(self) -> int:
        return len(self.size)

    @property
    def n_ops(self) -> int:
        return len(self.compute)

    def accesses(self, i: int) -> slice:
        return slice(int(self.acc_ptr[i]), int(self.acc_ptr[i + 1]))

    def memory_time(self, fast: np.ndarray) -> np.ndarray:
        """Memory time per op ``[T]`` with the buffers where ``fast`` is True in fast memory."""
        fast = np.asarray(fast, bool)
        saved = np.bincount(self.acc_op, weights=self.acc_saving * fast[self.acc_buf], minlength=self.n_ops)
        return self.slow_memory - saved

    def program_time(self, fast: np.ndarray) -> float:
        """The roofline program time with ``fast`` (bool ``[N]``) in fast memory."""
        return float(np.maximum(self.compute, self.memory_time(fast)).sum())

    def marginal_saving(self, memory: np.ndarray) -> np.ndarray:
        """Time each buffer would save now ``[N]`` if moved to fast memory alone, given the memory
        time per op ``memory`` (0 for what is fast already is the caller's business)."""
        return np.bincount(self.acc_buf, weights=self._access_gain(slice(None), memory), minlength=self.n_buffers)

    def _access_gain(self, acc, memory: np.ndarray) -> np.ndarray:
        """Time the accesses ``acc`` (indices or a slice of the access arrays) would save at their
        ops if their bytes came from fast memory, given the memory time per op ``memory``: the
        roofline op time max(compute, memory) before minus after."""
        op = self.acc_op[acc]
        c, m = self.compute[op], memory[op]
        return np.maximum(c, m) - np.maximum(c, m - self.acc_saving[acc])

    def sharing(self, i: int) -> np.ndarray:
        """The buffers (sorted, ``i`` included) with an access at an operation that buffer ``i``
        accesses: those whose marginal saving can change when ``i`` moves to fast memory."""
        ops = self.acc_op[self.accesses(i)]
        if len(ops) == 1:
            return np.unique(self.op_buf[self.op_ptr[ops[0]]:self.op_ptr[ops[0] + 1]])
        return np.unique(np.concatenate([self.op_buf[self.op_ptr[o]:self.op_ptr[o + 1]] for o in ops.tolist()]))

    def marginal_saving_of(self, buffers: np.ndarray, memory: np.ndarray) -> np.ndarray:
        """:meth:`marginal_saving` of the ``buffers`` only (sorted distinct indices), bit for bit the
        same numbers (each buffer's accesses summed in the same order)."""
        first, last = self.acc_ptr[buffers], self.acc_ptr[buffers + 1]
        counts = last - first
        local = np.repeat(np.arange(len(buffers)), counts)
        acc = np.arange(int(counts.sum())) + np.repeat(first - (np.cumsum(counts) - counts), counts)
        return np.bincount(local, weights=self._access_gain(acc, memory), minlength=len(buffers))

    def peak_live_bytes(self) -> int:
        """The largest total size of buffers live at one position."""
        delta = np.zeros(self.n_ops + 1, np.int64)
        np.add.at(delta, self.start, self.size)
        np.add.at(delta, self.end, -self.size)
        return int(np.cumsum(delta).max())

    def with_capacity(self, capacity: int) -> "Program":
        """The same program with another fast-memory capacity."""
        return Program(self.compute, self.size, self.start, self.end, self.acc_op, self.acc_buf, self.acc_bytes,
                       int(capacity), self.profile, self.name, list(self.names), list(self.kinds))

    def check_placement(self, offsets: np.ndarray) -> None:
        """Raise ``ValueError`` unless ``offsets`` (``[N]``, -1 = slow memory) is a legal placement:
        inside ``[0, capacity)`` and no two buffers overlapping in both time and address."""
        offsets = np.asarray(offsets, np.int64)
        mem = TimeAddressMap(self.capacity, self.n_buffers)
        for i in np.flatnonzero(offsets >= 0):
            mem.place(int(i), int(self.start[i]), int(self.end[i]), int(offsets[i]), int(self.size[i]))


class MemoryState:
    """The placement so far: which buffers are decided, where the fast ones sit, the op times."""

    def __init__(self, program: Program):
        self.program = program
        n = program.n_buffers
        self.offset = np.full(n, -1, np.int64)           # -1: slow memory (or undecided)
        self.decided = np.zeros(n, bool)
        self.fast = np.zeros(n, bool)
        self.memory = program.slow_memory.copy()          # memory time per op
        self.time = program.slow_time
        self.map = TimeAddressMap(program.capacity, n)

    def gain_of(self, i: int) -> float:
        """Program time saved now if buffer ``i`` went to fast memory."""
        p = self.program
        s = p.accesses(i)
        ops, d = p.acc_op[s], p.acc_saving[s]
        c, m = p.compute[ops], self.memory[ops]
        return float((np.maximum(c, m) - np.maximum(c, m - d)).sum())

    def place(self, i: int, offset: int) -> float:
        """Put buffer ``i`` in fast memory at ``offset``; returns the program time saved
        (raises ``CapacityError`` and changes nothing if it does not fit)."""
        p = self.program
        if self.decided[i]:
            raise ValueError(f"buffer {i} is decided already")
        self.map.place(i, int(p.start[i]), int(p.end[i]), int(offset), int(p.size[i]))
        s = p.accesses(i)
        ops, d = p.acc_op[s], p.acc_saving[s]
        c = p.compute[ops]
        before = np.maximum(c, self.memory[ops]).sum()
        self.memory[ops] -= d                           # (the ops of one buffer's accesses are distinct)
        saved = float(before - np.maximum(c, self.memory[ops]).sum())
        self.time -= saved
        self.offset[i], self.decided[i], self.fast[i] = int(offset), True, True
        return saved

    def spill(self, i: int) -> None:
        """Leave buffer ``i`` in slow memory."""
        if self.decided[i]:
            raise ValueError(f"buffer {i} is decided already")
        self.decided[i] = True

    def copy(self) -> "MemoryState":
        other = MemoryState.__new__(MemoryState)
        other.program = self.program
        other.offset, other.decided, other.fast = self.offset.copy(), self.decided.copy(), self.fast.copy()
        other.memory, other.time, other.map = self.memory.copy(), self.time, self.map.copy()
        return other


def best_fit_offset(offsets: np.ndarray, fits: np.ndarray, gaps: np.ndarray) -> int:
    """The best-fit position among canonical ones: the smallest free gap that holds the block
    (ties: the lowest offset); -1 if it fits nowhere."""
    ok = np.flatnonzero(fits)
    if not len(ok):
        return -1
    return int(offsets[ok[np.argmin(gaps[ok])]])    # argmin takes the first (lowest offset) of ties


def saved_fraction(program: Program, offsets: np.ndarray) -> float:
    """Fraction of the all-slow program time saved by a placement (``offsets``, -1 = slow), computed
    from scratch (an independent check of an episode's return)."""
    return (program.slow_time - program.program_time(np.asarray(offsets) >= 0)) / program.slow_time
