"""Block traces for the hybrid-storage environment: loaders of public formats and a seeded generator.

* :class:`BlockTrace` -- one volume's I/O requests (arrival time, disk, byte offset, byte size,
  read / write), the instance type of :class:`~rlsys_envs.storage.env.HybridStorageParallelEnv`.
* :func:`load_msr_csv` -- the MSR Cambridge block traces (Narayanan et al., FAST'08; SNIA IOTTA
  trace 388): ``Timestamp,Hostname,DiskNumber,Type,Offset,Size,ResponseTime`` with the timestamp in
  Windows FILETIME ticks (100 ns since 1601-01-01), offset and size in bytes, a header row or none.
* :func:`load_sibyl_csv` -- Sibyl's headerless 3-column cut of MSR (``offset,size,Read|Write``, no
  timestamps).
* :func:`load_trace` -- either format, told apart by the number of fields of the first data row.
* :class:`SyntheticWorkload` -- seeded instance generator over the named workload shapes in
  :data:`SHAPES` (Zipf hot sets, sequential scans, read / write mixes of MSR-like host profiles,
  phase changes, bursty arrivals); :data:`HELD_OUT` shapes are reserved for evaluation.
  :func:`write_msr_csv` writes any trace in the MSR format, so the generator's traces can be read
  back by the loader (what tests and CI use instead of the real traces, which do not ship).
* :func:`episode_trace` -- the per-episode view of a trace window: requests split into 4 KiB pages
  (a 512 B-aligned request that straddles a page boundary touches both pages), dense page ids, the
  sequential flag of every request, and (on demand) every access's next reuse for the oracle.

Every loader error names the file, the line and the field.
"""
from __future__ import annotations

import bisect
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from rlsys_envs.core import MMPPProcess
from rlsys_envs.core.files import write_atomic

PAGE_SIZE = 4096
#: 100 ns FILETIME ticks between 1601-01-01 and the Unix epoch
FILETIME_UNIX_EPOCH = 116_444_736_000_000_000
FILETIME_TICKS_PER_S = 10_000_000
MSR_COLUMNS = ("Timestamp", "Hostname", "DiskNumber", "Type", "Offset", "Size", "ResponseTime")
#: page keys of different disks of one file never collide: key = disk << DISK_SHIFT | page
DISK_SHIFT = 44
NEVER = np.iinfo(np.int64).max


class TraceFormatError(ValueError):
    """A malformed trace file: the message names the file, the line and the field."""


@dataclass(frozen=True, eq=False)
class BlockTrace:
    """I/O requests of one trace, in arrival order.

    ``time_s``: arrival times in seconds since the first request (None for an untimed trace, e.g.
    Sibyl's 3-column format); ``disk``, ``offset`` (bytes), ``size`` (bytes, > 0), ``is_write``:
    one entry per request. ``start_unix_s``: the first request's wall-clock time (MSR traces), or
    None. ``name`` and ``source`` (file or generator) describe it.
    """

    name: str
    time_s: np.ndarray | None
    disk: np.ndarray
    offset: np.ndarray
    size: np.ndarray
    is_write: np.ndarray
    source: str = ""
    start_unix_s: float | None = None
    hostname: str = ""

    def __post_init__(self):
        n = len(self.offset)
        for name in ("disk", "size", "is_write"):
            if len(getattr(self, name)) != n:
                raise ValueError(f"BlockTrace {self.name!r}: {name} has {len(getattr(self, name))} entries, "
                                 f"offset has {n}")
        if self.time_s is not None and len(self.time_s) != n:
            raise ValueError(f"BlockTrace {self.name!r}: time_s has {len(self.time_s)} entries, offset has {n}")
        if n and (np.any(self.size <= 0) or np.any(self.offset < 0)):
            raise ValueError(f"BlockTrace {self.name!r}: sizes must be > 0 and offsets >= 0")

    @property
    def n_requests(self) -> int:
        return int(len(self.offset))

    @property
    def timed(self) -> bool:
        return self.time_s is not None

    def window(self, start: int, n: int) -> "BlockTrace":
        """Requests ``start .. start + n - 1`` (times shifted to start at 0)."""
        if not 0 <= start < self.n_requests or n < 1:
            raise ValueError(f"window [{start}, {start + n}) is outside trace {self.name!r} "
                             f"({self.n_requests} requests)")
        end = min(self.n_requests, start + n)
        t = None if self.time_s is None else self.time_s[start:end] - self.time_s[start]
        return BlockTrace(self.name, t, self.disk[start:end], self.offset[start:end], self.size[start:end],
                          self.is_write[start:end], self.source, self.start_unix_s, self.hostname)


# ----------------------------------------------------------------------------------- loaders
def _fail(path, line_no: int, what: str) -> TraceFormatError:
    return TraceFormatError(f"{path}:{line_no}: {what}")


def _int_field(path, line_no, name, text, low=0):
    try:
        value = int(text)
    except ValueError:
        raise _fail(path, line_no, f"field {name} must be an integer, got {text.strip()!r}") from None
    if value < low:
        raise _fail(path, line_no, f"field {name} must be >= {low}, got {value}")
    return value


def _type_field(path, line_no, text):
    t = text.strip().lower()
    if t == "read":
        return False
    if t == "write":
        return True
    raise _fail(path, line_no, f"field Type must be 'Read' or 'Write', got {text.strip()!r}")


def _data_lines(path: Path, limit: int | None):
    """(line number, stripped line) of the non-empty lines of ``path``."""
    try:
        fh = open(path, newline="")
    except OSError as exc:
        raise TraceFormatError(f"{path}: cannot be read ({exc.strerror})") from None
    with fh:
        count = 0
        for line_no, line in enumerate(fh, 1):
            line = line.strip()
            if not line:
                continue
            yield line_no, line
            count += 1
            if limit is not None and count > limit:     # one extra line may be a header
                return


def load_msr_csv(path: str | os.PathLike, limit: int | None = None) -> BlockTrace:
    """The MSR Cambridge trace in ``path`` (``Timestamp,Hostname,DiskNumber,Type,Offset,Size,
    ResponseTime``; a header row is optional). ``limit``: read only the first ``limit`` requests.
    Timestamps are FILETIME ticks (100 ns); requests are sorted by timestamp (stable), and
    ``time_s`` counts seconds from the first one. Raises :class:`TraceFormatError` (file:line:
    field) on a malformed row and on a file without requests."""
    path = Path(path)
    ts, disk, off, size, write = [], [], [], [], []
    host = ""
    for line_no, line in _data_lines(path, limit):
        parts = line.split(",")
        if not ts and parts[0].strip().lower() == "timestamp":
            continue                                          # header row
        if len(parts) != 7:
            raise _fail(path, line_no, f"expected 7 comma-separated fields ({','.join(MSR_COLUMNS)}), "
                                       f"got {len(parts)}")
        if limit is not None and len(ts) >= limit:
            break
        ts.append(_int_field(path, line_no, "Timestamp", parts[0]))
        if not parts[1].strip():
            raise _fail(path, line_no, "field Hostname is empty")
        host = host or parts[1].strip()
        disk.append(_int_field(path, line_no, "DiskNumber", parts[2]))
        write.append(_type_field(path, line_no, parts[3]))
        off.append(_int_field(path, line_no, "Offset", parts[4]))
        size.append(_int_field(path, line_no, "Size", parts[5], low=1))
        _int_field(path, line_no, "ResponseTime", parts[6])
    if not ts:
        raise TraceFormatError(f"{path}: no requests (an MSR trace has rows {','.join(MSR_COLUMNS)})")
    t = np.asarray(ts, np.int64)
    order = np.argsort(t, kind="stable")
    t = t[order]
    return BlockTrace(name=path.stem, time_s=(t - t[0]) / FILETIME_TICKS_PER_S,
                      disk=np.asarray(disk, np.int64)[order], offset=np.asarray(off, np.int64)[order],
                      size=np.asarray(size, np.int64)[order], is_write=np.asarray(write, bool)[order],
                      source=str(path), start_unix_s=(int(t[0]) - FILETIME_UNIX_EPOCH) / FILETIME_TICKS_PER_S,
                      hostname=host)


def load_sibyl_csv(path: str | os.PathLike, limit: int | None = None) -> BlockTrace:
    """Sibyl's headerless 3-column trace (``offset,size,Read|Write``, offset and size in bytes,
    no timestamps: replay it with ``arrival="closed"``). Errors name file, line and field."""
    path = Path(path)
    off, size, write = [], [], []
    for line_no, line in _data_lines(path, limit):
        parts = line.split(",")
        if len(parts) != 3:
            raise _fail(path, line_no, f"expected 3 comma-separated fields (Offset,Size,Type), got {len(parts)}")
        if limit is not None and len(off) >= limit:
            break
        off.append(_int_field(path, line_no, "Offset", parts[0]))
        size.append(_int_field(path, line_no, "Size", parts[1], low=1))
        write.append(_type_field(path, line_no, parts[2]))
    if not off:
        raise TraceFormatError(f"{path}: no requests (a Sibyl trace has rows Offset,Size,Type)")
    n = len(off)
    return BlockTrace(name=path.stem, time_s=None, disk=np.zeros(n, np.int64), offset=np.asarray(off, np.int64),
                      size=np.asarray(size, np.int64), is_write=np.asarray(write, bool), source=str(path))


def load_trace(path: str | os.PathLike, limit: int | None = None) -> BlockTrace:
    """An MSR (7 fields) or Sibyl (3 fields) trace, told apart by its first data row."""
    path = Path(path)
    for line_no, line in _data_lines(path, 1):
        n = len(line.split(","))
        if n == 7:
            return load_msr_csv(path, limit)
        if n == 3:
            return load_sibyl_csv(path, limit)
        raise _fail(path, line_no, f"expected an MSR row (7 fields: {','.join(MSR_COLUMNS)}) or a Sibyl row "
                                   f"(3 fields: Offset,Size,Type), got {n} fields")
    raise TraceFormatError(f"{path}: the file is empty")


def write_msr_csv(trace: BlockTrace, path: str | os.PathLike, header: bool = False,
                  start_filetime: int = 128_166_372_000_000_000) -> Path:
    """Write ``trace`` in the MSR format (atomically); ``ResponseTime`` is written as 0 (unknown).
    An untimed trace gets one request per millisecond."""
    path = Path(path)
    n = trace.n_requests
    t = trace.time_s if trace.time_s is not None else np.arange(n) * 1e-3
    ticks = start_filetime + np.round(np.asarray(t) * FILETIME_TICKS_PER_S).astype(np.int64)
    host = trace.hostname or "syn"
    kind = np.where(trace.is_write, "Write", "Read")
    lines = [",".join(MSR_COLUMNS)] if header else []
    lines += [f"{a},{host},{d},{k},{o},{s},0" for a, d, k, o, s in
              zip(ticks.tolist(), trace.disk.tolist(), kind.tolist(), trace.offset.tolist(), trace.size.tolist())]
    return write_atomic(path, "\n".join(lines) + "\n")


# ------------------------------------------------------------------------------ synthetic shapes
@dataclass(frozen=True)
class Shape:
    """A named workload shape: ``make(rng, n) -> (time_s, page, n_pages, is_write, misaligned)``."""

    name: str
    host: str          # the MSR host profile it imitates
    description: str
    make: Callable = field(repr=False)
    held_out: bool = False


def _poisson_times(rng, n, rate):
    return np.cumsum(rng.exponential(1.0 / rate, n))


def _bursty_times(rng, n, rates=(15.0, 150.0), durations=(20.0, 4.0)):
    proc = MMPPProcess(rates, durations)
    proc.reset(rng)
    out, t, span = [], 0.0, 60.0
    got = 0
    while got < n:
        chunk = proc.arrivals(t, t + span)
        out.append(chunk)
        got += len(chunk)
        t += span
    return np.concatenate(out)[:n]


def _zipf_pages(rng, n, n_pages, alpha, base=0):
    """``n`` draws of a Zipf(alpha) law over ``n_pages`` pages, ranks scattered over the region."""
    p = 1.0 / np.arange(1, n_pages + 1) ** alpha
    ranks = rng.choice(n_pages, size=n, p=p / p.sum())
    return base + rng.permutation(n_pages)[ranks]


def _sizes(rng, n, choices=(1, 2), weights=None):
    return rng.choice(np.asarray(choices), size=n, p=weights)


def _rw(rng, n, write_ratio):
    return rng.random(n) < write_ratio


def _misaligned(rng, n, share=0.1):
    """Share of the requests whose offset is 512 B- but not 4 KiB-aligned (as in MSR)."""
    return np.where(rng.random(n) < share, rng.integers(1, 8, n), 0)


def _zipf_oltp(rng, n):
    return (_poisson_times(rng, n, 60.0), _zipf_pages(rng, n, 40_000, 1.0), _sizes(rng, n, (1, 2), (0.7, 0.3)),
            _rw(rng, n, 0.3), _misaligned(rng, n))


def _zipf_read(rng, n):
    return (_poisson_times(rng, n, 50.0), _zipf_pages(rng, n, 60_000, 1.2), _sizes(rng, n, (1, 2, 4), (0.5, 0.3, 0.2)),
            _rw(rng, n, 0.05), _misaligned(rng, n))


def _zipf_write(rng, n):
    return (_poisson_times(rng, n, 70.0), _zipf_pages(rng, n, 30_000, 0.9), _sizes(rng, n, (1, 2), (0.8, 0.2)),
            _rw(rng, n, 0.85), _misaligned(rng, n))


def _uniform_random(rng, n):
    return (_poisson_times(rng, n, 40.0), rng.integers(0, 50_000, n), np.ones(n, np.int64), _rw(rng, n, 0.5),
            _misaligned(rng, n))


def _sequential_runs(rng, n, region, run_len, pages_per_req, base=0):
    """Sequential runs of ``run_len`` requests of ``pages_per_req`` pages from random starts."""
    starts = base + rng.integers(0, max(region - run_len * pages_per_req, 1), n // run_len + 1)
    idx = np.arange(n)
    return starts[idx // run_len] + (idx % run_len) * pages_per_req


def _seq_scan(rng, n):
    pages = _sequential_runs(rng, n, 200_000, 256, 16)
    return (_poisson_times(rng, n, 30.0), pages, np.full(n, 16), _rw(rng, n, 0.1), np.zeros(n, np.int64))


def _scan_hot(rng, n):
    hot = _zipf_pages(rng, n, 20_000, 1.1)
    scan = _sequential_runs(rng, n, 300_000, 128, 8, base=20_000)
    in_scan = (np.arange(n) // 500) % 4 == 3          # every fourth block of 500 requests is a scan
    pages = np.where(in_scan, scan, hot)
    size = np.where(in_scan, 8, _sizes(rng, n, (1, 2), (0.7, 0.3)))
    return (_poisson_times(rng, n, 50.0), pages, size, np.where(in_scan, False, _rw(rng, n, 0.3)),
            np.where(in_scan, 0, _misaligned(rng, n)))


def _phase_shift(rng, n, phases=5, region=25_000):
    phase = np.arange(n) * phases // max(n, 1)
    pages = _zipf_pages(rng, n, region, 1.1) + phase * region
    return (_poisson_times(rng, n, 50.0), pages, _sizes(rng, n, (1, 2), (0.8, 0.2)), _rw(rng, n, 0.4),
            _misaligned(rng, n))


def _loop(rng, n):
    """A cyclic loop over 6,000 pages (LRU's worst case once the fast device is smaller) plus noise."""
    idx = np.arange(n)
    loop = idx % 6_000
    noise = rng.random(n) < 0.2
    pages = np.where(noise, 6_000 + rng.integers(0, 40_000, n), loop)
    return (_poisson_times(rng, n, 50.0), pages, np.ones(n, np.int64), _rw(rng, n, 0.2), np.zeros(n, np.int64))


def _bursty_zipf(rng, n):
    return (_bursty_times(rng, n), _zipf_pages(rng, n, 40_000, 1.0), _sizes(rng, n, (1, 2), (0.7, 0.3)),
            _rw(rng, n, 0.4), _misaligned(rng, n))


def _read_after_write(rng, n):
    """Fresh pages are written and read back soon after (mail / metadata servers)."""
    write = _rw(rng, n, 0.45)
    new = np.cumsum(write)                     # the k-th write writes page k
    lag = rng.geometric(1 / 200.0, n)
    reread = np.maximum(new - lag, 0)
    cold = rng.random(n) < 0.15
    pages = np.where(write, new, np.where(cold, 200_000 + rng.integers(0, 100_000, n), reread))
    return (_poisson_times(rng, n, 60.0), pages, np.ones(n, np.int64), write, _misaligned(rng, n))


def _log_append(rng, n):
    """Sequential appends to a log and random reads of it (held out)."""
    write = _rw(rng, n, 0.6)
    head = np.cumsum(np.where(write, 2, 0))
    reads = (rng.random(n) ** 3 * np.maximum(head, 1)).astype(np.int64)   # recent data read more
    pages = np.where(write, head, np.maximum(head - reads, 0))
    return (_poisson_times(rng, n, 60.0), pages, np.where(write, 2, 1), write, np.zeros(n, np.int64))


def _mixed_sizes(rng, n):
    """Heavy-tailed request sizes (4 KiB .. 1 MiB) over a Zipf hot set (held out)."""
    size = np.clip(np.round(rng.lognormal(0.5, 1.2, n)), 1, 256).astype(np.int64)
    return (_poisson_times(rng, n, 30.0), _zipf_pages(rng, n, 80_000, 1.0), size, _rw(rng, n, 0.35),
            _misaligned(rng, n))


def _phase_shift_fast(rng, n):
    """The hot set moves every n/20 requests (held out)."""
    return _phase_shift(rng, n, phases=20, region=8_000)


def _hot_cold_split(rng, n):
    """90 % of the requests on a small hot region, 10 % sequential sweeps of a big cold one (held out)."""
    hot = rng.random(n) < 0.9
    pages = np.where(hot, _zipf_pages(rng, n, 4_000, 0.8), _sequential_runs(rng, n, 400_000, 64, 4, base=4_000))
    return (_poisson_times(rng, n, 50.0), pages, np.where(hot, 1, 4), _rw(rng, n, 0.3), np.zeros(n, np.int64))


#: the named workload shapes (MSR host profiles they imitate in parentheses)
SHAPES: dict[str, Shape] = {s.name: s for s in (
    Shape("zipf_oltp", "hm", "Zipf(1.0) hot set over 40k pages, 70 % reads, 4-8 KiB, 60 req/s", _zipf_oltp),
    Shape("zipf_read", "web", "Zipf(1.2) over 60k pages, 95 % reads, 4-16 KiB, 50 req/s", _zipf_read),
    Shape("zipf_write", "prxy", "Zipf(0.9) over 30k pages, 85 % writes, 4-8 KiB, 70 req/s", _zipf_write),
    Shape("uniform_random", "proj", "uniform over 50k pages, 50 % writes, 4 KiB, 40 req/s", _uniform_random),
    Shape("seq_scan", "src1", "sequential 64 KiB reads in runs of 256 requests, 30 req/s", _seq_scan),
    Shape("scan_hot", "usr", "Zipf(1.1) hot set polluted by 32 KiB sequential scans (1 block in 4)", _scan_hot),
    Shape("phase_shift", "rsrch", "Zipf(1.1) hot set that moves to a new region 5 times", _phase_shift),
    Shape("loop", "ts", "cyclic loop over 6k pages with 20 % random noise, 4 KiB", _loop),
    Shape("bursty_zipf", "mds", "Zipf(1.0) with MMPP on/off arrivals (15 / 150 req/s)", _bursty_zipf),
    Shape("read_after_write", "prn", "fresh writes read back after ~200 requests, 15 % cold reads",
          _read_after_write),
    Shape("log_append", "stg", "sequential 8 KiB appends and reads skewed to recent log data", _log_append,
          held_out=True),
    Shape("mixed_sizes", "wdev", "log-normal sizes 4 KiB - 1 MiB over a Zipf(1.0) set of 80k pages", _mixed_sizes,
          held_out=True),
    Shape("phase_shift_fast", "rsrch", "Zipf(1.1) hot set of 8k pages that moves 20 times", _phase_shift_fast,
          held_out=True),
    Shape("hot_cold_split", "hm", "90 % Zipf(0.8) on a 4k-page hot region, 10 % 16 KiB cold sweeps",
          _hot_cold_split, held_out=True),
)}
TRAIN_SHAPES = tuple(s for s in SHAPES if not SHAPES[s].held_out)
HELD_OUT = tuple(s for s in SHAPES if SHAPES[s].held_out)
#: named shape groups: one shape drawn per episode
SHAPE_GROUPS = {"train": TRAIN_SHAPES, "heldout": HELD_OUT, "all": tuple(SHAPES)}


def generate_trace(shape: str, n_requests: int, rng: np.random.Generator) -> BlockTrace:
    """A synthetic trace of ``n_requests`` requests of the named ``shape`` drawn from ``rng``."""
    if shape not in SHAPES:
        raise ValueError(f"shape must be one of {', '.join(SHAPES)}; got {shape!r}")
    s = SHAPES[shape]
    t, page, npages, write, mis = s.make(rng, n_requests)
    page = np.asarray(page, np.int64)
    npages = np.asarray(npages, np.int64)
    mis = np.asarray(mis, np.int64)
    offset = page * PAGE_SIZE + mis * 512
    # a misaligned request keeps its byte size, so it straddles one more page (as in MSR)
    size = npages * PAGE_SIZE
    return BlockTrace(name=shape, time_s=np.asarray(t, float) - float(t[0]), disk=np.zeros(n_requests, np.int64),
                      offset=offset, size=size, is_write=np.asarray(write, bool), source=f"synthetic:{shape}",
                      hostname=s.host)


class SyntheticWorkload:
    """Instance generator: a fresh synthetic trace of ``n_requests`` per draw, of one of ``shapes``
    (drawn uniformly per episode when there are several)."""

    def __init__(self, shapes: str | Sequence[str], n_requests: int):
        names = SHAPE_GROUPS.get(shapes, (shapes,)) if isinstance(shapes, str) else tuple(shapes)
        for s in names:
            if s not in SHAPES:
                raise ValueError(f"shape must be one of {', '.join(SHAPES)}; got {s!r}")
        self.shapes, self.n_requests = tuple(names), int(n_requests)

    def __call__(self, rng: np.random.Generator) -> BlockTrace:
        shape = self.shapes[int(rng.integers(len(self.shapes)))] if len(self.shapes) > 1 else self.shapes[0]
        return generate_trace(shape, self.n_requests, rng)

    def __repr__(self) -> str:
        return f"SyntheticWorkload({'/'.join(self.shapes)}, {self.n_requests})"


# ----------------------------------------------------------------------------- episode traces
class EpisodeTrace:
    """What the simulator replays: one window of a trace split into 4 KiB pages.

    Lists (fast scalar access in the simulator's loop): ``t_us`` arrival times in microseconds from
    the first request (None when untimed), ``write``, ``seq`` (the request starts where the previous
    one of the same disk ended), ``nbytes``, ``ptr`` / ``pid`` (request ``i`` touches the dense page
    ids ``pid[ptr[i]:ptr[i + 1]]``), ``npages``. ``n_pages`` is the working set (distinct pages).
    Never changed after construction (snapshots share it).
    """

    def __init__(self, trace: BlockTrace):
        self.name = trace.name
        n = trace.n_requests
        self.n = n
        off, size, disk = trace.offset, trace.size, trace.disk
        first = off // PAGE_SIZE
        last = (off + size - 1) // PAGE_SIZE
        npages = (last - first + 1).astype(np.int64)
        ptr = np.zeros(n + 1, np.int64)
        np.cumsum(npages, out=ptr[1:])
        within = np.arange(ptr[-1]) - np.repeat(ptr[:-1], npages)
        keys = (np.repeat(disk, npages) << DISK_SHIFT) | (np.repeat(first, npages) + within)
        uniq, pid = np.unique(keys, return_inverse=True)
        self.n_pages = int(len(uniq))
        seq = np.zeros(n, bool)
        if n > 1:
            seq[1:] = (off[1:] == off[:-1] + size[:-1]) & (disk[1:] == disk[:-1])
        self._pid = pid.astype(np.int64)
        self._ptr = ptr
        self.ptr = ptr.tolist()
        self.pid = self._pid.tolist()
        self.npages = npages.tolist()
        self.max_request_pages = int(npages.max()) if n else 0
        self.write = trace.is_write.tolist()
        self.seq = seq.tolist()
        self.nbytes = size.astype(np.int64).tolist()
        self.t_us = None if trace.time_s is None else (np.asarray(trace.time_s, float) * 1e6).tolist()
        self._next_use = None
        self._page_req = None
        self._page_ptr = None
        self._next_read = None

    def next_request(self, page: int, i: int) -> int:
        """The first request after request ``i`` that touches ``page`` (``n`` = never); the oracle's
        future knowledge (the per-page access lists are built on first use)."""
        if self._page_req is None:
            req = np.repeat(np.arange(self.n, dtype=np.int64), np.diff(self._ptr))
            order = np.argsort(self._pid, kind="stable")       # by page, then request
            self._page_req = req[order].tolist()
            self._page_ptr = np.concatenate([[0], np.cumsum(np.bincount(self._pid, minlength=self.n_pages))]).tolist()
        lo, hi = self._page_ptr[page], self._page_ptr[page + 1]
        k = bisect.bisect_right(self._page_req, i, lo, hi)
        return self._page_req[k] if k < hi else self.n

    def accesses_between(self, page: int, i: int, j: int) -> int:
        """How many requests in ``(i, j]`` touch ``page`` (future knowledge, like :meth:`next_request`)."""
        self.next_request(page, i)
        lo, hi = self._page_ptr[page], self._page_ptr[page + 1]
        return bisect.bisect_right(self._page_req, j, lo, hi) - bisect.bisect_right(self._page_req, i, lo, hi)

    @property
    def next_read(self) -> list[int]:
        """For every page access ``j``: the request index of the page's next access if that access
        is a read, else ``n`` (never: the next access overwrites the page, so its copy is worth
        nothing). The key of Belady's eviction (the oracle's future knowledge)."""
        if self._next_read is None:
            nxt = np.asarray(self.next_use, np.int64)
            write = np.asarray(self.write + [True], bool)
            self._next_read = np.where(write[nxt], self.n, nxt).tolist()
        return self._next_read

    def first_read(self) -> list[int]:
        """For every page: its first access if that is a read, else ``n`` (Belady keys at reset)."""
        first = np.full(self.n_pages, self.n, np.int64)
        req = np.repeat(np.arange(self.n, dtype=np.int64), np.diff(self._ptr))
        pos = np.unique(self._pid, return_index=True)[1]
        first[self._pid[pos]] = req[pos]
        write = np.asarray(self.write + [True], bool)
        return np.where(write[first], self.n, first).tolist()

    @property
    def next_use(self) -> list[int]:
        """For every page access ``j`` (index into ``pid``), the next request that touches the same
        page (``n`` = never); computed on first use (the oracle's future knowledge)."""
        if self._next_use is None:
            req = np.repeat(np.arange(self.n, dtype=np.int64), np.diff(self._ptr))
            order = np.lexsort((req, self._pid))
            nxt = np.full(len(req), self.n, np.int64)
            same = self._pid[order[1:]] == self._pid[order[:-1]]
            nxt[order[:-1][same]] = req[order[1:]][same]
            self._next_use = nxt.tolist()
        return self._next_use


def episode_trace(trace: BlockTrace) -> EpisodeTrace:
    return EpisodeTrace(trace)
