"""Seeded VM-rescheduling snapshots calibrated to VMR2L's data, and a loader of its cluster JSON.

Sizes (``SIZES``): ``tiny`` (4 PMs) and ``S`` (20 PMs) for tests, exact solving and quick training;
``M`` (279 PMs, about 2,089 VMs at medium workload) and ``L`` (1,176 PMs, about 4,546 VMs) as in
VMR2L. Every PM has VMR2L's shape: 2 NUMA nodes x (44 cores, 184,388 MB).

Workload levels (``WORKLOADS``) set the target share of allocated cores: low 0.80, medium 0.88,
high 0.95 (VMR2L reports that 81% of its PMs run above 80% cpu utilisation; the first public
snapshot is at 96%).

VM type mix (``MIXES``): cores 2/4/8/16 live on one NUMA node, 32/64/88 over both; memory is 2 GB
per core (70%) or 4 GB per core (30%). The M mix is the type frequency of the public 236-host
snapshot (average 10.3 cores per VM, so 279 PMs at 88% hold about 2,089 VMs); the L mix blends in
the larger VMs of the 352-host snapshot (average about 20 cores, so 1,176 PMs at 88% hold about
4,546 VMs).

Generation (placement model). VMR2L does not publish its generator, so the placement is a model
calibrated to the paper's one reported statistic of this kind: the initial fragment rate of its M
data, FR 0.555 (-> 0.295 after VMR2L's 50 migrations, MIP 0.287).

1. Initial load: VM types (and 2 / 4 GB per core) are drawn from the mix until the drawn cores reach
   the workload target; they are placed big (two-NUMA) VMs first, otherwise in random order.
2. Each VM is placed by **best fit with probability** ``p_pack`` (default ``P_PACK`` = 0.34) and by
   **random fit** otherwise. Best fit is what production schedulers do (most-allocated / tightest
   node first): the NUMA node with the fewest free cores that fits (for a two-NUMA VM, the PM with
   the fewest free cores over both nodes); ties uniformly at random. Random fit is a uniformly random
   legal slot; it stands for everything a packing score does not see (spreading and anti-affinity
   rules, placements made when the cluster looked different, user-pinned hosts, cpu/memory
   trade-offs). Feasibility checks cpu and memory; the score is cpu only (with at most 4 GB per
   core, memory never binds on a 44-core node).
3. Arrivals then fill up to the target; then ``churn_rounds`` (default 1) rounds in which a random
   ``CHURN_FRAC`` (10%) of the VMs depart and arrivals refill the cluster (same placement rule).
   Departures are what leave holes in packed nodes.

Pure random fit (``p_pack=0``) scatters the free cores so that almost all of them are fragments
(M/high FR 0.91); pure best fit (``p_pack=1``) concentrates them in whole 16-core units (M/high FR
about 0.30, already what VMR2L reaches after 50 migrations), and adding more best-fit churn lowers it
further. ``p_pack`` was calibrated so that M/high gives the paper's initial FR: mean over seeds 0-19
of M/high initial FR for p_pack 0.20 / 0.25 / 0.30 / 0.32 / 0.33 / 0.34 / 0.35 = 0.693 / 0.649 /
0.603 / 0.590 / 0.580 / **0.556** / 0.536 (per-seed sd 0.05; seeds 20-59 give 0.563).

With ``P_PACK`` (seeds 0-19 unless said; greedy = best single migration until none helps, MNL 50,
seeds 0-9):

=========  ======  ===========  ==============  =====================================
size       load    VMs (mean)   initial FR      greedy final FR (migrations)
=========  ======  ===========  ==============  =====================================
M          low     1,925        0.316           0.158 (46.5)
M          medium  2,125        0.387           0.156 (43.8)
M          high    2,315        0.556           0.241 (23.7)
S          high    164          0.701           0.507 (1.2; seeds 0-9 initial 0.746)
tiny       high    32           0.914           1.000 (0; seeds 0-9 all start at 1.0)
L          medium  4,599        0.601           (seeds 0-4)
L          high    5,149        0.931           (seeds 0-4)
=========  ======  ===========  ==============  =====================================

CP-SAT (MNL 50, 40 s, 1 worker) reaches FR 0.085 / 0.083 (optimal) on M/high seeds 0 / 1 (greedy
0.229 / 0.227), so there is ample room above greedy. Note that VMR2L's M data (2,089 VMs on 280
PMs, ~88% of cores allocated with this mix) corresponds to the *medium* level here: calibrating
M/medium to FR 0.555 instead would need ``p_pack`` about 0.1 (M/medium seed 0: FR 0.520 -> greedy
0.264 -> CP-SAT 0.248 optimal, i.e. close to the paper's 0.295 / 0.287 but with little room above
greedy). Generating an M snapshot takes about 70 ms (L about 170 ms) on one core. All randomness
comes from ``rng``. VM ids are assigned movable VMs first, smallest first (ties random).
"""
from __future__ import annotations

import numpy as np

from .model import NUMA_CPU, NUMA_MEM_MB, Cluster

#: size -> (n_pms, VM cap = padded max_vms of the observation)
SIZES: dict[str, tuple[int, int]] = {
    "tiny": (4, 48),
    "S": (20, 240),
    "M": (279, 2600),
    "L": (1176, 5600),
}
WORKLOADS: dict[str, float] = {"low": 0.80, "medium": 0.88, "high": 0.95}
_CORES = np.array([2, 4, 8, 16, 32, 64, 88], np.int64)
_SPAN = np.array([1, 1, 1, 1, 2, 2, 2], np.int64)
_M_COUNTS = np.array([333, 839, 358, 199, 100, 104, 1], float)    # 236-host public snapshot
_BIG_COUNTS = np.array([31, 16, 28, 93, 136, 52, 148], float)     # 352-host public snapshot
MIXES: dict[str, np.ndarray] = {
    "M": _M_COUNTS / _M_COUNTS.sum(),
    "L": 0.72 * _M_COUNTS / _M_COUNTS.sum() + 0.28 * _BIG_COUNTS / _BIG_COUNTS.sum(),
}
MEM_PER_CORE_MB = (2048, 4096)
P_4GB = 0.3
#: memory profiles (``memory=``): per-core memory (MB) and the probability of each. ``standard``
#: is VMR2L's mix (memory never binds: at most 4 GB per core on a 44-core node of 184,388 MB, i.e.
#: 4.19 GB per core); ``heavy`` (ours) adds 8 GB-per-core VMs (memory-optimised flavours), mean
#: 3.9 GB per core, close to what a node holds per core: on M/medium (seeds 0-1) 35% of the
#: cpu-feasible (VM, NUMA node) pairs are blocked by memory, against 0% with ``standard``.
MEMORY_PROFILES: dict[str, tuple[tuple[int, ...], tuple[float, ...]]] = {
    "standard": ((2048, 4096), (1 - P_4GB, P_4GB)),
    "heavy": ((2048, 4096, 8192), (0.45, 0.35, 0.2)),
}
#: PMs per rack of generated snapshots: the public snapshots have 10 racks for 279 PMs and 40 for 1,176
RACK_SIZE = 28
GRANULARITIES = ("host", "rack")


#: probability that a VM is placed by best fit (else random fit); calibrated, see the module docstring
P_PACK = 0.34
#: share of the VMs that depart in each churn round (then arrivals refill to the target)
CHURN_FRAC = 0.1
_BUF = 4096  # placement attempts drawn from ``rng`` at a time


def size_mix(size: str) -> np.ndarray:
    return MIXES["L"] if size == "L" else MIXES["M"]


def choose_slot(fc: np.ndarray, fm: np.ndarray, nc: int, nm: int, span: int, pack: bool, u: float,
                accepting: np.ndarray | None = None) -> int:
    """The placement rule of the generator (and of arrivals in :mod:`.dynamic`): the slot a VM of
    ``span`` x (``nc`` cores, ``nm`` MB) per node gets, given free cores ``fc`` and memory ``fm`` per
    NUMA node; -1 if it fits nowhere. ``pack``: best fit (the NUMA node with the fewest free cores
    that fits; for a two-NUMA VM the PM with the fewest over both nodes), else random fit; ``u`` in
    [0, 1) picks uniformly among the candidates. ``accepting``: ``[n_nodes]`` nodes that may receive."""
    fit = (fc >= nc) & (fm >= nm)
    if accepting is not None:
        fit &= accepting
    if span == 1:
        slots = np.flatnonzero(fit)
        if len(slots) == 0:
            return -1
        if pack:
            left = fc[slots]
            slots = slots[left == left.min()]
    else:
        pms = np.flatnonzero(fit[0::2] & fit[1::2])
        if len(pms) == 0:
            return -1
        slots = 2 * pms
        if pack:
            left = fc[slots] + fc[slots + 1]
            slots = slots[left == left.min()]
    return int(slots[int(u * len(slots))])


def generate_cluster(rng: np.random.Generator, size: str = "M", workload: str = "high", frag_unit: int = 16,
                     frac_unmovable: float = 0.0, n_groups: int = 0, group_size: int = 3,
                     n_pms: int | None = None, max_vms: int | None = None, churn_rounds: int = 1,
                     p_pack: float = P_PACK, memory: str = "standard", rack_size: int = RACK_SIZE,
                     group_granularity: str = "host") -> Cluster:
    """A snapshot of ``size`` at ``workload`` drawn from ``rng`` only (deterministic per seed).

    Each VM is placed by best fit with probability ``p_pack``, else by random fit (module docstring).
    ``memory``: a :data:`MEMORY_PROFILES` key. PM ``p`` is on rack ``p // rack_size``. ``n_groups``
    anti-affinity sets of ``group_size`` VMs are drawn among VMs on distinct hosts
    (``group_granularity="host"``) or distinct racks (``"rack"``).
    """
    if memory not in MEMORY_PROFILES:
        raise ValueError(f"memory must be one of {', '.join(MEMORY_PROFILES)}; got {memory!r}")
    if group_granularity not in GRANULARITIES:
        raise ValueError(f"group_granularity must be one of {', '.join(GRANULARITIES)}; got {group_granularity!r}")
    if isinstance(rack_size, bool) or not isinstance(rack_size, (int, np.integer)) or rack_size < 1:
        raise ValueError(f"rack_size must be a whole number >= 1; got {rack_size!r}")
    mem_levels, mem_probs = MEMORY_PROFILES[memory]
    mem_cuts = np.cumsum(mem_probs)[:-1]
    if size not in SIZES:
        raise ValueError(f"size must be one of {', '.join(SIZES)}; got {size!r}")
    if workload not in WORKLOADS:
        raise ValueError(f"workload must be one of {', '.join(WORKLOADS)}; got {workload!r}")
    if not 0.0 <= p_pack <= 1.0:
        raise ValueError(f"p_pack must be in [0, 1]; got {p_pack!r}")
    n_pms = SIZES[size][0] if n_pms is None else n_pms
    cap_vms = SIZES[size][1] if max_vms is None else max_vms
    mix = size_mix(size)
    target = WORKLOADS[workload] * n_pms * 2 * NUMA_CPU
    fc = np.full(2 * n_pms, NUMA_CPU, np.int64)      # free cores per NUMA node
    fm = np.full(2 * n_pms, NUMA_MEM_MB, np.int64)   # free memory per NUMA node
    vms: list[tuple[int, int, int, int, int]] = []   # (node cpu, node mem, span, pm, numa)

    # a stream of placement attempts, each (VM type, 4 GB per core?, best fit?, tie-break uniform)
    stream = {"i": _BUF, "k": None, "m4": None, "pk": None, "u": None}

    def draw() -> tuple[int, bool, bool, float]:
        if stream["i"] == _BUF:
            stream["k"] = rng.choice(len(mix), size=_BUF, p=mix).tolist()
            # one uniform per VM picks its memory per core (standard: < P_4GB -> 4 GB, as before)
            mr = rng.random(_BUF)
            stream["m4"] = ((mr < P_4GB).astype(np.int64) if memory == "standard"
                            else np.searchsorted(mem_cuts, mr, side="right")).tolist()
            stream["pk"] = (rng.random(_BUF) < p_pack).tolist()
            stream["u"] = rng.random(_BUF).tolist()
            stream["i"] = 0
        i = stream["i"]
        stream["i"] = i + 1
        return stream["k"][i], stream["m4"][i], stream["pk"][i], stream["u"][i]

    def try_place(k: int, m4: bool, pack: bool, u: float) -> bool:
        cores, span = int(_CORES[k]), int(_SPAN[k])
        nc, nm = cores // span, cores * mem_levels[int(m4)] // span
        s = choose_slot(fc, fm, nc, nm, span, pack, u)
        if s < 0:
            return False
        pm, numa = divmod(s, 2)
        fc[s: s + span] -= nc
        fm[s: s + span] -= nm
        vms.append((nc, nm, span, pm, numa if span == 1 else -1))
        return True

    def fill() -> None:
        used = n_pms * 2 * NUMA_CPU - int(fc.sum())
        fails = 0
        while used < target and len(vms) < cap_vms and fails < 200:
            if try_place(*draw()):
                used += vms[-1][0] * vms[-1][2]
                fails = 0
            else:
                fails += 1

    # initial load: a multiset drawn from the mix up to the target, big (two-NUMA) VMs first
    draws, total = [], 0
    while total < target and len(draws) < cap_vms:
        d = draw()
        draws.append(d)
        total += int(_CORES[d[0]])
    order = np.lexsort((rng.random(len(draws)), -_SPAN[[d[0] for d in draws]]))
    for j in order:
        if len(vms) >= cap_vms:
            break
        try_place(*draws[j])
    fill()
    # churn: a random share of the VMs departs, arrivals refill to the target
    for _ in range(churn_rounds):
        if not vms:
            break
        drop = np.zeros(len(vms), bool)
        drop[rng.choice(len(vms), size=max(1, int(len(vms) * CHURN_FRAC)), replace=False)] = True
        for i in np.flatnonzero(drop):
            nc, nm, span, pm, numa = vms[i]
            s = 2 * pm + (numa if span == 1 else 0)
            fc[s: s + span] += nc
            fm[s: s + span] += nm
        vms = [v for v, d in zip(vms, drop.tolist()) if not d]
        fill()
    a = np.array(vms, np.int64).reshape(-1, 5)
    n = len(a)
    movable = rng.random(n) >= frac_unmovable if frac_unmovable > 0 else np.ones(n, bool)
    # VM ids: movable VMs first, by size (smallest first), ties in random order. Small VMs almost
    # always have somewhere to go, so the low VM ids are legal phase-0 actions in any snapshot.
    order = np.lexsort((rng.random(n), a[:, 0] * a[:, 2], ~movable))
    a, movable = a[order], movable[order]
    groups = np.full(n, -1, np.int64)
    pm_rack = np.arange(n_pms, dtype=np.int64) // rack_size
    unit_of = pm_rack if group_granularity == "rack" else np.arange(n_pms)
    if n_groups > 0:  # anti-affinity groups among VMs that already sit on distinct PMs (racks)
        order = rng.permutation(n)
        g, members, pms = 0, [], set()
        for v in order:
            if g >= n_groups:
                break
            if int(unit_of[a[v, 3]]) not in pms:
                members.append(v)
                pms.add(int(unit_of[a[v, 3]]))
            if len(members) == group_size:
                groups[members] = g
                g, members, pms = g + 1, [], set()
    return Cluster(numa_cpu=np.full((n_pms, 2), NUMA_CPU), numa_mem=np.full((n_pms, 2), NUMA_MEM_MB),
                   vm_ncpu=a[:, 0], vm_nmem=a[:, 1], vm_span=a[:, 2], vm_pm=a[:, 3], vm_numa=a[:, 4],
                   vm_movable=movable, vm_group=groups, frag_unit=frag_unit, pm_rack=pm_rack,
                   group_rack=np.full(max(g, 0) if n_groups > 0 else 0, group_granularity == "rack"))


class GeneratedClusters:
    """The seeded snapshot generator of ``instance="generated"``: :func:`generate_cluster` with
    these settings, drawn from the ``rng`` it is called with (an instance generator in the sense of
    :mod:`rlsys_envs.core.instances`)."""

    def __init__(self, size: str = "M", workload: str = "high", frag_unit: int = 16, frac_unmovable: float = 0.0,
                 n_groups: int = 0, max_vms: int | None = None, memory: str = "standard",
                 rack_size: int = RACK_SIZE, group_granularity: str = "host"):
        self.kwargs = dict(size=size, workload=workload, frag_unit=frag_unit, frac_unmovable=frac_unmovable,
                           n_groups=n_groups, max_vms=max_vms, memory=memory, rack_size=rack_size,
                           group_granularity=group_granularity)

    def __call__(self, rng: np.random.Generator) -> Cluster:
        return generate_cluster(rng, **self.kwargs)

    def __repr__(self) -> str:
        return f"GeneratedClusters({', '.join(f'{k}={v!r}' for k, v in self.kwargs.items())})"


# the loader of VMR2L's cluster JSON lives in .loader (re-exported here, where it used to be)
from .loader import LoadReport, load_vmr2l_json  # noqa: E402,F401
