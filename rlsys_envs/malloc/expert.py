"""Behaviour-cloning demonstrations of the memory mapping game from CP-SAT's plans (``rlsys_agents.imitation``)."""
from __future__ import annotations

from typing import Callable

from rlsys_envs.core import Demonstration, simulate

from .baselines import BestFitPolicy
from .exact import solve_cpsat


class CPSatExpert:
    """Plays the CP-SAT plan (:func:`~rlsys_envs.malloc.exact.solve_cpsat`, canonical in the
    environment's order, hinted with ``xla_like``) from ``env.reset(seed)`` after the ``prefix``
    actions; the accepted action at each step is the planned one (the planned offset, or slow
    memory), and ``xla_like``'s rule where the plan's offset is not offered."""

    name = "cpsat"
    version = 1

    def __init__(self, time_limit: float = 1.0):
        self.time_limit = float(time_limit)

    def demonstrate(self, env, seed: int, prefix=()) -> Demonstration:
        obs, info = env.reset(seed=int(seed))
        base = env.unwrapped
        actions = []
        for a in prefix:
            obs, _, term, trunc, info = env.step(int(a))
            actions.append(int(a))
            if term or trunc:
                return Demonstration(int(seed), actions, [[a] for a in actions], {}, len(actions))
        _, twin = simulate(base, BestFitPolicy())
        plan = solve_cpsat(base.program, base.order_index, base.objective, True, self.time_limit,
                           hint=twin.placement(), decided=base.state.decided.copy(), fixed=base.state.offset.copy())
        n_prefix = len(actions)
        while True:
            target = int(plan.offsets[base.current])
            a = base.slow_action if target < 0 else base.action_of_offset(target)
            if a is None or not base.action_masks()[a]:
                a = base.best_fit if base.best_fit >= 0 else base.slow_action
            actions.append(int(a))
            obs, _, term, trunc, info = env.step(int(a))
            if term or trunc:
                break
        return Demonstration(int(seed), actions, [[a] for a in actions],
                             {"status": plan.status, "saved_fraction": plan.saved_fraction}, n_prefix)


EXPERTS: dict[str, Callable[..., CPSatExpert]] = {"cpsat": CPSatExpert}
