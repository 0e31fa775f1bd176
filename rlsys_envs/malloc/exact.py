"""Exact references of the memory mapping game: a CP-SAT model and an LP upper bound.

**CP-SAT model** (:func:`solve_cpsat`). Booleans ``x_i`` (buffer ``i`` in fast memory), offsets
``o_i`` in ``[0, capacity - size_i]``, optional intervals ``[start_i, end_i)`` in time and
``[o_i, o_i + size_i)`` in address present when ``x_i``, under ``AddNoOverlap2D``; the roofline as
linear constraints, ``t_o >= compute_o`` and ``t_o >= memory_o(all slow) - sum_i saving_io x_i``;
minimise ``sum_o t_o``. Times are integers in units of ``slow_time / 10**6`` (the placement found is
then scored with the float model). ``canonical=True`` (the default) adds the game's rule that a
buffer sits at 0 or on top of a buffer presented *before it* that overlaps it in time (booleans
``z_ij``), so the optimum is the best return any sequence of actions reaches in the environment
(with ``max_candidates`` large enough); without an answer within the limit the ``hint`` is
returned (status ``UNKNOWN``). A ``hint`` (a legal placement, e.g. ``xla_like``'s) is given to
the solver complete (offsets, the canonical rule each offset follows, the op times), so its first
solution is the hint, and the answer is never worse than the hint. ``canonical=False`` is the
plain packing problem, whose optimum is at least as good and bounds every mapping of the program.
``objective="allocate"`` fixes every ``x_i = 1`` and asks for a feasible packing. One worker, a fixed seed and a
*deterministic* time limit make the answer reproducible; the status says whether it is proven.

**LP bound** (:func:`lp_bound`). The same model with ``x_i`` in ``[0, 1]``, no offsets, and the
capacity kept as "live fast bytes <= capacity at every position" (HiGHS through SciPy): an upper
bound on the time saved by any mapping, in milliseconds. The all-fast program time
(``Program.fast_time``, capacity ignored) is the free bound.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from .model import Program

SCALE = 10**6


@dataclass
class CPSatResult:
    offsets: np.ndarray          # [N], -1 = slow memory
    status: str                  # OPTIMAL / FEASIBLE / INFEASIBLE / UNKNOWN
    saved_fraction: float        # time saved by the placement (float model), / all-slow time
    bound_fraction: float        # upper bound on the saved fraction proven by the solver (1.0 if none)
    wall_s: float
    stats: dict = field(default_factory=dict)


def _time_overlap(program: Program) -> np.ndarray:
    s, e = program.start, program.end
    return (s[:, None] < e[None, :]) & (s[None, :] < e[:, None])


def solve_cpsat(program: Program, order: np.ndarray | None = None, objective: str = "map", canonical: bool = True,
                time_limit: float = 10.0, seed: int = 0, hint: np.ndarray | None = None,
                decided: np.ndarray | None = None, fixed: np.ndarray | None = None,
                wall_limit: float | None = None) -> CPSatResult:
    """The best mapping (``objective="map"``) or a full allocation (``"allocate"``); see the module
    docstring. ``order``: the presentation order (needed with ``canonical``); ``time_limit``: the
    solver's deterministic time limit (CP-SAT's work units, a few wall seconds each on one core);
    ``hint``: a placement to start from; ``decided`` (bool ``[N]``) with ``fixed`` (offsets, -1 =
    slow): buffers whose placement is given (the rest of an episode already under way)."""
    from ortools.sat.python import cp_model

    p = program
    n, cap = p.n_buffers, p.capacity
    t0 = time.perf_counter()
    m = cp_model.CpModel()
    fits = p.size <= cap
    if objective == "allocate" and not fits.all():
        return CPSatResult(np.full(n, -1), "INFEASIBLE", 0.0, 0.0, 0.0, {"reason": "a buffer exceeds the capacity"})
    x = [m.NewBoolVar(f"x{i}") if fits[i] else m.NewConstant(0) for i in range(n)]
    o = [m.NewIntVar(0, max(cap - int(p.size[i]), 0), f"o{i}") for i in range(n)]
    tiv, aiv = [], []
    for i in range(n):
        if not fits[i]:
            continue
        tiv.append(m.NewOptionalFixedSizeIntervalVar(int(p.start[i]), int(p.end[i] - p.start[i]), x[i], f"t{i}"))
        aiv.append(m.NewOptionalFixedSizeIntervalVar(o[i], int(p.size[i]), x[i], f"a{i}"))
    m.AddNoOverlap2D(tiv, aiv)
    if decided is not None:
        for i in np.flatnonzero(decided):
            if fixed[i] >= 0:
                m.Add(x[i] == 1)
                m.Add(o[i] == int(fixed[i]))
            elif fits[i]:
                m.Add(x[i] == 0)
    if objective == "allocate":
        for i in range(n):
            m.Add(x[i] == 1)
    n_z = 0
    if canonical:
        if order is None:
            raise ValueError("solve_cpsat(canonical=True) needs the presentation order")
        rank = np.empty(n, np.int64)
        rank[np.asarray(order)] = np.arange(n)
        overlap = _time_overlap(p)
        h = None if hint is None else np.asarray(hint, np.int64)
        for i in range(n):
            if not fits[i]:
                continue
            on_zero = m.NewBoolVar(f"z{i}_0")
            m.Add(o[i] == 0).OnlyEnforceIf(on_zero)
            options = [on_zero]
            if h is not None:                          # a complete hint: which rule the hinted offset follows
                m.AddHint(on_zero, int(h[i] == 0))
            for j in np.flatnonzero(overlap[i] & (rank < rank[i]) & fits):
                if int(p.size[j]) + int(p.size[i]) > cap:
                    continue
                z = m.NewBoolVar(f"z{i}_{j}")
                m.Add(o[i] == o[j] + int(p.size[j])).OnlyEnforceIf(z)
                m.AddImplication(z, x[j])
                options.append(z)
                if h is not None:
                    m.AddHint(z, int(h[i] >= 0 and h[j] >= 0 and h[j] + int(p.size[j]) == h[i]))
            n_z += len(options)
            m.Add(sum(options) >= 1).OnlyEnforceIf(x[i])
    unit = p.slow_time / SCALE
    if objective == "map":
        comp = np.round(p.compute / unit).astype(np.int64)
        base = np.round(p.slow_memory / unit).astype(np.int64)
        sav = np.round(p.acc_saving / unit).astype(np.int64)
        terms, const = [], 0
        for op in range(p.n_ops):
            if comp[op] >= base[op]:
                const += int(comp[op])
                continue
            sel = np.flatnonzero((p.acc_op == op) & fits[p.acc_buf] & (sav > 0))
            if not len(sel):
                const += int(base[op])
                continue
            t = m.NewIntVar(int(comp[op]), int(base[op]), f"time{op}")
            m.Add(t >= int(base[op]) - sum(int(sav[k]) * x[int(p.acc_buf[k])] for k in sel))
            if hint is not None:
                fast_now = np.asarray(hint)[p.acc_buf[sel]] >= 0
                m.AddHint(t, int(max(comp[op], base[op] - int(sav[sel][fast_now].sum()))))
            terms.append(t)
        m.Minimize(sum(terms) + const)
    if hint is not None:
        for i in range(n):
            if fits[i]:
                m.AddHint(x[i], int(hint[i] >= 0))
                if hint[i] >= 0:
                    m.AddHint(o[i], int(hint[i]))
    solver = cp_model.CpSolver()
    solver.parameters.max_deterministic_time = float(time_limit)
    if wall_limit is not None:
        solver.parameters.max_time_in_seconds = float(wall_limit)
    solver.parameters.num_workers = 1
    solver.parameters.random_seed = int(seed)
    status = solver.Solve(m)
    name = solver.StatusName(status)
    wall = time.perf_counter() - t0
    stats = {"booleans_z": n_z, "deterministic_time": solver.deterministic_time}
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        if hint is not None and objective == "map":   # no answer in time: the hint (legal by construction)
            hint = np.asarray(hint, np.int64)
            stats["returned_hint"] = True
            return CPSatResult(hint.copy(), name, float((p.slow_time - p.program_time(hint >= 0)) / p.slow_time),
                               1.0, wall, stats)
        return CPSatResult(np.full(n, -1), name, 0.0, 1.0 if name == "UNKNOWN" else 0.0, wall, stats)
    offsets = np.array([solver.Value(o[i]) if fits[i] and solver.Value(x[i]) else -1 for i in range(n)], np.int64)
    saved = (p.slow_time - p.program_time(offsets >= 0)) / p.slow_time
    if objective == "map":
        bound = (SCALE - solver.BestObjectiveBound()) / SCALE
        bound = min(1.0, bound + p.n_ops / SCALE)   # rounding slack of the integer times
        if hint is not None:        # never worse than the hint under the float model (integer rounding)
            hinted = (p.slow_time - p.program_time(np.asarray(hint) >= 0)) / p.slow_time
            if hinted > saved:
                stats["returned_hint"] = True
                offsets, saved = np.asarray(hint, np.int64).copy(), hinted
    else:
        bound = saved
    return CPSatResult(offsets, name, float(saved), float(bound), wall, stats)


def lp_bound(program: Program) -> float:
    """Upper bound on the fraction of run time any mapping saves (LP relaxation, module docstring)."""
    from scipy.optimize import linprog
    from scipy.sparse import coo_matrix, vstack

    p = program
    n, T = p.n_buffers, p.n_ops
    # variables: x (n) then t (T); minimise sum t
    cost = np.concatenate([np.zeros(n), np.ones(T)])
    # -t_o - sum_i d_io x_i <= -base_o
    rows = np.concatenate([p.acc_op, np.arange(T)])
    cols = np.concatenate([p.acc_buf, n + np.arange(T)])
    scale = 1.0 / p.slow_time          # times in units of the all-slow run time
    vals = np.concatenate([-p.acc_saving * scale, -np.ones(T)])
    a_time = coo_matrix((vals, (rows, cols)), shape=(T, n + T))
    # live fast bytes at each position <= capacity
    lens = p.end - p.start
    r = np.concatenate([np.arange(s, e) for s, e in zip(p.start, p.end)])
    c = np.repeat(np.arange(n), lens)
    a_cap = coo_matrix((np.repeat(p.size.astype(float), lens), (r, c)), shape=(T, n + T))
    a = vstack([a_time, a_cap * (1.0 / max(p.capacity, 1))]).tocsr()
    b = np.concatenate([-p.slow_memory * scale, np.ones(T) * (p.capacity / max(p.capacity, 1))])
    bounds = [(0.0, 1.0 if p.size[i] <= p.capacity else 0.0) for i in range(n)] + \
             [(float(ci) * scale, None) for ci in p.compute]
    res = linprog(cost, A_ub=a, b_ub=b, bounds=bounds, method="highs")
    if res.status != 0:
        raise RuntimeError(f"LP bound failed: {res.message}")
    return float(max(0.0, 1.0 - res.fun))
