"""The loader of VMR2L's cluster JSON (the format of the public ByteDance snapshots).

A file holds ``cluster_list`` (each: ``cluster_name``, ``host_info``, ``vm_instance``,
``other_requirement.deployment_set``) and a top-level ``vm_type_list``. As VMR2L's own scheduler
does, the loader pools **every cluster of the file** into one snapshot (one set of PMs and VMs; racks
with the same ``rack_id`` in different clusters are one rack); ``cluster=`` picks one cluster by
index or name instead.

The placements are the truth: NUMA usage is recomputed from the VMs, and every stated free value
that disagrees is recorded in the :class:`LoadReport` (and summarised in one ``UserWarning``). A
VM's shape is taken from its placement: one NUMA entry = span 1; two = span 2 (the two entries must
be equal, on nodes 0 and 1). Where that disagrees with its type in ``vm_type_list`` it is recorded
too. Hosts whose status is not ``ACTIVE`` keep their VMs, receive none and count in no fragment
rate (see :class:`~rlsys_envs.vm.model.Cluster`).

**Deployment sets** (``other_requirement.deployment_set``): VMR2L's entries
``{"granularity": "host" | "rack", "data": [instance ids]}`` are anti-affinity (isolation) sets:
no two of their VMs on one host (resp. one rack). An entry may add ``"affinity": true`` (our
extension) to make it a co-location set instead: its VMs stay on one host (resp. one rack). A bare
list of ids, or a dict holding one under ``vm_list`` / ``instance_ids`` / ``instances``, is a host
anti-affinity set. A VM may be in at most one set, and the snapshot must already satisfy its sets.

Every problem is refused at load with a ``ValueError`` that names the file and the cluster, host
or VM, and the field: unreadable or non-UTF-8 files, invalid JSON, missing or mistyped fields
(``free_cpu: "abc"``, ``null`` or ``Infinity``, ``numa: "one"``, ``"allow_migration": "false"``), a
host listing one NUMA node twice, an empty ``host_info``, duplicate ids, a VM on an unknown host, an
over-full NUMA node, a VM in two deployment sets, a snapshot that already breaks a set.
"""
from __future__ import annotations

import json
import math
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .model import Cluster


@dataclass
class LoadReport:
    """What the loader found besides the cluster itself."""

    path: str
    n_hosts: int = 0
    n_vms: int = 0
    #: the clusters pooled, in file order: dicts with name, index, hosts, vms
    clusters: list[dict] = field(default_factory=list)
    #: the file's stated free values that differ from the ones recomputed from the VM placements:
    #: dicts with host, numa, field ("free_cpu" / "memory_huge_free_mb"), stated, recomputed
    free_disagreements: list[dict] = field(default_factory=list)
    #: VMs whose placement disagrees with their type (NUMA count or demand): dicts with vm, type,
    #: type_numa, type_cpu, type_mem_mb, placed_numa, placed_cpu, placed_mem_mb
    type_disagreements: list[dict] = field(default_factory=list)
    n_groups: int = 0
    n_racks: int = 0
    inactive_hosts: list[str] = field(default_factory=list)
    #: a diagnosis of the disagreements, when one pattern explains them all
    note: str = ""


def _need(obj, key, where):
    if not isinstance(obj, dict):
        raise ValueError(f"{where} must be a JSON object, got {obj!r:.60}")
    if key not in obj:
        raise ValueError(f"{where} has no {key!r}")
    return obj[key]


def _real(x, where) -> float:
    """A finite JSON number (not a bool, a string, null, NaN or Infinity)."""
    if isinstance(x, bool) or not isinstance(x, (int, float)) or not math.isfinite(x):
        raise ValueError(f"{where} must be a finite number, got {x!r}")
    return float(x)


def _num(x, where) -> int:
    v = _real(x, where)
    if int(v) != v:
        raise ValueError(f"{where} must be a whole number, got {x!r}")
    return int(v)


def _is_id(x) -> bool:
    """A host, VM or rack identifier as VMR2L files write them: a string or an integer (not a bool)."""
    return isinstance(x, (str, int)) and not isinstance(x, bool)


def _list(x, where, sizes=None) -> list:
    if not isinstance(x, list) or (sizes is not None and len(x) not in sizes):
        want = "a list" if sizes is None else f"a list of {' or '.join(map(str, sizes))} entries"
        raise ValueError(f"{where} must be {want}, got {x!r:.80}")
    return x


def load_vmr2l_json(path, frag_unit: int = 16, warn: bool = True,
                    cluster: int | str | None = None) -> tuple[Cluster, LoadReport]:
    """Load a VMR2L cluster JSON file: every cluster of ``cluster_list`` pooled (default), or the
    one ``cluster`` names (its index in ``cluster_list`` or its ``cluster_name``).

    Returns the :class:`~rlsys_envs.vm.model.Cluster` and a :class:`LoadReport`; see the module
    docstring for what is checked. Errors are ``ValueError`` naming ``path``.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise ValueError(f"cannot read VMR2L JSON {path}: {e.strerror or e}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"malformed VMR2L JSON in {path}: not UTF-8 text (byte {e.start} is {raw[e.start]:#04x}); "
                         "is it a binary file?") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise ValueError(f"malformed VMR2L JSON in {path}: {e}") from None
    try:
        return _load(data, path, frag_unit, warn, cluster)
    except ValueError as e:
        raise ValueError(f"malformed VMR2L JSON in {path}: {e}") from None


def _pick(clusters: list, cluster) -> list[tuple[int, dict]]:
    if cluster is None:
        return list(enumerate(clusters))
    names = [c.get("cluster_name") if isinstance(c, dict) else None for c in clusters]
    if isinstance(cluster, bool) or not isinstance(cluster, (int, str)):
        raise ValueError(f"cluster must be an index, a cluster_name or None, got {cluster!r}")
    if isinstance(cluster, int):
        if not 0 <= cluster < len(clusters):
            raise ValueError(f"cluster={cluster} is out of range: cluster_list has {len(clusters)} clusters")
        return [(cluster, clusters[cluster])]
    if cluster not in names:
        raise ValueError(f"cluster={cluster!r} is not a cluster_name of the file (it has {names})")
    i = names.index(cluster)
    return [(i, clusters[i])]


def _load(data, path: Path, frag_unit: int, warn: bool, cluster) -> tuple[Cluster, LoadReport]:
    clusters = _list(_need(data, "cluster_list", "the top level"), "cluster_list")
    if not clusters:
        raise ValueError("cluster_list must be a non-empty list")
    types = {}
    for i, t in enumerate(_list(data.get("vm_type_list", []) or [], "vm_type_list")):
        types[_need(t, "vm_type", f"vm_type_list[{i}]")] = t
    report = LoadReport(path=str(path))

    pm_index: dict[str, int] = {}
    pm_cluster: dict[str, str] = {}
    numa_cpu, numa_mem, stated, accepting, rack_keys = [], [], [], [], []
    vm_index: dict[str, int] = {}
    ncpu, nmem, span, vpm, vnuma, movable, vtypes = [], [], [], [], [], [], []
    set_entries: list[tuple[str, int, object]] = []    # (cluster label, index in its list, entry)
    for ci, c in _pick(clusters, cluster):
        label = f"cluster_list[{ci}]"
        cname = c.get("cluster_name", label) if isinstance(c, dict) else label
        where_c = f"cluster {cname!r} ({label})" if cname != label else label
        hosts = _list(_need(c, "host_info", where_c), f"{where_c} host_info")
        inst = _list(_need(c, "vm_instance", where_c), f"{where_c} vm_instance")
        if not hosts:
            raise ValueError(f"{where_c} has an empty host_info (no hosts)")
        report.clusters.append(dict(name=cname, index=ci, hosts=len(hosts), vms=len(inst)))
        for i, h in enumerate(hosts):
            name = _need(h, "node_id", f"{where_c} host_info[{i}]")
            if not _is_id(name):
                raise ValueError(f"{where_c} host_info[{i}] node_id must be a string, got {name!r}")
            if name in pm_index:
                raise ValueError(f"host {name!r} appears twice ({pm_cluster[name]!r} and {cname!r})")
            pm_index[name] = len(pm_index)
            pm_cluster[name] = cname
            w_h = f"host {name!r}"
            numa = _list(_need(h, "numa", w_h), f"{w_h} field 'numa'", sizes=(2,))
            cpu2, mem2, st2 = [0, 0], [0, 0], [(0.0, 0.0), (0.0, 0.0)]
            seen = set()
            for e in numa:
                k = _num(_need(e, "node", f"{w_h} numa entry"), f"{w_h} numa field 'node'")
                if k not in (0, 1):
                    raise ValueError(f"{w_h} has NUMA node {k}, not 0 or 1")
                if k in seen:
                    raise ValueError(f"{w_h} lists NUMA node {k} twice (field 'numa' needs nodes 0 and 1)")
                seen.add(k)
                w = f"{w_h} NUMA {k}"
                cpu2[k] = _num(_need(e, "total_cpu", w), f"{w} field 'total_cpu'")
                mem2[k] = _num(_need(e, "memory_huge_total_mb", w), f"{w} field 'memory_huge_total_mb'")
                st2[k] = (_real(_need(e, "free_cpu", w), f"{w} field 'free_cpu'"),
                          _real(_need(e, "memory_huge_free_mb", w), f"{w} field 'memory_huge_free_mb'"))
                if cpu2[k] < 0 or mem2[k] < 0:
                    raise ValueError(f"{w}: total_cpu and memory_huge_total_mb must be >= 0")
            numa_cpu.append(cpu2)
            numa_mem.append(mem2)
            stated.append(st2)
            status = h.get("status", "ACTIVE")
            if not isinstance(status, str):
                raise ValueError(f"{w_h} field 'status' must be a string, got {status!r}")
            accepting.append(status == "ACTIVE")
            if status != "ACTIVE":
                report.inactive_hosts.append(name)
            rack = h.get("rack_id")
            if rack is not None and not _is_id(rack):
                raise ValueError(f"{w_h} field 'rack_id' must be an integer or a string, got {rack!r}")
            rack_keys.append(("rack", rack) if rack is not None else ("host", name))
        for j, v in enumerate(inst):
            vid = _need(v, "instance_id", f"{where_c} vm_instance[{j}]")
            if not _is_id(vid):
                raise ValueError(f"{where_c} vm_instance[{j}] instance_id must be a string, got {vid!r}")
            if vid in vm_index:
                raise ValueError(f"VM {vid!r} appears twice")
            vm_index[vid] = len(vm_index)
            w_v = f"VM {vid!r}"
            host = _need(v, "host_id", w_v)
            if not _is_id(host) or host not in pm_index:
                raise ValueError(f"{w_v} is on unknown host {host!r}")
            parts = _list(_need(v, "numa", w_v), f"{w_v} field 'numa'", sizes=(1, 2))
            rows = []
            for e in parts:
                k = _num(_need(e, "node", f"{w_v} numa entry"), f"{w_v} numa field 'node'")
                if k not in (0, 1):
                    raise ValueError(f"{w_v} is on NUMA node {k} of host {host!r}, not 0 or 1")
                rows.append((k, _num(_need(e, "cpu", f"{w_v} numa entry"), f"{w_v} numa field 'cpu'"),
                             _num(_need(e, "mem_mb", f"{w_v} numa entry"), f"{w_v} numa field 'mem_mb'")))
            if len(rows) == 2 and (rows[0][0] == rows[1][0] or rows[0][1:] != rows[1][1:]):
                raise ValueError(f"{w_v} uses two NUMA entries that are not an even split over nodes 0 and 1: "
                                 f"{parts}")
            mig = v.get("allow_migration", True)
            if not isinstance(mig, bool):
                raise ValueError(f"{w_v} field 'allow_migration' must be true or false, got {mig!r}")
            ncpu.append(rows[0][1])
            nmem.append(rows[0][2])
            span.append(len(rows))
            vpm.append(pm_index[host])
            vnuma.append(rows[0][0] if len(rows) == 1 else -1)
            movable.append(mig)
            tname = v.get("instance_type")
            vtypes.append(str(tname))
            t = types.get(tname) if isinstance(tname, str) else None
            if t is not None:
                try:
                    t_numa = int(t.get("numa", len(rows)))
                except (TypeError, ValueError):
                    raise ValueError(f"vm_type_list entry {tname!r} field 'numa' must be 1 or 2, "
                                     f"got {t.get('numa')!r}") from None
                t_cpu, t_mem = t.get("request_cpu"), t.get("request_mem_mb")
                p_cpu, p_mem = rows[0][1] * len(rows), rows[0][2] * len(rows)
                if t_numa != len(rows) or (t_cpu is not None and t_cpu != p_cpu) or (
                        t_mem is not None and t_mem != p_mem):
                    report.type_disagreements.append(dict(vm=vid, type=tname, type_numa=t_numa, type_cpu=t_cpu,
                                                          type_mem_mb=t_mem, placed_numa=len(rows),
                                                          placed_cpu=p_cpu, placed_mem_mb=p_mem))
        req = c.get("other_requirement") or {}
        if not isinstance(req, dict):
            raise ValueError(f"{where_c} field 'other_requirement' must be an object, got {req!r:.60}")
        dsets = _list(req.get("deployment_set", []) or [], f"{where_c} other_requirement.deployment_set")
        set_entries += [(where_c, g, e) for g, e in enumerate(dsets)]

    n_vms = len(vm_index)
    groups = np.full(n_vms, -1, np.int64)
    g_rack, g_aff, set_of = [], [], {}
    for where_c, g, entry in set_entries:
        w = f"{where_c} deployment_set[{g}]"
        ids, gran, aff = entry, "host", False
        if isinstance(entry, dict):
            ids = next((entry[k] for k in ("data", "vm_list", "instance_ids", "instances") if k in entry), None)
            gran = entry.get("granularity", "host")
            aff = entry.get("affinity", False)
            if gran not in ("host", "rack"):
                raise ValueError(f"{w} field 'granularity' must be 'host' or 'rack', got {gran!r}")
            if not isinstance(aff, bool):
                raise ValueError(f"{w} field 'affinity' must be true or false, got {aff!r}")
        if not isinstance(ids, list):
            raise ValueError(f"{w} holds no list of instance ids (expected {{'granularity': 'host' | 'rack', "
                             f"'data': [...]}} or a list), got {entry!r:.80}")
        gid = len(g_rack)
        for vid in ids:
            if not _is_id(vid) or vid not in vm_index:
                raise ValueError(f"{w} names unknown VM {vid!r}")
            if vid in set_of:
                raise ValueError(f"VM {vid!r} is in two deployment sets ({set_of[vid]} and {w}); "
                                 "a VM may be in at most one")
            set_of[vid] = w
            groups[vm_index[vid]] = gid
        g_rack.append(gran == "rack")
        g_aff.append(aff)
    report.n_groups = len(g_rack)
    rack_ids: dict = {}
    pm_rack = [rack_ids.setdefault(k, len(rack_ids)) for k in rack_keys]
    report.n_racks = len(rack_ids)

    names = list(pm_index)
    n_hosts = len(names)
    report.n_hosts, report.n_vms = n_hosts, n_vms
    result = Cluster(numa_cpu=np.array(numa_cpu, np.int64).reshape(n_hosts, 2),
                     numa_mem=np.array(numa_mem, np.int64).reshape(n_hosts, 2),
                     vm_ncpu=np.array(ncpu, np.int64), vm_nmem=np.array(nmem, np.int64),
                     vm_span=np.array(span, np.int64), vm_pm=np.array(vpm, np.int64),
                     vm_numa=np.array(vnuma, np.int64), vm_movable=np.array(movable, bool), vm_group=groups,
                     pm_accepting=np.array(accepting, bool), frag_unit=frag_unit, pm_names=names,
                     vm_names=list(vm_index), vm_types=vtypes, pm_rack=np.array(pm_rack, np.int64),
                     group_rack=np.array(g_rack, bool), group_affinity=np.array(g_aff, bool))
    st = np.array(stated, float).reshape(n_hosts, 2, 2)
    free = result.free.reshape(n_hosts, 2, 2)
    diff = np.argwhere(np.abs(st - free) > 1e-6)
    for i, k, d in diff.tolist():
        report.free_disagreements.append(dict(host=names[i], numa=k, field=("free_cpu", "memory_huge_free_mb")[d],
                                              stated=float(st[i, k, d]), recomputed=int(free[i, k, d])))
    dis = report.free_disagreements
    if dis and all(r["field"] == "memory_huge_free_mb" and r["numa"] == 1
                   and r["stated"] == st[pm_index[r["host"]], 0, 1] for r in dis):
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
            UserWarning, stacklevel=3)
    return result, report
