"""Baselines of the hybrid-storage environment, per agent and joint.

Placement (the device of each request; :data:`PLACEMENT_POLICIES`, the baselines of
``rlsys/HybridStorage-v0``):

* ``slow_only`` -- every request on the slowest device (the upper end of Sibyl's normalisation);
* ``fast_only`` -- every request on the fastest device; on ``fast_capacity=1.0,
  initial_placement="fast_first"`` (:data:`FAST_ONLY_BOUND`) it is the unbounded Fast-Only bound;
* ``cde`` -- CDE (Matsui et al.): sequential requests to the slowest device, random writes to the
  fastest, reads of hot pages (accessed before) to the fastest, other reads stay;
* ``hps`` -- HPS-style hot-page selection: a page whose decayed access frequency reaches a
  threshold goes to the fastest device, cold writes to the slowest, cold reads stay (its periodic
  demotion is the ``hps`` migration policy);
* ``lru`` -- LRU promote-on-access: every request to the fastest device (the env evicts by LRU);
* ``oracle`` -- future knowledge, Belady-style by next reuse (:class:`OraclePlacement`), meant for
  the Oracle system :data:`ORACLE_SYSTEM` (Belady's eviction);
* ``random``.

Migration (:data:`MIGRATION_POLICIES`, the baselines of ``rlsys/HybridStorageMigration-v0``):
``none`` (no-op), ``hps`` (periodic demotion of cold candidates), ``hot_cold`` (promote the
hottest candidate when it is hotter than the fastest device's coldest page), ``oracle`` (promote
candidates touched again within ``migration_window`` requests -- twice when the slowest device has
a queue -- and reused sooner than the page they would evict), ``random``.

Joint (:data:`JOINT_BASELINES`, ``rlsys/HybridStorageParallel-v0``): the placement heuristics with
``none``, ``hps`` with ``hps``, ``lru+hot_cold``, ``cde+hot_cold``, ``oracle`` with ``oracle``, random
with random.

The shipped agents (H&M checkpoints, :data:`SHIPPED`) by name: ``sibyl`` (the Sibyl-like QR-DQN
placement agent; with ``none`` in the joint table), ``harmonia_migration`` (the migration agent) and
the joint ``harmonia`` (both).

Policies read the exact state of the parallel environment (``env.parallel`` in a view); the
oracles also read the trace's future (``EpisodeTrace.next_request``).
"""
from __future__ import annotations

import heapq
import itertools

from rlsys_envs.core import Policy, RandomMaskedPolicy
from rlsys_envs.core.parallel import SingleAgentView

#: env kwargs under which ``fast_only`` is Sibyl's Fast-Only bound (an unbounded fast device holding all data)
FAST_ONLY_BOUND = {"fast_capacity": 1.0, "initial_placement": "fast_first"}
#: env kwargs of the Oracle system: Belady's eviction (future knowledge) under the oracle policies
ORACLE_SYSTEM = {"eviction": "belady"}
#: the env kwargs each reference policy is meant to run under (the others run on the env as it is)
SYSTEM_OF = {"fast_only": FAST_ONLY_BOUND, "oracle": ORACLE_SYSTEM}


def storage_env(env):
    """The parallel storage environment behind ``env`` (itself, or a view's)."""
    return env.parallel if isinstance(env, SingleAgentView) else env


class PlacementPolicy(Policy):
    """Base: :meth:`choose` a device from the state; a device too small for the request falls
    back to the fastest device that can hold it."""

    def act(self, env, obs, info):
        par = storage_env(env)
        d = self.choose(par, par.model)
        mask = info["action_mask"]
        if mask[d]:
            return d
        return next(e for e in range(d + 1, len(mask)) if mask[e]) if any(mask[d + 1:]) else \
            next(e for e in range(len(mask)) if mask[e])

    def choose(self, env, m) -> int:
        raise NotImplementedError

    @staticmethod
    def pages(m) -> list[int]:
        tr = m.tr
        return tr.pid[tr.ptr[m.i]:tr.ptr[m.i + 1]]


class SlowOnly(PlacementPolicy):
    name = "slow_only"

    def choose(self, env, m):
        return m.slowest


class FastOnly(PlacementPolicy):
    """Every request on the fastest device: Sibyl's Fast-Only bound under :data:`FAST_ONLY_BOUND`."""

    name = "fast_only"

    def choose(self, env, m):
        return 0


class LRUPromote(FastOnly):
    """LRU promote-on-access: every accessed page goes to (stays on) the fastest device; the
    environment evicts the least recently used pages when it is full."""

    name = "lru"


class CDE(PlacementPolicy):
    """CDE: hot or random writes to the fast device, cold or sequential requests to the slow one.

    Sequential requests (contiguous with the previous request) go to the slowest device; random
    writes to the fastest; a read whose pages were accessed at least ``hot_count`` times before
    goes to the fastest device, other reads stay where their data is."""

    name = "cde"

    def __init__(self, hot_count: int = 1):
        self.hot_count = hot_count

    def choose(self, env, m):
        i = m.i
        if m.tr.seq[i]:
            return m.slowest
        if m.tr.write[i]:
            return 0
        pages = self.pages(m)
        if max(m.count[p] for p in pages) >= self.hot_count:
            return 0
        return m.pool.loc[pages[0]]


class HPS(PlacementPolicy):
    """Hot-page selection by access count: a page whose decayed access frequency (before this
    access) is at least ``threshold`` goes to the fastest device; cold writes go to the slowest,
    cold reads stay. Pair it with the ``hps`` migration policy for the periodic demotion."""

    name = "hps"

    def __init__(self, threshold: float = 1.5):
        self.threshold = threshold

    def choose(self, env, m):
        pages = self.pages(m)
        if max(m.decayed_frequency(p) for p in pages) >= self.threshold:
            return 0
        if m.tr.write[m.i]:
            return m.slowest
        return m.pool.loc[pages[0]]


class OraclePlacement(PlacementPolicy):
    """Belady-style placement with future knowledge (the next access of every page).

    A request goes to the fastest device when its pages are there already, when they fit into its
    free room (a read only if its pages are read again), or when they are read again sooner than
    the page the eviction would displace (under ``eviction="belady"`` the farthest-needed page on
    the device, under ``"lru"`` its least recently used pages); otherwise a read leaves its pages
    where they are and a write goes to the slowest device (Belady's MIN with bypass: an evicted
    page costs a write on the slower device). Without queueing, background I/O costs no request
    any time, so every write goes to the fastest device. Meant for the Oracle system
    :data:`ORACLE_SYSTEM`."""

    name = "oracle"

    def choose(self, env, m):
        tr, i, loc = m.tr, m.i, m.pool.loc
        pages = self.pages(m)
        write = tr.write[i]
        moving = [p for p in pages if loc[p] != 0]
        if not moving:
            return 0
        if write and (len(moving) == 1 or not m.queueing):
            return 0        # one eviction later costs the slower device what writing there now would
        nr = tr.next_read
        reuse = min(nr[j] for j in range(tr.ptr[i], tr.ptr[i + 1]))
        need = len(moving) - m.free_pages(0)
        if need <= 0:
            return 0 if write or reuse < tr.n else loc[pages[0]]
        if reuse >= tr.n:
            return m.slowest if write else loc[pages[0]]
        if m.belady:
            victim_reuse = self._farthest(m)
        else:
            own = set(pages)
            victims = itertools.islice((v for v in m.lru[0] if v not in own), need)
            victim_reuse = min(tr.next_request(v, i) for v in victims)
        if reuse >= victim_reuse:
            return m.slowest if write else loc[pages[0]]
        if not write and m.backlog_us(m.slowest) > 0:
            # a loaded slower device: the evictions a promotion causes must buy two reads
            if max(tr.accesses_between(p, i, victim_reuse) for p in moving) < 2:
                return loc[pages[0]]
        return 0

    @staticmethod
    def _farthest(m) -> int:
        """The largest Belady key on the fastest device (stale heap entries dropped)."""
        heap, loc, key = m.heaps[0], m.pool.loc, m.key
        while heap and (loc[heap[0][2]] != 0 or key[heap[0][2]] != -heap[0][0]):
            heapq.heappop(heap)
        return -heap[0][0] if heap else m.tr.n


# ------------------------------------------------------------------------------- migration
class MigrationPolicy(Policy):
    """Base of the migration heuristics: no-op between decision points, else :meth:`choose`."""

    def act(self, env, obs, info):
        par = storage_env(env)
        if par.forced("migration"):
            return 0
        return self.choose(par, par.model, info["action_mask"])

    def choose(self, env, m, mask) -> int:
        raise NotImplementedError


class NoMigration(MigrationPolicy):
    name = "none"

    def act(self, env, obs, info):
        return 0


class HPSDemotion(MigrationPolicy):
    """HPS's periodic demotion: evict the oldest cold candidate whose decayed access frequency is
    below ``threshold`` (one per decision step, up to the budget)."""

    name = "hps"

    def __init__(self, threshold: float = 1.0):
        self.threshold = threshold

    def choose(self, env, m, mask):
        k = env.n_candidates
        for j, (p, _src, _dst) in enumerate(env.cold):
            if mask[1 + k + j] and m.decayed_frequency(p) < self.threshold:
                return 1 + k + j
        return 0


class HotColdMigration(MigrationPolicy):
    """Promote the hottest candidate whose decayed frequency is at least ``min_frequency`` and
    above that of the fastest device's least recently used page (or when it has room)."""

    name = "hot_cold"

    def __init__(self, min_frequency: float = 0.5):
        self.min_frequency = min_frequency

    def choose(self, env, m, mask):
        coldest = next(iter(m.lru[0]), None) if m.free_pages(0) == 0 else None
        bar = max(self.min_frequency, m.decayed_frequency(coldest) if coldest is not None else 0.0)
        for j, (p, _src, _dst) in enumerate(env.hot):
            if mask[1 + j] and m.decayed_frequency(p) >= bar:
                return 1 + j
        return 0


class OracleMigration(MigrationPolicy):
    """Future knowledge: promote the hot candidate with the soonest reuse among those touched in the
    next ``migration_window`` requests (at least twice when the slowest device has a queue) and
    reused sooner than the page its promotion would evict."""

    name = "oracle"

    def choose(self, env, m, mask):
        tr, i = m.tr, m.i
        horizon = i + env.migration_window
        # a background read costs the request stream nothing while the source device is idle
        need = 1 if m.backlog_us(m.slowest) == 0 else 2
        if m.free_pages(0) > 0:
            victim_reuse = tr.n + 1
        elif m.belady:
            victim_reuse = OraclePlacement._farthest(m)
        else:
            victim_reuse = tr.next_request(next(iter(m.lru[0])), i - 1)
        best, best_reuse = 0, None
        for j, (p, _src, _dst) in enumerate(env.hot):
            if not mask[1 + j]:
                continue
            reuse = tr.next_request(p, i - 1)
            if reuse < victim_reuse and tr.accesses_between(p, i - 1, horizon) >= need and \
                    (best_reuse is None or reuse < best_reuse):
                best, best_reuse = 1 + j, reuse
        return best


PLACEMENT_POLICIES = {"slow_only": SlowOnly, "fast_only": FastOnly, "cde": CDE, "hps": HPS, "lru": LRUPromote,
                      "oracle": OraclePlacement, "random": RandomMaskedPolicy}
MIGRATION_POLICIES = {"none": NoMigration, "hps": HPSDemotion, "hot_cold": HotColdMigration,
                      "oracle": OracleMigration, "random": RandomMaskedPolicy}

#: the shipped H&M checkpoints (agents/checkpoints/): the Sibyl-like placement agent and the migration agent
SHIPPED = {"sibyl": "storage_placement_qrdqn.zip", "harmonia_migration": "storage_migration_ppo.zip"}
_LOADED: dict = {}


def shipped(name: str):
    """A zero-argument factory of a shipped checkpoint as a greedy policy (numpy copy of its MLP,
    ``rlsys_agents.fast_inference``; torch is imported only when the factory is called). The checkpoints
    were trained on H&M and run on two-device configurations."""
    def make():
        if name not in _LOADED:
            from rlsys_agents.fast_inference import NumpyGreedyPolicy
            from rlsys_agents.shipped import checkpoints_dir

            _LOADED[name] = NumpyGreedyPolicy.load(checkpoints_dir() / SHIPPED[name])
            _LOADED[name].name = name
        return _LOADED[name]
    return make


#: baselines of rlsys/HybridStorage-v0 (the placement agent)
BASELINES = {**PLACEMENT_POLICIES, "sibyl": shipped("sibyl")}
#: baselines of rlsys/HybridStorageMigration-v0 (the migration agent)
MIGRATION_BASELINES = {**MIGRATION_POLICIES, "harmonia_migration": shipped("harmonia_migration")}


def _joint(placement, migration):
    return lambda: {"placement": PLACEMENT_POLICIES[placement](), "migration": MIGRATION_POLICIES[migration]()}


#: joint baselines of rlsys/HybridStorageParallel-v0: name -> factory of {agent: Policy}
JOINT_BASELINES = {
    "slow_only": _joint("slow_only", "none"),
    "fast_only": _joint("fast_only", "none"),
    "cde": _joint("cde", "none"),
    "cde+hot_cold": _joint("cde", "hot_cold"),
    "hps": _joint("hps", "hps"),
    "lru": _joint("lru", "none"),
    "lru+hot_cold": _joint("lru", "hot_cold"),
    "oracle": _joint("oracle", "oracle"),
    "random": _joint("random", "random"),
    "sibyl": lambda: {"placement": shipped("sibyl")(), "migration": NoMigration()},
    "harmonia": lambda: {"placement": shipped("sibyl")(), "migration": shipped("harmonia_migration")()},
}
