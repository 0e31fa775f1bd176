"""``rlsys/TaskAllocation-v0``: multi-entity task allocation, two-stage (Gong et al. 2024)."""
from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from rlsys_envs.core import (RlsysEnv, check_choice, check_float, check_int, draw_instance, entity_spaces, graph_spaces,
                             instance_source, pack_graph)

from .generator import SCENARIOS, ScenarioGenerator, TaskAllocInstance
from .model import ASSIGN, OPEN, PICK, WORKING, TaskAllocModel

MODES = ("two_stage", "sequential")
OBSERVATIONS = ("tables", "graph")
#: extra entity features after cost, capabilities and position: available, working, candidate, picked
ENTITY_FLAGS = 4
#: extra task features after value, requirement, remaining requirement and position: open, working,
#: current, time open
TASK_FLAGS = 4
#: edge types of the bipartite graph: eligible (free entity, open task), pre-assigned candidate, working
EDGE_TYPES = 3


def _count_arg(field: str, value, low: int = 1, high: int = 100_000):
    """None, an int, or an inclusive (lo, hi) pair of ints."""
    if value is None:
        return None
    if isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise ValueError(f"{field} must be an int or a (low, high) pair, got {value!r}")
        lo, hi = check_int(f"{field}[0]", value[0], low, high), check_int(f"{field}[1]", value[1], low, high)
        if lo > hi:
            raise ValueError(f"{field} must be a (low, high) pair with low <= high, got {value!r}")
        return (lo, hi)
    return check_int(field, value, low, high)


def _upper(value) -> int:
    return value[1] if isinstance(value, tuple) else int(value)


class TaskAllocationEnv(RlsysEnv):
    """Multi-entity task allocation: entities with costs and capability vectors are allocated to
    tasks with values and requirement vectors (Gong, Yang, Lyu & Li 2024).

    **Description.** ``n_slots`` active tasks are fed from a queue; a task completes when the
    summed capabilities of the entities allocated to it cover every requirement (coverage is
    :class:`~rlsys_envs.core.ResourcePool` arithmetic: entities are resources with capacity
    ``[1, capabilities]``, a task a consumer spanning its entities), and an entity is busy on it
    until it completes. Once per time step there is a decision epoch (when some entity is free and
    some task open); then time advances: travel and work, completions, value decay, refills every
    ``refill_every`` steps. The dynamics are documented in :mod:`rlsys_envs.taskalloc.model`.

    **Action Space.** ``mode="two_stage"``: ``MultiDiscrete([max_slots + 1] * max_entities +
    [max_entities + 1])``. Stage 1 (one step per epoch): component ``e < max_entities`` pre-assigns
    entity ``e`` to a slot, or to none (value ``max_slots``); the last (stage-2) component is ignored
    (every value legal). Stage 2 (micro-steps, one per pick): the last component picks an entity
    among the current task's candidates not picked yet, or END
    (value ``max_entities``: abandon the task for this epoch); the stage-1 components must be none.
    The mask (``action_masks()``, flat: the per-component masks concatenated, as sb3-contrib's
    ``MaskablePPO`` takes it) is exact per component: stage-1 components are chosen independently,
    in stage 2 the stage-1 components have a single legal value, and in stage 1 the ignored
    component does not change the outcome (the attention policy gives it constant logits, so its
    log-probability is a constant).
    ``mode="sequential"``: ``Discrete(max_entities + 1)``, stage 2 only, over every free
    entity not picked yet, tasks in slot order.

    **Observation Space.** ``Dict`` of ``Box``: the entity table ``entities_features``
    ``[max_entities, 1 + d + 2 + 4]`` (cost, capabilities, position, available, working, candidate
    of the current task, picked) with ``entities_mask``; the task table ``tasks_features``
    ``[max_slots, 1 + 2d + 2 + 4]`` (current value, requirement, remaining requirement, position,
    open, working, current task, time open) with ``tasks_mask``; ``pair_cost`` ``[max_entities,
    max_slots]`` (cost of each entity on each slot's task); ``stage`` (one-hot: stage 1, stage 2);
    ``time`` (t / max_steps). Values and costs share one scale, capabilities and requirements one
    scale per dimension, so every value is in [0, 1]. ``observation="graph"`` adds the bipartite
    entity-task graph ``graph_*`` (``core.graph`` layout; edges entity -> task of three types:
    eligible, pre-assigned candidate, working).

    **Rewards.** The net value (value when committed - sum of the costs of its entities) of every
    task that completes during the step, times ``reward_scale`` (default 1); the return is the
    episode's total net value (times ``reward_scale``; the metrics are never scaled).

    **Starting State.** An instance drawn from the scenario (or ``instance``); the first
    ``n_slots`` tasks of the queue are active; entities at their start positions.

    **Episode End.** Terminated at the scenario's step cap, or when the queue and every slot are
    empty (time is in the observation, so the cap is part of the problem).

    **Arguments.** ``scenario`` (``"rbf"``, ``"material"``, ``"electric"``, ``"almighty"``),
    ``mode`` (``"two_stage"`` or ``"sequential"``), ``n_entities`` / ``n_tasks`` (int or a
    ``(low, high)`` range drawn per episode; default the scenario's), ``n_slots``, ``max_entities`` /
    ``max_slots`` (padding; default the largest count), ``observation`` (``"tables"`` or
    ``"graph"``), ``reward_scale`` (> 0, default 1.0), ``instance`` (a :class:`TaskAllocInstance`
    or generator; overrides the scenario), ``render_mode``.

    **Variants** (registry): ``material``, ``electric``, ``almighty``, ``sequential``,
    ``almighty_sequential``, ``varied_counts``, ``graph_obs``.

    **Metrics.** ``total_net_value``, ``tasks_completed``, ``tasks_declined``, ``tasks_expired``,
    ``entity_utilisation``, ``epochs``; ``optimum`` and ``optimality_gap`` where the optimum is known.

    **Version History.** v0: initial version.
    """

    def __init__(self, *, scenario: str = "rbf", mode: str = "two_stage", n_entities=None, n_tasks=None,
                 n_slots: int | None = None, max_entities: int | None = None, max_slots: int | None = None,
                 observation: str = "tables", reward_scale: float = 1.0, instance: Any = None,
                 render_mode: str | None = None):
        super().__init__(render_mode=render_mode)
        self.scenario = check_choice("scenario", scenario, tuple(SCENARIOS))
        self.mode = check_choice("mode", mode, MODES)
        self.observation = check_choice("observation", observation, OBSERVATIONS)
        self.reward_scale = check_float("reward_scale", reward_scale, 0.0, 1e6, low_inclusive=False)
        sizes = SCENARIOS[self.scenario]
        n_entities = _count_arg("n_entities", n_entities)
        n_tasks = _count_arg("n_tasks", n_tasks)
        n_slots = None if n_slots is None else check_int("n_slots", n_slots, 1, 1000)
        self.generator = ScenarioGenerator(self.scenario, n_entities, n_tasks, n_slots)
        if instance is None:
            self.instance_source = self.generator
            top_e, top_k = _upper(self.generator.n_entities), self.generator.n_slots
        else:
            self.instance_source = self._source(instance, "instance")
            fixed = getattr(self.instance_source, "instance", None)
            top_e = fixed.n_entities if fixed is not None else _upper(self.generator.n_entities)
            top_k = fixed.n_slots if fixed is not None else self.generator.n_slots
        self.max_entities = top_e if max_entities is None else check_int("max_entities", max_entities, top_e, 100_000)
        self.max_slots = top_k if max_slots is None else check_int("max_slots", max_slots, top_k, 1000)
        self.n_dims = sizes["n_dims"]
        E, K, d = self.max_entities, self.max_slots, self.n_dims
        self.entity_dim = 1 + d + 2 + ENTITY_FLAGS
        self.task_dim = 1 + 2 * d + 2 + TASK_FLAGS
        if self.mode == "two_stage":
            self.nvec = np.array([K + 1] * E + [E + 1], np.int64)
            self._offsets = np.concatenate([[0], np.cumsum(self.nvec)[:-1]])
            self.action_space = self.masked_multi_discrete(self.nvec)
        else:
            self.nvec = None
            self.action_space = self.masked_discrete(E + 1)
        self._mask_templates()
        obs = {**entity_spaces("entities", E, self.entity_dim), **entity_spaces("tasks", K, self.task_dim),
               "pair_cost": spaces.Box(0.0, 1.0, (E, K), np.float32),
               "stage": spaces.Box(0.0, 1.0, (2,), np.float32),
               "time": spaces.Box(0.0, 1.0, (1,), np.float32)}
        if self.observation == "graph":
            self.node_dim = 2 + max(self.entity_dim, self.task_dim)
            obs.update(graph_spaces("graph", E + K, self.node_dim, E * K, EDGE_TYPES, 0.0, 1.0,
                                    index_dtype=np.int32, type_dtype=np.int8))
        self.observation_space = spaces.Dict(obs)

    def _source(self, value, field):
        return instance_source(value, instance_type=TaskAllocInstance, field=field,
                               named={name: (lambda n=name: ScenarioGenerator(n)) for name in SCENARIOS})

    # ------------------------------------------------------------------------------- episode
    def _reset_model(self, options):
        given = options.get("instance")
        source = self.instance_source if given is None else self._source(given, 'options["instance"]')
        inst = draw_instance(source, self.np_random, TaskAllocInstance)
        if inst.n_entities > self.max_entities or inst.n_slots > self.max_slots or inst.n_dims != self.n_dims:
            raise ValueError(f"instance {inst.name!r} ({inst.n_entities} entities, {inst.n_slots} slots, "
                             f"{inst.n_dims} dimensions) does not fit this environment ({self.max_entities} "
                             f"entities, {self.max_slots} slots, {self.n_dims} dimensions)")
        self.inst = inst
        self.model = TaskAllocModel(inst, two_stage=self.mode == "two_stage")
        self._scales()
        self._static_tables()
        self._mask_cache = None
        self._pair_cost_cache = (-1, None)     # (epoch number, normalised padded pair costs of that epoch)
        self._step_cache = (-1, None, None)    # (time step, its entity and task tables: _step_tables)

    def _scales(self):
        inst = self.inst
        diag = inst.map_size * np.sqrt(2.0)
        max_cost = float(np.max(inst.entity_cost + inst.dist_coef * diag))
        self.money_scale = max(float(np.max(np.abs(inst.task_value))), max_cost, 1e-9)
        self.skill_scale = np.maximum(np.maximum(inst.entity_cap.max(0), inst.task_req.max(0)), 1).astype(np.float64)

    def _static_tables(self):
        """The parts of the observation that do not change during the episode, computed once at
        reset (the observation is built at every step, so this is most of its cost saved): the
        padded entity table with its cost and capability columns filled, and one task row per
        queued task (requirement, twice: the remaining requirement of a task not being picked for,
        and position) plus a zero row at index -1 that an empty slot (task -1) reads."""
        inst, d = self.inst, self.n_dims
        E, Q, K = inst.n_entities, inst.n_tasks, inst.n_slots
        ent = np.zeros((self.max_entities, self.entity_dim), np.float32)
        ent[:E, 0] = inst.entity_cost / self.money_scale
        ent[:E, 1: 1 + d] = inst.entity_cap / self.skill_scale
        task = np.zeros((Q + 1, self.task_dim), np.float32)
        req = inst.task_req / self.skill_scale
        task[:Q, 1: 1 + d] = req
        task[:Q, 1 + d: 1 + 2 * d] = req
        task[:Q, 1 + 2 * d: 3 + 2 * d] = inst.task_pos / inst.map_size
        self._ent_static, self._task_static = ent, task
        self._ent_mask = np.zeros(self.max_entities, np.int8)
        self._ent_mask[:E] = 1
        self._task_mask = np.zeros(self.max_slots, np.int8)
        self._task_mask[:K] = 1

    @property
    def stage(self) -> int:
        """1 (pre-assign), 2 (pick) or 0 (episode over)."""
        return {ASSIGN: 1, PICK: 2}.get(self.model.phase, 0)

    def _apply_action(self, action):
        m = self.model
        self._mask_cache = None
        if self.mode == "two_stage":
            a = np.asarray(action, np.int64).reshape(-1)
            if m.phase == ASSIGN:
                slots = np.where(a[: m.E] < self.max_slots, a[: m.E], m.K)
                m.assign(slots)
            else:
                self._pick(int(a[-1]))
        else:
            self._pick(int(np.asarray(action).reshape(-1)[0]))
        return m.collect_reward() * self.reward_scale, m.done, False

    def _pick(self, e: int):
        if e >= self.max_entities:
            self.model.end_task()
        else:
            self.model.pick(e)

    # -------------------------------------------------------------------------------- masks
    def _action_mask(self):
        if self._episode_over:
            return self._empty_mask()
        if self._mask_cache is None:
            self._mask_cache = self._build_mask()
        return self._mask_cache

    def _mask_templates(self):
        """The flat masks every state's mask starts from (copied, then the state's part filled in):
        stage 1 (the none values legal, every value of the ignored stage-2 component legal), stage 2
        and the end of the episode (the none values and END legal)."""
        E, K = self.max_entities, self.max_slots
        if self.mode == "sequential":
            none = np.zeros(E + 1, bool)
            none[E] = True
            self._mask_none = self._mask_assign = none
            return
        first = np.zeros((E, K + 1), bool)
        first[:, K] = True
        last = np.zeros(E + 1, bool)
        last[E] = True
        self._mask_none = np.concatenate([first.reshape(-1), last])
        self._mask_assign = np.concatenate([first.reshape(-1), np.ones(E + 1, bool)])
        self._last_offset = E * (K + 1)

    def _empty_mask(self):
        return self._mask_none.copy()

    def _build_mask(self):
        m = self.model
        if self.mode == "sequential":
            mask = self._mask_none.copy()
            if m.phase == PICK:
                mask[: m.E] = m.pickable_now
            return mask
        if m.phase == ASSIGN:      # open slots for available entities (assign_mask), none always
            mask = self._mask_assign.copy()
            first = mask[: self._last_offset].reshape(self.max_entities, self.max_slots + 1)
            first[: m.E, : m.K] = m._epoch_avail[:, None] & (m.slot_state == OPEN)[None, :]
            return mask
        mask = self._mask_none.copy()
        if m.phase == PICK:
            mask[self._last_offset: self._last_offset + m.E] = m.pickable_now
        return mask

    def _is_legal(self, action, mask):
        if self.mode == "sequential":
            return super()._is_legal(action, mask)
        # (multi_discrete_legal with the offsets computed once)
        return bool(mask[self._offsets + np.asarray(action, np.int64).reshape(-1)].all())

    def check_action(self, action) -> None:
        """The base class's check with a fast path for the usual two-stage action, an int64 array
        of the space's shape: it is accepted when every component is in ``[0, nvec)`` and legal
        (one comparison and one gather, instead of Gymnasium's ``MultiDiscrete.contains``, which
        took a sixth of a random step); anything else, or an action that fails, goes through the
        full check, which names what is wrong."""
        if (self.nvec is not None and type(action) is np.ndarray and action.dtype == np.int64
                and action.shape == self.nvec.shape and not self._episode_over):
            # a negative component, seen as unsigned, is above every bound
            if (action.view(np.uint64) < self.nvec).all() and self._action_mask()[self._offsets + action].all():
                return
        super().check_action(action)

    def at_decision_boundary(self) -> bool:
        return self._episode_over or self.model.phase == ASSIGN or (self.mode == "sequential" and not self.model.picks)

    # -------------------------------------------------------------------------- observation
    def _observation(self):
        m, inst, d = self.model, self.inst, self.n_dims
        E, K = m.E, m.K
        in_epoch = m.phase in (ASSIGN, PICK)
        avail = m._epoch_avail if in_epoch else m.available()
        cur = m.current_slot
        ent, task = self._step_tables()
        ent[:E, 3 + d] = avail
        ent[:E, 4 + d] = m.pool.usage[:, 0] > 0
        if cur >= 0:
            ent[:E, 5 + d] = (m.candidate == cur) if m.two_stage else avail
        if m.picks:
            ent[m.picks, 6 + d] = 1.0
        task[:, 3 + 2 * d] = m.slot_state == OPEN
        task[:, 4 + 2 * d] = m.slot_state == WORKING
        if cur >= 0:
            task[cur, 1 + d: 1 + 2 * d] = m.remaining / self.skill_scale
            task[cur, 5 + 2 * d] = 1.0
        shown = m.slot_task >= 0
        if not shown.all():                            # a slot emptied during this step's epoch (a decline)
            task[~shown] = 0.0
        if K < self.max_slots:
            padded = np.zeros((self.max_slots, self.task_dim), np.float32)
            padded[:K] = task
            task = padded
        obs = {"entities_features": ent, "entities_mask": self._ent_mask.copy(),
               "tasks_features": task, "tasks_mask": self._task_mask.copy(),
               "pair_cost": self._pair_cost(in_epoch),
               "stage": np.array([m.phase == ASSIGN, m.phase == PICK], np.float32),
               "time": np.array([min(m.t / inst.max_steps, 1.0)], np.float32)}
        if self.observation == "graph":
            obs.update(self._graph(ent[:E], task[:K], avail))
        return obs

    def _step_tables(self):
        """Fresh copies of the entity table ``[max_entities, F]`` and the task table ``[K, F]`` with
        what changes only when time advances filled in (positions; the slots' tasks, their current
        values and times open), made once per time step: stage 2 has one step per pick, and only
        its flags change between them. Empty slots read the zero row of ``_task_static``."""
        m, inst, d = self.model, self.inst, self.n_dims
        if self._step_cache[0] != m.t:
            ent = self._ent_static.copy()
            ent[: m.E, 1 + d: 3 + d] = m.pos / inst.map_size
            q = m.slot_task
            task = self._task_static[q]
            task[:, 0] = np.maximum(m.value[q], 0.0) / self.money_scale
            task[:, 6 + 2 * d] = np.minimum(m.idle[q] / inst.max_steps, 1.0)
            self._step_cache = (m.t, ent, task)
        return self._step_cache[1].copy(), self._step_cache[2].copy()

    def _pair_cost(self, in_epoch: bool) -> np.ndarray:
        """``pair_cost`` (normalised, clipped to 1, padded): during an epoch the costs of its start,
        computed once per epoch (stage 2 has one step per pick); at the episode's end the current ones."""
        m = self.model
        if in_epoch and self._pair_cost_cache[0] == m.epochs:
            return self._pair_cost_cache[1].copy()
        pc = np.zeros((self.max_entities, self.max_slots), np.float32)
        pc[: m.E, : m.K] = np.minimum((m._epoch_cost if in_epoch else m.pair_cost()) / self.money_scale, 1.0)
        if in_epoch:
            self._pair_cost_cache = (m.epochs, pc)
            return pc.copy()
        return pc

    def _graph(self, ent, task, avail):
        m = self.model
        E, K, EM = m.E, m.K, self.max_entities
        x = np.zeros((EM + K, self.node_dim), np.float32)
        x[:E, 0] = 1.0
        x[:E, 2: 2 + self.entity_dim] = ent
        x[EM: EM + K, 1] = 1.0
        x[EM: EM + K, 2: 2 + self.task_dim] = task
        open_ = m.slot_state == OPEN
        types = np.full((E, K), -1, np.int64)
        if m.phase in (ASSIGN, PICK):
            types[np.ix_(avail, open_)] = 0
            if m.two_stage:
                e = np.flatnonzero(m.candidate >= 0)
                types[e, m.candidate[e]] = 1
        w = np.flatnonzero(m.entity_slot >= 0)
        types[w, m.entity_slot[w]] = 2
        src, dst = np.nonzero(types >= 0)
        edge_index = np.stack([src, EM + dst])
        g = pack_graph("graph", x, edge_index, types[src, dst], EM + self.max_slots, EM * self.max_slots)
        g["graph_node_mask"][E:EM] = 0
        g["graph_node_mask"][EM + K:] = 0
        g["graph_edge_index"] = g["graph_edge_index"].astype(np.int32)
        g["graph_edge_type"] = g["graph_edge_type"].astype(np.int8)
        return g

    # ------------------------------------------------------------------------------ metrics
    def _step_info(self):
        return {"stage": self.stage, "current_slot": self.model.current_slot}

    def _episode_metrics(self):
        m = self.model
        out = {"total_net_value": m.total_net, "tasks_completed": m.completed, "tasks_declined": m.declined,
               "tasks_expired": m.expired, "entity_utilisation": m.utilisation(), "epochs": m.epochs}
        if self.inst.optimum is not None:
            out["optimum"] = self.inst.optimum
            out["optimality_gap"] = (self.inst.optimum - m.total_net) / max(abs(self.inst.optimum), 1e-9)
        return out

    def _render_ansi(self):
        from .render import render_ansi
        return render_ansi(self)

    def _render_rgb(self):
        from .render import render_rgb
        return render_rgb(self)
