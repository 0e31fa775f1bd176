"""The memory mapping game (``rlsys/MemoryMapping-v0``), after mallocGame (Wang et al., 2023)."""
from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from rlsys_envs.core import (FixedInstance, RlsysEnv, SeededDraw, check_bool, check_choice, check_float, check_int,
                             draw_instance, entity_spaces, instance_source, pack_entities)

from .generator import SIZES, LayeredPrograms, load_csv
from .generator import max_buffers as preset_max_buffers
from .model import MemoryState, Program

OBJECTIVES = ("map", "allocate")
ORDERS = ("xla", "start", "size", "density")
BUFFER_FEATURES = 11
CANDIDATE_FEATURES = 14
GLOBAL_FEATURES = 6
OCCUPANCY_BINS = 32


def buffer_order(program: Program, order: str) -> np.ndarray:
    """The presentation order of the buffers (a permutation of ``0 .. N-1``).

    ``xla``: decreasing standalone saving / sqrt(size) (XLA's memory-boundedness order); ``start``:
    increasing start, larger first; ``size``: decreasing size, earlier first; ``density``:
    decreasing standalone saving per byte. Ties: the lower index.
    """
    p = program
    idx = np.arange(p.n_buffers)
    if order == "xla":
        return np.lexsort((idx, -p.standalone / np.sqrt(p.size)))
    if order == "density":
        return np.lexsort((idx, -p.standalone / p.size))
    if order == "start":
        return np.lexsort((idx, -p.size, p.start))
    if order == "size":
        return np.lexsort((idx, p.start, -p.size))
    raise ValueError(f"order must be one of {', '.join(ORDERS)}; got {order!r}")


class MemoryMappingEnv(RlsysEnv):
    """The memory mapping game: keep each buffer of an ML program in fast on-chip memory (and where),
    or leave it in slow HBM, to minimise the program's run time.

    **Description.** After mallocGame (Wang et al., "Optimizing Memory Mapping Using Deep
    Reinforcement Learning", 2023), on public facts about XLA's memory-space assignment. A program
    is a schedule of ``T`` operations; buffer ``i`` has a size, a live range ``[start_i, end_i)``
    over positions and the accesses of the operations that read or write it. Operation time is
    XLA's roofline ``max(compute, bytes from HBM / bw_slow + bytes from fast memory / bw_fast)`` and
    program time is the sum (:mod:`rlsys_envs.malloc.model`): once an op is compute-bound, more fast
    buffers do not help it, so savings are not additive. Fast memory is the address range
    ``[0, capacity)``; two buffers live at the same time may not overlap in address
    (``core.TimeAddressMap``). Buffers are presented one per step in a fixed ``order``.

    **Action Space.** ``Discrete(max_candidates + 1)``. Action ``k < max_candidates`` puts the
    current buffer at the ``k``-th candidate offset; action ``max_candidates`` leaves it in slow
    memory. The candidates are the *canonical* positions where the buffer fits (0 and the end
    addresses of placed buffers that overlap it in time, as in MiniMalloc / TelaMalloc), lowest
    first: the lowest ``max_candidates`` of them, with the best-fit one (smallest free gap that
    holds the buffer, XLA's choice) always included in place of the highest. Mask: the candidate
    slots that hold a position (every offered position fits, so the mask is also "fits there"),
    and the slow action. In ``objective="allocate"`` the slow action is legal only when the buffer
    fits nowhere, and then it ends the episode as a failure. A masked-out action raises
    :class:`~rlsys_envs.core.InvalidActionError` and changes nothing.

    **Buffer choice** (``buffer_choice=True``): the agent also picks *which* undecided buffer to
    decide, as MiniMalloc's search does. ``Discrete(max_buffers * (max_candidates + 1))``: action
    ``i * (max_candidates + 1) + k`` puts buffer ``i`` at its ``k``-th offered position (``k =
    max_candidates``: slow memory). Each buffer's offered positions are kept per buffer and
    recomputed only for the buffers live at the same time as the one just placed; they always
    include the highest one (the top of the placed buffers it overlaps, MiniMalloc's floor), so
    every canonical packing is reachable. Mask: every undecided buffer's offered slots and, in
    ``map`` mode, its slow action; in ``allocate`` mode, once some undecided buffer fits nowhere,
    only that buffer's slow action (the episode can no longer succeed; taking it ends it).

    **Observation Space.** ``Dict`` of ``Box`` in ``[0, 1]`` (savings are normalised by the largest
    standalone saving of the program, sizes and addresses by ``capacity``, positions by ``T``):

    - ``buffers_features`` float32 ``[max_buffers, 11]``: start, end, size, standalone saving (in
      fast memory alone), saving if placed now (0 once decided), in fast memory, in slow memory
      (decided), offset (if fast), is the current buffer, overlaps the current buffer in time,
      undecided. ``buffers_mask`` int8: real rows.
    - ``candidates_features`` float32 ``[max_candidates + 1, 14]`` (row ``k`` = action ``k``;
      empty slots are zero rows): is the slow action, offset, free gap above it, gap left after
      placing (gap - size), top address after placing, is the best-fit one, is the lowest one;
      then the current buffer's size, saving now, standalone saving, live length, progress of the
      episode, peak address in use over its live range, and that peak after placing here.
      ``candidates_mask`` int8: rows that are actions now.
    - With ``buffer_choice``: the candidate table has ``max_buffers * (max_candidates + 1)`` rows
      (row = action, the same 14 features for that buffer); buffer columns 8-9 are the number of
      offered positions / ``max_candidates`` and the floor (highest placed address over the live
      range) / ``capacity``; global features 4-5 are the highest address in use / ``capacity`` and
      the share of undecided buffers that fit somewhere.
    - ``occupancy`` float32 ``[32]``: peak address in use per time bin (32 equal bins of ``T``).
    - ``global_features`` float32 ``[6]``: progress, program time now / all-slow time, share of the
      all-fast saving reached, share of buffers in fast memory, fast bytes live at the current
      buffer's start / capacity, offered candidates / max_candidates.

    **Rewards.** ``objective="map"``: the decrease of the modelled program time from this step's
    decision divided by the all-slow program time, so the undiscounted return is the fraction of
    run time saved. ``objective="allocate"``: ``1 / N`` per buffer placed (return 1.0 = all placed).

    **Starting State.** Nothing in fast memory; the program drawn from ``instance``.

    **Episode End.** Terminated after the last buffer; in ``allocate`` mode also when a buffer fits
    nowhere (metric ``allocated = 0``). Never truncated.

    **Arguments.**

    - ``instance`` (``"medium"``): ``tiny`` / ``small`` / ``medium`` / ``large`` (generated training
      steps of layered networks, about 7 / 50 / 300 / 2,000 buffers; :mod:`.generator`), a path to a
      MiniMalloc / idealloc CSV, a :class:`~rlsys_envs.malloc.model.Program`, or a generator
      ``rng -> Program``.
    - ``objective`` (``"map"``): ``map`` (the game) or ``allocate`` (place every buffer, MiniMalloc's
      static allocation problem).
    - ``order`` (``"xla"``): ``xla``, ``start``, ``size`` or ``density`` (:func:`buffer_order`).
    - ``max_candidates`` (16): candidate offsets per step, in ``[1, 1024]``.
    - ``capacity_fraction`` (0.25): fast capacity / peak live bytes of generated programs (and of
      CSV files whose name gives no capacity), in ``(0, 10]``.
    - ``benefit_seed`` (0): seed of the synthetic access model of CSV files, in ``[0, 2**31)``.
    - ``instance_seed`` (None): draw one generated program from this seed and play it every episode.
    - ``max_buffers`` (None: the preset's largest count, or the fixed instance's; 512 for a
      generator): rows of the buffer table, in ``[1, 100000]``.
    - ``buffer_choice`` (False): the agent picks the buffer too (above).
    - ``render_mode``: ``None``, ``"ansi"`` or ``"rgb_array"`` (the memory map).

    **Metrics** (``info["metrics"]`` at the end): ``saved_fraction`` (run time saved / all-slow
    time), ``saved_of_max`` (saved / the all-fast saving, an upper bound), ``speedup`` (all-slow /
    final time), ``fast_buffers``, ``fast_bytes_fraction``, ``peak_address_fraction``,
    ``allocated`` (1 if every buffer is in fast memory), ``allocated_fraction``, ``return``.

    **Variants** (registry): ``small``, ``start_order``, ``allocate``, ``allocate_choice``; see
    ``docs/envs/malloc.md``.

    **Version History.** v0: initial version.
    """

    shared_state_attributes = ("instance_source", "program", "order_index", "_static")

    def __init__(self, *, instance: Any = "medium", objective: str = "map", order: str = "xla",
                 max_candidates: int = 16, capacity_fraction: float = 0.25, benefit_seed: int = 0,
                 instance_seed: int | None = None, max_buffers: int | None = None, buffer_choice: bool = False,
                 render_mode: str | None = None):
        super().__init__(render_mode=render_mode)
        self.buffer_choice = check_bool("buffer_choice", buffer_choice)
        self.objective = check_choice("objective", objective, OBJECTIVES)
        self.order = check_choice("order", order, ORDERS)
        self.max_candidates = check_int("max_candidates", max_candidates, 1, 1024)
        self.capacity_fraction = check_float("capacity_fraction", capacity_fraction, 0.0, 10.0, low_inclusive=False)
        self.benefit_seed = check_int("benefit_seed", benefit_seed, 0, 2**31 - 1)
        self._preset = instance if isinstance(instance, str) and instance in SIZES else None
        self.instance_source = self._source(instance, "instance")
        if instance_seed is not None:
            if isinstance(self.instance_source, FixedInstance):
                raise ValueError("instance_seed fixes a generated program; the instance is fixed already")
            self.instance_source = SeededDraw(self.instance_source, check_int("instance_seed", instance_seed, 0,
                                                                              2**63 - 1))
        if isinstance(self.instance_source, FixedInstance):
            auto = self.instance_source.instance.n_buffers
        elif self._preset is not None:
            auto = preset_max_buffers(self._preset)
        else:
            auto = 512
        self.max_buffers = auto if max_buffers is None else check_int("max_buffers", max_buffers, 1, 100_000)
        if isinstance(self.instance_source, FixedInstance) and self.max_buffers < auto:
            raise ValueError(f"max_buffers must be >= the program's {auto} buffers, got {self.max_buffers}")
        self.slots = self.max_candidates + 1          # actions per buffer: its candidates, then slow
        n_actions = self.max_buffers * self.slots if self.buffer_choice else self.slots
        self.action_space = self.masked_discrete(n_actions)
        self.observation_space = spaces.Dict({
            **entity_spaces("buffers", self.max_buffers, BUFFER_FEATURES),
            **entity_spaces("candidates", n_actions, CANDIDATE_FEATURES),
            "occupancy": spaces.Box(0.0, 1.0, (OCCUPANCY_BINS,), np.float32),
            "global_features": spaces.Box(0.0, 1.0, (GLOBAL_FEATURES,), np.float32),
        })
        self.program: Program | None = None

    # --------------------------------------------------------------------------- instances
    def _source(self, value, field: str):
        named = {name: (lambda name=name: LayeredPrograms(name, self.capacity_fraction)) for name in SIZES}
        return instance_source(value, instance_type=Program, named=named, load=self._load, field=field,
                               formats="MiniMalloc / idealloc CSV: id,lower,upper,size")

    def _load(self, path) -> Program:
        return load_csv(path, capacity_fraction=self.capacity_fraction, seed=self.benefit_seed)

    # ----------------------------------------------------------------------------- episode
    def _reset_model(self, options: dict) -> None:
        given = options.get("instance")
        source = self.instance_source if given is None else self._source(given, 'options["instance"]')
        program = draw_instance(source, self.np_random, Program)
        if program.n_buffers > self.max_buffers:
            raise ValueError(f"program {program.name!r} has {program.n_buffers} buffers, more than "
                             f"max_buffers={self.max_buffers}")
        self.program = program
        self.state = MemoryState(program)
        self.order_index = buffer_order(program, self.order)
        self.step_index = 0
        self.failed = False
        self.total_return = 0.0
        p = program
        self._scale = float(max(p.standalone.max(), 1e-300))
        cap = max(p.capacity, 1)
        static = np.zeros((p.n_buffers, 4), np.float32)
        static[:, 0] = p.start / p.n_ops
        static[:, 1] = p.end / p.n_ops
        static[:, 2] = np.minimum(p.size / cap, 1.0)
        static[:, 3] = p.standalone / self._scale
        edges = np.linspace(0, p.n_ops, OCCUPANCY_BINS + 1)
        self._static = (static, np.floor(edges[:-1]).astype(np.int64), np.ceil(edges[1:]).astype(np.int64))
        self.occupancy = np.zeros(OCCUPANCY_BINS, np.float64)
        self._gain = p.standalone.copy()
        self._live_fast = np.zeros(p.n_ops, np.int64)     # fast bytes live at each position
        self._mask = None
        self._n_fast = 0
        # the buffer table, kept up to date step by step (fixed order; rebuilt each step with buffer choice)
        self._rows = np.zeros((self.max_buffers, BUFFER_FEATURES), np.float32)
        self._rows[: p.n_buffers, :4] = static
        self._rows[: p.n_buffers, 4] = np.minimum(self._gain / self._scale, 1.0)
        self._rows[: p.n_buffers, 10] = 1.0
        self._buffers_mask = np.zeros(self.max_buffers, np.int8)
        self._buffers_mask[: p.n_buffers] = 1
        self._marked = -1                                 # the buffer whose row says "current"
        if self.buffer_choice:
            n, k = p.n_buffers, self.max_candidates
            self._n_cand = np.zeros(n, np.int64)          # offered positions per buffer (0: decided / none)
            self._c_off = np.zeros((n, k), np.int64)      # their offsets (lowest first) and free gaps
            self._c_gap = np.zeros((n, k), np.int64)
            self._c_best = np.full(n, -1, np.int64)       # slot of the best-fit position
            self._floor = np.zeros(n, np.int64)           # highest placed address over the live range
            self._order_pos = 0
            self._offer(np.arange(n))
        self._candidates()

    @property
    def slow_action(self) -> int:
        """The action that leaves the current buffer in slow memory (``max_candidates``; with
        ``buffer_choice``, the current buffer's slow action)."""
        if self.buffer_choice:
            return self.current * self.slots + self.max_candidates
        return self.max_candidates

    @property
    def current(self) -> int:
        """The buffer to decide now (the last one once the episode is over). With
        ``buffer_choice`` the agent picks any undecided buffer; ``current`` is then the first
        undecided one in ``order`` (in ``allocate`` mode a buffer that fits nowhere, if any),
        the one the fixed-order baselines decide."""
        if self.buffer_choice:
            return self._current
        return int(self.order_index[min(self.step_index, self.program.n_buffers - 1)])

    @property
    def done(self) -> bool:
        return self.failed or self.step_index >= self.program.n_buffers

    def _select(self, offsets, fits, gaps, keep_top: bool) -> tuple[np.ndarray, int]:
        """Which canonical positions to offer (indices into ``offsets``, lowest first) and the
        slot of the best-fit one (-1: none fits): the lowest ``max_candidates`` that fit, with
        the best-fit one (and, if ``keep_top``, the highest, MiniMalloc's floor) always kept in
        place of the highest others."""
        ok = np.flatnonzero(fits)
        if not len(ok):
            return ok, -1
        best = int(ok[np.argmin(gaps[ok])])
        k = self.max_candidates
        keep = ok
        if len(ok) > k:
            required = list(dict.fromkeys(([int(ok[-1])] if keep_top else []) + [best]))[:k]
            others = ok[~np.isin(ok, required)][: k - len(required)]
            keep = np.sort(np.concatenate([others, required]).astype(np.int64))
        hit = np.flatnonzero(keep == best)
        return keep, int(hit[0]) if len(hit) else -1

    def _candidates(self) -> None:
        """The offered offsets of the current buffer (``self.cand_offsets``, ``self.cand_gaps``)
        and ``self.best_fit``, the action that puts it at its best-fit position (-1: none)."""
        if self.buffer_choice:
            self._choose_current()
            i = self._current
            k = int(self._n_cand[i]) if not self.done else 0
            self.cand_offsets, self.cand_gaps = self._c_off[i, :k].copy(), self._c_gap[i, :k].copy()
            b = int(self._c_best[i]) if k else -1
            self.best_fit = i * self.slots + b if b >= 0 else -1
            return
        if self.done:
            self.cand_offsets = self.cand_gaps = np.zeros(0, np.int64)
            self.best_fit, self._peak = -1, 0
            self._mark_current(-1)
            return
        p, i = self.program, self.current
        offsets, fits, gaps, self._peak = self.state.map.candidates(int(p.start[i]), int(p.end[i]), int(p.size[i]))
        keep, self.best_fit = self._select(offsets, fits, gaps, keep_top=False)
        self.cand_offsets, self.cand_gaps = offsets[keep], gaps[keep]
        self._mark_current(i)

    def _mark_current(self, i: int) -> None:
        """Columns 8-9 of the buffer table (fixed order): the current buffer, and who overlaps it."""
        p, rows = self.program, self._rows
        if self._marked >= 0:
            rows[self._marked, 8] = 0.0
        if i < 0:
            rows[:, 8:10] = 0.0
        else:
            rows[i, 8] = 1.0
            rows[: p.n_buffers, 9] = (p.start < p.end[i]) & (p.end > p.start[i])
        self._marked = i

    # ------------------------------------------------------------------- buffer-choice mode
    def _offer(self, rows: np.ndarray) -> None:
        """Recompute the offered positions of the undecided buffers ``rows`` (buffer choice)."""
        p, st = self.program, self.state
        for j in rows.tolist():
            if st.decided[j]:
                self._n_cand[j] = 0
                continue
            s, e = int(p.start[j]), int(p.end[j])
            offsets, fits, gaps, self._floor[j] = st.map.candidates(s, e, int(p.size[j]))
            keep, best = self._select(offsets, fits, gaps, keep_top=True)
            m = len(keep)
            self._n_cand[j], self._c_best[j] = m, best
            self._c_off[j, :m], self._c_gap[j, :m] = offsets[keep], gaps[keep]

    def _choose_current(self) -> None:
        st = self.state
        order = self.order_index
        while self._order_pos < len(order) - 1 and st.decided[order[self._order_pos]]:
            self._order_pos += 1
        self._current = int(order[self._order_pos])
        if self.objective == "allocate" and not self.done:
            stuck = np.flatnonzero(~st.decided & (self._n_cand == 0))
            if len(stuck):
                rank = np.empty(len(order), np.int64)
                rank[order] = np.arange(len(order))
                self._current = int(stuck[np.argmin(rank[stuck])])

    def action_for(self, buffer: int, offset: int | None) -> int | None:
        """The action that puts ``buffer`` at ``offset`` (None: leaves it in slow memory), or None
        if that position is not offered now. In the fixed-order mode ``buffer`` must be the
        current one."""
        if not self.buffer_choice:
            if int(buffer) != self.current:
                raise ValueError(f"buffer {buffer} is not the current buffer {self.current} (fixed order)")
            return self.max_candidates if offset is None else self.action_of_offset(offset)
        i = int(buffer)
        if offset is None:
            return i * self.slots + self.max_candidates
        hit = np.flatnonzero(self._c_off[i, : self._n_cand[i]] == int(offset))
        return i * self.slots + int(hit[0]) if len(hit) else None

    def candidate_offsets(self) -> np.ndarray:
        """The offsets of the current buffer's placing actions (lowest first)."""
        return self.cand_offsets.copy()

    def action_of_offset(self, offset: int) -> int | None:
        """The action that puts the current buffer at ``offset`` (None if it is not offered)."""
        hit = np.flatnonzero(self.cand_offsets == int(offset))
        if not len(hit):
            return None
        return self.current * self.slots + int(hit[0]) if self.buffer_choice else int(hit[0])

    def place_action(self, slot: int) -> int:
        """The action that puts the current buffer at its ``slot``-th offered position."""
        return self.current * self.slots + int(slot) if self.buffer_choice else int(slot)

    def _apply_action(self, action) -> tuple[float, bool, bool]:
        a = int(action)
        p = self.program
        if self.buffer_choice:
            i, k = divmod(a, self.slots)
            offset = None if k == self.max_candidates else int(self._c_off[i, k])
        else:
            i = self.current
            offset = None if a == self.max_candidates else int(self.cand_offsets[a])
        reward = 0.0
        if offset is None:
            if self.objective == "allocate":
                self.failed = True                   # legal only when the buffer fits nowhere
                if self.buffer_choice:
                    self._current = i
            else:
                self.state.spill(i)
        else:
            saved = self.state.place(i, offset)
            self._live_fast[p.start[i]:p.end[i]] += p.size[i]
            reward = 1.0 / p.n_buffers if self.objective == "allocate" else saved / p.slow_time
            _, lo, hi = self._static
            hit = (lo < p.end[i]) & (hi > p.start[i])
            self.occupancy[hit] = np.maximum(self.occupancy[hit], offset + int(p.size[i]))
            # only the buffers that share an operation with i see their saving change
            changed = p.sharing(i)
            self._gain[changed] = p.marginal_saving_of(changed, self.state.memory)
        if not self.failed:
            self._n_fast += offset is not None
            row = self._rows[i]
            row[4], row[10] = 0.0, 0.0
            row[5], row[6] = float(offset is not None), float(offset is None)
            row[7] = 0.0 if offset is None else offset / max(p.capacity, 1)
            if offset is not None:
                self._rows[changed, 4] = np.where(self.state.decided[changed], 0.0,
                                                  np.minimum(self._gain[changed] / self._scale, 1.0))
        self.step_index += 1 if not self.failed else 0
        self.total_return += reward
        self._mask = None
        if self.buffer_choice and not self.failed:
            self._n_cand[i] = 0
            if offset is not None:               # only buffers live with it see a change
                self._offer(np.flatnonzero(~self.state.decided & (p.start < p.end[i]) & (p.end > p.start[i])))
        if not (self.buffer_choice and self.failed):
            self._candidates()
        return reward, self.done, False

    def _action_mask(self) -> np.ndarray:
        if self._mask is None:
            self._mask = self._choice_mask() if self.buffer_choice else self._fixed_mask()
        return self._mask.copy()

    def _fixed_mask(self) -> np.ndarray:
        mask = np.zeros(self.slots, bool)
        if self.done:
            mask[self.max_candidates] = True
            return mask
        mask[: len(self.cand_offsets)] = True
        mask[self.max_candidates] = self.objective == "map" or len(self.cand_offsets) == 0
        return mask

    def _choice_mask(self) -> np.ndarray:
        """Buffer choice: buffer ``i``'s offered slots and its slow action (``map``: always; in
        ``allocate`` only for a buffer that fits nowhere, and then nothing else is legal)."""
        k, n = self.max_candidates, self.program.n_buffers
        mask = np.zeros((self.max_buffers, self.slots), bool)
        if self.done:
            mask[self._current, k] = True
            return mask.reshape(-1)
        undecided = ~self.state.decided
        mask[:n, :k] = np.arange(k)[None, :] < self._n_cand[:, None]
        if self.objective == "map":
            mask[:n, k] = undecided
        else:
            stuck = undecided & (self._n_cand == 0)
            if stuck.any():
                mask[:n, :k] = False
                mask[:n, k] = stuck
        return mask.reshape(-1)

    # ------------------------------------------------------------------------- observation
    def _observation(self) -> dict[str, np.ndarray]:
        p, st = self.program, self.state
        n, cap = p.n_buffers, max(p.capacity, 1)
        cur = self.current
        undecided = ~st.decided
        if self.buffer_choice:
            rows = self._rows[:n].copy()
            rows[:, 8] = self._n_cand / self.max_candidates
            rows[:, 9] = np.where(undecided, self._floor / cap, 0.0)
            obs = pack_entities("buffers", rows, self.max_buffers)
        else:
            obs = {"buffers_features": self._rows.copy(), "buffers_mask": self._buffers_mask.copy()}
        obs["candidates_features"] = self._choice_table() if self.buffer_choice else self._fixed_table()
        obs["candidates_mask"] = self._action_mask().astype(np.int8)
        obs["occupancy"] = (self.occupancy / cap).astype(np.float32)
        saved_max = max(p.slow_time - p.fast_time, 1e-300)
        if self.buffer_choice:
            g4 = float(st.map.hi[: st.map.n].max(initial=0)) / cap
            g5 = float((self._n_cand[undecided] > 0).mean()) if undecided.any() else 0.0
        else:
            g4 = min(int(self._live_fast[p.start[cur]]) / cap, 1.0)
            g5 = len(self.cand_offsets) / self.max_candidates
        obs["global_features"] = np.array([
            self.step_index / n, st.time / p.slow_time, min(max((p.slow_time - st.time) / saved_max, 0.0), 1.0),
            self._n_fast / n, g4, g5], np.float32)
        return obs

    def _fixed_table(self) -> np.ndarray:
        p = self.program
        cap = max(p.capacity, 1)
        cur = self.current
        k = len(self.cand_offsets)
        slow_row = self.max_candidates
        cand = np.zeros((self.slots, CANDIDATE_FEATURES), np.float32)
        size = int(p.size[cur])
        peak = self._peak                   # over the current buffer's live range (0 once done)
        if k:
            off, gap = self.cand_offsets, self.cand_gaps
            top = off + size
            # offset, gap, gap left, top after placing, peak after placing; all / capacity
            block = np.stack((off, gap, gap - size, top, np.maximum(top, peak)), axis=1) / cap
            np.minimum(block[:, 1:3], 1.0, out=block[:, 1:3])
            cand[:k, 1:5] = block[:, :4]
            cand[:k, 13] = block[:, 4]
            if self.best_fit >= 0:
                cand[self.best_fit, 5] = 1.0
            cand[0, 6] = 1.0
        cand[slow_row, 0] = 1.0
        cand[slow_row, 13] = peak / cap
        gain = 0.0 if self.done else min(self._gain[cur] / self._scale, 1.0)
        # the current buffer's own features, on every live row (the offered ones and the slow one)
        own = (min(size / cap, 1.0), gain, self._static[0][cur, 3], (p.end[cur] - p.start[cur]) / p.n_ops,
               self.step_index / p.n_buffers, peak / cap)
        cand[:k, 7:13] = own
        cand[slow_row, 7:13] = own
        return cand

    def _choice_table(self) -> np.ndarray:
        """Buffer choice: row ``i * (max_candidates + 1) + k`` describes action ``(i, k)``."""
        p, st = self.program, self.state
        cap = max(p.capacity, 1)
        kmax = self.max_candidates
        cand = np.zeros((self.max_buffers, self.slots, CANDIDATE_FEATURES), np.float32)
        if self.done:
            return cand.reshape(-1, CANDIDATE_FEATURES)
        undecided = np.flatnonzero(~st.decided)
        ii, kk = np.nonzero(np.arange(kmax)[None, :] < self._n_cand[:, None])
        off, gap, size = self._c_off[ii, kk], self._c_gap[ii, kk], p.size[ii]
        floor = self._floor
        cand[ii, kk, 1] = off / cap
        cand[ii, kk, 2] = np.minimum(gap / cap, 1.0)
        cand[ii, kk, 3] = np.minimum((gap - size) / cap, 1.0)
        cand[ii, kk, 4] = (off + size) / cap
        cand[ii, kk, 5] = kk == self._c_best[ii]
        cand[ii, kk, 6] = kk == 0
        cand[ii, kk, 13] = np.maximum(floor[ii], off + size) / cap
        cand[undecided, kmax, 0] = 1.0
        cand[undecided, kmax, 13] = floor[undecided] / cap
        u = undecided
        per_buffer = np.stack([np.minimum(p.size[u] / cap, 1.0), np.minimum(self._gain[u] / self._scale, 1.0),
                               self._static[0][u, 3], (p.end[u] - p.start[u]) / p.n_ops,
                               np.full(len(u), self.step_index / p.n_buffers), floor[u] / cap], axis=1)
        live = np.zeros((self.max_buffers, self.slots), bool)
        live[ii, kk] = True
        live[u, kmax] = True
        bi, bk = np.nonzero(live)
        where = np.empty(self.max_buffers, np.int64)
        where[u] = np.arange(len(u))
        cand[bi, bk, 7:13] = per_buffer[where[bi]]
        return cand.reshape(-1, CANDIDATE_FEATURES)

    # ----------------------------------------------------------------------------- metrics
    def _episode_metrics(self) -> dict[str, float]:
        p, st = self.program, self.state
        saved = (p.slow_time - st.time) / p.slow_time
        fast_bytes = float(p.size[st.fast].sum())
        return {
            "saved_fraction": saved,
            "saved_of_max": (p.slow_time - st.time) / max(p.slow_time - p.fast_time, 1e-300),
            "speedup": p.slow_time / st.time,
            "fast_buffers": float(st.fast.sum()),
            "fast_bytes_fraction": fast_bytes / float(p.size.sum()),
            "peak_address_fraction": float(st.map.hi[: st.map.n].max(initial=0)) / max(p.capacity, 1),
            "allocated": float(st.fast.all()),
            "allocated_fraction": float(st.fast.mean()),
            "return": self.total_return,
        }

    def placement(self) -> np.ndarray:
        """Offsets of the buffers so far (``[N]``, -1 = slow memory or undecided)."""
        return self.state.offset.copy()

    # ------------------------------------------------------------------------------ render
    def _render_ansi(self) -> str:
        from .render import render_ansi

        return render_ansi(self)

    def _render_rgb(self) -> np.ndarray:
        from .render import render_rgb

        return render_rgb(self)

