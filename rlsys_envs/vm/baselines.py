"""Baselines for VM rescheduling: no-op, random, greedy, best-of-K sampling, and an exact CP-SAT model.

``BASELINES`` (name -> zero-argument factory):

- ``noop``: stop at once (FR unchanged); where stop is not allowed it falls back to ``greedy``.
- ``random``: uniformly random legal action (:class:`rlsys_envs.core.RandomMaskedPolicy`).
- ``greedy``: the single migration that removes the most fragmented cores now (over every movable
  VM and every legal destination, vectorised per VM shape); it stops when no migration helps, or,
  where stop is not allowed, keeps making the least harmful migration.
  This contains VMR2L's heuristic ("take a VM from the most fragmented place and move it where
  fragments drop most") as the special case where the source is fixed first.
- ``lookahead``: greedy with a two-move look-ahead (:func:`lookahead_plan`): where no single
  migration helps, an FR-neutral one after which the best single migration helps most (sampled).
  Not in VMR2L; added because CP-SAT's plans show that such preparatory moves are what greedy
  misses, so a policy should be measured against it too.
- ``cpsat``: plans at reset with :func:`plan_cpsat` (staged: the fragmented model, then the exact
  one; 10 s, 1 worker) and replays the plan.
- ``cpsat_fragmented``: the fragmented CP-SAT model alone, 1 s, 1 worker: on M size about as good
  as the exact model after a minute (see "Fragmented scope" below).
- ``random_best16``: VMR2L's risk-seeking evaluation applied to ``random``: 16 seeded rollouts from
  the reset state (state snapshots), the plan with the lowest final FR is replayed (:class:`BestOfK`).

:class:`BestOfK` wraps any stochastic policy (e.g. a trained checkpoint's sampling policy), and
:class:`LookaheadCompletion` any policy: its plan up to its lowest FR, then the look-ahead on the
migrations left.

**CP-SAT model.** VMs of one *shape* (span, cpu per node, memory per node) are interchangeable,
so the movable VMs are aggregated per (shape, slot): integer variables ``out[h, s]`` (VMs of
shape ``h`` leaving slot ``s``) and ``inn[h, s]`` (arriving), with ``sum_s out = sum_s inn`` per
shape, ``sum out <= MNL``, every NUMA node within cpu and memory capacity in the final state, and
``free cpu = unit * q + r`` with ``0 <= r < unit`` per NUMA node; the objective minimises
``sum r`` (fragmented cores, i.e. FR, since total free cores are constant) and then the number of
moves. VMs in anti-affinity groups get individual placement booleans (at most one member of a
group per PM). This is exact for *simultaneous* moves, so its optimum is a lower bound on the FR
reachable with ``MNL`` sequential migrations.

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

**Sequencing** (:func:`sequence_moves`). The plan's moves are replayed one at a time on a copy of
the cluster: repeatedly the first pending move that is legal now is applied (a move out frees room
for a later move in). If no pending move is legal (a cycle, e.g. two VMs swapping between full
nodes), one VM of the cycle is parked on any legal slot that is not a pending destination, if the
migration budget allows, and moves on later; moves that still cannot run are dropped and
counted (``CPSatPolicy.dropped``). When the replay runs every move, the env reaches the solver's
final state, so with proof of optimality the result is optimal for the sequential problem too.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Callable

import numpy as np

from rlsys_envs.core import BestOfK as CoreBestOfK
from rlsys_envs.core import Demonstration, Episode, PlannedPolicy, Policy, RandomMaskedPolicy, simulate
from rlsys_envs.core.exact import run_cpsat

from .model import Cluster


def _legal(env) -> np.ndarray:
    return env._legal_mask()


# ---------------------------------------------------------------------------------- greedy
_NO_SLOT = np.iinfo(np.int64).max // 4


def fragment_changes(c: Cluster) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The change in fragmented cores of every single migration, split by its two ends:
    ``(dst, src, own)`` with ``dst[h, s]`` the change at slot ``s`` if a VM of shape ``h`` arrived
    (``_NO_SLOT`` where it does not fit; a VM's own slot is not excluded), ``src[v]`` the change at
    VM ``v``'s node(s) if it left, and ``own`` the VMs' slots. Migration ``v -> s`` changes the
    fragmented cores by ``src[v] + dst[vm_shape[v], s]`` (negative: fewer fragments)."""
    u = c.frag_unit
    f = c.free[:, 0]
    fm = np.mod(f, u)
    sm = c.shape_slot_mask()
    n_sh = len(c.shapes)
    dst = np.full((n_sh, c.n_nodes), _NO_SLOT, np.int64)
    for h, (span, cpu, _) in enumerate(c.shapes):
        if span == 1:
            d = np.mod(f - cpu, u) - fm
        else:
            d = np.full(c.n_nodes, _NO_SLOT, np.int64)
            d[0::2] = (np.mod(f[0::2] - cpu, u) - fm[0::2]) + (np.mod(f[1::2] - cpu, u) - fm[1::2])
        dst[h] = np.where(sm[h], d, _NO_SLOT)
    own = c.own_slots()
    two = c.vm_span == 2
    src = np.mod(f[own] + c.vm_ncpu, u) - fm[own]
    src[two] += np.mod(f[own[two] + 1] + c.vm_ncpu[two], u) - fm[own[two] + 1]
    return dst, src, own


def best_migration(cluster: Cluster) -> tuple[int, int, int]:
    """``(vm, slot, drop)``: the legal migration that removes the most fragmented cores now.

    ``(-1, -1, 0)`` when no VM can move. Ties go to the lowest VM index, then the lowest slot.
    """
    c = cluster
    sm = c.shape_slot_mask()
    dst, src, own = fragment_changes(c)
    order = np.argsort(dst, axis=1, kind="stable")[:, :2]  # best two slots per shape
    b0, b1 = order[c.vm_shape, 0], order[c.vm_shape, 1]
    best_slot = np.where(b0 == own, b1, b0)
    best_dst = dst[c.vm_shape, best_slot]
    big = np.iinfo(np.int64).max // 8
    ok = c.vm_movable & (best_dst < big)
    for v in c.grouped:  # anti-affinity members: exact per-VM mask
        m = c.vm_slot_mask(v, sm)
        if m.any():
            cand = np.where(m, dst[c.vm_shape[v]], big * 2)
            best_slot[v] = int(np.argmin(cand))
            best_dst[v] = cand[best_slot[v]]
            ok[v] = True
        else:
            ok[v] = False
    if not ok.any():
        return -1, -1, 0
    total = np.where(ok, src + best_dst, big * 4)
    v = int(np.argmin(total))
    return v, int(best_slot[v]), int(-total[v])


class GreedyPolicy(Policy):
    """Best single migration now; stops when none removes fragmented cores (if stop is allowed)."""

    name = "greedy"

    def __init__(self, stop_when_no_gain: bool = True):
        self.stop_when_no_gain = stop_when_no_gain
        self._pending: list[int] = []

    def reset(self, env, seed=None):
        super().reset(env, seed)
        self._pending = []

    def act(self, env, obs, info):
        legal = _legal(env)
        if self._pending and legal[self._pending[0]]:
            return self._pending.pop(0)
        self._pending = []
        if env.action_mode != "joint" and env.phase == 1:  # someone else picked the VM: best slot for it
            v = env.selected
            m = env.cluster.vm_slot_mask(v)
            slots = np.flatnonzero(m)
            drops = [env.cluster.migration_delta(v, int(s)) for s in slots]
            return int(slots[int(np.argmax(drops))])
        v, s, drop = best_migration(env.cluster)
        if v < 0 or (drop <= 0 and self.stop_when_no_gain and legal[env.stop_action]):
            if legal[env.stop_action]:
                return env.stop_action
            return int(np.flatnonzero(legal)[0])
        # here drop > 0, or stop is not allowed: the least harmful migration
        actions = env.encode_migration(v, s)
        self._pending = actions[1:]
        return actions[0]


class NoOpPolicy(Policy):
    """Stop at once (the FR of the snapshot); falls back to greedy where stop is not legal."""

    name = "noop"

    def reset(self, env, seed=None):
        super().reset(env, seed)
        self._greedy = GreedyPolicy()
        self._greedy.reset(env, seed)

    def act(self, env, obs, info):
        if _legal(env)[env.stop_action]:
            return env.stop_action
        return self._greedy.act(env, obs, info)


class LegalRandomPolicy(RandomMaskedPolicy):
    """Random among the legal actions, also in the unmasked ``penalty`` mode."""

    def act(self, env, obs, info):
        return int(self.rng.choice(np.flatnonzero(_legal(env))))


# ---------------------------------------------------------------------------- best of K
def rollout(env, policy: Policy, seed: int) -> tuple[Episode, list[tuple[int, int]]]:
    """Play ``policy`` (reset with ``seed``) to the end on a copy of ``env`` in its current state;
    returns the episode and its migrations ``(vm, slot)`` in order (``env`` is untouched)."""
    episode, twin = simulate(env, policy, seed)
    return episode, list(twin.plan[len(env.plan):])


def fewest_fragments(episode: Episode) -> tuple:
    """:class:`BestOfK`'s order of VM episodes: lowest final FR, then fewer migrations."""
    return episode.metrics["fr_final"], episode.metrics["migrations"]


class MigrationPlanPolicy(PlannedPolicy):
    """A planned policy for VM rescheduling: replays its plan, then stops; where stop is not
    allowed (``allow_stop=False``) it goes on with greedy's least harmful migrations. A planned
    action that is no longer legal (someone else acted) drops the rest of the plan. Legality is
    the env's (also in the unmasked ``penalty`` mode, where the plan must not earn penalties)."""

    def reset(self, env, seed=None):
        self._fallback = GreedyPolicy()
        self._fallback.reset(env, seed)
        super().reset(env, seed)

    def is_legal(self, env, action) -> bool:
        return bool(_legal(env)[int(action)])

    def after_plan(self, env, obs, info):
        if _legal(env)[env.stop_action]:
            return env.stop_action
        return self._fallback.act(env, obs, info)


class MigrationsPolicy(MigrationPlanPolicy):
    """A planned policy whose plan is a list of migrations ``(vm, slot)`` (:meth:`migrations`)."""

    def migrations(self, env, seed: int) -> list[tuple[int, int]]:
        raise NotImplementedError

    def plan(self, env, seed):
        self.sequence = self.migrations(env, seed)
        return [a for v, d in self.sequence for a in env.encode_migration(v, d)]


class BestOfK(MigrationPlanPolicy, CoreBestOfK):
    """VMR2L's risk-seeking evaluation (``core.BestOfK``): ``k`` seeded rollouts of a stochastic
    policy from the reset state, the one with the lowest final FR (then fewer migrations) replayed."""

    def __init__(self, policy_factory: Callable[[], Policy], k: int = 16, name: str | None = None,
                 first: Callable[[], Policy] | None = None):
        CoreBestOfK.__init__(self, policy_factory, k, name=name, first=first, key=fewest_fragments)


# -------------------------------------------------------------------------------- CP-SAT
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


def greedy_plan(cluster: Cluster, budget: int) -> list[tuple[int, int]]:
    """The greedy policy's migrations (``(vm, slot)`` in order) on a copy of ``cluster``."""
    sim = cluster.copy()
    seq = []
    while len(seq) < budget:
        v, s, drop = best_migration(sim)
        if v < 0 or drop <= 0:
            break
        sim.migrate(v, s)
        seq.append((v, s))
    return seq


def neutral_migrations(c: Cluster) -> tuple[np.ndarray, np.ndarray]:
    """``(vms, slots)``: every legal migration that leaves the fragmented cores unchanged (VMs of
    anti-affinity groups left out)."""
    dst, src, own = fragment_changes(c)
    vms = np.flatnonzero(c.vm_movable & (c.vm_group < 0))
    change = dst[c.vm_shape[vms]] + src[vms, None]                     # [vms, slots]
    change[np.arange(len(vms)), own[vms]] = _NO_SLOT                   # not its own place
    rows, slots = np.nonzero(change == 0)
    return vms[rows], slots


def lookahead_plan(cluster: Cluster, budget: int, rng: np.random.Generator,
                   samples: int = 150) -> list[tuple[int, int]]:
    """Greedy with a two-move look-ahead, on a copy of ``cluster``: the best single migration while
    one removes fragmented cores; then, where none does, an FR-neutral migration after which the
    best single migration removes the most (among ``samples`` neutral ones drawn with ``rng``), and
    greedy again. Stops when no sampled neutral migration opens a gain, or after ``budget``.

    Why: in CP-SAT's plans most late migrations are FR-neutral and prepare a gain (a 4-core VM
    moves between two nodes with 4 free cores: 4 + 4 -> 8 + 0, and then an 8-core VM from a node
    with 8 free cores completes both: 8 + 8 -> 0 + 0). Greedy cannot see this and stops.
    """
    sim = cluster.copy()
    seq: list[tuple[int, int]] = []
    while len(seq) < budget:
        v, s, drop = best_migration(sim)
        if v < 0:
            break
        if drop <= 0:
            if len(seq) + 2 > budget:
                break
            vms, slots = neutral_migrations(sim)
            if len(vms) == 0:
                break
            best_gain, v = 0, -1
            for i in rng.permutation(len(vms))[:samples]:
                trial = sim.copy()
                trial.migrate(int(vms[i]), int(slots[i]))
                gain = best_migration(trial)[2]
                if gain > best_gain:
                    best_gain, v, s = gain, int(vms[i]), int(slots[i])
            if v < 0:
                break
        sim.migrate(v, s)
        seq.append((int(v), int(s)))
    return seq


#: what :func:`solve_cpsat` may move (``scope``); see the module docstring
CPSAT_SCOPES = ("all", "fragmented")
#: what :func:`plan_cpsat` solves (``scope``): a model of :data:`CPSAT_SCOPES`, or ``"staged"``
PLAN_SCOPES = CPSAT_SCOPES + ("staged",)


def _check_scope(scope: str, allowed: tuple[str, ...]) -> None:
    if scope not in allowed:
        raise ValueError(f"CP-SAT scope must be one of {', '.join(allowed)}; got {scope!r}")


def solve_cpsat(cluster: Cluster, mnl: int, time_limit: float = 10.0, workers: int = 1,
                seed: int = 0, hint: list[tuple[int, int]] | None = None, scope: str = "all") -> CPSatResult:
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

    _check_scope(scope, CPSAT_SCOPES)
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
        xs[v] = {}
        for s in slots:
            nodes = (s, s + 1) if span == 2 else (s,)
            if s != own[v] and not may_receive(s, span, cpu, mem):
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
    for g in np.unique(c.vm_group[c.vm_group >= 0]):
        members = np.flatnonzero(c.vm_group == g)
        for p in range(c.n_pms):
            terms = []
            for v in members:
                if v in xs:
                    terms += [xs[v][s] for s in (2 * p, 2 * p + 1) if s in xs[v]]
                elif c.vm_pm[v] == p:
                    terms.append(1)
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
    solver, status, name = run_cpsat(model, time_limit, workers, seed)
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
        frags = int((h_free % u).sum())
    tf = c.total_free_cpu
    return CPSatResult(moves=moves, status=name, fragments=frags, bound=bound,
                       fr=frags / tf if tf else 0.0, fr_bound=bound / tf if tf else 0.0,
                       wall_s=time.perf_counter() - t0, scope=scope,
                       stats={"branches": solver.NumBranches(), "vars": len(model.Proto().variables)})


def sequence_moves(cluster: Cluster, moves: list[tuple[int, int]], budget: int) -> tuple[list[tuple[int, int]], int]:
    """Order simultaneous ``moves`` into legal single migrations (see the module docstring).

    Returns ``(sequence, dropped)``: at most ``budget`` migrations, and how many planned moves could
    not be run.
    """
    sim = cluster.copy()
    pending = [(int(v), int(d)) for v, d in moves]
    seq: list[tuple[int, int]] = []
    while pending and len(seq) < budget:
        for i, (v, d) in enumerate(pending):
            if sim.is_legal(v, d):
                sim.migrate(v, d)
                seq.append((v, d))
                pending.pop(i)
                break
        else:  # a cycle: park one VM of it on a slot that no pending move targets
            if len(seq) + len(pending) + 1 > budget:
                break
            targets = {d for _, d in pending}
            parked = False
            for i, (v, d) in enumerate(pending):
                m = sim.vm_slot_mask(v)
                for s in np.flatnonzero(m):
                    if int(s) not in targets:
                        sim.migrate(v, int(s))
                        seq.append((v, int(s)))
                        parked = True
                        break
                if parked:
                    break
            if not parked:
                break
    return seq, len(pending)


def plan_cpsat(cluster: Cluster, budget: int, time_limit: float, workers: int = 1, seed: int = 0,
               greedy_hint: bool = True, scope: str = "staged") -> tuple[CPSatResult, list[tuple[int, int]], int]:
    """CP-SAT's plan for ``cluster`` as single migrations: ``(result, sequence, dropped)``.

    :func:`solve_cpsat` (hinted with :func:`greedy_plan` unless ``greedy_hint`` is false), then
    :func:`sequence_moves`; what :class:`CPSatPolicy` replays and :class:`CPSatExpert` demonstrates.

    ``scope``: ``"all"`` or ``"fragmented"`` (the model of :func:`solve_cpsat`), or ``"staged"``:
    the fragmented model for a quarter of ``time_limit``, then the exact model for the rest,
    hinted with the fragmented plan. Staged is never worse than the fragmented plan, and its
    status and bound are the exact model's (M size, seeds 0-9: the fragmented model alone reaches
    the exact model's 60 s answer in about 1 s; the exact model alone, hinted with greedy, does
    not improve on the hint in 3 s).
    """
    _check_scope(scope, PLAN_SCOPES)
    if scope == "staged":
        t0 = time.perf_counter()
        first, hint, _ = plan_cpsat(cluster, budget, time_limit / 4, workers, seed, greedy_hint, "fragmented")
        rest = max(time_limit - (time.perf_counter() - t0), 0.1 * time_limit)
        result = solve_cpsat(cluster, budget, rest, workers, seed, hint=hint, scope="all")
        stats = {**result.stats, "all_status": result.status,
                 "fragmented": {"status": first.status, "fr": first.fr, "wall_s": round(first.wall_s, 2)}}
        if result.status not in ("OPTIMAL", "FEASIBLE"):          # no answer, so no bound either, in time
            result = first
        elif result.fragments > first.fragments:                  # the exact model's hint was not loaded in time
            result = replace(result, moves=first.moves, fragments=first.fragments, fr=first.fr, status="FEASIBLE")
        result = replace(result, wall_s=time.perf_counter() - t0, stats=stats)
    else:
        hint = greedy_plan(cluster, budget) if greedy_hint else None
        result = solve_cpsat(cluster, budget, time_limit, workers, seed, hint=hint, scope=scope)
    sequence, dropped = sequence_moves(cluster, result.moves, budget)
    return result, sequence, dropped


class CPSatPolicy(MigrationsPolicy):
    """Solve at reset (time limit, workers, ``scope`` of :func:`plan_cpsat`; hinted with the greedy
    plan), sequence the plan, replay it, stop."""

    def __init__(self, time_limit: float = 10.0, workers: int = 1, name: str = "cpsat", greedy_hint: bool = True,
                 scope: str = "staged"):
        _check_scope(scope, PLAN_SCOPES)
        self.time_limit, self.workers, self.name, self.greedy_hint = time_limit, workers, name, greedy_hint
        self.scope = scope

    def migrations(self, env, seed):
        self.result, sequence, self.dropped = plan_cpsat(env.cluster, env.mnl - env.migrations, self.time_limit,
                                                         self.workers, seed, self.greedy_hint, self.scope)
        return sequence


def complete_with_lookahead(cluster: Cluster, plan: list[tuple[int, int]], budget: int,
                            rng: np.random.Generator, samples: int = 150) -> list[tuple[int, int]]:
    """``plan`` (``(vm, slot)`` migrations from ``cluster``) up to its first state with the fewest
    fragmented cores, then :func:`lookahead_plan` on the budget the rest of it used.

    The migrations after that state leave the FR no lower (in a fixed-budget episode a policy that
    finds no more gains spends them on FR-neutral moves), so cutting them loses nothing, and the
    look-ahead only makes migrations that remove fragmented cores (alone or after one neutral
    move). The result is never worse than ``plan``: where the look-ahead finds nothing, it is
    ``plan`` cut short (the cut migrations changed no fragments).
    """
    sim = cluster.copy()
    best_frag, keep = sim.frag_total, 0
    for i, (v, s) in enumerate(plan):
        sim.migrate(v, s)
        if sim.frag_total < best_frag:
            best_frag, keep = sim.frag_total, i + 1
    if keep >= budget:
        return list(plan[:keep])
    sim = cluster.copy()
    for v, s in plan[:keep]:
        sim.migrate(v, s)
    return list(plan[:keep]) + lookahead_plan(sim, budget - keep, rng, samples)


class LookaheadCompletion(MigrationsPolicy):
    """Another policy's plan, completed by the look-ahead (:func:`complete_with_lookahead`).

    At reset ``policy_factory()`` plays the rest of the episode on a copy of the env (:func:`rollout`);
    its migrations up to its lowest FR are kept and the look-ahead (neutral migrations sampled with
    a generator seeded by the reset seed) spends the rest of the budget. Why: a cloned policy
    (``agents/checkpoints/vm_gnn_bc.zip``) makes FR-neutral moves once it sees no gain, while a
    gain is still to be had; the completion costs one look-ahead on the last few migrations.
    """

    def __init__(self, policy_factory: Callable[[], Policy], samples: int = 150, name: str | None = None):
        self.policy_factory, self.samples = policy_factory, samples
        self.name = name or "lookahead_completion"

    def migrations(self, env, seed):
        _, self.policy_plan = rollout(env, self.policy_factory(), seed)
        return complete_with_lookahead(env.cluster, self.policy_plan, env.mnl - env.migrations,
                                       np.random.default_rng(seed), self.samples)


class LookaheadPolicy(MigrationsPolicy):
    """:func:`lookahead_plan` at reset (neutral migrations sampled with a generator seeded by the
    reset seed), replayed."""

    name = "lookahead"

    def __init__(self, samples: int = 150):
        self.samples = samples

    def migrations(self, env, seed):
        return lookahead_plan(env.cluster, env.mnl - env.migrations, np.random.default_rng(seed), self.samples)


class CPSatExpert:
    """Behaviour-cloning demonstrations (``agents.imitation``) from CP-SAT's plan.

    At reset a plan is made with :func:`plan_cpsat` (``scope``: by default the fragmented model,
    near-optimal on M size within ``time_limit`` = 2 s; greedy-hinted, then :func:`sequence_moves`)
    and replayed in the env; when it is used up before ``mnl`` (or cannot
    continue) the greedy migration follows, or stop where stop is legal. Accepted actions at each
    step: in phase 0 every VM that starts a pending plan move legal now, *and* every VM
    interchangeable with it (same shape on the same slot: the CP-SAT model itself does not tell
    them apart; and :func:`interchangeable_vms`: the same cores on another node with the same
    free cores modulo the fragment unit, which no pending move touches); in phase 1 the planned
    destination and every slot interchangeable with it
    (:func:`swappable_destinations`: the destination of a pending move of a VM with the same
    cores per node, the two destinations exchanged; :func:`equivalent_destinations`: a node that
    no pending move touches with the same free cores modulo the fragment unit). Two-stage action
    mode only.
    """

    name = "cpsat"
    #: 2: phase-1 accepted sets include the interchangeable destinations; 3: and the destinations
    #: of pending moves of VMs with the same cores (:func:`swappable_destinations`), and free cores
    #: compared modulo the fragment unit; 4: phase-0 sets include :func:`interchangeable_vms`;
    #: 5: ``scope`` (default ``"fragmented"``, 2 s: near-optimal plans; version 4 solved the exact
    #: model for 8 s, which on M size stopped at about 88 % of the optimal FR reduction)
    version = 5

    def __init__(self, time_limit: float = 2.0, workers: int = 1, scope: str = "fragmented"):
        if not time_limit > 0:
            raise ValueError(f"CPSatExpert: time_limit must be > 0 seconds, got {time_limit!r}")
        _check_scope(scope, PLAN_SCOPES)
        self.time_limit, self.workers, self.scope = float(time_limit), int(workers), scope

    def demonstrate(self, env, seed: int, prefix=()) -> Demonstration:
        """Plan from ``env.reset(seed=seed)`` after the (phase-0 ending) ``prefix`` actions, and follow it."""
        env = env.unwrapped
        if env.action_mode != "two_stage":
            raise ValueError(f"CPSatExpert needs action_mode 'two_stage', got {env.action_mode!r}")
        env.reset(seed=int(seed))
        for i, a in enumerate(prefix):
            _o, _r, terminated, truncated, _i = env.step(int(a))
            if terminated or truncated:
                raise ValueError(f"CPSatExpert: the prefix of seed {seed} ends the episode at step {i + 1}")
        if env.phase != 0:
            raise ValueError(f"CPSatExpert: the prefix of seed {seed} stops in phase 1 (a VM chosen, no destination)")
        res, sequence, dropped = plan_cpsat(env.cluster, env.mnl - env.migrations, self.time_limit, self.workers,
                                            int(seed), scope=self.scope)
        info = {"status": res.status, "scope": res.scope, "fr_plan": float(res.fr), "fr_bound": float(res.fr_bound),
                "plan_moves": len(res.moves), "dropped": int(dropped), "solver_s": round(res.wall_s, 2)}
        return demonstration_from_plan(env, int(seed), sequence, info, prefix=[int(a) for a in prefix])


def equivalent_destinations(c: Cluster, v: int, d: int, pending: list[tuple[int, int]],
                            legal: np.ndarray, unit: int) -> list[int]:
    """Slots as good as ``d`` for VM ``v`` given the rest of the plan ``pending``: the plan with ``d``
    and ``d'`` swapped in every pending destination reaches the same fragments.

    ``d'`` qualifies if it is legal for ``v``, its node(s) have the same free cores modulo ``unit``
    (the fragment unit) as ``d``'s, the cores and memory for ``v`` and every pending VM bound for
    ``d``, and are touched by no pending move; and ``d``'s node(s) are the source of no pending move
    and receive pending VMs only through slot ``d`` itself. Fragments depend on free cores only
    modulo ``unit`` (and the total free cores, and so the whole-slot count, do not change), so
    the two plans end with the same FR. Without this, the demonstration would name one of many
    interchangeable nodes (the solver's arbitrary pick) as the only right destination: a policy
    cannot learn that, and need not.
    """
    if c.vm_group[v] >= 0:
        return []
    d_nodes = c.vm_nodes(v, d // 2, d % 2).tolist()
    touched = np.zeros(c.n_nodes, bool)
    cpu_in = np.array([c.vm_ncpu[v]] * len(d_nodes), np.int64)
    mem_in = np.array([c.vm_nmem[v]] * len(d_nodes), np.int64)
    for vv, dd in pending:
        src, dst = c.vm_nodes(vv).tolist(), c.vm_nodes(vv, dd // 2, dd % 2).tolist()
        if set(src) & set(d_nodes) or c.vm_group[vv] >= 0:
            return []
        if set(dst) & set(d_nodes):
            if dd != d or c.vm_span[vv] != c.vm_span[v]:
                return []
            cpu_in += c.vm_ncpu[vv]
            mem_in += c.vm_nmem[vv]
        touched[list(src) + list(dst)] = True
    f = c.free
    slots = np.arange(0, c.n_nodes, 2) if c.vm_span[v] == 2 else np.arange(c.n_nodes)
    ok = legal[slots].copy()
    for k, n in enumerate(d_nodes):
        nodes = slots + k
        ok &= ((f[nodes, 0] % unit == f[n, 0] % unit) & (f[nodes, 0] >= cpu_in[k]) & (f[nodes, 1] >= mem_in[k])
               & ~touched[nodes])
    ok &= slots != d
    return [int(x) for x in slots[ok]]


def _memory_after(c: Cluster, moves: list[tuple[int, int]]) -> np.ndarray:
    """``[n_nodes]`` free memory once every ``(vm, slot)`` of ``moves`` has run (order does not matter)."""
    mem = c.free[:, 1].astype(np.int64)
    for v, d in moves:
        mem[c.vm_nodes(v)] += c.vm_nmem[v]
        mem[c.vm_nodes(v, d // 2, d % 2)] -= c.vm_nmem[v]
    return mem


def swappable_destinations(c: Cluster, v: int, d: int, pending: list[tuple[int, int]],
                           legal: np.ndarray) -> list[int]:
    """Destinations ``dd`` of pending moves ``(vv, dd)`` whose VM has ``v``'s cores per node and span:
    sending ``v`` to ``dd`` and ``vv`` to ``d`` instead brings the same cores to the same nodes, so
    the plan ends with the same fragments. Kept only where ``v`` may go to ``dd`` now (``legal``),
    ``vv`` may go to ``d`` (not its own place; no anti-affinity group on either), and the memory of
    both nodes still suffices once the plan is done.

    This is the commonest kind of interchangeable destination in CP-SAT's plans (e.g. two 4-core
    VMs bound for two nodes with 4 free cores each): without it, half of the phase-1 labels of a
    demonstration told the policy that the other, equally good, node was wrong.
    """
    if c.vm_group[v] >= 0:
        return []
    final_mem = _memory_after(c, [(v, d)] + list(pending))
    d_nodes = c.vm_nodes(v, d // 2, d % 2)
    own = c.own_slots()
    out = []
    for vv, dd in pending:
        if (dd == d or not legal[dd] or c.vm_group[vv] >= 0 or c.vm_span[vv] != c.vm_span[v]
                or c.vm_ncpu[vv] != c.vm_ncpu[v] or own[vv] == d):
            continue
        delta = int(c.vm_nmem[v]) - int(c.vm_nmem[vv])        # memory d gains back, dd gives up
        if (final_mem[d_nodes] + delta >= 0).all() and (final_mem[c.vm_nodes(v, dd // 2, dd % 2)] - delta >= 0).all():
            out.append(int(dd))
    return out


def interchangeable_vms(c: Cluster, pending: list[tuple[int, int]], ready: list[int], unit: int) -> list[int]:
    """VMs as good as the VM of a ready pending move ``(vv, dd)`` to start with: the plan with ``w``
    moved to ``dd`` instead of ``vv`` reaches the same fragments.

    ``w`` qualifies if it has ``vv``'s cores per node and span, may move and fits ``dd`` now, is in
    no pending move and no anti-affinity group, its node(s) have the same free cores modulo ``unit``
    as ``vv``'s and no pending move touches them, and no other pending move touches ``vv``'s
    node(s); the memory of ``dd`` must still suffice once the plan is done. (Identical VMs on
    ``vv``'s own slot are accepted separately; these are the ones on other nodes.)
    """
    touch = np.zeros(c.n_nodes, np.int64)
    in_plan = np.zeros(c.n_vms, bool)
    for vv, dd in pending:
        touch[c.vm_nodes(vv)] += 1
        touch[c.vm_nodes(vv, dd // 2, dd % 2)] += 1
        in_plan[vv] = True
    final_mem = _memory_after(c, pending)
    residue = c.free[:, 0] % unit
    own = c.own_slots()
    two = c.vm_span == 2
    free_vm = c.vm_movable & (c.vm_group < 0) & ~in_plan & (touch[own] == 0) & (~two | (touch[own + two] == 0))
    shape_mask = c.shape_slot_mask()
    out: list[int] = []
    for i in ready:
        vv, dd = pending[i]
        src = c.vm_nodes(vv)
        if c.vm_group[vv] >= 0 or (touch[src] > 1).any():
            continue
        ok = free_vm & (c.vm_span == c.vm_span[vv]) & (c.vm_ncpu == c.vm_ncpu[vv]) & (residue[own] == residue[src[0]])
        if c.vm_span[vv] == 2:
            ok &= residue[own + two] == residue[src[1]]     # (own + two: the second node of two-NUMA VMs)
        ok &= shape_mask[c.vm_shape, dd] & (own != dd)
        ok &= (final_mem[c.vm_nodes(vv, dd // 2, dd % 2)].min() + c.vm_nmem[vv] - c.vm_nmem) >= 0
        out += np.flatnonzero(ok).tolist()
    return out


def demonstration_from_plan(env, seed: int, sequence: list[tuple[int, int]], info: dict | None = None,
                            prefix: list[int] | None = None) -> Demonstration:
    """Replay ``prefix`` and then the legal migration ``sequence`` from ``env.reset(seed=seed)`` as a
    :class:`CPSatExpert` demonstration (accepted sets as described there); ``info`` is kept, plus
    the initial and final FR."""
    env = env.unwrapped
    env.reset(seed=int(seed))
    prefix = list(prefix or [])
    for a in prefix:
        env.step(int(a))
    pending = [(int(v), int(d)) for v, d in sequence]
    actions: list[int] = list(prefix)
    targets: list[list[int]] = [[a] for a in prefix]

    def play(action: int, accepted) -> bool:
        accepted = sorted({int(a) for a in accepted} | {int(action)})
        actions.append(int(action))
        targets.append(accepted)
        _obs, _r, terminated, truncated, _info = env.step(int(action))
        return terminated or truncated

    done = False
    while not done:
        c = env.cluster
        own = c.own_slots()
        ready = [i for i, (v, d) in enumerate(pending) if c.is_legal(v, d)]
        if not ready:
            pending = []
            legal = _legal(env)
            if legal[env.stop_action]:
                done = play(env.stop_action, [env.stop_action])
                continue
            v, d, _ = best_migration(c)
            done = play(v, [v]) or play(d, [d])
            continue
        free_vm = c.vm_movable & (c.vm_group < 0)
        kinds = {(int(c.vm_shape[pending[i][0]]), int(own[pending[i][0]])) for i in ready}
        accept0 = [int(w) for w in np.flatnonzero(free_vm)
                   if (int(c.vm_shape[w]), int(own[w])) in kinds]
        accept0 += [pending[i][0] for i in ready] + interchangeable_vms(c, pending, ready, env.frag_unit)
        i0 = ready[0]
        v, d = pending.pop(i0)
        done = play(v, accept0)
        if done:
            break
        legal_dest = c.vm_slot_mask(v)
        accept1 = swappable_destinations(c, v, d, pending, legal_dest)
        accept1 += equivalent_destinations(c, v, d, pending, legal_dest, env.frag_unit)
        done = play(d, accept1)
    info = {**(info or {}), "fr_initial": float(env.fr_initial), "fr_final": float(env.cluster.fragment_rate())}
    return Demonstration(int(seed), actions, targets, info, prefix=len(prefix))


#: name -> class of the experts that :mod:`agents.imitation` can clone (``pretrain.expert``)
EXPERTS: dict[str, Callable[..., CPSatExpert]] = {"cpsat": CPSatExpert}


BASELINES: dict[str, Callable[[], Policy]] = {
    "noop": NoOpPolicy,
    "random": LegalRandomPolicy,
    "greedy": GreedyPolicy,
    "lookahead": LookaheadPolicy,
    "cpsat": CPSatPolicy,
    "cpsat_fragmented": lambda: CPSatPolicy(time_limit=1.0, scope="fragmented", name="cpsat_fragmented"),
    "random_best16": lambda: BestOfK(LegalRandomPolicy, 16, name="random_best16"),
}
