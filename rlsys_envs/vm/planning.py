"""Migration plans on a cluster (no environment): the greedy move, the look-ahead, sequencing.

Every function here works on a :class:`~rlsys_envs.vm.model.Cluster` (or a copy of it) and returns
migrations ``(vm, slot)``, so policies (:mod:`.baselines`), the exact reference (:mod:`.exact`) and
the behaviour-cloning expert (:mod:`.expert`) plan the same way.

- :func:`fragment_changes` / :func:`best_migration`: the one-step effect of every migration and the
  best one (greedy);
- :func:`greedy_plan`, :func:`lookahead_plan`, :func:`complete_with_lookahead`: whole plans;
- :func:`neutral_migrations`: the legal migrations that leave the fragments unchanged;
- :func:`sequence_moves`: simultaneous moves (a solver's answer) as legal single migrations.

**Sequencing** (:func:`sequence_moves`). The plan's moves are replayed one at a time on a copy of
the cluster: repeatedly the first pending move that is legal now is applied (a move out frees room
for a later move in). If no pending move is legal (a cycle, e.g. two VMs swapping between full
nodes), one VM of the cycle is parked on any legal slot that is not a pending destination, if the
migration budget allows, and moves on later; moves that still cannot run are dropped and
counted (``CPSatPolicy.dropped``). When the replay runs every move, the env reaches the solver's
final state, so with proof of optimality the result is optimal for the sequential problem too.
"""
from __future__ import annotations

import numpy as np

from .model import Cluster


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
