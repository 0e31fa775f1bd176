"""The hybrid storage system: device profiles, an analytic per-request device model with per-device
FCFS queues, 4 KiB pages on capacity-bounded devices, LRU eviction and migrations (no gymnasium).

Service time of one I/O of ``b`` bytes on device ``d`` (our analytic model, parameters from the
public specs in :data:`PROFILES`)::

    service = base_latency(d, read / write, random / sequential) + b / bandwidth(d, read / write)
              (+ a garbage-collection stall of gc_stall_us with probability gc_prob on a flash
               device's foreground write, when flash_gc is on)

A request is *sequential* when it starts at the byte where the previous request of the same disk
ended (a property of the request stream, so every device sees the same classification). Every
device is one FCFS server: its queue is a busy-until time on the simulation's clock
(:class:`rlsys_envs.core.EventClock`), and an I/O that arrives at ``t`` completes at
``max(t, busy_until) + service``. With ``queueing=False`` an I/O completes at ``t + service``
(the devices never interfere, background I/O costs no request any time).

Pages live on exactly one device. Devices are a :class:`PagePool`, a
:class:`rlsys_envs.core.ResourcePool` with one dimension (``pages``) whose consumers are the dense
page ids (unit demand). Every device but the slowest is bounded; when a page must enter a full
device ``d``, the least recently used pages of ``d`` are evicted to device ``d + 1`` (cascading
when that is full too): an eviction costs a random 4 KiB read on ``d`` and a random 4 KiB write on
``d + 1``, both on those devices' queues. Moving a page because of a placement decision (a read
whose page lands on another device) costs a background write on the destination (the read was
the request itself); a migration chosen by the migration agent costs a read on the source and a
write on the destination. Background I/O enters the queues at the request's arrival time.
"""
from __future__ import annotations

import heapq
import itertools
from array import array
from collections import OrderedDict
from dataclasses import dataclass
from typing import Hashable, Sequence

import numpy as np

from rlsys_envs.core import CapacityError, EventClock, Placement, ResourcePool

from .generator import PAGE_SIZE, EpisodeTrace

#: decayed access frequency: an access counts half after this many requests
FREQ_HALF_LIFE = 1000
FREQ_DECAY = 0.5 ** (1.0 / FREQ_HALF_LIFE)


@dataclass(frozen=True)
class DeviceProfile:
    """Latency and bandwidth of one device (microseconds, MB/s = bytes per microsecond)."""

    key: str
    name: str
    source: str
    read_random_us: float
    read_seq_us: float
    write_random_us: float
    write_seq_us: float
    read_mb_s: float
    write_mb_s: float
    #: flash garbage collection: a foreground write stalls ``gc_stall_us`` with probability ``gc_prob``
    gc_prob: float = 0.0
    gc_stall_us: float = 0.0

    def service_us(self, write: bool, seq: bool, nbytes: int) -> float:
        """Service time of one I/O (no queueing, no GC stall)."""
        if write:
            return (self.write_seq_us if seq else self.write_random_us) + nbytes / self.write_mb_s
        return (self.read_seq_us if seq else self.read_random_us) + nbytes / self.read_mb_s


#: the device profiles (base latencies are the spec's 4 KiB QD1 numbers; see docs/envs/storage.md)
PROFILES: dict[str, DeviceProfile] = {p.key: p for p in (
    DeviceProfile("optane", "Intel Optane SSD DC P4800X 375 GB (PCIe 3.0 NVMe)",
                  "Intel product spec: < 10 us typ. latency, 2,400 / 2,000 MB/s sequential read / write",
                  10.0, 10.0, 10.0, 10.0, 2400.0, 2000.0),
    DeviceProfile("nvme_tlc", "generic NVMe TLC SSD (tunable default, not a spec)",
                  "our choice: ~80 us 4K read (30 us sequential), ~25 us buffered write, 2.0 / 1.5 GB/s "
                  "(below the Optane tier, so the tiers stay ordered for every I/O)",
                  80.0, 30.0, 25.0, 20.0, 2000.0, 1500.0, gc_prob=0.01, gc_stall_us=400.0),
    DeviceProfile("sata_tlc", "SATA TLC SSD 1.92 TB (Intel DC S4500 spec; D3-S4510 class)",
                  "Intel product spec: random 110 / 52 us, sequential 36 / 36 us read / write, 500 / 490 MB/s, "
                  "p99.9 write 800 us",
                  110.0, 36.0, 52.0, 36.0, 500.0, 490.0, gc_prob=0.01, gc_stall_us=800.0),
    DeviceProfile("hdd", "Seagate ST1000DM010 1 TB 7200 rpm HDD",
                  "Seagate datasheet: 4.16 ms average rotational latency, 210 MB/s max sustained; ~8.5 ms "
                  "average seek (not vendor-confirmed); 50 us command overhead for sequential I/O (ours)",
                  12_660.0, 50.0, 12_660.0, 50.0, 210.0, 210.0),
)}

#: hybrid storage configurations, fastest device first
CONFIGS: dict[str, tuple[str, ...]] = {
    "H&M": ("optane", "sata_tlc"),            # performance-oriented dual HSS (Sibyl)
    "H&L": ("optane", "hdd"),                 # cost-oriented dual HSS (Sibyl)
    "H&M&L": ("optane", "sata_tlc", "hdd"),   # tri-HSS (Sibyl)
    "H&N&M&L": ("optane", "nvme_tlc", "sata_tlc", "hdd"),   # four devices (Harmonia evaluates up to four)
}


class PagePool(ResourcePool):
    """Devices with capacities in 4 KiB pages; the consumers are dense page ids of unit demand.

    A :class:`~rlsys_envs.core.ResourcePool` (``capacity`` / ``usage`` ``[n_devices, 1]``, ``fits``,
    ``place`` / ``move`` / ``release`` that raise :class:`~rlsys_envs.core.CapacityError` and leave
    the state untouched) whose placements are kept in a byte array ``loc[page]`` (device, -1 when
    not placed) instead of one object per consumer, so that a page moves in O(1).
    """

    def __init__(self, capacity_pages: Sequence[int], n_pages: int):
        super().__init__(np.asarray(capacity_pages, np.int64).reshape(-1, 1), ("pages",))
        self.cap = [int(c) for c in capacity_pages]
        self.loc = array("b", [-1]) * int(n_pages)

    # usage is kept as a list of ints (the ResourcePool API sees an [n, 1] array)
    @property
    def usage(self) -> np.ndarray:
        return np.asarray(self.used, np.int64).reshape(-1, 1)

    @usage.setter
    def usage(self, value) -> None:
        self.used = [int(v) for v in np.asarray(value).reshape(-1)]

    def _device(self, resources) -> int:
        res = np.atleast_1d(np.asarray(resources, np.int64))
        if len(res) != 1:
            raise ValueError(f"a page lives on exactly one device, got {res.tolist()}")
        d = int(res[0])
        if not 0 <= d < len(self.cap):
            raise IndexError(f"device index {d} out of range [0, {len(self.cap)})")
        return d

    def _page(self, consumer) -> int:
        if isinstance(consumer, bool) or not isinstance(consumer, (int, np.integer)) \
                or not 0 <= int(consumer) < len(self.loc):
            raise KeyError(f"consumer {consumer!r} is not a page id of this pool (0 .. {len(self.loc) - 1})")
        return int(consumer)

    @staticmethod
    def _unit(demand) -> None:
        if demand is not None and np.asarray(demand).sum() != 1:
            raise ValueError(f"a page has unit demand, got {np.asarray(demand).tolist()}")

    def place(self, consumer: Hashable, resources, demand=1) -> None:
        p, d = self._page(consumer), self._device(resources)
        self._unit(demand)
        if self.loc[p] >= 0:
            raise ValueError(f"page {p} is already placed on device {self.loc[p]}")
        if self.used[d] >= self.cap[d]:
            raise CapacityError(f"placing page {p} would exceed the page capacity {self.cap[d]} of device {d}")
        self.loc[p] = d
        self.used[d] += 1

    def place_many(self, consumers, resources, demands=None) -> None:
        pages = [self._page(c) for c in consumers]
        devs = [self._device(r) for r in resources]
        if len(pages) != len(devs) or len(set(pages)) != len(pages) or any(self.loc[p] >= 0 for p in pages):
            raise ValueError("place_many needs distinct unplaced pages, one device each")
        counts = np.bincount(devs, minlength=len(self.cap)) if devs else np.zeros(len(self.cap), np.int64)
        for d, k in enumerate(counts.tolist()):
            if self.used[d] + k > self.cap[d]:
                raise CapacityError(f"placing {k} pages would exceed the page capacity {self.cap[d]} of device {d}")
        for p, d in zip(pages, devs):
            self.loc[p] = d
        for d, k in enumerate(counts.tolist()):
            self.used[d] += k

    def fill(self, devices: Sequence[int]) -> None:
        """Place page ``p`` on ``devices[p]`` for every page (all unplaced; checked like place_many)."""
        devs = np.asarray(devices)
        if devs.ndim != 1 or len(devs) != len(self.loc) or not np.issubdtype(devs.dtype, np.integer):
            raise ValueError(f"fill needs one integer device per page ({len(self.loc)}), got shape {devs.shape}")
        if len(devs) and (devs.min() < 0 or devs.max() >= len(self.cap)):
            bad = int(devs[(devs < 0) | (devs >= len(self.cap))][0])
            raise IndexError(f"device index {bad} out of range [0, {len(self.cap)})")
        if np.any(np.frombuffer(self.loc, np.int8) >= 0):
            raise ValueError("place_many needs distinct unplaced pages, one device each")
        counts = np.bincount(devs, minlength=len(self.cap)).tolist()
        for d, k in enumerate(counts):
            if self.used[d] + k > self.cap[d]:
                raise CapacityError(f"placing {k} pages would exceed the page capacity {self.cap[d]} of device {d}")
        self.loc = array("b", devs.astype(np.int8).tobytes())
        for d, k in enumerate(counts):
            self.used[d] += k

    def release(self, consumer: Hashable) -> Placement:
        p = self._page(consumer)
        d = self.loc[p]
        if d < 0:
            raise KeyError(f"page {p} is not placed in this pool")
        self.loc[p] = -1
        self.used[d] -= 1
        return Placement(np.array([d], np.int64), np.ones((1, 1), np.int64))

    def move(self, consumer: Hashable, resources, demand=None) -> Placement:
        p, d = self._page(consumer), self._device(resources)
        self._unit(demand)
        old = self.loc[p]
        if old < 0:
            raise KeyError(f"page {p} is not placed in this pool")
        self.move_page(p, d)
        return Placement(np.array([old], np.int64), np.ones((1, 1), np.int64))

    def move_page(self, p: int, d: int) -> int:
        """Move page ``p`` to device ``d`` (fast path); returns the old device."""
        old = self.loc[p]
        if old == d:
            return old
        if self.used[d] >= self.cap[d]:
            raise CapacityError(f"moving page {p} would exceed the page capacity {self.cap[d]} of device {d}")
        self.used[old] -= 1
        self.used[d] += 1
        self.loc[p] = d
        return old

    def placement(self, consumer: Hashable) -> Placement:
        p = self._page(consumer)
        if self.loc[p] < 0:
            raise KeyError(f"consumer {consumer!r} is not placed in this pool")
        return Placement(np.array([self.loc[p]], np.int64), np.ones((1, 1), np.int64))

    def __contains__(self, consumer: Hashable) -> bool:
        try:
            return self.loc[self._page(consumer)] >= 0
        except KeyError:
            return False

    def consumers(self) -> list[int]:
        return np.flatnonzero(np.frombuffer(self.loc, np.int8) >= 0).tolist()

    def copy(self) -> "PagePool":
        other = PagePool.__new__(PagePool)
        other.__dict__.update(self.__dict__)
        other.used, other.cap, other.loc = list(self.used), list(self.cap), array("b", self.loc)
        return other


def capacities(n_pages: int, n_devices: int, fast_capacity: float, middle_capacity: float,
               min_pages: int = 1) -> list[int]:
    """Device capacities in pages: the fastest ``fast_capacity`` of the working set, every middle
    device ``middle_capacity`` of it, the slowest the whole working set (everything fits)."""
    fast = max(min_pages, int(round(fast_capacity * n_pages)))
    middle = max(min_pages, int(round(middle_capacity * n_pages)))
    return [fast] + [middle] * (n_devices - 2) + [max(n_pages, 1)]


class StorageModel:
    """The simulation of one episode: requests of an :class:`~rlsys_envs.storage.generator.EpisodeTrace`
    served one at a time (:meth:`serve`), migrations (:meth:`migrate`), candidates for the migration
    agent (:meth:`candidates`) and the episode's counters.

    ``arrival``: ``"trace"`` (open loop: request ``i`` arrives at its trace time divided by
    ``load_factor``) or ``"closed"`` (request ``i`` arrives when request ``i - 1`` completes, as in
    Sibyl's replay). ``initial``: ``"slow"`` (every page starts on the slowest device) or
    ``"fast_first"`` (pages fill the devices fastest first, in the order of their first access).
    ``eviction``: ``"lru"`` (the victim of a full device is its least recently used page) or
    ``"belady"`` (future knowledge, for the Oracle system: the page whose next access is farthest
    away or is a write, i.e. whose copy is worth least; Belady's MIN). ``gc_draws``: one uniform
    number per request (the GC-stall draws), or None for no GC stalls.
    """

    def __init__(self, trace: EpisodeTrace, devices: Sequence[DeviceProfile], capacity: Sequence[int], *,
                 queueing: bool = True, arrival: str = "trace", load_factor: float = 1.0, initial: str = "slow",
                 eviction: str = "lru", gc_draws: Sequence[float] | None = None):
        if arrival == "trace" and trace.t_us is None:
            raise ValueError(f"trace {trace.name!r} has no timestamps (e.g. Sibyl's 3-column format): "
                             "use arrival='closed'")
        self.tr = trace
        self.devices = tuple(devices)
        n_dev = len(self.devices)
        self.n_devices = n_dev
        self.slowest = n_dev - 1
        self.queueing = queueing
        self.closed = arrival == "closed"
        self.load_factor = float(load_factor)
        self.pool = PagePool(capacity, trace.n_pages)
        if initial == "slow":
            self.pool.fill([self.slowest] * trace.n_pages)
        else:
            self.pool.fill(self._fast_first(capacity))
        self.r_rand = [d.read_random_us for d in self.devices]
        self.r_seq = [d.read_seq_us for d in self.devices]
        self.w_rand = [d.write_random_us for d in self.devices]
        self.w_seq = [d.write_seq_us for d in self.devices]
        self.r_pb = [1.0 / d.read_mb_s for d in self.devices]
        self.w_pb = [1.0 / d.write_mb_s for d in self.devices]
        self.page_read = [self.r_rand[d] + PAGE_SIZE * self.r_pb[d] for d in range(n_dev)]
        self.page_write = [self.w_rand[d] + PAGE_SIZE * self.w_pb[d] for d in range(n_dev)]
        self.gc_p = [d.gc_prob for d in self.devices] if gc_draws is not None else [0.0] * n_dev
        self.gc_us = [d.gc_stall_us for d in self.devices]
        self.gc_draws = gc_draws
        # LRU order of every bounded device (oldest first)
        loc = self.pool.loc
        loc_np = np.frombuffer(loc, np.int8)
        self.lru: list[OrderedDict] = [OrderedDict.fromkeys(np.flatnonzero(loc_np == d).tolist())
                                       for d in range(n_dev - 1)]
        n_pages = trace.n_pages
        self.belady = eviction == "belady"
        if self.belady:
            self.key = array("q", trace.first_read())
            self.heaps: list[list] = [[] for _ in range(n_dev - 1)]
            self._seq = 0
            for p in range(n_pages):
                if loc[p] < self.slowest:
                    self._push(p, loc[p])
        self.count = array("q", bytes(8 * n_pages))
        self.last = array("q", [-1]) * n_pages
        #: requests between a page's last two accesses (-1 before its second access): its last reuse distance
        self.gap = array("q", [-1]) * n_pages
        self.freq = array("d", bytes(8 * n_pages))
        self.busy = [0.0] * n_dev
        #: the queues without the migration agent's I/O (the counterfactual of its queueing cost)
        self.shadow_busy = [0.0] * n_dev
        self._shadow_end = 0.0
        self._migrating = False
        self.clock = EventClock(0.0)
        self.i = 0
        self.lat = array("d", bytes(8 * trace.n))
        self.prev_finish = 0.0
        self.t_end = 0.0
        self.evictions = 0
        self.migrations = 0
        self.placement_moves = 0
        self.bg_io_us = 0.0
        self.wait_us = 0.0
        self.fast_accesses = 0
        self.accesses = 0
        self.touched: set[int] = set()
        #: pages moved by the migration agent -> (their device before, request index when they stop counting)
        self.tracked: dict[int, tuple[int, int]] = {}
        self._track_until = 0
        #: counterfactual service-time saving (us) of the tracked pages, accumulated by serve()
        self.migration_gain = 0.0
        #: queueing delay (us) the migrations' I/O added to the requests, accumulated by serve()
        self.migration_wait = 0.0
        self._tracking = False

    def _fast_first(self, capacity) -> list[int]:
        tr = self.tr
        order = np.unique(np.asarray(tr.pid), return_index=True)[1]      # first access of every page
        first_seen = np.asarray(tr.pid)[np.sort(order)]
        devices = np.full(tr.n_pages, self.slowest, np.int64)
        start = 0
        for d, c in enumerate(capacity[:-1]):
            devices[first_seen[start:start + c]] = d
            start += c
        return devices.tolist()

    # --------------------------------------------------------------------------- time
    def arrival_time(self) -> float:
        """Arrival time (us) of the next request."""
        if self.closed:
            return self.prev_finish
        return self.tr.t_us[self.i] / self.load_factor

    def _advance(self, t: float) -> None:
        if t > self.clock.now:
            self.clock.pop_until(t)

    def _io(self, d: int, t: float, service: float) -> float:
        """A foreground I/O on device ``d`` arriving at ``t``: its completion time."""
        if not self.queueing:
            return t + service
        b = self.busy[d]
        end = (b if b > t else t) + service
        self.busy[d] = end
        b = self.shadow_busy[d]
        self._shadow_end = self.shadow_busy[d] = (b if b > t else t) + service
        return end

    def _bg(self, d: int, t: float, service: float) -> None:
        """Background I/O on device ``d`` enqueued at ``t``."""
        self.bg_io_us += service
        if self.queueing:
            b = self.busy[d]
            self.busy[d] = (b if b > t else t) + service
            if not self._migrating:
                b = self.shadow_busy[d]
                self.shadow_busy[d] = (b if b > t else t) + service

    # ------------------------------------------------------------------------ capacity
    def free_pages(self, d: int) -> int:
        return self.pool.cap[d] - self.pool.used[d]

    def _push(self, p: int, d: int) -> None:
        """Belady: page ``p`` is on bounded device ``d`` with its current key."""
        self._seq += 1
        heapq.heappush(self.heaps[d], (-self.key[p], self._seq, p))

    def _belady_victim(self, d: int, protect) -> int:
        heap, loc, key = self.heaps[d], self.pool.loc, self.key
        held = []
        while True:
            item = heapq.heappop(heap)
            v = item[2]
            if loc[v] != d or key[v] != -item[0]:
                continue                  # stale entry
            if v in protect:
                held.append(item)
                continue
            break
        for item in held:
            heapq.heappush(heap, item)
        return v

    def _make_room(self, d: int, m: int, t: float, track: bool = False, protect=()) -> float:
        """Free ``m`` pages of device ``d`` by evicting its victims (LRU, or Belady's) to ``d + 1``
        (cascading); ``protect``: pages that must stay (the request's own). Returns the background
        I/O time spent."""
        if d == self.slowest:
            return 0.0
        pool = self.pool
        need = m - (pool.cap[d] - pool.used[d])
        if need <= 0:
            return 0.0
        nxt = d + 1
        cost = self._make_room(nxt, need, t, track, protect)
        lru_d = self.lru[d]
        lru_n = self.lru[nxt] if nxt < self.slowest else None
        tracked = self.tracked
        belady = self.belady
        for _ in range(need):
            if belady:
                v = self._belady_victim(d, protect)
                del lru_d[v]
            else:
                v = lru_d.popitem(last=False)[0]
            pool.move_page(v, nxt)
            if lru_n is not None:
                lru_n[v] = None
                if belady:
                    self._push(v, nxt)
            if track:
                tracked.setdefault(v, (d, self._track_until))
            elif tracked:
                tracked.pop(v, None)
        read = need * self.page_read[d]
        write = need * self.page_write[nxt]
        self._bg(d, t, read)
        self._bg(nxt, t, write)
        self.evictions += need
        return cost + read + write

    def _move(self, p: int, d: int) -> None:
        """Move page ``p`` to device ``d`` (room made already), keeping the LRU orders."""
        old = self.pool.move_page(p, d)
        if old < self.slowest:
            del self.lru[old][p]
        if d < self.slowest:
            self.lru[d][p] = None
            if self.belady:
                self._push(p, d)

    # --------------------------------------------------------------------------- requests
    def legal_devices(self) -> list[bool]:
        """Devices that can hold all pages of the next request."""
        m = self.tr.npages[self.i]
        return [c >= m for c in self.pool.cap]

    def _read_service(self, pages, loc_of, seq: bool, nbytes: int) -> float:
        """Service time (no queueing) of a read of ``pages`` located by ``loc_of``."""
        first = loc_of(pages[0])
        if all(loc_of(p) == first for p in pages):
            return (self.r_seq[first] if seq else self.r_rand[first]) + nbytes * self.r_pb[first]
        n = len(pages)
        worst = 0.0
        for d in set(loc_of(p) for p in pages):
            share = nbytes * sum(1 for p in pages if loc_of(p) == d) / n
            worst = max(worst, (self.r_seq[d] if seq else self.r_rand[d]) + share * self.r_pb[d])
        return worst

    def serve(self, d: int) -> tuple[float, float, int]:
        """Serve the next request with its pages placed on device ``d``.

        Returns ``(latency_us, background_io_us, evictions)``: the request's latency (queueing
        wait + service), the background I/O it caused (page moves and evictions) and the number of
        evicted pages.
        """
        i = self.i
        tr = self.tr
        pages = tr.pid[tr.ptr[i]:tr.ptr[i + 1]]
        write = tr.write[i]
        seq = tr.seq[i]
        nbytes = tr.nbytes[i]
        t = self.prev_finish if self.closed else tr.t_us[i] / self.load_factor
        if t > self.clock.now:
            self.clock.pop_until(t)
        loc = self.pool.loc
        slowest = self.slowest
        ev0 = self.evictions
        bg0 = self.bg_io_us
        tracked = self.tracked
        if not write:
            if len(pages) == 1:
                e = loc[pages[0]]
                service = (self.r_seq[e] if seq else self.r_rand[e]) + nbytes * self.r_pb[e]
                finish = self._io(e, t, service)
                shadow_finish = self._shadow_end
                if e == 0:
                    self.fast_accesses += 1
            else:
                groups: dict[int, int] = {}
                for p in pages:
                    e = loc[p]
                    groups[e] = groups.get(e, 0) + 1
                n = len(pages)
                service = 0.0
                finish = shadow_finish = t
                for e, k in groups.items():
                    s = (self.r_seq[e] if seq else self.r_rand[e]) + nbytes * k / n * self.r_pb[e]
                    service = s if s > service else service
                    f = self._io(e, t, s)
                    finish = f if f > finish else finish
                    f = self._shadow_end
                    shadow_finish = f if f > shadow_finish else shadow_finish
                self.fast_accesses += groups.get(0, 0)
            if tracked and any(p in tracked for p in pages):
                for p in pages:
                    if p in tracked and tracked[p][1] <= i:
                        del tracked[p]            # its window is over
                if any(p in tracked for p in pages):
                    cf = self._read_service(pages, lambda p: tracked[p][0] if p in tracked else loc[p], seq, nbytes)
                    self.migration_gain += cf - service
                    for p in pages:       # counted once: from here on the placement decides where they are
                        tracked.pop(p, None)
        else:
            if tracked:
                for p in pages:
                    tracked.pop(p, None)
        # access statistics and LRU recency (before any eviction, so this request's pages are safe)
        count, last, freq, gap = self.count, self.last, self.freq, self.gap
        lru = self.lru
        touched = self.touched
        for p in pages:
            count[p] += 1
            lp = last[p]
            if lp >= 0:
                freq[p] = freq[p] * FREQ_DECAY ** (i - lp) + 1.0
                gap[p] = i - lp
            else:
                freq[p] = 1.0
            last[p] = i
            touched.add(p)
            e = loc[p]
            if e < slowest:
                lru[e].move_to_end(p)
        if self.belady:
            nr, key = tr.next_read, self.key
            for j, p in enumerate(pages, tr.ptr[i]):
                key[p] = nr[j]
                if loc[p] < slowest:
                    self._push(p, loc[p])
        moving = [p for p in pages if loc[p] != d]
        if moving:
            self._make_room(d, len(moving), t, protect=pages if self.belady else ())
            if not write:     # the read brought the data: write it to its new device
                self._bg(d, t, (self.w_rand[d] + len(moving) * PAGE_SIZE * self.w_pb[d]))
            self.placement_moves += len(moving)
            for p in moving:
                if tracked:
                    tracked.pop(p, None)
                self._move(p, d)
        if write:
            service = (self.w_seq[d] if seq else self.w_rand[d]) + nbytes * self.w_pb[d]
            if self.gc_p[d] and self.gc_draws[i] < self.gc_p[d]:
                service += self.gc_us[d]
            finish = self._io(d, t, service)
            shadow_finish = self._shadow_end
            if d == 0:
                self.fast_accesses += len(pages)
        latency = finish - t
        if self.queueing and finish > shadow_finish:
            self.migration_wait += finish - shadow_finish
        self.wait_us += latency - service
        self.accesses += len(pages)
        self.lat[i] = latency
        self.prev_finish = finish
        if finish > self.t_end:
            self.t_end = finish
        self.i = i + 1
        return latency, self.bg_io_us - bg0, self.evictions - ev0

    # ------------------------------------------------------------------------- migrations
    def migrate(self, p: int, d: int, window: int = 1000) -> float:
        """Move page ``p`` to device ``d`` on the migration agent's decision (a read on the source,
        a write on the destination, evictions if ``d`` is full); returns the background I/O time.
        ``p`` and any page it displaces are tracked for the migration reward during the next
        ``window`` requests (or until written or moved otherwise)."""
        loc = self.pool.loc
        src = loc[p]
        if src == d:
            raise ValueError(f"page {p} is on device {d} already")
        t = self.arrival_time()
        if self.i > 0 and self.prev_finish < t:
            t = self.prev_finish       # issued when it is decided: at the previous request's completion
        bg0 = self.bg_io_us
        self._track_until = self.i + window
        self._migrating = True         # its I/O stays out of the shadow queues
        if d < self.slowest:
            if src < self.slowest:
                self.lru[src].move_to_end(p)     # never the victim of a cascade its own move causes
            self._make_room(d, 1, t, track=True, protect=(p,))
        self._bg(src, t, self.page_read[src])
        self._bg(d, t, self.page_write[d])
        self._migrating = False
        self.tracked.setdefault(p, (src, self._track_until))
        self._move(p, d)
        self.migrations += 1
        return self.bg_io_us - bg0

    def start_window(self) -> None:
        """A new migration window: forget the expired tracked pages, the gain and the touched pages."""
        self.tracked = {p: v for p, v in self.tracked.items() if v[1] > self.i}
        self.migration_gain = 0.0
        self.migration_wait = 0.0
        self.touched = set()

    def candidates(self, k: int) -> tuple[list[tuple[int, int, int]], list[tuple[int, int, int]]]:
        """``(hot, cold)`` migration candidates, each a list of ``(page, source, destination)``:
        up to ``k`` pages touched since the last :meth:`start_window` that sit on a slower device, hottest
        first by decayed access frequency (destination: the fastest device), and the ``k`` least
        recently used pages of the bounded devices, oldest first (destination: the next slower
        device)."""
        loc, last, freq = self.pool.loc, self.last, self.freq
        now = self.i
        slow = [p for p in self.touched if loc[p] > 0]
        if len(slow) > k:
            slow = heapq.nlargest(k, slow, key=lambda p: (freq[p] * FREQ_DECAY ** (now - last[p]), last[p], -p))
        else:
            slow.sort(key=lambda p: (freq[p] * FREQ_DECAY ** (now - last[p]), last[p], -p), reverse=True)
        hot = [(p, loc[p], 0) for p in slow]
        cold_pool = []
        for d in range(self.slowest):
            cold_pool.extend((last[p], p, d) for p in itertools.islice(self.lru[d], k))
        cold_pool.sort()
        cold = [(p, d, d + 1) for _, p, d in cold_pool[:k]]
        return hot, cold

    def lru_age(self, d: int) -> int:
        """Requests since the last access of device ``d``'s least recently used page (-1 when ``d``
        is the slowest device or has free room): how long an unused page survives there under LRU."""
        if d >= self.slowest or self.pool.used[d] < self.pool.cap[d] or not self.lru[d]:
            return -1
        return self.i - self.last[next(iter(self.lru[d]))]

    def decayed_frequency(self, p: int) -> float:
        lp = self.last[p]
        return self.freq[p] * FREQ_DECAY ** (self.i - lp) if lp >= 0 else 0.0

    # ----------------------------------------------------------------------------- queries
    @property
    def done(self) -> bool:
        return self.i >= self.tr.n

    def backlog_us(self, d: int) -> float:
        """Queued work of device ``d`` at the next request's arrival (0 without queueing)."""
        if not self.queueing or self.done:
            return 0.0
        return max(0.0, self.busy[d] - self.arrival_time())

    def latencies(self) -> np.ndarray:
        """Latencies (us) of the requests served so far."""
        return np.frombuffer(self.lat, np.float64)[: self.i].copy()

    def check_invariants(self) -> None:
        """Raise AssertionError unless every page is on exactly one device, no device is over its
        capacity, the usage counts match the locations and the LRU orders hold exactly the pages
        of their devices."""
        loc = np.frombuffer(self.pool.loc, np.int8)
        assert np.all((loc >= 0) & (loc < self.n_devices)), "a page is on no device"
        counts = np.bincount(loc, minlength=self.n_devices).tolist()
        assert counts == self.pool.used, f"usage {self.pool.used} != pages per device {counts}"
        assert all(u <= c for u, c in zip(self.pool.used, self.pool.cap)), "a device is over capacity"
        for d in range(self.slowest):
            assert set(self.lru[d]) == set(np.flatnonzero(loc == d).tolist()), f"LRU of device {d} is out of sync"
