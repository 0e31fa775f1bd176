"""Expert demonstrations for behaviour cloning (``rlsys_agents.imitation``).

An *expert* is an environment-specific planner, typically an exact reference such as CP-SAT, that
plays an episode from ``env.reset(seed=...)`` and records, at every step, the action it took and
the *set* of actions it would accept there. The set matters where the expert's choice is one of
several equivalent ones (in VM rescheduling, any of the identical VMs on one NUMA node; any
pending migration of the plan that is legal now): cloning only the action taken would punish a
policy for picking an equivalent one. An expert is a class with a ``name`` and
``demonstrate(env, seed, prefix=()) -> Demonstration``; the registry lists each environment's
experts. ``prefix``: actions played first (by a learner, in DAgger), after which the expert plans
from the state they reach; those steps are part of the replay but not of the training targets.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any, Callable, Sequence


@dataclass
class Demonstration:
    """One expert episode: replaying ``actions`` after ``env.reset(seed=seed)`` reproduces it."""

    #: the reset seed of the episode
    seed: int
    #: the expert's action at each step: an int (``Discrete``), or a list of ints (``MultiDiscrete``)
    actions: list
    #: the actions the expert accepts at each step (each list contains that step's action); for a
    #: ``MultiDiscrete`` action, flat indices into the per-component mask layout (``action_masks()``:
    #: component ``i``'s value ``v`` is ``sum(nvec[:i]) + v``), the accepted values of every component
    targets: list[list[int]]
    #: the expert's own figures (solver status, objective, wall time, ...)
    info: dict = field(default_factory=dict)
    #: the first ``prefix`` actions were played by someone else (a learner, in DAgger): replayed to
    #: reach the expert's start state, not imitated
    prefix: int = 0

    def __post_init__(self):
        if not 0 <= self.prefix <= len(self.actions):
            raise ValueError(f"demonstration of seed {self.seed}: prefix {self.prefix} outside 0..{len(self.actions)}")
        if len(self.actions) != len(self.targets):
            raise ValueError(f"demonstration of seed {self.seed}: {len(self.actions)} actions but "
                             f"{len(self.targets)} target sets")
        for i, (a, t) in enumerate(zip(self.actions, self.targets)):
            if isinstance(a, list):         # MultiDiscrete: checked against the mask layout when replayed
                continue
            if a not in t:
                raise ValueError(f"demonstration of seed {self.seed}: step {i} action {a} is not among its "
                                 f"accepted actions {t[:10]}")

    def to_json(self) -> str:
        return json.dumps({"seed": self.seed, "actions": self.actions, "targets": self.targets, "info": self.info,
                           "prefix": self.prefix})

    @classmethod
    def from_json(cls, line: str) -> "Demonstration":
        d = json.loads(line)
        actions = [[int(x) for x in a] if isinstance(a, list) else int(a) for a in d["actions"]]
        return cls(int(d["seed"]), actions, [[int(a) for a in t] for t in d["targets"]],
                   dict(d.get("info", {})), int(d.get("prefix", 0)))


def play_prefix(env, seed: int, prefix: Sequence, expert: str, as_action: Callable[[Any], Any] = int):
    """``env.reset(seed=seed)``, then the ``prefix`` actions (a DAgger learner's, each converted by
    ``as_action``); returns the ``(obs, info)`` the expert plans from. Raises ``ValueError`` naming
    ``expert``, the seed and the step when the prefix ends the episode (nothing is left to plan)."""
    obs, info = env.reset(seed=int(seed))
    for i, a in enumerate(prefix):
        obs, _r, terminated, truncated, info = env.step(as_action(a))
        if terminated or truncated:
            raise ValueError(f"{expert}: the prefix of seed {seed} ends the episode at step {i + 1}")
    return obs, info
