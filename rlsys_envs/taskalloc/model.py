"""Multi-entity task allocation dynamics (numpy; after Gong, Yang, Lyu & Li 2024).

**Coverage on the resource pool.** Every entity is a resource of a
:class:`rlsys_envs.core.ResourcePool` with capacity ``[1, capability_1..d]`` over the dimensions
``("busy", *skills)``. A committed task is a consumer spanning the entities allocated to it: each
entity carries one row ``[1, share of the requirement]``, the requirement split greedily over the
entities in pick order. So the pool itself enforces both invariants: an entity is on at most one
task at a time (``busy`` capacity 1) and contributes at most its capability; a task is committed
only when the rows sum to its whole requirement (covered).

**Time.** ``k`` slots hold active tasks drawn from the queue in order; empty slots are refilled
when ``t % refill_every == 0``. At each time step there is at most one *decision epoch*: if some
entity is available and some slot holds an open task, the agent allocates (two-stage: pre-assign
every entity, then pick per task; sequential: pick per task in slot order). Then time advances
one step: tasks whose entities have all arrived and worked ``work_time`` steps complete and pay
their net value; value decay and refills apply; the episode ends at the step cap or when the
queue and the slots are empty.

**Picks.** A task's picks are tentative until the summed capabilities cover its requirement, at
which moment the allocation is committed automatically (more entities would only add cost). Any candidate not
picked yet may be picked (one that adds nothing to the remaining requirement only adds its cost).
``END`` (or running out of candidates) abandons the task for this epoch: its picks are dropped and
it stays open.

**Decline rule.** When a covering allocation's net value (current task value minus the costs of
its entities) is <= 0 the allocation is discarded and the task declined: it leaves its slot for
good (as the paper's code discards allocations whose return is <= 0).

**Value decay** (``decay_after`` > 0): a task that has been open (shown, not yet allocated) for
``decay_after`` steps loses ``1 - decay`` of its value at every further step; an allocated task
keeps the value it had when it was committed.

**Cost** of entity ``e`` on task ``q``: ``entity_cost[e] + dist_coef[e] * ||pos[e] - task_pos[q]||``.
**Travel**: an entity needs ``ceil(distance / speed)`` steps to reach the task (distance in the
scenario's metric; ``none``: no travel) and stands at the task after it completes.
"""
from __future__ import annotations

import numpy as np

from rlsys_envs.core import ResourcePool

from .generator import TaskAllocInstance

#: slot states
EMPTY, OPEN, WORKING = 0, 1, 2
#: epoch phases
IDLE, ASSIGN, PICK = 0, 1, 2


def split_requirement(req: np.ndarray, caps: np.ndarray) -> np.ndarray:
    """The requirement split over entities in order: row ``k`` = what entity ``k`` covers of what
    the entities before it left (``[n, d]``, each row <= its capability)."""
    rows = np.zeros_like(caps)
    remaining = req.copy()
    for k in range(len(caps)):
        rows[k] = np.minimum(caps[k], remaining)
        remaining -= rows[k]
    return rows


class TaskAllocModel:
    """The state of one episode; ``two_stage`` selects the decision protocol (see module doc)."""

    def __init__(self, inst: TaskAllocInstance, two_stage: bool = True):
        self.inst = inst
        self.two_stage = two_stage
        E, d = inst.n_entities, inst.n_dims
        self.E, self.K, self.d = E, inst.n_slots, d
        capacity = np.concatenate([np.ones((E, 1), np.int64), inst.entity_cap], axis=1)
        self.pool = ResourcePool(capacity, ("busy", *inst.dims))
        self.pos = inst.entity_pos.copy()
        self.value = inst.task_value.copy()          # current (decayed) value of every queued task
        self.idle = np.zeros(inst.n_tasks, np.int64)  # steps each task has been open
        self.slot_task = np.full(self.K, -1, np.int64)
        self.slot_state = np.zeros(self.K, np.int8)
        self.working: dict[int, tuple] = {}           # slot -> (entities, net value, finish step)
        self.entity_slot = np.full(E, -1, np.int64)   # slot an entity works on (-1: free)
        self.next_task = 0
        self.t = 0
        self.done = False
        self.reward = 0.0                             # net value paid since the last collect_reward()
        self.total_net = 0.0
        self.completed = self.declined = 0
        self.busy_steps = 0
        self.epochs = 0
        self.completed_log: list[tuple[int, tuple[int, ...]]] = []   # (task, entities) of completed tasks
        # epoch state
        self.phase = IDLE
        self.candidate = np.full(E, -1, np.int64)     # two-stage: pre-assigned slot of each entity
        self.order: list[int] = []                    # slots still to handle in this epoch
        self.picks: list[int] = []                    # tentative picks of the current task
        self.remaining = np.zeros(d, np.int64)        # requirement of the current task not yet covered
        self._epoch_avail = np.zeros(E, bool)         # entities available at this epoch's start, less committed
        self._epoch_cost = np.zeros((E, self.K))      # pair costs at this epoch's start
        self._epoch_at = -1                           # the step of the last epoch
        self.pickable_now = np.zeros(E, bool)         # pickable() when the agent last got the turn in stage 2
        self._refill()
        self._settle()

    # ------------------------------------------------------------------------------ queries
    @property
    def current_slot(self) -> int:
        """The slot whose task is being picked for (-1 outside stage 2)."""
        return self.order[0] if self.phase == PICK and self.order else -1

    def available(self) -> np.ndarray:
        """Entities free to be allocated now: not working, and not the home of an active task."""
        avail = self.pool.usage[:, 0] == 0
        homes = self.inst.task_home[self.slot_task[self.slot_state != EMPTY]]
        homes = homes[homes >= 0]
        if len(homes):
            avail = avail.copy()
            avail[homes] = False
        return avail

    def open_slots(self) -> np.ndarray:
        return np.flatnonzero(self.slot_state == OPEN)

    def pair_cost(self) -> np.ndarray:
        """Cost ``[E, K]`` of every entity on every slot's task (0 for empty slots)."""
        q = np.maximum(self.slot_task, 0)
        dist = np.linalg.norm(self.pos[:, None, :] - self.inst.task_pos[q][None, :, :], axis=-1)
        cost = self.inst.entity_cost[:, None] + self.inst.dist_coef[:, None] * dist
        return np.where(self.slot_task[None, :] >= 0, cost, 0.0)

    def travel_steps(self, entities, q: int) -> np.ndarray:
        metric = self.inst.travel
        if metric == "none":
            return np.zeros(len(entities), np.int64)
        diff = np.abs(self.pos[entities] - self.inst.task_pos[q])
        dist = {"manhattan": diff.sum(1), "chebyshev": diff.max(1), "euclidean": np.sqrt((diff ** 2).sum(1))}[metric]
        return np.ceil(dist / self.inst.speed - 1e-9).astype(np.int64)

    def pickable(self) -> np.ndarray:
        """Stage 2: entities that may be picked for the current task (bool [E]): its candidates
        (two-stage: those pre-assigned to it; sequential: every free entity) not picked yet."""
        s = self.current_slot
        if s < 0:
            return np.zeros(self.E, bool)
        ok = (self._epoch_avail & (self.candidate == s)) if self.two_stage else self._epoch_avail.copy()
        if self.picks:
            ok[self.picks] = False
        return ok

    def assign_mask(self) -> np.ndarray:
        """Stage 1: ``[E, K + 1]`` legal pre-assignments (open slots for available entities; the last
        column, none, always)."""
        m = np.zeros((self.E, self.K + 1), bool)
        m[:, self.K] = True
        if self.phase == ASSIGN:
            m[np.ix_(self._epoch_avail, self.slot_state == OPEN)] = True
        return m

    def net_if_covered(self, slot: int, entities) -> float:
        q = self.slot_task[slot]
        return float(self.value[q] - self._epoch_cost[list(entities), slot].sum())

    # ---------------------------------------------------------------------------- decisions
    def assign(self, slots: np.ndarray) -> None:
        """Stage 1: ``slots[e]`` in ``[0, K]`` (K: none) for every entity (already checked legal)."""
        assert self.phase == ASSIGN
        slots = np.asarray(slots, np.int64)
        self.candidate = np.where(slots < self.K, slots, -1)
        self.order = [int(s) for s in self.open_slots() if np.any(self.candidate == s)]
        self._start_pick()
        self._settle()

    def contributes(self) -> np.ndarray:
        """Stage 2: entities whose capabilities still reduce the current task's remaining requirement."""
        if not self.remaining.any():          # a task that requires nothing: any entity does it
            return np.ones(self.E, bool)
        return self.inst.entity_cap @ (self.remaining > 0) > 0

    def pick(self, e: int) -> None:
        """Stage 2: add entity ``e`` (pickable) to the current task; commits on coverage."""
        assert self.phase == PICK
        s = self.current_slot
        self.picks.append(int(e))
        self.remaining = np.maximum(self.remaining - self.inst.entity_cap[e], 0)
        if not self.remaining.any():
            self._commit(s, self.picks)
            self._next_task()
        self._settle()

    def end_task(self) -> None:
        """Stage 2 END: abandon the current task for this epoch (picks dropped, it stays open)."""
        assert self.phase == PICK
        self._next_task()
        self._settle()

    def collect_reward(self) -> float:
        r, self.reward = self.reward, 0.0
        return r

    # ------------------------------------------------------------------------------ internals
    def _commit(self, s: int, entities: list[int]) -> None:
        q = int(self.slot_task[s])
        net = self.net_if_covered(s, entities)
        if net <= 0:                       # decline rule: the allocation is discarded, the task leaves
            self.declined += 1
            self.slot_task[s], self.slot_state[s] = -1, EMPTY
            return
        ent = np.asarray(entities, np.int64)
        caps = self.inst.entity_cap[ent]
        rows = split_requirement(self.inst.task_req[q], caps)
        if not np.array_equal(rows.sum(0), self.inst.task_req[q]):
            raise AssertionError(f"task {q} committed without coverage")  # unreachable by construction
        demand = np.concatenate([np.ones((len(ent), 1), np.int64), rows], axis=1)
        self.pool.place(("task", q), ent, demand)     # raises if an entity is busy: never on two tasks
        finish = self.t + int(self.travel_steps(ent, q).max()) + self.inst.work_time
        self.working[s] = (tuple(int(e) for e in ent), net, finish)
        self.entity_slot[ent] = s
        self.slot_state[s] = WORKING
        self._epoch_avail[ent] = False

    def _start_pick(self) -> None:
        self.picks = []
        if self.order:
            self.phase = PICK
            self.remaining = self.inst.task_req[self.slot_task[self.order[0]]].copy()
        else:
            self.phase = IDLE

    def _next_task(self) -> None:
        self.order.pop(0)
        self._start_pick()

    def _begin_epoch(self) -> bool:
        avail = self.available()
        if not avail.any() or not (self.slot_state == OPEN).any():
            return False
        self._epoch_avail = avail.copy()
        self._epoch_cost = self.pair_cost()
        self.epochs += 1
        self.candidate[:] = -1
        if self.two_stage:
            self.phase = ASSIGN
        else:
            self.order = [int(s) for s in self.open_slots()]
            self._start_pick()
        return True

    def _settle(self) -> None:
        """Run until the agent has a real choice (or the episode is over): tasks without
        candidates are abandoned, and time advances when the epoch is over."""
        while not self.done:
            if self.phase == PICK:
                self.pickable_now = self.pickable()
                if self.pickable_now.any():
                    return
                self._next_task()
                continue
            if self.phase == ASSIGN:
                return
            if self._epoch_at != self.t:      # this step's epoch has not happened yet
                self._epoch_at = self.t
                if self._begin_epoch():
                    continue
            self._advance()

    def _advance(self) -> None:
        self.busy_steps += int(self.pool.usage[:, 0].sum())
        self.t += 1
        for s in sorted(self.working):
            entities, net, finish = self.working[s]
            if finish <= self.t:
                q = int(self.slot_task[s])
                self.pool.release(("task", q))
                self.pos[list(entities)] = self.inst.task_pos[q]
                self.entity_slot[list(entities)] = -1
                self.reward += net
                self.total_net += net
                self.completed += 1
                self.completed_log.append((q, entities))
                del self.working[s]
                self.slot_task[s], self.slot_state[s] = -1, EMPTY
        open_q = self.slot_task[self.slot_state == OPEN]
        self.idle[open_q] += 1
        if self.inst.decay_after > 0:
            decaying = open_q[self.idle[open_q] > self.inst.decay_after]
            self.value[decaying] *= self.inst.decay
        if self.t % self.inst.refill_every == 0:
            self._refill()
        exhausted = self.next_task >= self.inst.n_tasks and not (self.slot_state != EMPTY).any()
        if self.t >= self.inst.max_steps or exhausted:
            self.done = True
            self.phase = IDLE

    def _refill(self) -> None:
        for s in np.flatnonzero(self.slot_state == EMPTY):
            if self.next_task >= self.inst.n_tasks:
                break
            self.slot_task[s], self.slot_state[s] = self.next_task, OPEN
            self.next_task += 1

    # ------------------------------------------------------------------------------- metrics
    @property
    def expired(self) -> int:
        """Tasks shown in a slot and neither completed nor declined (when the episode is over)."""
        return int((self.slot_state != EMPTY).sum())

    def utilisation(self) -> float:
        return self.busy_steps / max(1, self.E * self.t)
