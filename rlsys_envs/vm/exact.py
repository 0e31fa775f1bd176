"""The exact reference of VM rescheduling: a CP-SAT model of the best reassignment of at most MNL VMs.

**CP-SAT model.** VMs of one *shape* (span, cpu per node, memory per node) are interchangeable,
so the movable VMs are aggregated per (shape, slot): integer variables ``out[h, s]`` (VMs of
shape ``h`` leaving slot ``s``) and ``inn[h, s]`` (arriving), with ``sum_s out = sum_s inn`` per
shape, ``sum out <= MNL``, every NUMA node within cpu and memory capacity in the final state, and
``free cpu = unit * q + r`` with ``0 <= r < unit`` per NUMA node; the objective minimises
``sum r`` (fragmented cores, i.e. FR, since total free cores are constant) and then the number of
moves. VMs in deployment sets get individual placement booleans (anti-affinity: at most one member of a
set per PM, or per rack; affinity: every member stays on its host, or its rack). This is exact for
*simultaneous* moves, so its optimum is a lower bound on the FR reachable with ``MNL`` sequential
migrations.

**Fragmented scope** (``scope="fragmented"``). A migration of ``c`` cores changes the free cores of
its source and destination by ``+c`` and ``-c``; modulo the unit (16) nothing changes when ``c`` is
a multiple of it, and a destination without fragmented cores (free cores a multiple of the unit)
always gains fragments (``16 - c mod 16``). So the restricted model lets only VMs whose cores per
node are not a multiple of the unit move, and only to nodes with fragmented cores (from any node, a
full one included). It loses the plans that park a VM on an unfragmented node on the way, so it is
not exact, but its answer is legal in the full problem. On M size (279 PMs, seeds 0-9, MNL 50) it
has about a third of the variables (seed 0: 3,250 against 8,735) and reaches the exact model's
60-second answer (mean FR reduction 0.4683) within about 1 s, 6 of 10 proven optimal in the
restricted model, while the exact model hinted with the same greedy plan does not improve on the
hint in 3 s. Hence :func:`plan_cpsat`'s ``"staged"`` default: the fragmented model first, then the
exact one, hinted with its plan, for the proof and the bound.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace

import numpy as np

from rlsys_envs.core.exact import run_cpsat

from .model import Cluster
from .planning import greedy_plan, sequence_moves


@dataclass
class CPSatResult:
    moves: list[tuple[int, int]]           # (vm, destination slot), unordered
    status: str                            # OPTIMAL / FEASIBLE / UNKNOWN / INFEASIBLE
    fragments: int                         # solver's final fragmented cores
    bound: float                           # lower bound on the fragmented cores (model solved; 0: no answer)
    fr: float                              # solver's final FR
    fr_bound: float                        # lower bound on the FR (in the model solved)
    wall_s: float
    scope: str = "all"                     # the model solved: "all" (exact) or "fragmented" (restricted)
    stats: dict = field(default_factory=dict)



#: what :func:`solve_cpsat` may move (``scope``); see the module docstring
CPSAT_SCOPES = ("all", "fragmented")


#: what :func:`plan_cpsat` solves (``scope``): a model of :data:`CPSAT_SCOPES`, or ``"staged"``
PLAN_SCOPES = CPSAT_SCOPES + ("staged",)


def check_scope(scope: str, allowed: tuple[str, ...]) -> None:
    if scope not in allowed:
        raise ValueError(f"CP-SAT scope must be one of {', '.join(allowed)}; got {scope!r}")


def solve_cpsat(cluster: Cluster, mnl: int, time_limit: float = 10.0, workers: int = 1,
                seed: int = 0, hint: list[tuple[int, int]] | None = None, scope: str = "all",
                deterministic_time: float | None = None) -> CPSatResult:
    """Minimum-FR reassignment of at most ``mnl`` VMs (simultaneous moves); see the module docstring.

    ``hint``: a legal sequence of migrations (e.g. :func:`greedy_plan`) whose final state seeds the
    search, so the answer is never worse than the hint (hint moves outside ``scope`` are ignored
    by the model); with no answer in time, the hint's final state is returned (status UNKNOWN).
    None: the current state is the hint.

    ``scope``: ``"all"`` is the exact model. ``"fragmented"`` restricts it to the migrations that
    can change fragments (module docstring, "Fragmented scope"): far smaller, solved in about a
    second on M size, and its answer is legal in the full problem; but then ``status``, ``bound``
    and ``fr_bound`` are those of the restricted problem, not bounds for the full one.
    """
    from ortools.sat.python import cp_model

    check_scope(scope, CPSAT_SCOPES)
    t0 = time.perf_counter()
    c = cluster
    u = c.frag_unit
    # "fragmented": only VMs whose cores per node are not a multiple of the unit move, and only to
    # nodes with fragmented cores (every other migration is neutral or harmful by itself)
    fragmented = scope == "fragmented"
    receives = (c.free[:, 0] % u != 0) if fragmented else np.ones(c.n_nodes, bool)
    cap = c.pool.capacity
    usage = c.pool.usage
    n_nodes = c.n_nodes
    model = cp_model.CpModel()
    agg = c.vm_movable & (c.vm_group < 0)
    own = c.own_slots()
    acc = np.repeat(c.pm_accepting, 2)

    def may_receive(s: int, span: int, cpu: int, mem: int) -> bool:
        """Slot ``s`` may take a VM of ``span`` x (``cpu``, ``mem``): its PM accepts VMs, each node
        could hold it empty, and (fragmented scope) a node of the slot has fragmented cores."""
        return bool(receives[s:s + span].any() and acc[s]) and all(
            cap[n, 0] >= cpu and cap[n, 1] >= mem for n in range(s, s + span))

    d_cpu = [[] for _ in range(n_nodes)]   # linear terms of usage change per node
    d_mem = [[] for _ in range(n_nodes)]
    moves_terms = []
    outs: dict[tuple[int, int], object] = {}
    inns: dict[tuple[int, int], object] = {}
    for h, (span, cpu, mem) in enumerate(c.shapes):
        if fragmented and cpu % u == 0:
            continue
        members = np.flatnonzero(agg & (c.vm_shape == h))
        if len(members) == 0:
            continue
        ub = min(mnl, len(members))
        slots = np.arange(0, n_nodes, 2) if span == 2 else np.arange(n_nodes)
        counts = np.bincount(own[members], minlength=n_nodes)
        in_terms, out_terms = [], []
        for s in slots:
            nodes = (s, s + 1) if span == 2 else (s,)
            if counts[s] > 0:
                o = model.NewIntVar(0, int(min(counts[s], ub)), f"out_{h}_{s}")
                outs[h, int(s)] = o
                out_terms.append(o)
                for n in nodes:
                    d_cpu[n].append(-int(cpu) * o)
                    d_mem[n].append(-int(mem) * o)
            if may_receive(s, span, cpu, mem):
                i = model.NewIntVar(0, ub, f"in_{h}_{s}")
                inns[h, int(s)] = i
                in_terms.append(i)
                for n in nodes:
                    d_cpu[n].append(int(cpu) * i)
                    d_mem[n].append(int(mem) * i)
        model.Add(sum(in_terms) == sum(out_terms))
        moves_terms.extend(out_terms)
    # anti-affinity members: individual placements
    xs: dict[int, dict[int, object]] = {}
    for v in np.flatnonzero(c.vm_movable & (c.vm_group >= 0)):
        span, cpu, mem = c.shapes[c.vm_shape[v]]
        if fragmented and cpu % u == 0:
            continue   # stays where it is (the group constraints below see it there)
        slots = np.arange(0, n_nodes, 2) if span == 2 else np.arange(n_nodes)
        g = int(c.vm_group[v])
        # affinity sets: each member stays on its host / rack (where all the others are)
        home = (c.pm_rack == c.pm_rack[c.vm_pm[v]]) if c.group_rack[g] else (np.arange(c.n_pms) == c.vm_pm[v])
        xs[v] = {}
        for s in slots:
            nodes = (s, s + 1) if span == 2 else (s,)
            if s != own[v] and (not may_receive(s, span, cpu, mem) or (c.group_affinity[g] and not home[s // 2])):
                continue
            b = model.NewBoolVar(f"x_{v}_{s}")
            xs[v][int(s)] = b
            for n in nodes:
                if s != own[v]:
                    d_cpu[n].append(int(cpu) * b)
                    d_mem[n].append(int(mem) * b)
        model.AddExactlyOne(xs[v].values())
        stay = xs[v][int(own[v])]
        for n in ((own[v], own[v] + 1) if span == 2 else (own[v],)):
            d_cpu[n].append(-int(cpu) * (1 - stay))
            d_mem[n].append(-int(mem) * (1 - stay))
        moves_terms.append(1 - stay)
    for g, members in c.group_members.items():
        if c.group_affinity[g]:
            continue    # the domains above keep affinity sets together
        # anti-affinity: at most one member per host (or per rack)
        unit_of = c.pm_rack if c.group_rack[g] else np.arange(c.n_pms)
        terms_of: dict[int, list] = {}
        for v in members:
            if v in xs:
                for s, b in xs[v].items():
                    terms_of.setdefault(int(unit_of[s // 2]), []).append(b)
            else:
                terms_of.setdefault(int(unit_of[c.vm_pm[v]]), []).append(1)
        for terms in terms_of.values():
            if len(terms) > 1:
                model.Add(sum(terms) <= 1)
    model.Add(sum(moves_terms) <= mnl)
    # hint: the final state of the hint sequence (or the current state)
    h_sim = c.copy()
    for v, sl in (hint or [])[:mnl]:
        h_sim.migrate(int(v), int(sl))
    h_free = h_sim.free[:, 0]
    h_slot = 2 * h_sim.vm_pm + np.where(h_sim.vm_span == 2, 0, h_sim.vm_numa)
    h_out: dict[tuple[int, int], int] = {}
    h_in: dict[tuple[int, int], int] = {}
    for v in np.flatnonzero(agg & (h_slot != own)):
        h = int(c.vm_shape[v])
        h_out[h, int(own[v])] = h_out.get((h, int(own[v])), 0) + 1
        h_in[h, int(h_slot[v])] = h_in.get((h, int(h_slot[v])), 0) + 1
    rs = []
    for n in range(n_nodes):
        free_cpu = int(cap[n, 0] - usage[n, 0]) - sum(d_cpu[n])
        model.Add(int(cap[n, 1] - usage[n, 1]) - sum(d_mem[n]) >= 0)
        q = model.NewIntVar(0, int(cap[n, 0]) // u, f"q_{n}")
        r = model.NewIntVar(0, u - 1, f"r_{n}")
        model.Add(free_cpu == u * q + r)
        if c.node_active[n]:     # out-of-service PMs count in no fragment rate
            rs.append(r)
        model.AddHint(q, int(h_free[n] // u))
        model.AddHint(r, int(h_free[n] % u))
    for key, var in outs.items():
        model.AddHint(var, int(h_out.get(key, 0)))
    for key, var in inns.items():
        model.AddHint(var, int(h_in.get(key, 0)))
    for v, opts in xs.items():
        for sl, b in opts.items():
            model.AddHint(b, int(sl == h_slot[v]))
    weight = mnl + 1
    model.Minimize(weight * sum(rs) + sum(moves_terms))
    solver, status, name = run_cpsat(model, time_limit, workers, seed, deterministic_time)
    moves: list[tuple[int, int]] = []
    frags = int(c.frag_total)
    bound = 0.0                            # nothing proven without an answer
    if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        for h in range(len(c.shapes)):
            srcs, dsts = [], []
            members = np.flatnonzero(agg & (c.vm_shape == h))
            for (hh, s), o in outs.items():
                if hh == h:
                    k = solver.Value(o)
                    at = [int(v) for v in members if own[v] == s][:k]
                    srcs += [(v, s) for v in at]
            for (hh, s), i in inns.items():
                if hh == h:
                    dsts += [s] * solver.Value(i)
            # cancel out/in at the same slot, then pair the rest
            srcs_left = []
            for v, s in srcs:
                if s in dsts:
                    dsts.remove(s)
                else:
                    srcs_left.append((v, s))
            moves += [(v, d) for (v, _), d in zip(srcs_left, dsts)]
        for v, opts in xs.items():
            for s, b in opts.items():
                if solver.Value(b) and s != own[v]:
                    moves.append((int(v), s))
        frags = int(sum(solver.Value(r) for r in rs))
        bound = float(np.ceil(solver.BestObjectiveBound() / weight - 1e-9)) if status == cp_model.FEASIBLE else frags
        bound = min(bound, frags)
    elif hint:
        # no answer in time (a very short limit on a large cluster): the hint's final state, which
        # is legal and where the search started, rather than an empty plan worse than the hint
        moves = [(int(v), int(h_slot[v])) for v in np.flatnonzero(h_slot != own)]
        frags = int((h_free % u * c.node_active).sum())
    tf = c.total_free_cpu
    return CPSatResult(moves=moves, status=name, fragments=frags, bound=bound,
                       fr=frags / tf if tf else 0.0, fr_bound=bound / tf if tf else 0.0,
                       wall_s=time.perf_counter() - t0, scope=scope,
                       stats={"branches": solver.NumBranches(), "vars": len(model.Proto().variables)})


def plan_cpsat(cluster: Cluster, budget: int, time_limit: float, workers: int = 1, seed: int = 0,
               greedy_hint: bool = True, scope: str = "staged",
               deterministic_time: float | None = None) -> tuple[CPSatResult, list[tuple[int, int]], int]:
    """CP-SAT's plan for ``cluster`` as single migrations: ``(result, sequence, dropped)``.

    :func:`solve_cpsat` (hinted with :func:`greedy_plan` unless ``greedy_hint`` is false), then
    :func:`sequence_moves`; what :class:`CPSatPolicy` replays and :class:`CPSatExpert` demonstrates.

    ``scope``: ``"all"`` or ``"fragmented"`` (the model of :func:`solve_cpsat`), or ``"staged"``:
    the fragmented model for a quarter of ``time_limit``, then the exact model for the rest,
    hinted with the fragmented plan. Staged is never worse than the fragmented plan, and its
    status and bound are the exact model's (M size, seeds 0-9: the fragmented model alone reaches
    the exact model's 60 s answer in about 1 s; the exact model alone, hinted with greedy, does
    not improve on the hint in 3 s).

    ``deterministic_time``: the limit in CP-SAT's deterministic units (see
    :func:`rlsys_envs.core.exact.run_cpsat`), so that the plan is the same on every machine.
    """
    check_scope(scope, PLAN_SCOPES)
    if scope == "staged":
        t0 = time.perf_counter()
        first, hint, _ = plan_cpsat(cluster, budget, time_limit / 4, workers, seed, greedy_hint, "fragmented",
                                    None if deterministic_time is None else deterministic_time / 4)
        rest = max(time_limit - (time.perf_counter() - t0), 0.1 * time_limit)
        result = solve_cpsat(cluster, budget, rest, workers, seed, hint=hint, scope="all",
                             deterministic_time=None if deterministic_time is None else 0.75 * deterministic_time)
        stats = {**result.stats, "all_status": result.status,
                 "fragmented": {"status": first.status, "fr": first.fr, "wall_s": round(first.wall_s, 2)}}
        if result.status not in ("OPTIMAL", "FEASIBLE"):          # no answer, so no bound either, in time
            result = first
        elif result.fragments > first.fragments:                  # the exact model's hint was not loaded in time
            result = replace(result, moves=first.moves, fragments=first.fragments, fr=first.fr, status="FEASIBLE")
        result = replace(result, wall_s=time.perf_counter() - t0, stats=stats)
    else:
        hint = greedy_plan(cluster, budget) if greedy_hint else None
        result = solve_cpsat(cluster, budget, time_limit, workers, seed, hint=hint, scope=scope,
                             deterministic_time=deterministic_time)
    sequence, dropped = sequence_moves(cluster, result.moves, budget)
    return result, sequence, dropped
