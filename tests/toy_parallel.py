"""A toy two-agent environment on the rlsys multi-agent contract (for the contract tests).

``ToySlotsParallelEnv``: items arrive one per step and a ``placer`` puts each into a free slot
of a ``core.ResourcePool`` of ``n_slots`` unit-capacity slots (masked: free slots; when none is
free its only legal action is ``n_slots``, drop the item); an ``evictor`` frees one occupied slot
per step or does nothing (action ``n_slots``). An item left in a slot earns the placer its value
per step, so the placer wants valuable items in slots, the evictor wants room for them: each
slot holding an item costs the evictor ``hold_cost`` per step. The episode is truncated after
``horizon`` steps. Registered as ``rlsys-test/ToySlots-v0`` (parallel) and
``rlsys-test/ToySlotsPlacer-v0`` (the placer's single-agent view, the evictor played by the
``evict_oldest`` policy).
"""
from __future__ import annotations

import numpy as np
from gymnasium import spaces

import rlsys_envs
from rlsys_envs.core import (Policy, RandomMaskedPolicy, ResourcePool, check_float, check_int, draw_instance,
                             instance_source)
from rlsys_envs.core.parallel import RlsysParallelEnv, SingleAgentView
from rlsys_envs.registry import EnvEntry


class ToyItems:
    """Instance generator: ``horizon`` item values uniform on [0, 1)."""

    def __init__(self, horizon: int):
        self.horizon = horizon

    def __call__(self, rng):
        return rng.random(self.horizon)


class ToySlotsParallelEnv(RlsysParallelEnv):
    def __init__(self, *, n_slots: int = 4, horizon: int = 30, hold_cost: float = 0.1, instance="random",
                 render_mode: str | None = None):
        super().__init__(render_mode=render_mode)
        self.n_slots = check_int("n_slots", n_slots, 1, 64)
        self.horizon = check_int("horizon", horizon, 1, 10_000)
        self.hold_cost = check_float("hold_cost", hold_cost, 0.0, 10.0)
        self.instance_source = self._source(instance, "instance")
        table = {"slots": spaces.Box(0.0, 1.0, (self.n_slots, 2), np.float32),
                 "item": spaces.Box(0.0, 1.0, (1,), np.float32)}
        self._declare_agent("placer", table, spaces.Discrete(self.n_slots + 1), masked=True)
        self._declare_agent("evictor", table, spaces.Discrete(self.n_slots + 1), masked=True)

    def _source(self, value, field):
        return instance_source(value, instance_type=np.ndarray, named={"random": lambda: ToyItems(self.horizon)},
                               field=field)

    def _reset_model(self, options):
        given = options.get("instance")
        source = self.instance_source if given is None else self._source(given, 'options["instance"]')
        self.values = np.asarray(draw_instance(source, self.np_random, np.ndarray), float)
        self.pool = ResourcePool(np.ones((self.n_slots, 1), np.int64), ("item",))
        self.slot_value = np.zeros(self.n_slots)
        self.slot_age = np.zeros(self.n_slots)
        self.t = 0
        self.earned = 0.0
        self.dropped = 0

    def _free(self):
        return self.pool.fits([1])

    def _agent_action_mask(self, agent):
        free = self._free()
        mask = np.zeros(self.n_slots + 1, bool)
        if agent == "placer":
            mask[: self.n_slots] = free
            mask[-1] = not free.any()
        else:
            mask[: self.n_slots] = ~free
            mask[-1] = True
        return mask

    def _apply_actions(self, actions):
        e = int(actions["evictor"])
        if e < self.n_slots:
            self.pool.release(e)
            self.slot_value[e] = self.slot_age[e] = 0.0
        p = int(actions["placer"])
        if p < self.n_slots:
            self.pool.place(p, p, [1])
            self.slot_value[p] = self.values[self.t]
        else:
            self.dropped += 1
        self.slot_age[~self._free()] += 1
        held = float(self.slot_value.sum())
        self.earned += held
        self.t += 1
        cost = self.hold_cost * float((~self._free()).sum())
        return {"placer": held, "evictor": -cost}, False, self.t >= self.horizon

    def _agent_observation(self, agent):
        slots = np.stack([self.slot_value, np.minimum(self.slot_age / self.horizon, 1.0)], 1).astype(np.float32)
        item = self.values[min(self.t, self.horizon - 1)]
        return {"slots": slots, "item": np.array([item], np.float32)}

    def _episode_metrics(self):
        return {"earned": self.earned, "dropped": float(self.dropped), "steps": float(self.t)}

    def _render_ansi(self):
        return f"t={self.t} slots={np.round(self.slot_value, 2).tolist()} earned={self.earned:.2f}"

    def _render_rgb(self):
        img = np.zeros((8, 8 * self.n_slots, 3), np.uint8)
        for s in range(self.n_slots):
            img[:, 8 * s: 8 * s + 7, 1] = int(255 * self.slot_value[s])
        img[0, 0, 0] = 255
        return img


class EvictOldest(Policy):
    """Evictor baseline: frees the oldest occupied slot when no slot is free, else does nothing."""

    name = "evict_oldest"

    def act(self, env, obs, info):
        mask = info["action_mask"]
        occupied = np.flatnonzero(mask[:-1])
        if len(occupied) < env.n_slots:
            return env.n_slots
        return int(occupied[np.argmax(env.slot_age[occupied])])


class PlaceFirstFree(Policy):
    """Placer baseline: the lowest free slot (drop when none is free)."""

    name = "first_free"

    def act(self, env, obs, info):
        return int(np.flatnonzero(info["action_mask"])[0])


def make_placer_view(**kwargs):
    render_mode = kwargs.pop("render_mode", None)
    return SingleAgentView(parallel_env=lambda: ToySlotsParallelEnv(**kwargs), agent="placer",
                           partners={"evictor": EvictOldest}, render_mode=render_mode)


PARALLEL_ID = "rlsys-test/ToySlots-v0"
VIEW_ID = "rlsys-test/ToySlotsPlacer-v0"


def register() -> None:
    """Add both rows to the rlsys registry (idempotent)."""
    if PARALLEL_ID in rlsys_envs.env_ids():
        return
    rlsys_envs.register(EnvEntry(
        id=PARALLEL_ID, entry_point=ToySlotsParallelEnv, kind="parallel", summary="toy two-agent slots",
        baselines={"first_free+evict_oldest": lambda: {"placer": PlaceFirstFree(), "evictor": EvictOldest()},
                   "random": lambda: {"placer": RandomMaskedPolicy(), "evictor": RandomMaskedPolicy()}},
        variants={"small": {"n_slots": 2, "horizon": 12}}))
    rlsys_envs.register(EnvEntry(
        id=VIEW_ID, entry_point=make_placer_view, summary="toy slots, placer view",
        baselines={"first_free": PlaceFirstFree, "random": RandomMaskedPolicy},
        variants={"small": {"n_slots": 2, "horizon": 12}}))
