"""NUMA-aware VM rescheduling state and dynamics (VMR2L, EuroSys 2025), on the core resource pool.

A cluster is a set of physical machines (PMs), each with two NUMA nodes that have their own cpu
cores and memory (MB). The :class:`~rlsys_envs.core.ResourcePool` holds one resource per NUMA node
(PM ``p``'s node ``k`` is resource ``2 p + k``) with the dimensions ``("cpu", "mem")``. A VM with
``span`` 1 lives on one NUMA node; a VM with ``span`` 2 is split evenly over both nodes of its host
(one demand row per node). A migration is a :meth:`ResourcePool.move`, which refuses anything that
would put a NUMA node over capacity.

Destinations are addressed by *slots*: slot ``2 p + k`` is NUMA node ``k`` of PM ``p`` for a span-1
VM; a span-2 VM uses slot ``2 p`` (``k = 0``) to mean "both nodes of PM ``p``".

Fragment rate (VMR2L): ``FR = sum over NUMA nodes of (free cores mod unit) / total free cores``,
``unit = 16`` by default. Migrations keep the total free cores constant, so the FR reduction of an
episode is the drop in fragmented cores divided by that constant; the per-migration reward of the
environment is exactly that drop, so the return equals the FR reduction.

No gymnasium import here: this is plain numpy state, used by the env, the baselines and the
exact CP-SAT model alike.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from rlsys_envs.core import ResourcePool

#: VM sizes of VMR2L's data centre: 2..16 cores on one NUMA node, 32..88 cores over both.
SINGLE_NUMA_CORES = (2, 4, 8, 16)
DOUBLE_NUMA_CORES = (32, 64, 88)
#: VMR2L's machines: 88 cores = 2 x 44, 368,776 MB = 2 x 184,388 MB.
NUMA_CPU = 44
NUMA_MEM_MB = 184_388


def distinct_sorted(values: list[int]) -> np.ndarray:
    """The distinct values of a short list, sorted, as int64 (``np.unique`` costs ~10 us on 2-4 items,
    which shows in the per-migration loop)."""
    return np.array(sorted(set(values)), np.int64)


@dataclass(eq=False)
class Cluster:
    """A snapshot of PMs and VMs, and its dynamics (migrations) on a :class:`ResourcePool`.

    Parameters
    ----------
    numa_cpu, numa_mem:
        ``[n_pms, 2]`` integer capacities of every NUMA node (cores, MB).
    vm_ncpu, vm_nmem:
        ``[n_vms]`` integer demand of each VM *per NUMA node it uses* (cores, MB).
    vm_span:
        ``[n_vms]`` 1 (one NUMA node) or 2 (split evenly over both nodes of its host).
    vm_pm, vm_numa:
        ``[n_vms]`` host PM, and NUMA node (0/1) for span-1 VMs (ignored, stored as -1, for span 2).
    vm_movable:
        ``[n_vms]`` bool, False for VMs that may not migrate.
    vm_group:
        ``[n_vms]`` deployment set of each VM (-1 for none; a VM is in at most one set). By default a
        set is host anti-affinity: two VMs of one set never share a PM.
    pm_accepting:
        ``[n_pms]`` bool, False for PMs that are out of service (not ACTIVE in a snapshot): they
        receive no VMs, their VMs stay where they are, and their NUMA nodes count neither in the
        fragment rate nor in the free cores.
    pm_rack:
        ``[n_pms]`` rack of every PM (default: every PM its own rack).
    group_rack, group_affinity:
        ``[n_groups]`` bool per deployment set: the set's granularity is the rack (else the host),
        and it is an affinity set (its VMs stay together on one host / rack) rather than an
        anti-affinity one (its VMs never share a host / rack). Default: host anti-affinity.
    frag_unit:
        the fragment unit in cores (16 in VMR2L).
    """

    numa_cpu: np.ndarray
    numa_mem: np.ndarray
    vm_ncpu: np.ndarray
    vm_nmem: np.ndarray
    vm_span: np.ndarray
    vm_pm: np.ndarray
    vm_numa: np.ndarray
    vm_movable: np.ndarray | None = None
    vm_group: np.ndarray | None = None
    pm_accepting: np.ndarray | None = None
    frag_unit: int = 16
    pm_rack: np.ndarray | None = None
    group_rack: np.ndarray | None = None
    group_affinity: np.ndarray | None = None
    pm_names: list[str] | None = None
    vm_names: list[str] | None = None
    vm_types: list[str] | None = None
    pool: ResourcePool = field(init=False, repr=False)

    def __post_init__(self):
        i64 = lambda a: np.array(a, dtype=np.int64, copy=True)  # noqa: E731
        self.numa_cpu, self.numa_mem = i64(self.numa_cpu), i64(self.numa_mem)
        self.vm_ncpu, self.vm_nmem = i64(self.vm_ncpu), i64(self.vm_nmem)
        self.vm_span, self.vm_pm, self.vm_numa = i64(self.vm_span), i64(self.vm_pm), i64(self.vm_numa)
        n_pms, n_vms = self.n_pms, len(self.vm_ncpu)
        if self.numa_cpu.shape != (n_pms, 2) or self.numa_mem.shape != (n_pms, 2):
            raise ValueError(f"numa_cpu and numa_mem must have shape [n_pms, 2], got {self.numa_cpu.shape}, "
                             f"{self.numa_mem.shape}")
        for name in ("vm_nmem", "vm_span", "vm_pm", "vm_numa"):
            if getattr(self, name).shape != (n_vms,):
                raise ValueError(f"{name} must have shape [{n_vms}], got {getattr(self, name).shape}")
        self.vm_movable = (np.ones(n_vms, bool) if self.vm_movable is None
                           else np.array(self.vm_movable, dtype=bool, copy=True))
        self.vm_group = (np.full(n_vms, -1, np.int64) if self.vm_group is None
                         else np.array(self.vm_group, dtype=np.int64, copy=True))
        self.pm_accepting = (np.ones(n_pms, bool) if self.pm_accepting is None
                             else np.array(self.pm_accepting, dtype=bool, copy=True))
        self.pm_rack = (np.arange(n_pms, dtype=np.int64) if self.pm_rack is None
                        else np.array(self.pm_rack, dtype=np.int64, copy=True))
        if self.pm_rack.shape != (n_pms,):
            raise ValueError(f"pm_rack must have shape [{n_pms}], got {self.pm_rack.shape}")
        n_groups = int(self.vm_group.max()) + 1 if n_vms else 0
        for name in ("group_rack", "group_affinity"):
            val = getattr(self, name)
            arr = np.zeros(n_groups, bool) if val is None else np.array(val, dtype=bool, copy=True)
            if arr.shape[0] < n_groups:
                raise ValueError(f"{name} must have one entry per deployment set ({n_groups}), got {arr.shape[0]}")
            setattr(self, name, arr)
        # out-of-service PMs keep their VMs: they neither send nor receive
        self.vm_movable &= self.pm_accepting[np.clip(self.vm_pm, 0, max(n_pms - 1, 0))] if n_pms else True
        if self.frag_unit < 1:
            raise ValueError(f"frag_unit must be >= 1, got {self.frag_unit}")
        bad_span = np.flatnonzero((self.vm_span != 1) & (self.vm_span != 2))
        if len(bad_span):
            raise ValueError(f"vm_span must be 1 or 2; VM {self._vm_name(int(bad_span[0]))} has another value")
        bad = np.flatnonzero((self.vm_pm < 0) | (self.vm_pm >= n_pms))
        if len(bad):
            raise ValueError(f"VM {self._vm_name(int(bad[0]))} is on PM index {int(self.vm_pm[bad[0]])}, "
                             f"outside [0, {n_pms})")
        bad = np.flatnonzero((self.vm_span == 1) & ((self.vm_numa < 0) | (self.vm_numa > 1)))
        if len(bad):
            raise ValueError(f"VM {self._vm_name(int(bad[0]))} has NUMA node {int(self.vm_numa[bad[0]])}, not 0 or 1")
        if np.any(self.vm_ncpu <= 0) or np.any(self.vm_nmem < 0):
            raise ValueError("VM demands must be positive cores and non-negative memory")
        self.vm_numa[self.vm_span == 2] = -1
        self.n_vms = n_vms
        # shapes: distinct (span, cpu per node, mem per node), used to vectorise masks and the solver
        keys = np.stack([self.vm_span, self.vm_ncpu, self.vm_nmem], axis=1)
        self.shapes, self.vm_shape = np.unique(keys, axis=0, return_inverse=True)
        self.vm_shape = self.vm_shape.reshape(-1).astype(np.int64)
        self.grouped = np.flatnonzero(self.vm_group >= 0)
        order = np.argsort(self.vm_group[self.grouped], kind="stable")
        gs = self.grouped[order]
        cuts = np.flatnonzero(np.diff(self.vm_group[gs])) + 1
        #: deployment set -> its VMs
        self.group_members = {int(self.vm_group[m[0]]): m for m in np.split(gs, cuts) if len(m)}
        self._check_groups()
        self._build_pool()

    def _check_groups(self) -> None:
        """Refuse a snapshot that already breaks one of its deployment sets."""
        for g, members in self.group_members.items():
            where = self.pm_rack[self.vm_pm[members]] if self.group_rack[g] else self.vm_pm[members]
            level = "rack" if self.group_rack[g] else "host"
            if self.group_affinity[g]:
                if len(np.unique(where)) > 1:
                    raise ValueError(f"deployment set {g} ({level} affinity) is broken in the snapshot: its VMs "
                                     f"{', '.join(self._vm_name(int(v)) for v in members[:10])} are on "
                                     f"{len(np.unique(where))} different {level}s")
            else:
                vals, counts = np.unique(where, return_counts=True)
                if np.any(counts > 1):
                    w = vals[counts > 1][0]
                    on = [self._vm_name(int(v)) for v in members[where == w]]
                    name = f"rack {int(w)}" if self.group_rack[g] else f"PM {self._pm_name(int(w))}"
                    raise ValueError(f"deployment set {g} ({level} anti-affinity) is broken in the snapshot: "
                                     f"VMs {', '.join(on)} share {name}")

    def group_allowed_pms(self, v: int) -> np.ndarray | None:
        """``[n_pms]`` bool: the PMs VM ``v``'s deployment set lets it be on (None: no set)."""
        g = int(self.vm_group[v])
        if g < 0:
            return None
        members = self.group_members[g]
        others = members[members != v]
        if self.group_rack[g]:
            if self.group_affinity[g]:
                return self.pm_rack == self.pm_rack[self.vm_pm[v]]
            return ~np.isin(self.pm_rack, self.pm_rack[self.vm_pm[others]])
        if self.group_affinity[g]:
            out = np.zeros(self.n_pms, bool)
            out[self.vm_pm[v]] = True
            return out
        out = np.ones(self.n_pms, bool)
        out[self.vm_pm[others]] = False
        out[self.vm_pm[v]] = True
        return out

    # ----------------------------------------------------------------------------- set-up
    @property
    def n_pms(self) -> int:
        return int(self.numa_cpu.shape[0])

    @property
    def n_nodes(self) -> int:
        return 2 * self.n_pms

    def _vm_name(self, v: int) -> str:
        return repr(self.vm_names[v]) if self.vm_names is not None else f"#{v}"

    def _pm_name(self, p: int) -> str:
        return repr(self.pm_names[p]) if self.pm_names is not None else f"#{p}"

    def vm_nodes(self, v: int, pm: int | None = None, numa: int | None = None) -> np.ndarray:
        """NUMA-node (resource) indices VM ``v`` uses on ``pm`` / ``numa`` (default: where it is)."""
        pm = int(self.vm_pm[v]) if pm is None else pm
        if self.vm_span[v] == 2:
            return np.array([2 * pm, 2 * pm + 1], np.int64)
        numa = int(self.vm_numa[v]) if numa is None else numa
        return np.array([2 * pm + numa], np.int64)

    def _build_pool(self) -> None:
        cap = np.stack([self.numa_cpu.reshape(-1), self.numa_mem.reshape(-1)], axis=1)
        usage = np.zeros_like(cap)
        nodes0 = self.own_slots()
        np.add.at(usage, nodes0, np.stack([self.vm_ncpu, self.vm_nmem], 1))
        two = self.vm_span == 2
        np.add.at(usage, nodes0[two] + 1, np.stack([self.vm_ncpu[two], self.vm_nmem[two]], 1))
        over = np.argwhere(usage > cap)
        if len(over):
            node, d = int(over[0][0]), int(over[0][1])
            p, k = divmod(node, 2)
            on = [self._vm_name(v) for v in range(self.n_vms) if node in self.vm_nodes(v)]
            raise ValueError(
                f"PM {self._pm_name(p)} NUMA node {k} is over {('cpu', 'mem')[d]} capacity: "
                f"{int(usage[node, d])} > {int(cap[node, d])} (VMs on it: {', '.join(on[:20])})")
        self.node_active = np.repeat(self.pm_accepting, 2)
        self.pool = ResourcePool(cap, ("cpu", "mem"))
        self.pool.place_many(range(self.n_vms), [self.vm_nodes(v) for v in range(self.n_vms)],
                             [[self.vm_ncpu[v], self.vm_nmem[v]] for v in range(self.n_vms)])
        self.total_free_cpu = int(((cap[:, 0] - self.pool.usage[:, 0]) * self.node_active).sum())
        self.frag_total = int(self.node_fragments().sum())

    def copy(self) -> "Cluster":
        """An independent copy (look-ahead, best-of-K rollouts, solvers)."""
        other = Cluster.__new__(Cluster)
        other.__dict__.update(self.__dict__)
        for name in ("vm_pm", "vm_numa"):
            setattr(other, name, getattr(self, name).copy())
        other.pool = self.pool.copy()
        if getattr(self, "_sm", None) is not None:
            other._sm = self._sm.copy()
        return other

    # ------------------------------------------------------------------------------ queries
    @property
    def free(self) -> np.ndarray:
        """Free ``[n_nodes, 2]`` (cpu, mem) per NUMA node."""
        return self.pool.free

    def node_fragments(self) -> np.ndarray:
        """Fragmented free cores per NUMA node: ``free cpu mod unit`` ([n_nodes]; 0 on the nodes of
        out-of-service PMs, which the fragment rate leaves out)."""
        return self.pool.fragments(0, self.frag_unit) * self.node_active

    def fragment_rate(self) -> float:
        """FR = sum of (free cores mod unit) over NUMA nodes / total free cores (0 if none free), over
        the NUMA nodes of in-service PMs."""
        return self.frag_total / self.total_free_cpu if self.total_free_cpu > 0 else 0.0

    def slots(self, unit: int | None = None) -> int:
        """How many whole ``unit``-core VMs (16 by default) fit on the NUMA nodes, cpu-wise."""
        unit = self.frag_unit if unit is None else unit
        return int((self.free[:, 0] // unit * self.node_active).sum())

    def shape_slot_mask(self, free: np.ndarray | None = None) -> np.ndarray:
        """``[n_shapes, n_nodes]``: where a VM of each shape would fit (slots), ignoring its own place.

        Without ``free`` the result is cached and updated incrementally by :meth:`migrate`; treat it
        as read-only.
        """
        if free is None:
            if getattr(self, "_sm", None) is None:
                self._sm = self._shape_mask_of(self.free, np.arange(self.n_pms))
            return self._sm
        return self._shape_mask_of(free, np.arange(self.n_pms))

    def _shape_mask_of(self, free: np.ndarray, pms: np.ndarray) -> np.ndarray:
        """Shape-slot mask restricted to the nodes of ``pms`` (``[n_shapes, 2 * len(pms)]``)."""
        sh = self.shapes
        nodes = (2 * pms[:, None] + np.arange(2)).reshape(-1)
        f = free[nodes]
        fit = (f[None, :, 0] >= sh[:, 1:2]) & (f[None, :, 1] >= sh[:, 2:3])            # [S, nodes]
        pair = fit[:, 0::2] & fit[:, 1::2]                                              # [S, pms]
        out = fit & (sh[:, 0] == 1)[:, None]
        out[:, 0::2] |= pair & (sh[:, 0] == 2)[:, None]
        return out & np.repeat(self.pm_accepting[pms], 2)[None, :]

    def own_slot(self, v: int) -> int:
        """The slot VM ``v`` occupies now."""
        return int(2 * self.vm_pm[v] + (0 if self.vm_span[v] == 2 else self.vm_numa[v]))

    def own_slots(self) -> np.ndarray:
        """``[n_vms]``: the slot every VM occupies now (:meth:`own_slot` of all VMs; for a two-NUMA
        VM the first of its two nodes)."""
        return 2 * self.vm_pm + np.where(self.vm_span == 2, 0, self.vm_numa)

    def vm_slot_mask(self, v: int, shape_mask: np.ndarray | None = None) -> np.ndarray:
        """``[n_nodes]`` bool: legal destination slots of VM ``v`` (its own place excluded)."""
        if not self.vm_movable[v]:
            return np.zeros(self.n_nodes, bool)
        if shape_mask is None:
            shape_mask = self.shape_slot_mask()
        m = shape_mask[self.vm_shape[v]].copy()
        if self.vm_span[v] == 2:
            m[2 * self.vm_pm[v]] = False
        else:
            m[self.own_slot(v)] = False
        allowed = self.group_allowed_pms(v)
        if allowed is not None:
            m &= np.repeat(allowed, 2)
        return m

    def movable_mask(self, shape_mask: np.ndarray | None = None) -> np.ndarray:
        """``[n_vms]`` bool: VMs that may migrate and have at least one legal destination now."""
        if shape_mask is None:
            shape_mask = self.shape_slot_mask()
        counts = shape_mask.sum(axis=1)
        own = self.own_slots()
        own_fits = shape_mask[self.vm_shape, own]
        ok = self.vm_movable & ((counts[self.vm_shape] - own_fits) > 0)
        for v in self.grouped:  # anti-affinity members: exact per-VM check
            ok[v] = bool(self.vm_slot_mask(v, shape_mask).any())
        return ok

    def joint_mask(self) -> np.ndarray:
        """``[n_vms, n_nodes]`` bool: every legal (VM, destination slot) pair."""
        sm = self.shape_slot_mask()
        m = sm[self.vm_shape].copy()
        idx = np.arange(self.n_vms)
        m[idx, self.own_slots()] = False
        m[~self.vm_movable] = False
        for v in self.grouped:
            m[v] = self.vm_slot_mask(v, sm)
        return m

    def is_legal(self, v: int, slot: int) -> bool:
        if not (0 <= v < self.n_vms and 0 <= slot < self.n_nodes):
            return False
        return bool(self.vm_slot_mask(v)[slot])

    # ---------------------------------------------------------------------------- dynamics
    def migrate(self, v: int, slot: int, legal: np.ndarray | None = None) -> int:
        """Move VM ``v`` to ``slot``; returns the drop in fragmented cores (>0 is good).

        Raises ``ValueError`` (state unchanged) if the move is not legal. ``legal`` may pass
        ``vm_slot_mask(v)`` when the caller has it already.
        """
        ok = (0 <= v < self.n_vms and 0 <= slot < self.n_nodes
              and (bool(legal[slot]) if legal is not None else self.is_legal(v, slot)))
        if not ok:
            raise ValueError(f"migration of VM {self._vm_name(v)} to slot {slot} is not legal")
        pm, numa = divmod(int(slot), 2)
        old_nodes = self.vm_nodes(v)
        new_nodes = self.vm_nodes(v, pm, numa)
        touched = distinct_sorted(old_nodes.tolist() + new_nodes.tolist())
        u = self.frag_unit
        before = int(np.mod(self.pool.capacity[touched, 0] - self.pool.usage[touched, 0], u).sum())
        old_pm = int(self.vm_pm[v])
        self.pool.move(v, new_nodes)
        after = int(np.mod(self.pool.capacity[touched, 0] - self.pool.usage[touched, 0], u).sum())
        if getattr(self, "_sm", None) is not None:
            pms = distinct_sorted([old_pm, pm])
            nodes = (2 * pms[:, None] + np.arange(2)).reshape(-1)
            self._sm[:, nodes] = self._shape_mask_of(self.pool.free, pms)
        self.vm_pm[v] = pm
        self.vm_numa[v] = -1 if self.vm_span[v] == 2 else numa
        self.frag_total += after - before
        return before - after

    def migration_delta(self, v: int, slot: int) -> int:
        """Drop in fragmented cores if VM ``v`` moved to ``slot`` (no state change, no legality check)."""
        pm, numa = divmod(int(slot), 2)
        old_nodes, new_nodes = self.vm_nodes(v), self.vm_nodes(v, pm, numa)
        free = self.free[:, 0].copy()
        touched = distinct_sorted(old_nodes.tolist() + new_nodes.tolist())
        u = self.frag_unit
        before = np.mod(free[touched], u).sum()
        free[old_nodes] += self.vm_ncpu[v]
        free[new_nodes] -= self.vm_ncpu[v]
        return int(before - np.mod(free[touched], u).sum())

    # ------------------------------------------------------------------------------ checks
    def check_invariants(self) -> None:
        """Raise ``AssertionError`` if a NUMA node is over capacity or the bookkeeping drifted."""
        usage = np.zeros_like(self.pool.usage)
        for v in range(self.n_vms):
            usage[self.vm_nodes(v)] += [self.vm_ncpu[v], self.vm_nmem[v]]
        assert np.array_equal(usage, self.pool.usage), "pool usage differs from the VM placements"
        assert np.all(usage <= self.pool.capacity), "a NUMA node is over capacity"
        assert self.frag_total == int(self.node_fragments().sum()), "fragment count drifted"
        try:
            self._check_groups()
        except ValueError as e:
            raise AssertionError(str(e)) from None


def cluster_from_lists(numa_cpu: Sequence, numa_mem: Sequence, vms: Sequence[tuple], frag_unit: int = 16,
                       **kwargs) -> Cluster:
    """Build a small cluster by hand: ``vms`` = ``(total_cpu, total_mem, span, pm, numa)`` tuples."""
    vms = list(vms)
    span = np.array([v[2] for v in vms], np.int64)
    cpu = np.array([v[0] for v in vms], np.int64)
    mem = np.array([v[1] for v in vms], np.int64)
    if np.any(cpu % span) or np.any(mem % span):
        raise ValueError("a span-2 VM needs even cpu and memory to split over two NUMA nodes")
    return Cluster(numa_cpu=numa_cpu, numa_mem=numa_mem, vm_ncpu=cpu // span, vm_nmem=mem // span,
                   vm_span=span, vm_pm=[v[3] for v in vms], vm_numa=[v[4] if v[2] == 1 else -1 for v in vms],
                   frag_unit=frag_unit, **kwargs)
