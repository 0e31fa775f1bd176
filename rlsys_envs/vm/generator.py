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

import json
import warnings
from dataclasses import dataclass, field
from pathlib import Path

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


#: probability that a VM is placed by best fit (else random fit); calibrated, see the module docstring
P_PACK = 0.34
#: share of the VMs that depart in each churn round (then arrivals refill to the target)
CHURN_FRAC = 0.1
_BUF = 4096  # placement attempts drawn from ``rng`` at a time


def size_mix(size: str) -> np.ndarray:
    return MIXES["L"] if size == "L" else MIXES["M"]


def generate_cluster(rng: np.random.Generator, size: str = "M", workload: str = "high", frag_unit: int = 16,
                     frac_unmovable: float = 0.0, n_groups: int = 0, group_size: int = 3,
                     n_pms: int | None = None, max_vms: int | None = None, churn_rounds: int = 1,
                     p_pack: float = P_PACK) -> Cluster:
    """A snapshot of ``size`` at ``workload`` drawn from ``rng`` only (deterministic per seed).

    Each VM is placed by best fit with probability ``p_pack``, else by random fit (module docstring).
    """
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
            stream["m4"] = (rng.random(_BUF) < P_4GB).tolist()
            stream["pk"] = (rng.random(_BUF) < p_pack).tolist()
            stream["u"] = rng.random(_BUF).tolist()
            stream["i"] = 0
        i = stream["i"]
        stream["i"] = i + 1
        return stream["k"][i], stream["m4"][i], stream["pk"][i], stream["u"][i]

    def try_place(k: int, m4: bool, pack: bool, u: float) -> bool:
        cores, span = int(_CORES[k]), int(_SPAN[k])
        nc, nm = cores // span, cores * MEM_PER_CORE_MB[int(m4)] // span
        fit = (fc >= nc) & (fm >= nm)
        if span == 1:
            slots = np.flatnonzero(fit)
            if len(slots) == 0:
                return False
            if pack:  # best fit: the NUMA node with the fewest free cores that fits
                left = fc[slots]
                slots = slots[left == left.min()]
        else:
            pms = np.flatnonzero(fit[0::2] & fit[1::2])
            if len(pms) == 0:
                return False
            slots = 2 * pms
            if pack:  # best fit: the PM with the fewest free cores over its two nodes
                left = fc[slots] + fc[slots + 1]
                slots = slots[left == left.min()]
        s = int(slots[int(u * len(slots))])           # uniform among the candidates (ties)
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
    if n_groups > 0:  # anti-affinity groups among VMs that already sit on distinct PMs
        order = rng.permutation(n)
        g, members, pms = 0, [], set()
        for v in order:
            if g >= n_groups:
                break
            if int(a[v, 3]) not in pms:
                members.append(v)
                pms.add(int(a[v, 3]))
            if len(members) == group_size:
                groups[members] = g
                g, members, pms = g + 1, [], set()
    return Cluster(numa_cpu=np.full((n_pms, 2), NUMA_CPU), numa_mem=np.full((n_pms, 2), NUMA_MEM_MB),
                   vm_ncpu=a[:, 0], vm_nmem=a[:, 1], vm_span=a[:, 2], vm_pm=a[:, 3], vm_numa=a[:, 4],
                   vm_movable=movable, vm_group=groups, frag_unit=frag_unit)


class GeneratedClusters:
    """The seeded snapshot generator of ``instance="generated"``: :func:`generate_cluster` with
    these settings, drawn from the ``rng`` it is called with (an instance generator in the sense of
    :mod:`rlsys_envs.core.instances`)."""

    def __init__(self, size: str = "M", workload: str = "high", frag_unit: int = 16, frac_unmovable: float = 0.0,
                 n_groups: int = 0, max_vms: int | None = None):
        self.kwargs = dict(size=size, workload=workload, frag_unit=frag_unit, frac_unmovable=frac_unmovable,
                           n_groups=n_groups, max_vms=max_vms)

    def __call__(self, rng: np.random.Generator) -> Cluster:
        return generate_cluster(rng, **self.kwargs)

    def __repr__(self) -> str:
        return f"GeneratedClusters({', '.join(f'{k}={v!r}' for k, v in self.kwargs.items())})"


# ------------------------------------------------------------------------------------- loader
@dataclass
class LoadReport:
    """What the loader found besides the cluster itself."""

    path: str
    n_hosts: int = 0
    n_vms: int = 0
    #: the file's stated free values that differ from the ones recomputed from the VM placements:
    #: dicts with host, numa, field ("free_cpu" / "memory_huge_free_mb"), stated, recomputed
    free_disagreements: list[dict] = field(default_factory=list)
    #: VMs whose placement disagrees with their type (NUMA count or demand): dicts with vm, type,
    #: type_numa, type_cpu, type_mem_mb, placed_numa, placed_cpu, placed_mem_mb
    type_disagreements: list[dict] = field(default_factory=list)
    n_groups: int = 0
    inactive_hosts: list[str] = field(default_factory=list)
    #: a diagnosis of the disagreements, when one pattern explains them all
    note: str = ""


def _need(obj, key, where):
    if not isinstance(obj, dict) or key not in obj:
        raise ValueError(f"malformed VMR2L JSON: {where} has no {key!r}")
    return obj[key]


def _num(x, where) -> int:
    if isinstance(x, bool) or not isinstance(x, (int, float)) or x != x or int(x) != x:
        raise ValueError(f"malformed VMR2L JSON: {where} must be a whole number, got {x!r}")
    return int(x)


def load_vmr2l_json(path, frag_unit: int = 16, warn: bool = True) -> tuple[Cluster, LoadReport]:
    """Load a VMR2L cluster JSON (``cluster_list[0]``: ``host_info``, ``vm_instance``; ``vm_type_list``).

    The placements are the truth: NUMA usage is recomputed from the VMs, and every stated free value
    that disagrees is recorded in the report (and summarised in one ``UserWarning``). A VM's shape is
    taken from its placement: one NUMA entry = span 1; two = span 2 (the two entries must be equal).
    Where that disagrees with its type in ``vm_type_list`` it is recorded too. Anti-affinity groups
    are read from ``other_requirement.deployment_set`` (a list of lists of instance ids, or of dicts
    holding such a list under ``vm_list`` / ``instance_ids`` / ``instances``). Hosts whose status is
    not ``ACTIVE`` keep their VMs but receive none. A malformed file, a VM on an unknown host, a
    duplicate id or an over-full NUMA node raise ``ValueError`` naming the VM or host.
    """
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"malformed VMR2L JSON in {path}: {e}") from None
    clusters = _need(data, "cluster_list", "the top level")
    if not isinstance(clusters, list) or not clusters:
        raise ValueError("malformed VMR2L JSON: cluster_list must be a non-empty list")
    c = clusters[0]
    hosts = _need(c, "host_info", "cluster_list[0]")
    inst = _need(c, "vm_instance", "cluster_list[0]")
    if not isinstance(hosts, list) or not isinstance(inst, list):
        raise ValueError("malformed VMR2L JSON: host_info and vm_instance must be lists")
    types = {}
    for t in data.get("vm_type_list", []) or []:
        types[_need(t, "vm_type", "a vm_type_list entry")] = t
    report = LoadReport(path=str(path), n_hosts=len(hosts), n_vms=len(inst))

    pm_index: dict[str, int] = {}
    numa_cpu = np.zeros((len(hosts), 2), np.int64)
    numa_mem = np.zeros((len(hosts), 2), np.int64)
    stated = np.zeros((len(hosts), 2, 2))
    accepting = np.ones(len(hosts), bool)
    for i, h in enumerate(hosts):
        name = _need(h, "node_id", f"host_info[{i}]")
        if name in pm_index:
            raise ValueError(f"malformed VMR2L JSON: host {name!r} appears twice")
        pm_index[name] = i
        numa = _need(h, "numa", f"host {name!r}")
        if not isinstance(numa, list) or len(numa) != 2:
            raise ValueError(f"host {name!r} must have exactly 2 NUMA nodes, got {numa!r:.80}")
        for n in numa:
            k = _num(_need(n, "node", f"host {name!r} numa"), f"host {name!r} numa node")
            if k not in (0, 1):
                raise ValueError(f"host {name!r} has NUMA node {k}, not 0 or 1")
            w = f"host {name!r} NUMA {k}"
            numa_cpu[i, k] = _num(_need(n, "total_cpu", w), f"{w} total_cpu")
            numa_mem[i, k] = _num(_need(n, "memory_huge_total_mb", w), f"{w} memory_huge_total_mb")
            stated[i, k] = (float(_need(n, "free_cpu", w)), float(_need(n, "memory_huge_free_mb", w)))
        if h.get("status", "ACTIVE") != "ACTIVE":
            accepting[i] = False
            report.inactive_hosts.append(name)

    vm_index: dict[str, int] = {}
    ncpu, nmem, span, vpm, vnuma, movable, vtypes = [], [], [], [], [], [], []
    for j, v in enumerate(inst):
        vid = _need(v, "instance_id", f"vm_instance[{j}]")
        if vid in vm_index:
            raise ValueError(f"malformed VMR2L JSON: VM {vid!r} appears twice")
        vm_index[vid] = j
        host = _need(v, "host_id", f"VM {vid!r}")
        if host not in pm_index:
            raise ValueError(f"VM {vid!r} is on unknown host {host!r}")
        parts = _need(v, "numa", f"VM {vid!r}")
        if not isinstance(parts, list) or len(parts) not in (1, 2):
            raise ValueError(f"VM {vid!r} must use 1 or 2 NUMA nodes, got {parts!r:.80}")
        rows = []
        for n in parts:
            k = _num(_need(n, "node", f"VM {vid!r} numa"), f"VM {vid!r} numa node")
            if k not in (0, 1):
                raise ValueError(f"VM {vid!r} is on NUMA node {k} of host {host!r}, not 0 or 1")
            rows.append((k, _num(_need(n, "cpu", f"VM {vid!r} numa"), f"VM {vid!r} cpu"),
                         _num(_need(n, "mem_mb", f"VM {vid!r} numa"), f"VM {vid!r} mem_mb")))
        if len(rows) == 2 and (rows[0][0] == rows[1][0] or rows[0][1:] != rows[1][1:]):
            raise ValueError(f"VM {vid!r} uses two NUMA entries that are not an even split over nodes 0 and 1: {parts}")
        ncpu.append(rows[0][1])
        nmem.append(rows[0][2])
        span.append(len(rows))
        vpm.append(pm_index[host])
        vnuma.append(rows[0][0] if len(rows) == 1 else -1)
        movable.append(bool(v.get("allow_migration", True)))
        tname = v.get("instance_type")
        vtypes.append(str(tname))
        t = types.get(tname)
        if t is not None:
            t_numa, t_cpu, t_mem = int(t.get("numa", len(rows))), t.get("request_cpu"), t.get("request_mem_mb")
            p_cpu, p_mem = rows[0][1] * len(rows), rows[0][2] * len(rows)
            if t_numa != len(rows) or (t_cpu is not None and t_cpu != p_cpu) or (t_mem is not None and t_mem != p_mem):
                report.type_disagreements.append(dict(vm=vid, type=tname, type_numa=t_numa, type_cpu=t_cpu,
                                                      type_mem_mb=t_mem, placed_numa=len(rows), placed_cpu=p_cpu,
                                                      placed_mem_mb=p_mem))

    groups = np.full(len(inst), -1, np.int64)
    dsets = (c.get("other_requirement") or {}).get("deployment_set", []) or []
    for g, entry in enumerate(dsets):
        ids = entry
        if isinstance(entry, dict):
            ids = next((entry[k] for k in ("vm_list", "instance_ids", "instances") if k in entry), None)
        if not isinstance(ids, list):
            raise ValueError(f"malformed VMR2L JSON: deployment_set[{g}] holds no list of instance ids")
        for vid in ids:
            if vid not in vm_index:
                raise ValueError(f"deployment_set[{g}] names unknown VM {vid!r}")
            groups[vm_index[vid]] = g
    report.n_groups = len(dsets)

    names = list(pm_index)
    cluster = Cluster(numa_cpu=numa_cpu, numa_mem=numa_mem, vm_ncpu=ncpu, vm_nmem=nmem, vm_span=span,
                      vm_pm=vpm, vm_numa=vnuma, vm_movable=movable, vm_group=groups, pm_accepting=accepting,
                      frag_unit=frag_unit, pm_names=names, vm_names=list(vm_index), vm_types=vtypes)
    free = cluster.free.reshape(len(hosts), 2, 2)
    for i in range(len(hosts)):
        for k in range(2):
            for d, fname in enumerate(("free_cpu", "memory_huge_free_mb")):
                if abs(stated[i, k, d] - free[i, k, d]) > 1e-6:
                    report.free_disagreements.append(dict(host=names[i], numa=k, field=fname,
                                                          stated=float(stated[i, k, d]),
                                                          recomputed=int(free[i, k, d])))
    dis = report.free_disagreements
    if dis and all(r["field"] == "memory_huge_free_mb" and r["numa"] == 1
                   and r["stated"] == stated[pm_index[r["host"]], 0, 1] for r in dis):
        report.note = ("every disagreement is NUMA 1's memory_huge_free_mb, which equals NUMA 0's stated value: "
                       "the file's writer seems to have copied NUMA 0's free memory into NUMA 1")
    if warn and (report.free_disagreements or report.type_disagreements):
        by_field: dict[str, int] = {}
        for r in report.free_disagreements:
            by_field[r["field"]] = by_field.get(r["field"], 0) + 1
        first = report.free_disagreements[0] if report.free_disagreements else None
        warnings.warn(
            f"{path.name}: free values recomputed from the VM placements; the file's stated values disagree on "
            f"{len(report.free_disagreements)} NUMA entries ({by_field})"
            + (f", e.g. host {first['host']!r} NUMA {first['numa']} {first['field']}: stated {first['stated']:g}, "
               f"recomputed {first['recomputed']}" if first else "")
            + (f" ({report.note})" if report.note else "")
            + f"; {len(report.type_disagreements)} VMs are placed differently from their type's NUMA count or demand "
            "(the placement is used). Details: the LoadReport returned by load_vmr2l_json.",
            UserWarning, stacklevel=2)
    return cluster, report
