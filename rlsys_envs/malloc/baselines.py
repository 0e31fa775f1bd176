"""Baselines of the memory mapping game and the CP-SAT reference.

``BASELINES`` (name -> zero-argument factory of a :class:`rlsys_envs.core.Policy`). Every policy
decides the buffer the environment presents, in the environment's ``order``; a rule that belongs
with another order names it in ``preferred_order`` (the benchmark scores it in that order, since
the saved run time does not depend on the order):

- ``xla_like``: XLA's memory-space assignment as publicly documented: the best-fit position (the
  smallest free gap over the buffer's whole live range that holds it, lowest offset on ties), else
  slow memory; in the default ``order="xla"`` (decreasing saving / sqrt(size)) this is XLA's
  algorithm without its prefetch / eviction copies and repacking.
- ``first_fit``: the lowest position that fits, else slow memory (preferred order ``start``).
- ``best_fit_size``: best fit (preferred order ``size``: decreasing size, the heap simulator's
  ``GlobalDecreasingSizeBestFitHeap``).
- ``greedy_density``: best fit, but only when the buffer saves time *now* (given what is placed),
  so compute-bound buffers do not take space (preferred order ``density``: saving per byte).
- ``random``: uniform among the legal actions.
- ``cpsat``: the CP-SAT model of :mod:`.exact` in the environment's order (10 units of
  deterministic time, one worker), hinted with ``xla_like``'s placement; its offsets are replayed
  (a planned offset that is not offered falls back to ``xla_like``'s rule).
- ``canonical_search``: the MiniMalloc-style backtracking allocator of :mod:`.search` (10 s wall
  clock) planned at reset. With ``buffer_choice=True`` its placement sequence is replayed action
  by action (every canonical packing is reachable there); in the fixed order its offsets are
  replayed where offered. Without a packing in time (or in ``map`` mode where everything does not
  fit) it plays ``xla_like``'s rule.

With ``buffer_choice=True`` the fixed-order rules decide the environment's ``current`` buffer (the
first undecided one in ``order``), so they play the same game as in the fixed-order mode.
"""
from __future__ import annotations


from rlsys_envs.core import Policy, RandomMaskedPolicy, simulate


class BestFitPolicy(Policy):
    """XLA's rule: the best-fit candidate, else slow memory."""

    name = "xla_like"
    preferred_order = "xla"

    def act(self, env, obs, info):
        return env.best_fit if env.best_fit >= 0 else env.slow_action


class BestFitSizePolicy(BestFitPolicy):
    name = "best_fit_size"
    preferred_order = "size"


class FirstFitPolicy(Policy):
    """The lowest offered offset, else slow memory."""

    name = "first_fit"
    preferred_order = "start"

    def act(self, env, obs, info):
        return env.place_action(0) if len(env.cand_offsets) else env.slow_action


class GreedyDensityPolicy(Policy):
    """Best fit when the buffer saves time now, else slow memory (in ``allocate``: always best fit)."""

    name = "greedy_density"
    preferred_order = "density"

    def act(self, env, obs, info):
        if env.best_fit < 0:
            return env.slow_action
        if env.objective == "allocate" or env._gain[env.current] > 0:
            return env.best_fit
        return env.slow_action


class CPSatPolicy(Policy):
    """Plans with :func:`~rlsys_envs.malloc.exact.solve_cpsat` at reset and replays the offsets."""

    name = "cpsat"

    def __init__(self, time_limit: float = 10.0, canonical: bool = True, wall_limit: float | None = None):
        self.time_limit, self.canonical, self.wall_limit = float(time_limit), bool(canonical), wall_limit
        self.result = None

    def reset(self, env, seed=None):
        from .exact import solve_cpsat

        super().reset(env, seed)
        _, twin = simulate(env, BestFitPolicy())
        self.result = solve_cpsat(env.program, env.order_index, env.objective, self.canonical, self.time_limit,
                                  hint=twin.placement(), wall_limit=self.wall_limit)
        self.fallbacks = 0

    def act(self, env, obs, info):
        target = int(self.result.offsets[env.current]) if self.result is not None else -1
        if target < 0:
            if env.objective == "map" or env.best_fit < 0:
                return env.slow_action
            target = int(env.cand_offsets[env.best_fit])
        a = env.action_of_offset(target)
        if a is None:
            self.fallbacks += 1
            return env.best_fit if env.best_fit >= 0 else env.slow_action
        return a


class CanonicalSearchPolicy(Policy):
    """Plans with :func:`~rlsys_envs.malloc.search.solve_canonical` at reset and replays it."""

    name = "canonical_search"

    def __init__(self, time_limit: float = 10.0):
        self.time_limit = float(time_limit)
        self.result = None

    def reset(self, env, seed=None):
        from .search import solve_canonical

        super().reset(env, seed)
        self.result = solve_canonical(env.program, time_limit=self.time_limit)
        self.fallbacks = 0
        self._next = 0

    def act(self, env, obs, info):
        r = self.result
        if r is None or r.status != "FEASIBLE":
            return env.best_fit if env.best_fit >= 0 else env.slow_action
        if env.buffer_choice:
            seq = r.sequence
            while self._next < len(seq) and env.state.decided[seq[self._next]]:
                self._next += 1
            if self._next < len(seq):
                i = int(seq[self._next])
                a = env.action_for(i, int(r.offsets[i]))
                if a is not None and env.action_masks()[a]:
                    return a
        else:
            a = env.action_of_offset(int(r.offsets[env.current]))
            if a is not None:
                return a
        self.fallbacks += 1
        return env.best_fit if env.best_fit >= 0 else env.slow_action


BASELINES = {
    "xla_like": BestFitPolicy,
    "first_fit": FirstFitPolicy,
    "best_fit_size": BestFitSizePolicy,
    "greedy_density": GreedyDensityPolicy,
    "random": RandomMaskedPolicy,
    "cpsat": CPSatPolicy,
    "canonical_search": CanonicalSearchPolicy,
}

#: name -> the order a baseline's rule belongs with (see the module docstring)
PREFERRED_ORDER = {name: getattr(cls, "preferred_order", "xla") for name, cls in BASELINES.items()}

