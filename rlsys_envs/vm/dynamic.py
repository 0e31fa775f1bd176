"""Dynamic VM rescheduling: VMs arrive and leave while the planner thinks (VMR2L's central point).

VMR2L's argument is that **inference time changes the result**: a MIP plan that takes an hour is
stale when it is applied, because VMs have arrived and left in the meantime, while a plan that
comes back within seconds stays almost entirely valid. This module makes that measurable.

**World** (:class:`DynamicCluster`). A cluster plus a seeded stream of events on a simulated clock
(seconds):

- *Departures*: every VM has an exponential lifetime of mean ``lifetime_s`` (the VMs of the
  snapshot get their residual lifetimes at time 0, which are exponential too); at its end it leaves.
- *Arrivals*: a Poisson stream of rate ``arrival_rate`` (default ``n_vms / lifetime_s``, the rate
  that keeps the snapshot's VM count stationary). Each arrival's type, memory per core and
  placement rule are drawn as in the generator (:func:`~rlsys_envs.vm.generator.generate_cluster`:
  the type mix of the snapshot's size, best fit with probability ``p_pack`` else random fit, on
  in-service PMs only); an arrival that fits nowhere is rejected and counted.
- Calibration (ours; VMR2L publishes no arrival model): the generator models the history of a
  snapshot as churn rounds in which 10% of the VMs are replaced; with the default
  ``lifetime_s = 7200`` a tenth of the VMs turn over in about 12 minutes, the scale on which VMR2L's
  latency figure loses the whole gain of a plan (FR back to the initial value for plans of 10 min
  and more, most of the gain kept under 5 s).

Both streams are drawn from the world's own generator (``seed``) and do not depend on how time is
advanced or on what the planner does, except that where an arriving VM lands depends on the state
it finds: two planners on the same seed see the same arrivals and departures, and the world without
any migration is the exact counterfactual (``fr_noop``).

**Decision clock.** A *plan* (greedy, look-ahead, CP-SAT) is computed on the state at time 0 and
charged its solve time (measured wall time, or a declared value); the world advances by that time,
then the plan is applied to the state as it is *then*, migration by migration: a move whose VM has
left is dropped (``dropped_departed``), a move that is no longer legal (its destination filled,
capacity or a deployment set) is dropped (``dropped_illegal``). A *policy* (:func:`run_policy`)
acts step by step on the current state; each migration costs ``2 * step_cost_s`` (two policy steps:
VM, then destination), and the world advances before each migration. Migrations themselves take
``migration_s`` each (default 0, as in VMR2L's latency experiment).
"""
from __future__ import annotations

import heapq
import time
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np

from rlsys_envs.core import check_float

from .generator import _CORES, _SPAN, MEMORY_PROFILES, P_PACK, choose_slot, size_mix
from .model import Cluster

#: default mean VM lifetime (s); see the module docstring, "Calibration"
LIFETIME_S = 7200.0
#: default simulated cost of one policy step (s): VMR2L's ~3 s for 50 migrations (100 steps)
STEP_COST_S = 0.03
_CHUNK = 512


@dataclass
class DynamicResult:
    """What one dynamic run did; FRs over the in-service NUMA nodes at the times named."""

    name: str
    solve_s: float          # decision time charged before the first migration (plans) or in all (policy)
    clock_s: float          # simulated time at the end
    fr_start: float         # FR at time 0 (the snapshot the planner saw)
    fr_ready: float         # FR when the plan was ready, before it was applied (policy: = fr_start)
    fr_final: float         # FR after the last migration
    fr_noop: float          # FR of the same world without any migration, at clock_s
    planned: int            # migrations the planner produced
    applied: int
    dropped_departed: int   # planned moves whose VM had left
    dropped_illegal: int    # planned moves no longer legal when applied
    arrivals: int
    departures: int
    rejected: int           # arrivals that fitted nowhere

    @property
    def fr_gain(self) -> float:
        """FR reduction against doing nothing in the same world (``fr_noop - fr_final``)."""
        return self.fr_noop - self.fr_final

    def as_dict(self) -> dict:
        return {**asdict(self), "fr_gain": self.fr_gain}


class DynamicCluster:
    """A cluster whose VMs arrive and leave on a simulated clock (module docstring).

    ``cluster`` is copied. ``size_mix_of`` picks the arrivals' type mix (``"M"`` or ``"L"``),
    ``memory`` their memory profile (:data:`~rlsys_envs.vm.generator.MEMORY_PROFILES`).
    """

    def __init__(self, cluster: Cluster, seed: int, lifetime_s: float = LIFETIME_S,
                 arrival_rate: float | None = None, p_pack: float = P_PACK, mix: str = "M",
                 memory: str = "standard"):
        self.lifetime_s = check_float("lifetime_s", lifetime_s, 1e-6, 1e12)
        self.arrival_rate = (cluster.n_vms / self.lifetime_s if arrival_rate is None
                             else check_float("arrival_rate", arrival_rate, 0.0, 1e9))
        self.p_pack = check_float("p_pack", p_pack, 0.0, 1.0)
        if memory not in MEMORY_PROFILES:
            raise ValueError(f"memory must be one of {', '.join(MEMORY_PROFILES)}; got {memory!r}")
        if mix not in ("M", "L"):
            raise ValueError(f"mix must be 'M' or 'L'; got {mix!r}")
        self.mix = size_mix(mix)
        self.mem_levels, probs = MEMORY_PROFILES[memory]
        self.mem_cuts = np.cumsum(probs)[:-1]
        self.cluster = cluster.copy()
        self.clock = 0.0
        self.arrivals = self.departures = self.rejected = 0
        root = np.random.SeedSequence(seed)
        s_dep, s_arr = root.spawn(2)
        self._dep_rng = np.random.default_rng(s_dep)
        self._arr_rng = np.random.default_rng(s_arr)
        n = cluster.n_vms
        self.uid = np.arange(n, dtype=np.int64)
        self._next_uid = n
        self._heap = list(zip(self._dep_rng.exponential(self.lifetime_s, n).tolist(), range(n)))
        heapq.heapify(self._heap)
        self._row = {u: i for i, u in enumerate(range(n))}
        self._stream: list = []
        self._t_next = self._draw_arrival_time(0.0)

    # ------------------------------------------------------------------------- the streams
    def _draw_arrival_time(self, t: float) -> float:
        if self.arrival_rate <= 0:
            return float("inf")
        return t + float(self._arr_rng.exponential(1.0 / self.arrival_rate))

    def _draw_arrival(self) -> tuple[int, int, bool, float, float]:
        """(type index, memory level, best fit?, tie-break uniform, lifetime) of the next arrival."""
        if not self._stream:
            r = self._arr_rng
            k = r.choice(len(self.mix), size=_CHUNK, p=self.mix)
            m = np.searchsorted(self.mem_cuts, r.random(_CHUNK), side="right")
            pk = r.random(_CHUNK) < self.p_pack
            u = r.random(_CHUNK)
            life = r.exponential(self.lifetime_s, _CHUNK)
            self._stream = list(zip(k.tolist(), m.tolist(), pk.tolist(), u.tolist(), life.tolist()))[::-1]
        return self._stream.pop()

    # ---------------------------------------------------------------------------- the clock
    def advance(self, seconds: float) -> bool:
        """Run the events of the next ``seconds``; True if the cluster changed."""
        seconds = check_float("seconds", seconds, 0.0, 1e12)
        end = self.clock + seconds
        c = self.cluster
        free = c.free.copy()
        acc = c.node_active.copy()
        gone: set[int] = set()
        new: list[tuple] = []            # (uid, cpu per node, mem per node, span, pm, numa)
        new_free: dict[int, tuple] = {}
        while True:
            t_dep = self._heap[0][0] if self._heap else float("inf")
            t = min(t_dep, self._t_next)
            if t > end:
                break
            if t_dep <= self._t_next:
                _, u = heapq.heappop(self._heap)
                self.departures += 1
                if u in self._row:
                    v = self._row[u]
                    gone.add(u)
                    free[c.vm_nodes(v), 0] += c.vm_ncpu[v]
                    free[c.vm_nodes(v), 1] += c.vm_nmem[v]
                else:                                    # an arrival of this same advance leaves again
                    nc, nm, span, pm, numa = new_free.pop(u)
                    nodes = [2 * pm, 2 * pm + 1] if span == 2 else [2 * pm + numa]
                    free[nodes, 0] += nc
                    free[nodes, 1] += nm
                    new = [row for row in new if row[0] != u]
            else:
                k, m, pack, uu, life = self._draw_arrival()
                self._t_next = self._draw_arrival_time(t)
                cores, span = int(_CORES[k]), int(_SPAN[k])
                nc, nm = cores // span, cores * self.mem_levels[m] // span
                s = choose_slot(free[:, 0], free[:, 1], nc, nm, span, pack, uu, accepting=acc)
                if s < 0:
                    self.rejected += 1
                    continue
                self.arrivals += 1
                pm, numa = divmod(s, 2)
                nodes = [s, s + 1] if span == 2 else [s]
                free[nodes, 0] -= nc
                free[nodes, 1] -= nm
                uid = self._next_uid
                self._next_uid += 1
                new.append((uid, nc, nm, span, pm, numa if span == 1 else -1))
                new_free[uid] = (nc, nm, span, pm, numa)
                heapq.heappush(self._heap, (t + life, uid))
        self.clock = end
        if not gone and not new:
            return False
        self._rebuild(gone, new)
        return True

    def _rebuild(self, gone: set[int], new: list[tuple]) -> None:
        c = self.cluster
        keep = np.array([int(u) not in gone for u in self.uid], bool)
        add = np.array([row[1:] for row in new], np.int64).reshape(-1, 5)
        cat = lambda old, col: np.concatenate([old[keep], add[:, col]])  # noqa: E731
        groups = np.concatenate([c.vm_group[keep], np.full(len(add), -1, np.int64)])
        names = None
        if c.vm_names is not None:
            names = [n for n, k in zip(c.vm_names, keep.tolist()) if k] + [f"arrival_{row[0]}" for row in new]
        self.cluster = Cluster(
            numa_cpu=c.numa_cpu, numa_mem=c.numa_mem, vm_ncpu=cat(c.vm_ncpu, 0), vm_nmem=cat(c.vm_nmem, 1),
            vm_span=cat(c.vm_span, 2), vm_pm=cat(c.vm_pm, 3), vm_numa=cat(c.vm_numa, 4),
            vm_movable=np.concatenate([c.vm_movable[keep], np.ones(len(add), bool)]), vm_group=groups,
            pm_accepting=c.pm_accepting, frag_unit=c.frag_unit, pm_names=c.pm_names, vm_names=names,
            pm_rack=c.pm_rack, group_rack=c.group_rack, group_affinity=c.group_affinity)
        self.uid = np.concatenate([self.uid[keep], np.array([row[0] for row in new], np.int64)])
        self._row = {int(u): i for i, u in enumerate(self.uid.tolist())}

    # --------------------------------------------------------------------------- migrations
    def row_of(self, uid: int) -> int:
        """The VM's row in :attr:`cluster` now (-1: it has left)."""
        return self._row.get(int(uid), -1)

    def migrate(self, uid: int, slot: int) -> str:
        """Apply one planned migration now: ``"applied"``, ``"departed"`` or ``"illegal"``."""
        v = self.row_of(uid)
        if v < 0:
            return "departed"
        if not self.cluster.is_legal(v, int(slot)):
            return "illegal"
        self.cluster.migrate(v, int(slot))
        return "applied"

    def fragment_rate(self) -> float:
        return self.cluster.fragment_rate()


def apply_plan(world: DynamicCluster, moves: list[tuple[int, int]], migration_s: float = 0.0) -> dict[str, int]:
    """Apply ``moves`` (``(uid, slot)``) to the world as it is, in order (each after ``migration_s``
    of simulated time); returns the counts ``applied`` / ``dropped_departed`` / ``dropped_illegal``."""
    counts = {"applied": 0, "departed": 0, "illegal": 0}
    for uid, slot in moves:
        if migration_s > 0:
            world.advance(migration_s)
        counts[world.migrate(uid, slot)] += 1
    return {"applied": counts["applied"], "dropped_departed": counts["departed"],
            "dropped_illegal": counts["illegal"]}


def _noop_fr(make_world: Callable[[], DynamicCluster], clock: float) -> float:
    twin = make_world()
    twin.advance(clock)
    return twin.fragment_rate()


def run_plan(make_world: Callable[[], DynamicCluster], planner: Callable[[Cluster, int], list[tuple[int, int]]],
             mnl: int, solve_s: float | None = None, migration_s: float = 0.0, name: str = "plan") -> DynamicResult:
    """A plan in the dynamic setting: ``planner(cluster, mnl)`` returns migrations ``(vm row,
    slot)`` for the snapshot at time 0; it is charged ``solve_s`` (None: its measured wall time),
    then applied to the state at that time (:func:`apply_plan`). ``make_world()`` builds the world
    (called twice: the run and its no-migration twin)."""
    world = make_world()
    snapshot = world.cluster.copy()
    uids = world.uid.copy()
    fr_start = world.fragment_rate()
    t0 = time.perf_counter()
    plan = planner(snapshot, mnl)[:mnl]
    measured = time.perf_counter() - t0
    charged = measured if solve_s is None else check_float("solve_s", solve_s, 0.0, 1e12)
    world.advance(charged)
    fr_ready = world.fragment_rate()
    counts = apply_plan(world, [(int(uids[v]), int(s)) for v, s in plan], migration_s)
    return DynamicResult(name=name, solve_s=charged, clock_s=world.clock, fr_start=fr_start, fr_ready=fr_ready,
                         fr_final=world.fragment_rate(), fr_noop=_noop_fr(make_world, world.clock),
                         planned=len(plan), **counts, arrivals=world.arrivals, departures=world.departures,
                         rejected=world.rejected)


def run_policy(make_world: Callable[[], DynamicCluster], env, policy, mnl: int, seed: int = 0,
               step_cost_s: float = STEP_COST_S, name: str = "policy") -> DynamicResult:
    """A step-by-step policy in the dynamic setting: before each migration the world advances by
    ``2 * step_cost_s`` (the VM choice and the destination choice) and the env continues on the
    world as it is (:meth:`VMReschedulingEnv.sync_cluster`); the policy's moves are legal when
    made, so none is dropped. ``env`` is a :class:`~rlsys_envs.vm.env.VMReschedulingEnv` whose
    ``max_pms`` / ``max_vms`` fit the world (room for arrivals); ``mnl`` caps the migrations."""
    step_cost_s = check_float("step_cost_s", step_cost_s, 0.0, 1e6)
    world = make_world()
    fr_start = world.fragment_rate()
    obs, info = env.reset(seed=seed, options={"instance": world.cluster})
    env.sync_cluster(world.cluster)           # the env acts on the world's cluster itself
    obs, info = env.observe()
    policy.reset(env, seed)
    done, migrations = False, 0
    while not done and migrations < mnl:
        if world.advance(2 * step_cost_s):
            env.sync_cluster(world.cluster)
            obs, info = env.observe()
        before = env.migrations
        while env.migrations == before:
            obs, _, term, trunc, info = env.step(policy.act(env, obs, info))
            if term or trunc:
                done = True
                break
        migrations += env.migrations - before
    return DynamicResult(name=name, solve_s=2 * step_cost_s * migrations, clock_s=world.clock, fr_start=fr_start,
                         fr_ready=fr_start, fr_final=world.fragment_rate(),
                         fr_noop=_noop_fr(make_world, world.clock), planned=migrations, applied=migrations,
                         dropped_departed=0, dropped_illegal=0, arrivals=world.arrivals,
                         departures=world.departures, rejected=world.rejected)
