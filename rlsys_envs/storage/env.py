"""Hybrid storage placement and migration with two agents (after Sibyl and Harmonia).

* :class:`HybridStorageParallelEnv` -- the PettingZoo ``ParallelEnv`` with agents ``placement``
  and ``migration`` (``rlsys/HybridStorageParallel-v0``);
* :class:`HybridStorageEnv` -- the placement agent's single-agent view, the migration agent played
  by a heuristic or a checkpoint (``rlsys/HybridStorage-v0``);
* :class:`HybridStorageMigrationEnv` -- the migration agent's view, the placement agent played by
  a heuristic or a checkpoint (``rlsys/HybridStorageMigration-v0``); it steps only at the
  migration agent's decision points.
"""
from __future__ import annotations

import copy
import inspect
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
from gymnasium import spaces

from rlsys_envs.core import (check_bool, check_choice, check_float, check_int, draw_instance, entity_spaces,
                             instance_source)
from rlsys_envs.core.parallel import RlsysParallelEnv, SingleAgentView

from .generator import SHAPE_GROUPS, SHAPES, BlockTrace, SyntheticWorkload, episode_trace, load_trace
from .model import CONFIGS, FREQ_DECAY, PROFILES, StorageModel, capacities

REWARDS = ("latency", "sibyl")
PLACEMENT_FEATURES = ("base", "reuse")
ARRIVALS = ("trace", "closed")
INITIAL_PLACEMENTS = ("slow", "fast_first")
EVICTIONS = ("lru", "belady")
REQUEST_FEATURES = 6
REUSE_FEATURES = 2                      # placement_features="reuse": last reuse distance, fast LRU age
DEVICE_FEATURES = 3
CANDIDATE_FEATURES = 8
GLOBAL_FEATURES = 4
LOG2_SIZE = math.log2(1 + 256)          # request size saturates at 256 pages (1 MiB)
LOG2_COUNT = math.log2(1 + 1024)        # access counts / decayed frequencies saturate at 1,024
LOG2_INTERVAL = math.log2(1 + 2 ** 20)  # access intervals saturate at 2^20 requests
LOG2_BACKLOG = math.log2(1 + 1024)      # queue backlog saturates at 1,024 x the latency scale


def _log_norm(x: float, log2_max: float) -> float:
    v = math.log2(1.0 + x) / log2_max
    return v if v < 1.0 else 1.0


class HybridStorageParallelEnv(RlsysParallelEnv):
    """Hybrid storage data placement and migration with two agents (after Sibyl, ISCA 2022, and
    Harmonia, Nadig et al., arXiv 2503.20507).

    **Description.** A block trace (MSR Cambridge format, or a synthetic trace of one of the named
    workload shapes) is replayed request by request on a hybrid storage system of 2-4 devices
    (``config``: ``H&M`` Optane + SATA TLC SSD, ``H&L`` Optane + HDD, ``H&M&L``, ``H&N&M&L`` with an
    NVMe TLC tier), fastest first. Requests are split into 4 KiB pages; the fastest device holds
    ``fast_capacity`` of the episode's working set (Sibyl's 10 %), middle devices
    ``middle_capacity``, the slowest everything. The analytic device model
    (:mod:`rlsys_envs.storage.model`) serves each I/O in ``base latency + size / bandwidth`` with a
    FCFS queue per device; a full device evicts its least recently used pages to the next slower
    one, at the cost of a read and a write on those devices' queues. Two agents act at every step
    (one step = one request):

    - ``placement`` chooses the device of the request's pages (Sibyl): a write goes there, a read
      is served where its pages are and then moves them there if the action differs (a promotion
      or demotion, costing a background write);
    - ``migration`` (Harmonia-like, our design) gets a candidate list at every
      ``migration_interval``-th request: up to ``candidates`` hot pages on slower devices (most
      accessed recently, by decayed access frequency) to promote to the fastest device, and the
      ``candidates`` least recently used pages of the bounded devices to evict one tier down. It may
      migrate one candidate per step for up to ``migration_budget`` consecutive steps; choosing
      no-op (action 0) ends its turn until the next interval. Between its decision points its only
      legal action is the no-op.

    **Action Spaces.** ``placement``: ``Discrete(n_devices)``, device index (0 = fastest); masked:
    devices whose capacity can hold the request. ``migration``: ``Discrete(1 + 2 * candidates)``:
    0 no-op, ``1 + j`` promote hot candidate ``j``, ``1 + candidates + j`` evict cold candidate
    ``j``; masked (rows that exist, whose page is still where it was listed, budget left).
    An action outside a mask raises :class:`~rlsys_envs.core.InvalidActionError` before any change.

    **Observation Spaces.** Dict of float32 Boxes in ``[0, 1]`` plus the int8 ``action_mask``.

    - ``placement``: ``features`` ``[6 + 3 n_devices]`` of the *next* request (Sibyl's features):
      size ``log2(1 + pages) / log2(257)``, is write, is sequential, the largest access count of its
      pages ``log2(1 + c) / log2(1025)``, the shortest access interval in requests
      ``log2(1 + dt) / log2(1 + 2^20)`` (1 = never accessed), the largest decayed access frequency
      (same scale as counts); then per device the share of the request's pages on it, its free
      share of capacity, its queue backlog ``log2(1 + backlog / S) / log2(1025)`` (``S``: latency
      scale below). Values saturate at 1.
    - ``migration``: ``candidate_features`` ``[2 * candidates, 8]`` (hot rows first): listed,
      is hot, source and destination device ``/ (n - 1)``, decayed frequency, requests since the
      last access, access count (log scales as above), destination full; ``candidate_mask``
      ``[2 * candidates]`` (int8, rows the agent may choose now); ``global`` ``[4 + 2 n_devices]``:
      decision step, budget left / budget, episode progress, last window's mean latency
      ``log2(1 + L / S) / log2(1025)``, per device free share and queue backlog.

    **Rewards.** ``S`` = the slowest device's 4 KiB random-read service time. ``placement``, reward
    ``"latency"``: ``-(latency + placement_io_weight * background_io) / S`` where latency is the
    request's queueing wait plus service time (us) and background_io the device time (us) of the
    page moves and evictions this placement caused (with the default weight 0 the reward is the
    negative request latency; the background I/O then costs through the queues it delays).
    Reward ``"sibyl"`` (the Sibyl code's): ``0.1 / latency_ms - evictions ** 0.09``.
    ``migration`` (both variants), at every step:
    ``(gain - migration_wait - migration_io_weight * migration_io) / S``, where ``gain`` is the
    counterfactual service-time saving on this step's request of the pages moved by the agent's
    migrations (each page and any page its move evicted, read from its device before the
    migration instead of where it is), counted at a page's first read within ``migration_window``
    requests of its migration (then, or when it is written or moved otherwise, it stops
    counting); ``migration_wait`` the queueing delay the migrations' I/O added to the request (its
    completion minus its completion on shadow queues without the migration agent's I/O); and
    ``migration_io`` the device time of the migrations issued at this step (read on the source,
    write on the destination, evictions). A migration is issued at the previous request's
    completion (or at the step's arrival, when that comes first).

    **Starting State.** A trace window of ``episode_requests`` requests (drawn from
    ``self.np_random``: a synthetic trace, or a window of a loaded trace at a random offset). Every
    page on the slowest device (``initial_placement="slow"``), or the devices filled fastest
    first in the order of first access (``"fast_first"``); empty queues, no history.

    **Episode End.** Terminated after the last request of the window (no truncation).

    **Arguments.**

    - ``instance`` (``"train"``): a workload shape name (:data:`~rlsys_envs.storage.generator.SHAPES`),
      ``"train"`` / ``"heldout"`` / ``"all"`` (one shape of the group drawn per episode), a path to
      an MSR or Sibyl trace file, a :class:`~rlsys_envs.storage.generator.BlockTrace`, or an
      instance generator ``rng -> BlockTrace``.
    - ``config`` (``"H&M"``): ``H&M``, ``H&L``, ``H&M&L`` or ``H&N&M&L``.
    - ``episode_requests`` (10,000): requests per episode, in ``[10, 10^7]``.
    - ``fast_capacity`` (0.10): fastest device's capacity as a share of the working set, ``(0, 1]``.
    - ``middle_capacity`` (0.30): every middle device's share, ``(0, 1]``.
    - ``initial_placement`` (``"slow"``): ``slow`` or ``fast_first``.
    - ``eviction`` (``"lru"``): victim of a full device: ``lru``, or ``belady`` (future knowledge:
      the page whose next access is farthest or a write; the Oracle system, see the baselines).
    - ``arrival`` (``"trace"``): ``trace`` (open loop at the trace's times / ``load_factor``) or
      ``closed`` (each request when the previous completes; needed for untimed traces).
    - ``load_factor`` (1.0): arrival-rate multiplier of ``arrival="trace"``, in ``(0, 1000]``.
    - ``queueing`` (True): FCFS queues per device (False: every I/O served at once, background I/O
      costs no request any time).
    - ``flash_gc`` (False): GC stalls on flash devices' foreground writes.
    - ``migration_interval`` (100): requests between the migration agent's decision points.
    - ``migration_budget`` (4): migrations per interval, in ``[1, migration_interval]``.
    - ``candidates`` (8): hot and cold candidates each, in ``[1, 64]``.
    - ``migration_window`` (1,000): requests after a migration during which its gain counts.
    - ``reward`` (``"latency"``): ``latency`` or ``sibyl`` (the placement reward above).
    - ``placement_io_weight`` (0.0): weight of the placement's background I/O in its reward, ``[0, 100]``.
    - ``migration_io_weight`` (0.0): extra charge per us of migration device time in the migration
      reward (its latency cost is ``migration_wait``), ``[0, 100]``.
    - ``placement_features`` (``"base"``): ``base`` (the placement features above) or ``reuse``
      (two more at the end: the shortest last reuse distance of the request's pages and the
      fastest device's LRU age, see :meth:`_reuse_values`).
    - ``trace_limit`` (2,000,000): requests read from a trace file, in ``[1, 10^9]``.
    - ``render_mode``: ``None``, ``"ansi"`` or ``"rgb_array"``.

    **Metrics** (``info["metrics"]``): ``mean_latency_us``, ``p99_latency_us``, ``iops``,
    ``requests``, ``fast_access_share`` (page accesses served by the fastest device),
    ``evictions``, ``migrations``, ``placement_moves``, ``evictions_per_1k``, ``migrations_per_1k``,
    ``background_io_ms``, ``mean_wait_us``, ``working_set_pages``, ``fast_capacity_pages``.

    **Version History.** v0: first version.
    """

    shared_state_attributes = ("instance_source", "trace", "episode")

    def __init__(self, *, instance: Any = "train", config: str = "H&M", episode_requests: int = 10_000,
                 fast_capacity: float = 0.10, middle_capacity: float = 0.30, initial_placement: str = "slow",
                 eviction: str = "lru", arrival: str = "trace", load_factor: float = 1.0, queueing: bool = True,
                 flash_gc: bool = False,
                 migration_interval: int = 100, migration_budget: int = 4, candidates: int = 8,
                 migration_window: int = 1000,
                 reward: str = "latency", placement_io_weight: float = 0.0, migration_io_weight: float = 0.0,
                 placement_features: str = "base", trace_limit: int = 2_000_000,
                 render_mode: str | None = None):
        super().__init__(render_mode=render_mode)
        self.config = check_choice("config", config, tuple(CONFIGS))
        self.episode_requests = check_int("episode_requests", episode_requests, 10, 10_000_000)
        self.fast_capacity = check_float("fast_capacity", fast_capacity, 0.0, 1.0, low_inclusive=False)
        self.middle_capacity = check_float("middle_capacity", middle_capacity, 0.0, 1.0, low_inclusive=False)
        self.initial_placement = check_choice("initial_placement", initial_placement, INITIAL_PLACEMENTS)
        self.eviction = check_choice("eviction", eviction, EVICTIONS)
        self.arrival = check_choice("arrival", arrival, ARRIVALS)
        self.load_factor = check_float("load_factor", load_factor, 0.0, 1000.0, low_inclusive=False)
        self.queueing = check_bool("queueing", queueing)
        self.flash_gc = check_bool("flash_gc", flash_gc)
        self.migration_interval = check_int("migration_interval", migration_interval, 1, 1_000_000)
        self.migration_budget = check_int("migration_budget", migration_budget, 1, self.migration_interval)
        self.n_candidates = check_int("candidates", candidates, 1, 64)
        self.migration_window = check_int("migration_window", migration_window, 1, 10_000_000)
        self.reward_kind = check_choice("reward", reward, REWARDS)
        self._latency_reward = self.reward_kind == "latency"
        self.placement_features = check_choice("placement_features", placement_features, PLACEMENT_FEATURES)
        self._reuse_features = self.placement_features == "reuse"
        self.placement_io_weight = check_float("placement_io_weight", placement_io_weight, 0.0, 100.0)
        self.migration_io_weight = check_float("migration_io_weight", migration_io_weight, 0.0, 100.0)
        self.trace_limit = check_int("trace_limit", trace_limit, 1, 1_000_000_000)
        self.devices = tuple(PROFILES[k] for k in CONFIGS[self.config])
        self.n_devices = len(self.devices)
        slowest = self.devices[-1]
        #: the latency scale S of rewards and features: the slowest device's 4 KiB random read
        self.latency_scale_us = slowest.service_us(False, False, 4096)
        self.instance_source = self._source(instance, "instance")
        n = self.n_devices
        k2 = 2 * self.n_candidates
        self._declare_agent("placement", {
            "features": spaces.Box(0.0, 1.0, (REQUEST_FEATURES + DEVICE_FEATURES * n
                                              + (REUSE_FEATURES if self._reuse_features else 0),), np.float32)},
            spaces.Discrete(n), masked=True)
        self._declare_agent("migration", {
            **entity_spaces("candidate", k2, CANDIDATE_FEATURES),
            "global": spaces.Box(0.0, 1.0, (GLOBAL_FEATURES + 2 * n,), np.float32)},
            spaces.Discrete(1 + k2), masked=True)
        self.model: StorageModel | None = None
        self._noop_mask = np.zeros(1 + k2, bool)
        self._noop_mask[0] = True
        self._zero_table = np.zeros((k2, CANDIDATE_FEATURES), np.float32)
        self._zero_rows = np.zeros(k2, np.int8)
        self._zero_backlog = [0.0] * n
        self._zero_request = [0.0] * (REQUEST_FEATURES + n)
        self._zero_reuse = [0.0] * REUSE_FEATURES
        self._log_size_1 = min(1.0, math.log2(2.0) / LOG2_SIZE)

    # --------------------------------------------------------------------------- instances
    def _source(self, value, field: str):
        named = {name: (lambda s=name: SyntheticWorkload(s, self.episode_requests)) for name in SHAPES}
        named.update({g: (lambda g=g: SyntheticWorkload(g, self.episode_requests)) for g in SHAPE_GROUPS})
        return instance_source(value, instance_type=BlockTrace, named=named,
                               load=lambda p: load_trace(p, limit=self.trace_limit), field=field,
                               formats="MSR Cambridge CSV or Sibyl's 3-column CSV")

    def _reset_model(self, options: dict) -> None:
        given = options.get("instance")
        source = self.instance_source if given is None else self._source(given, 'options["instance"]')
        trace = draw_instance(source, self.np_random, BlockTrace)
        if trace.n_requests > self.episode_requests:
            start = int(self.np_random.integers(0, trace.n_requests - self.episode_requests + 1))
            trace = trace.window(start, self.episode_requests)
        if self.arrival == "trace" and not trace.timed:
            raise ValueError(f"trace {trace.name!r} has no timestamps (Sibyl's 3-column format): "
                             "use arrival='closed'")
        self.trace = trace
        self.episode = episode_trace(trace)
        ep = self.episode
        cap = capacities(ep.n_pages, self.n_devices, self.fast_capacity, self.middle_capacity)
        gc = self.np_random.random(ep.n).tolist() if self.flash_gc else None
        self.model = StorageModel(ep, self.devices, cap, queueing=self.queueing, arrival=self.arrival,
                                  load_factor=self.load_factor, initial=self.initial_placement,
                                  eviction=self.eviction, gc_draws=gc)
        self._all_legal = np.ones(self.n_devices, bool)
        self.decisions_left = 0
        self.hot: list = []
        self.cold: list = []
        self._used_rows: set[int] = set()
        self._table = self._zero_table
        self._window_latency = 0.0
        self._window_start = 0
        self._last_window_latency = 0.0
        self._prev_gain = 0.0
        self._prev_wait = 0.0
        self._dev_cache = (-1, None)
        self.history: list[tuple] = []
        self.migration_marks: list[tuple[int, int]] = []      # (request index, kind: 1 promote / 0 evict)
        self._record_history()

    # ----------------------------------------------------------------------------- masks
    def _agent_action_mask(self, agent: str) -> np.ndarray:
        m = self.model
        if agent == "placement":
            if m.i >= m.tr.n:
                return self._all_legal
            need = m.tr.npages[m.i]
            if need <= m.pool.cap[0]:
                return self._all_legal
            return np.asarray([c >= need for c in m.pool.cap], bool)
        if self.decisions_left <= 0 or m.i >= m.tr.n:
            return self._noop_mask
        mask = self._noop_mask.copy()
        mask[1:] = self._row_legal()
        return mask

    def _row_legal(self) -> np.ndarray:
        """Which candidate rows may be migrated now (listed, page still where listed, not used)."""
        k = self.n_candidates
        loc = self.model.pool.loc
        legal = np.zeros(2 * k, bool)
        for base, rows in ((0, self.hot), (k, self.cold)):
            for j, (p, src, _dst) in enumerate(rows):
                legal[base + j] = loc[p] == src and (base + j) not in self._used_rows
        return legal

    def forced(self, agent: str) -> bool:
        """Whether ``agent`` has exactly one legal action now (the migration agent between its
        decision points; the placement agent for a request that only the slowest device holds)."""
        m = self.model
        if agent == "migration":
            return self.decisions_left <= 0 or m.i >= m.tr.n
        if agent != "placement":
            self._known(agent)
        if m.i >= m.tr.n:
            return False
        need = m.tr.npages[m.i]
        if need <= m.pool.cap[0]:
            return False
        return sum(1 for c in m.pool.cap if c >= need) == 1

    def forced_action(self, agent: str) -> int:
        if agent == "migration":
            return 0
        return super().forced_action(agent)

    # ----------------------------------------------------------------------------- step
    def _apply_actions(self, actions):
        m = self.model
        scale = self.latency_scale_us
        mig_cost = 0.0
        a = actions["migration"]
        if a == 0:
            self.decisions_left = 0
        else:
            a = int(a)
            k = self.n_candidates
            row = a - 1
            p, _src, dst = self.hot[row] if row < k else self.cold[row - k]
            mig_cost = m.migrate(p, dst, self.migration_window)
            self._used_rows.add(row)
            self.migration_marks.append((m.i, 1 if row < k else 0))
            self.decisions_left -= 1
        d = actions["placement"]
        latency, bg, evictions = m.serve(d if type(d) is int else int(d))
        self._window_latency += latency
        if self._latency_reward:
            r_place = -(latency + self.placement_io_weight * bg) / scale
        else:
            r_place = 0.1 / max(latency / 1000.0, 1e-6) - evictions ** 0.09
        g, w = m.migration_gain, m.migration_wait
        if g == self._prev_gain and w == self._prev_wait and mig_cost == 0.0:
            r_mig = 0.0
        else:
            gain, wait = g - self._prev_gain, w - self._prev_wait
            self._prev_gain, self._prev_wait = g, w
            r_mig = (gain - wait - self.migration_io_weight * mig_cost) / scale
        done = m.i >= m.tr.n
        if done or m.i % self.migration_interval == 0:
            self._end_window()
        return {"placement": r_place, "migration": r_mig}, done, False

    def _end_window(self) -> None:
        m = self.model
        n = m.i - self._window_start
        self._last_window_latency = self._window_latency / n if n else 0.0
        self._record_history()
        self._window_latency = 0.0
        self._window_start = m.i
        # candidates from the window that just ended (its touched pages), then a new window
        self.hot, self.cold = ([], []) if m.done else m.candidates(self.n_candidates)
        m.start_window()
        self._prev_gain = 0.0
        self._prev_wait = 0.0
        self._used_rows = set()
        self.decisions_left = self.migration_budget if (self.hot or self.cold) and not m.done else 0
        self._table = self._candidate_table() if self.decisions_left else self._zero_table

    def _record_history(self) -> None:
        m = self.model
        used = [u / c for u, c in zip(m.pool.used, m.pool.cap)]
        self.history.append((m.i, used, self._last_window_latency))

    # ------------------------------------------------------------------------ observations
    def _agent_observation(self, agent: str) -> dict[str, np.ndarray]:
        if agent == "placement":
            return {"features": self._placement_features()}
        decision = self.decisions_left > 0 and not self.model.done
        rows = self._agent_action_mask("migration")[1:].astype(np.int8) if decision else self._zero_rows.copy()
        return {"candidate_features": self._table.copy(), "candidate_mask": rows, "global": self._global_features()}

    def _device_features(self) -> tuple[list[float], list[float]]:
        """Free share and queue backlog of every device (computed once per state)."""
        m = self.model
        cache = self._dev_cache
        if cache[0] == m.i:
            return cache[1]
        free = [(c - u) / c for u, c in zip(m.pool.used, m.pool.cap)]
        if self.queueing and m.i < m.tr.n:
            t = m.arrival_time()
            inv = 1.0 / self.latency_scale_us
            log2 = math.log2
            backlog = [0.0 if b <= t else min(1.0, log2(1.0 + (b - t) * inv) / LOG2_BACKLOG) for b in m.busy]
        else:
            backlog = self._zero_backlog
        self._dev_cache = (m.i, (free, backlog))
        return free, backlog

    def _placement_features(self) -> np.ndarray:
        m = self.model
        free, backlog = self._device_features()
        tr = m.tr
        i = m.i
        if i >= tr.n:
            return np.array(self._zero_request + free + backlog
                            + (self._zero_reuse if self._reuse_features else []), np.float32)
        lo, hi = tr.ptr[i], tr.ptr[i + 1]
        loc, count, last, freq = m.pool.loc, m.count, m.last, m.freq
        share = [0.0] * self.n_devices
        log2 = math.log2
        if hi - lo == 1:
            p = tr.pid[lo]
            share[loc[p]] = 1.0
            cmax = count[p]
            if cmax:
                interval = i - last[p]
                fmax = freq[p] * FREQ_DECAY ** interval
                f_interval = min(1.0, log2(1.0 + interval) / LOG2_INTERVAL)
                f_count = min(1.0, log2(1.0 + cmax) / LOG2_COUNT)
                f_freq = min(1.0, log2(1.0 + fmax) / LOG2_COUNT)
            else:
                f_interval, f_count, f_freq = 1.0, 0.0, 0.0
            f_size = self._log_size_1
        else:
            cmax, interval, fmax = 0, -1, 0.0
            inv = 1.0 / (hi - lo)
            for p in tr.pid[lo:hi]:
                share[loc[p]] += inv
                c = count[p]
                if c:
                    cmax = c if c > cmax else cmax
                    dt = i - last[p]
                    interval = dt if interval < 0 or dt < interval else interval
                    fd = freq[p] * FREQ_DECAY ** dt
                    fmax = fd if fd > fmax else fmax
            f_interval = 1.0 if interval < 0 else min(1.0, log2(1.0 + interval) / LOG2_INTERVAL)
            f_count = min(1.0, log2(1.0 + cmax) / LOG2_COUNT)
            f_freq = min(1.0, log2(1.0 + fmax) / LOG2_COUNT)
            f_size = min(1.0, log2(1.0 + (hi - lo)) / LOG2_SIZE)
        out = [f_size, 1.0 if tr.write[i] else 0.0, 1.0 if tr.seq[i] else 0.0, f_count, f_interval, f_freq] \
            + share + free + backlog
        if self._reuse_features:
            out += self._reuse_values(tr.pid[lo:hi])
        return np.array(out, np.float32)

    def _reuse_values(self, pages) -> list[float]:
        """``placement_features="reuse"``: the shortest last reuse distance of the request's pages
        (requests between their last two accesses; 1 = none yet) and the fastest device's LRU age
        (requests since the last access of its least recently used page, i.e. how long an unused
        page stays there; 1 = it has free room), both ``log2(1 + x) / log2(1 + 2^20)``."""
        m = self.model
        gap = m.gap
        g = min(gap[p] if gap[p] >= 0 else 1 << 40 for p in pages)
        age = m.lru_age(0)
        return [1.0 if g >= 1 << 40 else _log_norm(g, LOG2_INTERVAL),
                1.0 if age < 0 else _log_norm(age, LOG2_INTERVAL)]

    def _global_features(self) -> np.ndarray:
        m = self.model
        free, backlog = self._device_features()
        decision = self.decisions_left > 0 and not m.done
        g = [1.0 if decision else 0.0, self.decisions_left / self.migration_budget if decision else 0.0,
             m.i / m.tr.n, _log_norm(self._last_window_latency / self.latency_scale_us, LOG2_BACKLOG)]
        return np.asarray(g + free + backlog, np.float32)

    def _candidate_table(self) -> np.ndarray:
        m = self.model
        k = self.n_candidates
        table = np.zeros((2 * k, CANDIDATE_FEATURES), np.float32)
        span = max(self.n_devices - 1, 1)
        for base, rows, hot in ((0, self.hot, 1.0), (k, self.cold, 0.0)):
            for j, (p, src, dst) in enumerate(rows):
                last = m.last[p]
                table[base + j] = (1.0, hot, src / span, dst / span,
                                   _log_norm(m.decayed_frequency(p), LOG2_COUNT),
                                   1.0 if last < 0 else _log_norm(m.i - last, LOG2_INTERVAL),
                                   _log_norm(m.count[p], LOG2_COUNT),
                                   1.0 if dst < m.slowest and m.free_pages(dst) == 0 else 0.0)
        return table

    def _agent_info(self, agent: str) -> dict[str, Any]:
        return {}

    # ---------------------------------------------------------------------------- metrics
    def _episode_metrics(self) -> dict[str, float]:
        m = self.model
        lat = m.latencies()
        n = max(len(lat), 1)
        span_s = (m.t_end - (0.0 if m.closed else m.tr.t_us[0] / m.load_factor)) / 1e6
        return {
            "mean_latency_us": float(lat.mean()) if len(lat) else 0.0,
            "p99_latency_us": float(np.percentile(lat, 99)) if len(lat) else 0.0,
            "iops": len(lat) / span_s if span_s > 0 else 0.0,
            "requests": float(len(lat)),
            "fast_access_share": m.fast_accesses / m.accesses if m.accesses else 0.0,
            "evictions": float(m.evictions),
            "migrations": float(m.migrations),
            "placement_moves": float(m.placement_moves),
            "evictions_per_1k": 1000.0 * m.evictions / n,
            "migrations_per_1k": 1000.0 * m.migrations / n,
            "background_io_ms": m.bg_io_us / 1000.0,
            "mean_wait_us": m.wait_us / n,
            "working_set_pages": float(m.tr.n_pages),
            "fast_capacity_pages": float(m.pool.cap[0]),
        }

    # ------------------------------------------------------------------------------ render
    def _render_ansi(self) -> str:
        from .render import render_ansi
        return render_ansi(self)

    def _render_rgb(self) -> np.ndarray:
        from .render import render_rgb
        return render_rgb(self)


# =========================================================================== single-agent views
def _storage_env(env) -> HybridStorageParallelEnv:
    """The parallel storage environment behind ``env`` (itself, or a view's)."""
    return env.parallel if isinstance(env, SingleAgentView) else env


def partner_factory(value, agent: str, field: str):
    """A zero-argument factory of the policy that plays ``agent``: a heuristic name of that agent
    (``rlsys_envs.storage.baselines``), a checkpoint ``.zip`` path or shipped name (greedy; loaded with
    ``rlsys_agents.fast_inference.numpy_partner``, i.e. torch, only then: a numpy copy of an MLP policy, else
    ``rlsys_agents.multiagent.CheckpointPartner``), or a factory / Policy class."""
    from .baselines import BASELINES, MIGRATION_BASELINES

    table = BASELINES if agent == "placement" else MIGRATION_BASELINES
    if isinstance(value, str) and value in table:
        return table[value]
    if isinstance(value, (str, os.PathLike)):
        from rlsys_agents.shipped import is_checkpoint, resolve_checkpoint    # a shipped checkpoint by name, too

        value = resolve_checkpoint(value) if is_checkpoint(value) else value
    if isinstance(value, (str, os.PathLike)) and str(value).endswith(".zip"):
        if not Path(value).is_file():
            raise ValueError(f"{field}: checkpoint {str(value)!r} does not exist")
        from rlsys_agents.fast_inference import numpy_partner    # torch is imported only for a checkpoint partner

        make = numpy_partner(value)
        return lambda: copy.deepcopy(make())
    if callable(value) and not isinstance(value, str):
        return value
    raise ValueError(f"{field} must be one of {', '.join(map(repr, table))} or a path to a checkpoint .zip; "
                     f"got {value!r}")


def _merged_signature(extra: list[inspect.Parameter]) -> inspect.Signature:
    """The view's constructor signature: the parallel env's keyword arguments plus ``extra``."""
    params = [p for name, p in inspect.signature(HybridStorageParallelEnv.__init__).parameters.items()
              if name not in ("self", "render_mode")]
    render = inspect.signature(HybridStorageParallelEnv.__init__).parameters["render_mode"]
    self_param = inspect.Parameter("self", inspect.Parameter.POSITIONAL_OR_KEYWORD)
    return inspect.Signature([self_param] + params + extra + [render])


def _init_view(view: SingleAgentView, agent: str, other: str, partner, render_mode, env_kwargs: dict) -> None:
    """Build ``view`` as ``agent``'s view, ``other`` played by ``partner`` (a name or a checkpoint)."""
    SingleAgentView.__init__(view, parallel_env=lambda: HybridStorageParallelEnv(**env_kwargs), agent=agent,
                             partners={other: partner_factory(partner, other, other)}, render_mode=render_mode,
                             lazy_partners=True)


class HybridStorageEnv(SingleAgentView):
    """The placement agent of :class:`HybridStorageParallelEnv` as a Gymnasium environment
    (``rlsys/HybridStorage-v0``; the Sibyl setting with the default ``migration="none"``).

    Observation, action space (``Discrete(n_devices)``), placement reward, starting state, episode
    end, arguments and metrics are those of :class:`HybridStorageParallelEnv` (its ``placement``
    agent); one step = one request. Extra argument ``migration`` (``"none"``): the migration
    partner, a baseline of ``rlsys/HybridStorageMigration-v0`` (``none``, ``hps``, ``hot_cold``,
    ``oracle``, ``random``, the shipped ``harmonia_migration``) or a checkpoint ``.zip`` of a
    migration agent. ``info["partner_actions"]`` has its
    action of the step.

    **Version History.** v0: first version.
    """

    def __init__(self, *, migration: Any = "none", render_mode: str | None = None, **env_kwargs):
        _init_view(self, "placement", "migration", migration, render_mode, env_kwargs)

    __init__.__signature__ = _merged_signature(
        [inspect.Parameter("migration", inspect.Parameter.KEYWORD_ONLY, default="none")])


class HybridStorageMigrationEnv(SingleAgentView):
    """The migration agent of :class:`HybridStorageParallelEnv` as a Gymnasium environment
    (``rlsys/HybridStorageMigration-v0``), stepping only at its decision points.

    One step = one migration decision: the view plays the parallel environment on (the placement
    partner placing every request, the migration agent's forced no-op between its decision points)
    until the migration agent has a choice again or the episode ends, and the reward is the sum of
    its per-request rewards over those requests (so the return equals its return in the parallel
    environment). Observation, action space (``Discrete(1 + 2 * candidates)``), reward, arguments
    and metrics are those of the ``migration`` agent of :class:`HybridStorageParallelEnv`. Extra
    argument ``placement`` (``"cde"``): the placement partner, a baseline of
    ``rlsys/HybridStorage-v0`` (``slow_only``, ``fast_only``, ``cde``, ``hps``, ``lru``, ``oracle``,
    ``random``, the shipped ``sibyl``) or a checkpoint ``.zip`` of a placement agent. After
    ``reset`` the view stands at the first decision point (at the last
    request if the episode has none).

    **Version History.** v0: first version.
    """

    def __init__(self, *, placement: Any = "cde", render_mode: str | None = None, **env_kwargs):
        _init_view(self, "migration", "placement", placement, render_mode, env_kwargs)

    __init__.__signature__ = _merged_signature(
        [inspect.Parameter("placement", inspect.Parameter.KEYWORD_ONLY, default="cde")])

    def _skippable(self) -> bool:
        par = self.parallel
        return par.decisions_left <= 0 and par.model.i < par.model.tr.n - 1

    def _reset_model(self, options):
        super()._reset_model(options)
        while self._skippable():
            super()._apply_action(0)

    def _apply_action(self, action):
        reward, terminated, truncated = super()._apply_action(action)
        while not (terminated or truncated) and self._skippable():
            r, terminated, truncated = super()._apply_action(0)
            reward += r
        return reward, terminated, truncated
