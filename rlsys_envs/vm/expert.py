"""Behaviour-cloning demonstrations of VM rescheduling from CP-SAT's plans (``rlsys_agents.imitation``).

:class:`CPSatExpert` plans with :func:`~rlsys_envs.vm.exact.plan_cpsat` and records, at every step,
the set of actions as good as the planned one (interchangeable VMs and destinations), so a policy
is not taught that an equally good choice is wrong.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from rlsys_envs.core import Demonstration, play_prefix

from .exact import PLAN_SCOPES, check_scope, plan_cpsat
from .model import Cluster
from .planning import best_migration


class CPSatExpert:
    """Behaviour-cloning demonstrations (``rlsys_agents.imitation``) from CP-SAT's plan.

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

    def __init__(self, time_limit: float = 2.0, workers: int = 1, scope: str = "fragmented",
                 deterministic_time: float | None = None):
        """``deterministic_time``: plan under CP-SAT's deterministic limit (machine-independent
        plans with one worker; ``time_limit`` is then only a wall-clock safety net)."""
        if not time_limit > 0:
            raise ValueError(f"CPSatExpert: time_limit must be > 0 seconds, got {time_limit!r}")
        if deterministic_time is not None and not deterministic_time > 0:
            raise ValueError(f"CPSatExpert: deterministic_time must be > 0, got {deterministic_time!r}")
        check_scope(scope, PLAN_SCOPES)
        self.time_limit, self.workers, self.scope = float(time_limit), int(workers), scope
        self.deterministic_time = deterministic_time

    def demonstrate(self, env, seed: int, prefix=()) -> Demonstration:
        """Plan from ``env.reset(seed=seed)`` after the (phase-0 ending) ``prefix`` actions, and follow it."""
        env = env.unwrapped
        if env.action_mode != "two_stage":
            raise ValueError(f"CPSatExpert needs action_mode 'two_stage', got {env.action_mode!r}")
        play_prefix(env, seed, prefix, "CPSatExpert")
        if env.phase != 0:
            raise ValueError(f"CPSatExpert: the prefix of seed {seed} stops in phase 1 (a VM chosen, no destination)")
        res, sequence, dropped = plan_cpsat(env.cluster, env.mnl - env.migrations, self.time_limit, self.workers,
                                            int(seed), scope=self.scope, deterministic_time=self.deterministic_time)
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
            legal = env._legal_mask()
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


#: name -> class of the experts that :mod:`rlsys_agents.imitation` can clone (``pretrain.expert``)
EXPERTS: dict[str, Callable[..., CPSatExpert]] = {"cpsat": CPSatExpert}
