"""The VM rescheduling environment (``rlsys/VMRescheduling-v0``)."""
from __future__ import annotations

from typing import Any

import numpy as np
from gymnasium import spaces

from rlsys_envs.core import (GLOBAL_ACTION, NO_NODE, FixedInstance, RlsysEnv, SeededDraw, check_bool, check_choice,
                             check_float, check_int, draw_instance, entity_spaces, graph_spaces, instance_source)
from rlsys_envs.core.memory import keep_freed_heap_memory

from .generator import GRANULARITIES, MEMORY_PROFILES, RACK_SIZE, SIZES, WORKLOADS, GeneratedClusters, load_vmr2l_json
from .model import Cluster, distinct_sorted

PM_FEATURES = 10
VM_FEATURES = 8 + PM_FEATURES
NODE_FEATURES = 12
GLOBAL_FEATURES = 5
ACTION_MODES = ("two_stage", "joint", "penalty")
OBSERVATIONS = ("all", "graph")
#: keys of observation="graph": what a graph policy reads (the tables are left out)
GRAPH_ONLY_KEYS = ("phase", "selected_vm", "global_features", "graph_x", "graph_edge_index", "graph_edge_type",
                   "graph_node_mask", "graph_edge_mask", "action_node")
MAX_JOINT_ACTIONS = 250_000
#: what the reward measures (``objective``): see the class docstring, "Rewards"
OBJECTIVES = ("fr", "empty_pms", "weighted_fr")
#: default weights of ``objective="weighted_fr"``: cores per NUMA node of the single-NUMA flavours,
#: weighted by their frequency in the public 236-host snapshot (the M mix of the generator)
DEFAULT_TYPE_WEIGHTS = {2: 333 / 1729, 4: 839 / 1729, 8: 358 / 1729, 16: 199 / 1729}


class VMReschedulingEnv(RlsysEnv):
    """NUMA-aware VM rescheduling to reduce CPU fragments (VMR2L, Ding et al., EuroSys 2025).

    **Description.** A data-centre snapshot: PMs with two NUMA nodes (VMR2L: 44 cores and
    184,388 MB each), and VMs of 2/4/8/16 cores on one NUMA node or 32/64/88 cores split evenly
    over both nodes of their host, with 2 or 4 GB per core. The agent migrates up to ``mnl`` VMs,
    one at a time, to lower the fragment rate
    ``FR = sum over NUMA nodes (free cores mod frag_unit) / total free cores`` (over in-service PMs).
    No NUMA node may go over capacity in cpu or memory, VMs marked unmovable stay put, deployment
    sets hold (anti-affinity: no two VMs of a set on one host, or one rack; affinity: a set's VMs stay
    on one host, or one rack), and out-of-service (non-ACTIVE) PMs neither receive nor send VMs.
    State and dynamics live in :class:`rlsys_envs.vm.model.Cluster` over the core
    :class:`~rlsys_envs.core.ResourcePool` (one resource per NUMA node; a migration is ``move``).

    **Action Space.** ``two_stage`` (default) and ``penalty``: ``Discrete(max(max_vms, 2 * max_pms)
    + 1)``; each migration takes two steps, because the legal PMs depend on the VM (VMR2L's
    two-stage actor). Phase 0: action ``v`` picks VM ``v`` (mask: VMs that may migrate and have a
    legal destination), and the last action ``n - 1`` is **stop** (end the episode now; legal when
    ``allow_stop`` is true, and always when no VM can move). Phase 1: action ``s`` picks destination
    *slot* ``s = 2 p + k`` = NUMA node ``k`` of PM ``p`` (a two-NUMA VM uses ``k = 0`` for "both
    nodes of PM ``p``"; mask: slots where the selected VM fits, its current place excluded, PMs of
    its anti-affinity group excluded). Only phase-1 steps count toward ``mnl``. The observation's
    ``phase`` and ``selected_vm`` say where the agent is, and ``action_node`` maps the action index
    to a graph node for the current phase. ``joint`` mode (small clusters):
    ``Discrete(max_vms * 2 * max_pms + 1)``, action ``v * 2 * max_pms + s`` migrates VM ``v`` to slot
    ``s`` in one step, the last action is stop; limited to ``max_vms * 2 * max_pms <= 250,000``.
    ``penalty`` mode: the two-stage layout without masks (``action_masks()`` is all ones and ``info``
    has no ``action_mask``); an illegal action is refused with reward ``-invalid_penalty`` and no
    state change, and the episode is truncated after ``4 * mnl + 2`` steps. In the masked modes an
    illegal action raises :class:`~rlsys_envs.core.InvalidActionError` before any state change.

    **Observation Space.** ``Dict`` of ``Box`` (all features normalised to ``[0, 1]`` by
    construction: cores by the largest NUMA cpu capacity, MB by the largest NUMA memory):

    - ``pm_features`` float32 ``[max_pms, 10]``: per NUMA node ``k`` in (0, 1): free cpu, free
      memory, fragment ``(free cpu mod unit) / unit``, fragment share ``(free cpu mod unit) / free
      cpu`` (0 when nothing is free), cores in whole unit-slots ``unit * floor(free / unit)``;
      laid out ``[cpu0, cpu1, mem0, mem1, frag0, frag1, share0, share1, slot0, slot1]``. Padding rows 0.
    - ``pm_mask`` int8 ``[max_pms]``: 1 for a real PM.
    - ``vm_features`` float32 ``[max_vms, 18]``: cpu per node, memory per node, uses two nodes,
      on node 0, on node 1, may migrate, is the selected VM (phase 1), may move now (phase-0 mask);
      then its host's 10 ``pm_features``.
    - ``vm_mask`` int8 ``[max_vms]``: 1 for a real VM.
    - ``vm_host`` int64 ``[max_vms]`` in ``[-1, max_pms - 1]``: the VM-to-PM index (-1 padding).
    - ``phase`` int8 ``[1]``: 0 = pick a VM, 1 = pick its destination (always 0 in ``joint``).
    - ``selected_vm`` int64 ``[1]`` in ``[-1, max_vms - 1]``: the VM chosen in phase 0, else -1.
    - ``global_features`` float32 ``[5]``: FR now, FR at reset, migrations used / mnl, total free
      cores / total cores, phase.
    - graph prefix ``graph`` (``core.graph``, five keys ``graph_x``, ``graph_edge_index``,
      ``graph_edge_type``, ``graph_node_mask``, ``graph_edge_mask``; edge index int32 and edge
      types int8, to copy fewer bytes per step): the NUMA-VM bipartite graph.
      Nodes: ``2 * max_pms`` NUMA nodes first (node ``2 p + k`` = NUMA ``k`` of PM ``p``), then
      ``max_vms`` VMs (node ``2 * max_pms + v``). Node features (12): is NUMA, is VM, free cpu, free
      memory, fragment, fragment share (NUMA rows), cpu per node, memory per node, uses two nodes,
      is selected (VM rows), then two *fragment-change* features, each ``0.5 + drop / (4 unit)``
      where ``drop`` is the change in fragmented cores it would bring (positive: fewer fragments;
      0.5 = no change): column 10 on VM rows, the drop on its current NUMA node(s) if it left;
      column 11 on NUMA rows in phase 1, the drop on that slot (both nodes of the PM for a
      two-NUMA VM, read at node ``2 p``; 0.5 at node ``2 p + 1``) if the selected VM arrived (0 in
      phase 0 and on VM rows). The fragment of a node is ``free mod unit``, a step function of the free
      cores that a network reading normalised cores struggles to compute; these two columns give
      the one-step effect of a move directly, so that a policy can spend its capacity on what
      follows from it (VMR2L's actors see the same quantities through its PM and VM features).
      Edge types: 0 VM -> its NUMA node(s), 1 NUMA node -> VM, 2 NUMA node -> the other NUMA node
      of its PM. ``max_edges = 4 * max_vms + 2 * max_pms``.
    - ``action_node`` int64 ``[n_actions]`` (``two_stage`` and ``penalty`` only) in
      ``[-2, 2 * max_pms + max_vms - 1]``: for each action, the node of graph ``graph`` it points to
      *in the current phase*: phase 0 action ``v`` -> VM node ``2 * max_pms + v``; phase 1 action
      ``s`` -> NUMA node ``s``; padding -> -1; stop (phase 0) -> -2, a *global* action that a
      pointer policy scores from the pooled graph (``rlsys_agents.policies.PointerPolicy``). A pointer
      policy scores the nodes and reads the action logits through this index.

    **Rewards.** Phase-1 (and joint) steps: the drop in fragmented cores on the source and
    destination NUMA nodes divided by the (constant) total free cores, so the undiscounted return
    equals ``FR(reset) - FR(end)``. Phase-0 and stop steps: 0. ``penalty`` mode: ``-invalid_penalty``
    for a refused action. Variants (``objective``): ``empty_pms``, the change in the number of empty
    in-service PMs over their count (return = share of PMs emptied); ``weighted_fr``, the drop of
    the type-weighted FR (``weighted_fr()``; return = its reduction). With ``migration_cost`` > 0
    every migration also costs ``migration_cost * (VM memory) / (largest NUMA memory)`` (live-migration
    traffic).

    **Starting State.** With ``instance="generated"`` a snapshot from
    :func:`~rlsys_envs.vm.generator.generate_cluster` drawn from ``self.np_random`` (``size``,
    ``workload``, ``frac_unmovable``, ``n_affinity_groups``, ``memory``, ...); with a path, the
    snapshot of that VMR2L JSON file, every cluster of it pooled (the same every episode); with a
    :class:`~rlsys_envs.vm.model.Cluster`, that cluster; with an instance generator, its draw.
    ``reset(options={"instance": ...})`` starts one episode from another cluster (the same kinds
    of value; a cluster is copied).

    **Episode End.** Terminated after ``mnl`` migrations, after the stop action, or after a
    migration that leaves no VM able to move (if that is already so at reset, stop is the one legal
    action). ``penalty`` mode is also truncated after ``4 * mnl + 2`` steps.

    **Arguments.**

    - ``size`` (``"M"``): one of ``tiny`` (4 PMs), ``S`` (20), ``M`` (279; VMR2L's M has ~2,089 VMs,
      the generator ~2,125 at medium, ~2,315 at high), ``L`` (1,176; VMR2L ~4,546 VMs, the generator
      ~4,599 at medium); only for ``instance="generated"``.
    - ``workload`` (``"high"``): ``low`` / ``medium`` / ``high`` = 0.80 / 0.88 / 0.95 of cores used.
    - ``mnl`` (50): migration number limit, in ``[1, 100000]``.
    - ``frag_unit`` (16): fragment unit in cores, in ``[1, 1024]``.
    - ``action_mode`` (``"two_stage"``): ``two_stage``, ``joint`` or ``penalty``.
    - ``allow_stop`` (True): whether the agent may end the episode early with the stop action.
    - ``invalid_penalty`` (0.01): penalty of a refused action in ``penalty`` mode, in ``[0, 1000]``.
    - ``frac_unmovable`` (0.0): share of generated VMs that may not migrate, in ``[0, 1]``.
    - ``n_affinity_groups`` (0): anti-affinity groups of 3 VMs in generated snapshots, ``[0, 10000]``.
    - ``max_pms`` / ``max_vms`` (None = the size's PM count / VM cap, or the snapshot's counts):
      observation padding, in ``[1, 100000]``; a cluster larger than these raises ``ValueError``.
    - ``instance`` (``"generated"``): ``"generated"`` (from ``size``, ``workload``, ...), a path to a
      VMR2L cluster JSON file, a ``Cluster``, or an instance generator ``rng -> Cluster``.
    - ``instance_seed`` (None): with a generated instance, draw it once from this seed and play every
      episode on that snapshot (``core.SeededDraw``); None draws a new one from ``np_random`` per reset.
    - ``observation`` (``"all"``): ``all`` keys above, or ``graph``: only ``phase``, ``selected_vm``,
      ``global_features``, the ``graph_*`` keys and ``action_node`` (what a graph policy reads;
      ~35 % fewer bytes per step on M size, which matters when observations cross process pipes).
    - ``memory`` (``"standard"``): memory profile of generated VMs, ``standard`` (VMR2L's 2 / 4 GB per
      core: memory never binds) or ``heavy`` (2 / 4 / 8 GB per core: memory binds).
    - ``rack_size`` (28): PMs per rack of generated snapshots, in ``[1, 100000]``.
    - ``affinity_granularity`` (``"host"``): ``host`` or ``rack``, of the generated anti-affinity sets.
    - ``objective`` (``"fr"``): ``fr``, ``empty_pms`` or ``weighted_fr`` (see Rewards).
    - ``migration_cost`` (0.0): weight of the migration-memory cost term, in ``[0, 1000]``.
    - ``type_weights`` (None): ``{cores per NUMA node: weight}`` of ``weighted_fr`` (None: the
      2 / 4 / 8 / 16-core flavours weighted by their frequency in the public 236-host snapshot).
    - ``instance_cluster`` (None): with a snapshot file, the cluster to load (index or
      ``cluster_name``); None pools every cluster of the file, as VMR2L does.
    - ``render_mode``: ``None``, ``"ansi"`` or ``"rgb_array"`` (heat map before / now).

    **Metrics** (``info["metrics"]`` at the last step): ``fr_initial``, ``fr_final``,
    ``fr_reduction``, ``migrations``, ``slots16_initial``, ``slots16_final``, ``slots16_gained``
    (whole ``frag_unit``-core slots), ``return``, ``invalid_actions`` (penalty mode),
    ``migrated_mem_gb`` (memory of the migrated VMs), ``empty_pms_initial`` / ``empty_pms_final``,
    ``weighted_fr_initial`` / ``weighted_fr_final``.

    **Variants** (registry): ``small``, ``joint``, ``penalty``, ``no_stop_constrained``,
    ``graph_obs``, ``memory_heavy``, ``rack_constrained``, ``empty_pms``, ``weighted_fr_cost``; see
    ``docs/envs/vm.md``. The dynamic setting (VMs arriving and leaving while a planner computes) is
    :mod:`rlsys_envs.vm.dynamic`.

    **Version History.** v0: initial version.
    """

    #: loaded snapshots and instance sources never change: snapshots of the env share them
    shared_state_attributes = ("instance_source", "load_report")

    def __init__(self, *, instance: Any = "generated", instance_seed: int | None = None, size: str = "M",
                 workload: str = "high", mnl: int = 50,
                 frag_unit: int = 16, action_mode: str = "two_stage", allow_stop: bool = True,
                 invalid_penalty: float = 0.01, frac_unmovable: float = 0.0, n_affinity_groups: int = 0,
                 max_pms: int | None = None, max_vms: int | None = None, observation: str = "all",
                 memory: str = "standard", rack_size: int = RACK_SIZE, affinity_granularity: str = "host",
                 objective: str = "fr", migration_cost: float = 0.0, type_weights: dict | None = None,
                 instance_cluster: int | str | None = None, render_mode: str | None = None):
        super().__init__(render_mode=render_mode)
        keep_freed_heap_memory()  # ~0.6 MB of fresh observation per step on M size: see core.memory
        self.size = check_choice("size", size, tuple(SIZES))
        self.workload = check_choice("workload", workload, tuple(WORKLOADS))
        self.mnl = check_int("mnl", mnl, 1, 100_000)
        self.frag_unit = check_int("frag_unit", frag_unit, 1, 1024)
        self.action_mode = check_choice("action_mode", action_mode, ACTION_MODES)
        self.observation = check_choice("observation", observation, OBSERVATIONS)
        self.allow_stop = check_bool("allow_stop", allow_stop)
        self.invalid_penalty = check_float("invalid_penalty", invalid_penalty, 0.0, 1000.0)
        self.frac_unmovable = check_float("frac_unmovable", frac_unmovable, 0.0, 1.0)
        self.n_affinity_groups = check_int("n_affinity_groups", n_affinity_groups, 0, 10_000)
        self.memory = check_choice("memory", memory, tuple(MEMORY_PROFILES))
        self.rack_size = check_int("rack_size", rack_size, 1, 100_000)
        self.affinity_granularity = check_choice("affinity_granularity", affinity_granularity, GRANULARITIES)
        self.objective = check_choice("objective", objective, OBJECTIVES)
        self.migration_cost = check_float("migration_cost", migration_cost, 0.0, 1000.0)
        tw = DEFAULT_TYPE_WEIGHTS if type_weights is None else type_weights
        if not isinstance(tw, dict) or not tw:
            raise ValueError(f"type_weights must be a non-empty dict {{cores per NUMA node: weight}}, got {tw!r}")
        self.type_weights = {check_int("type_weights key", k, 1, 1024): check_float(f"type_weights[{k}]", w, 0.0, 1e6)
                             for k, w in tw.items()}
        if sum(self.type_weights.values()) <= 0:
            raise ValueError(f"type_weights must have a positive weight, got {tw!r}")
        if instance_cluster is not None and (isinstance(instance_cluster, bool)
                                             or not isinstance(instance_cluster, (int, str))):
            raise ValueError(f"instance_cluster must be a cluster index, a cluster_name or None, "
                             f"got {instance_cluster!r}")
        self.instance_cluster = instance_cluster
        self.load_report = None
        # the VM padding of generated snapshots (the generator caps the VM count there)
        self._generated_max_vms = SIZES[self.size][1] if max_vms is None else check_int("max_vms", max_vms, 1, 100_000)
        self.instance_source = self._source(instance, "instance")
        if instance_seed is not None:
            if isinstance(self.instance_source, FixedInstance):
                raise ValueError("instance_seed fixes a generated snapshot; the instance is fixed already")
            seed = check_int("instance_seed", instance_seed, 0, 2**63 - 1)
            self.instance_source = SeededDraw(self.instance_source, seed)
        fixed = self.instance_source.instance if isinstance(self.instance_source, FixedInstance) else None
        if fixed is not None:
            auto_pms, auto_vms = fixed.n_pms, fixed.n_vms
        else:
            auto_pms, auto_vms = SIZES[self.size]
        self.max_pms = auto_pms if max_pms is None else check_int("max_pms", max_pms, 1, 100_000)
        self.max_vms = auto_vms if max_vms is None else check_int("max_vms", max_vms, 1, 100_000)
        if self.max_pms < auto_pms:
            raise ValueError(f"max_pms must be >= the cluster's {auto_pms} PMs, got {self.max_pms}")
        if fixed is not None and self.max_vms < auto_vms:
            raise ValueError(f"max_vms must be >= the snapshot's {auto_vms} VMs, got {self.max_vms}")
        self.n_slots = 2 * self.max_pms
        if self.action_mode == "joint":
            if self.max_vms * self.n_slots > MAX_JOINT_ACTIONS:
                raise ValueError(
                    f"action_mode 'joint' needs max_vms * 2 * max_pms <= {MAX_JOINT_ACTIONS} "
                    f"(got {self.max_vms} * {self.n_slots}); use a smaller size or action_mode 'two_stage'")
            self.n_actions = self.max_vms * self.n_slots + 1
        else:
            self.n_actions = max(self.max_vms, self.n_slots) + 1
        self.stop_action = self.n_actions - 1
        self.action_space = self.masked_discrete(self.n_actions)
        self.max_nodes = self.n_slots + self.max_vms
        self.max_edges = 4 * self.max_vms + self.n_slots
        obs = {
            **entity_spaces("pm", self.max_pms, PM_FEATURES),
            **entity_spaces("vm", self.max_vms, VM_FEATURES),
            "vm_host": spaces.Box(-1, self.max_pms - 1, (self.max_vms,), np.int64),
            "phase": spaces.Box(0, 1, (1,), np.int8),
            "selected_vm": spaces.Box(-1, self.max_vms - 1, (1,), np.int64),
            "global_features": spaces.Box(0.0, 1.0, (GLOBAL_FEATURES,), np.float32),
            # int32 / int8 edge arrays: ~130 KB less to copy per step on M size
            **graph_spaces("graph", self.max_nodes, NODE_FEATURES, self.max_edges, 3, 0.0, 1.0,
                           index_dtype=np.int32, type_dtype=np.int8),
        }
        if self.action_mode != "joint":
            obs["action_node"] = spaces.Box(GLOBAL_ACTION, self.max_nodes - 1, (self.n_actions,), np.int64)
        if self.observation == "graph":
            obs = {k: v for k, v in obs.items() if k in GRAPH_ONLY_KEYS}
        self.observation_space = spaces.Dict(obs)
        self.cluster: Cluster | None = None
        self.initial: Cluster | None = None

    # --------------------------------------------------------------------------- episode
    def _source(self, value, field: str):
        """The instance generator that ``value`` (an ``instance`` argument) stands for."""
        return instance_source(value, instance_type=Cluster, named={"generated": self._generated}, load=self._load,
                               field=field, formats="VMR2L cluster JSON")

    def _generated(self) -> GeneratedClusters:
        return GeneratedClusters(self.size, self.workload, frag_unit=self.frag_unit, frac_unmovable=self.frac_unmovable,
                                 n_groups=self.n_affinity_groups,
                                 max_vms=self._generated_max_vms, memory=self.memory, rack_size=self.rack_size,
                                 group_granularity=self.affinity_granularity)

    def _load(self, path) -> Cluster:
        cluster, self.load_report = load_vmr2l_json(path, frag_unit=self.frag_unit, cluster=self.instance_cluster)
        return cluster

    def _reset_model(self, options: dict) -> None:
        given = options.get("instance")
        source = self.instance_source if given is None else self._source(given, 'options["instance"]')
        # copied: the episode migrates VMs of its own cluster, never of a fixed or given one
        cluster = draw_instance(source, self.np_random, Cluster).copy()
        if cluster.n_pms > self.max_pms or cluster.n_vms > self.max_vms:
            raise ValueError(f"cluster has {cluster.n_pms} PMs / {cluster.n_vms} VMs, more than "
                             f"max_pms={self.max_pms} / max_vms={self.max_vms}")
        if cluster.frag_unit != self.frag_unit:
            raise ValueError(f"cluster frag_unit {cluster.frag_unit} differs from the env's {self.frag_unit}")
        self.cluster = cluster
        self.initial = cluster.copy()
        self.phase = 0
        self.selected = -1
        self.migrations = 0
        self.steps = 0
        self.invalid = 0
        self.total_return = 0.0
        self.plan: list[tuple[int, int]] = []
        self.cpu_scale = float(max(cluster.numa_cpu.max(), 1))
        self.mem_scale = float(max(cluster.numa_mem.max(), 1))
        self.fr_initial = cluster.fragment_rate()
        self.slots_initial = cluster.slots()
        self.migrated_mem_mb = 0
        self._pm_vms = np.bincount(cluster.vm_pm, minlength=cluster.n_pms)
        self.n_active_pms = max(int(cluster.pm_accepting.sum()), 1)
        self.empty_initial = self.empty_pms()
        self.wfr_initial = self.weighted_fr()
        self._refresh()
        self._build_static()
        self._action_node = self._make_action_node()

    def sync_cluster(self, cluster: Cluster) -> None:
        """Continue the episode on ``cluster`` (the same PMs; VMs may have come and gone): the
        dynamic mode (:mod:`rlsys_envs.vm.dynamic`) calls this between migrations when the world
        has changed. The env then acts on ``cluster`` itself (not a copy); the episode's counters,
        its reset FR and its feature scales are kept. Only at a decision boundary (phase 0)."""
        if self.cluster is None or self.phase != 0:
            raise RuntimeError("sync_cluster needs an episode at a decision boundary (phase 0)")
        if cluster.n_pms != self.cluster.n_pms or cluster.n_vms > self.max_vms:
            raise ValueError(f"sync_cluster: the cluster has {cluster.n_pms} PMs / {cluster.n_vms} VMs; the episode "
                             f"has {self.cluster.n_pms} PMs and room for max_vms={self.max_vms} VMs")
        self.cluster = cluster
        self._pm_vms = np.bincount(cluster.vm_pm, minlength=cluster.n_pms)
        self._refresh()
        self._build_static()
        self._action_node = self._make_action_node()

    def _refresh(self, pms: np.ndarray | None = None) -> None:
        """Recompute the cached masks (and, once built, the cached features) after a state change."""
        c = self.cluster
        self._shape_mask = c.shape_slot_mask()
        self._movable = c.movable_mask(self._shape_mask)
        self._dest = c.vm_slot_mask(self.selected, self._shape_mask) if self.selected >= 0 else None
        self._joint = c.joint_mask() if self.action_mode == "joint" else None
        if getattr(self, "_vmf", None) is not None and self._vmf_owner is c:
            self._refresh_features(pms)

    def _refresh_features(self, pms: np.ndarray | None = None) -> None:
        """Update the cached PM / VM / node features, of all PMs or only of ``pms`` (after a move)."""
        c = self.cluster
        m = c.n_vms
        self._vmf[:m, 7] = self._movable
        if pms is None:
            self._pmf = self._pm_features()
            self._vmf[:m, 8:] = self._pmf[c.vm_pm]
            pms = np.arange(c.n_pms)
            on = np.arange(m)
        else:
            self._pmf[pms] = self._pm_features(pms)
            hit = c.vm_pm == pms[0]
            for p in pms[1:]:
                hit |= c.vm_pm == p
            on = np.flatnonzero(hit)
            self._vmf[on, 8:] = self._pmf[c.vm_pm[on]]
        nodes = (2 * pms[:, None] + np.arange(2)).reshape(-1)
        self._x[nodes, 2:6] = self._pmf[pms, :8].reshape(len(pms), 4, 2).transpose(0, 2, 1).reshape(-1, 4)
        self._x[self.n_slots + on, 10] = self._leave_feature(on)

    def _build_drop_tables(self) -> None:
        """Look-up tables of the fragment-change features ``0.5 + drop / (4 unit)``.

        ``(f + k) mod unit`` depends on ``f`` only through ``f mod unit``, so the change when ``k``
        cores leave (``_leave_lut``) or arrive (``_arrive_lut``) is a table over (distinct VM cpu per
        node, free cores mod unit): columns 10 and 11 become look-ups, cheap enough for every step.
        """
        u = self.frag_unit
        self._cpu_values, self._cpu_index = np.unique(self.cluster.vm_ncpu, return_inverse=True)
        r = np.arange(u)[None, :]
        k = self._cpu_values[:, None]
        self._leave_lut = (0.5 + (r - (r + k) % u) / (4.0 * u)).astype(np.float32)
        self._arrive_lut = (0.5 + (r - (r - k) % u) / (4.0 * u)).astype(np.float32)

    def _leave_feature(self, vms: np.ndarray) -> np.ndarray:
        """Column 10 of ``vms``: the fragment change on their current NUMA node(s) if they left."""
        r = self.cluster.free[:, 0] % self.frag_unit
        first = self._first_node[vms]
        k = self._cpu_index[vms]
        feat = self._leave_lut[k, r[first]]
        two = self._two[vms]
        if two.any():
            feat[two] += self._leave_lut[k[two], r[first[two] + 1]] - 0.5
        return feat

    def _arrive_feature(self, v: int) -> np.ndarray:
        """Column 11 of the NUMA rows: the fragment change at each slot if VM ``v`` arrived there (a
        two-NUMA VM: both nodes of the PM, at the even node; 0.5 = no change at the odd one)."""
        row = self._arrive_lut[self._cpu_index[v]][self.cluster.free[:, 0] % self.frag_unit]
        if not self._two[v]:
            return row
        out = np.full_like(row, 0.5)
        out[0::2] = row[0::2] + row[1::2] - 0.5
        return out

    def _stop_legal(self) -> bool:
        return self.allow_stop or not self._movable.any()

    def _action_mask(self) -> np.ndarray | None:
        if self.action_mode == "penalty":
            return None
        return self._legal_mask()

    def _legal_mask(self) -> np.ndarray:
        c = self.cluster
        mask = np.zeros(self.n_actions, bool)
        if self.action_mode == "joint":
            j = np.zeros((self.max_vms, self.n_slots), bool)
            j[: c.n_vms, : c.n_nodes] = self._joint
            mask[:-1] = j.reshape(-1)
            mask[-1] = self._stop_legal()
        elif self.phase == 0:
            mask[: c.n_vms] = self._movable
            mask[-1] = self._stop_legal()
        else:
            mask[: c.n_nodes] = self._dest
        return mask

    def _decode(self, action: int) -> tuple[str, int, int]:
        """("stop" | "vm" | "slot" | "pair", vm, slot)."""
        a = int(action)
        if a == self.stop_action:
            return "stop", -1, -1
        if self.action_mode == "joint":
            v, s = divmod(a, self.n_slots)
            return "pair", v, s
        if self.phase == 0:
            return "vm", a, -1
        return "slot", -1, a

    def _apply_action(self, action) -> tuple[float, bool, bool]:
        self.steps += 1
        if self.action_mode == "penalty" and not self._legal_mask()[int(action)]:
            self.invalid += 1
            reward = -self.invalid_penalty
            self.total_return += reward
            return reward, False, self.steps >= 4 * self.mnl + 2
        kind, v, s = self._decode(action)
        reward = 0.0
        if kind == "stop":
            return 0.0, True, False
        if kind == "vm":
            self.selected = v
            self.phase = 1
            self._dest = self.cluster.vm_slot_mask(v, self._shape_mask)
            return 0.0, False, self._penalty_truncated()
        if kind == "slot":
            v = self.selected
        reward = self._migrate(v, s)
        terminated = self.migrations >= self.mnl or not self._movable.any()
        return reward, terminated, self._penalty_truncated()

    def _penalty_truncated(self) -> bool:
        return self.action_mode == "penalty" and self.steps >= 4 * self.mnl + 2

    def _migrate(self, v: int, slot: int) -> float:
        c = self.cluster
        own_mask = self.action_mode != "joint" and self.selected == v and self._dest is not None
        old_pm = int(c.vm_pm[v])
        touched = distinct_sorted(c.vm_nodes(v).tolist() + c.vm_nodes(v, slot // 2, slot % 2).tolist())
        wfr_before = self._weighted_fragments(touched) if self.objective == "weighted_fr" else 0.0
        empty_before = int(self._pm_vms[old_pm] == 0) + int(self._pm_vms[slot // 2] == 0)
        drop = c.migrate(v, slot, legal=self._dest if own_mask else c.vm_slot_mask(v, self._shape_mask))
        self._pm_vms[old_pm] -= 1
        self._pm_vms[slot // 2] += 1
        mem_mb = int(c.vm_nmem[v] * c.vm_span[v])
        self.migrated_mem_mb += mem_mb
        self._place_rows(np.array([v], np.int64))
        self.migrations += 1
        self.plan.append((v, slot))
        self.phase, self.selected = 0, -1
        self._refresh(distinct_sorted([old_pm, slot // 2]))
        if self.objective == "fr":
            reward = drop / c.total_free_cpu if c.total_free_cpu > 0 else 0.0
        elif self.objective == "weighted_fr":
            reward = wfr_before - self._weighted_fragments(touched)
        else:
            empty_after = int(self._pm_vms[old_pm] == 0) + int(self._pm_vms[slot // 2] == 0)
            reward = (empty_after - empty_before) / self.n_active_pms
        reward -= self.migration_cost * mem_mb / self.mem_scale
        self.total_return += reward
        return reward

    # ------------------------------------------------------------------------ objectives
    def empty_pms(self) -> int:
        """In-service PMs that host no VM (``objective="empty_pms"``)."""
        return int(((self._pm_vms == 0) & self.cluster.pm_accepting).sum())

    def _weighted_fragments(self, nodes: np.ndarray | None = None) -> float:
        """Weighted fragment cores of ``nodes`` (all in-service nodes by default), over the total free
        cores: ``sum_c w_c (free mod c) / (sum_c w_c * total free)``."""
        c = self.cluster
        free = c.free[:, 0] if nodes is None else c.free[nodes, 0]
        act = c.node_active if nodes is None else c.node_active[nodes]
        num = sum(w * float((np.mod(free, k) * act).sum()) for k, w in self.type_weights.items())
        den = sum(self.type_weights.values()) * c.total_free_cpu
        return num / den if den > 0 else 0.0

    def weighted_fr(self) -> float:
        """Type-weighted fragment rate (``objective="weighted_fr"``): for every flavour size ``c``
        (cores per NUMA node) of ``type_weights``, the share of free cores that cannot host a VM of
        ``c`` cores, averaged with the weights (with ``{16: 1}`` it is the FR)."""
        return self._weighted_fragments()

    # ------------------------------------------------------------------------ observation
    def _pm_features(self, pms: np.ndarray | None = None) -> np.ndarray:
        c = self.cluster
        free = c.free.reshape(c.n_pms, 2, 2).astype(np.float64)
        if pms is not None:
            free = free[pms]
        fc, fm = free[:, :, 0], free[:, :, 1]
        u = self.frag_unit
        frag = np.mod(fc, u)
        share = np.divide(frag, fc, out=np.zeros_like(frag), where=fc > 0)
        slot = (fc // u) * u
        return np.concatenate([fc / self.cpu_scale, fm / self.mem_scale, frag / u, share,
                               slot / self.cpu_scale], axis=1).astype(np.float32)

    def _build_static(self) -> None:
        """Padded arrays whose content changes only when a VM moves (updated in place by _migrate)."""
        c = self.cluster
        m = c.n_vms
        two = c.vm_span == 2
        self._vmf = np.zeros((self.max_vms, VM_FEATURES), np.float32)
        self._vmf[:m, 0] = c.vm_ncpu / self.cpu_scale
        self._vmf[:m, 1] = c.vm_nmem / self.mem_scale
        self._vmf[:m, 2] = two
        self._vmf[:m, 5] = c.vm_movable
        self._x = np.zeros((self.max_nodes, NODE_FEATURES), np.float32)
        self._x[: c.n_nodes, 0] = 1.0
        vm_rows = slice(self.n_slots, self.n_slots + m)
        self._x[vm_rows, 1] = 1.0
        self._x[vm_rows, 6] = self._vmf[:m, 0]
        self._x[vm_rows, 7] = self._vmf[:m, 1]
        self._x[vm_rows, 8] = two
        # edges at fixed positions: [VM -> first node (m)] [VM -> second node (span-2 VMs)]
        # [the same reversed] [NUMA siblings]
        self._two = two.copy()
        self._first_node = np.zeros(m, np.int64)   # first NUMA node of each VM (kept by _place_rows)
        self._build_drop_tables()
        self._two_rank = np.full(m, -1, np.int64)
        self._two_rank[two] = np.arange(int(two.sum()))
        self._e1 = m + int(two.sum())
        n_edges = 2 * self._e1 + c.n_nodes
        self._ei = np.full((2, self.max_edges), -1, np.int32)
        self._et = np.zeros(self.max_edges, np.int8)
        self._et[self._e1: 2 * self._e1] = 1
        self._et[2 * self._e1: n_edges] = 2
        self._em = np.zeros(self.max_edges, np.int8)
        self._em[:n_edges] = 1
        sib = np.arange(c.n_nodes)
        self._ei[:, 2 * self._e1: n_edges] = np.stack([sib, sib ^ 1])
        self._nm = np.zeros(self.max_nodes, np.int8)
        self._nm[: c.n_nodes] = 1
        self._nm[vm_rows] = 1
        self._vm_host = np.full(self.max_vms, -1, np.int64)
        self._pm_mask = np.zeros(self.max_pms, np.int8)
        self._pm_mask[: c.n_pms] = 1
        self._vm_mask = np.zeros(self.max_vms, np.int8)
        self._vm_mask[:m] = 1
        self._total_cpu = float(c.pool.capacity[:, 0].sum())
        self._vmf_owner = c
        self._place_rows(np.arange(m))
        self._refresh_features()

    def _place_rows(self, vms: np.ndarray) -> None:
        """Refresh the placement-dependent cached entries (NUMA flags, host, edges) of ``vms``."""
        c = self.cluster
        if len(vms) == 1:   # after a migration: scalar updates, a fraction of the vectorised path's cost
            self._place_one(int(vms[0]))
            return
        two = c.vm_span[vms] == 2
        self._vmf[vms, 3] = two | (c.vm_numa[vms] == 0)
        self._vmf[vms, 4] = two | (c.vm_numa[vms] == 1)
        self._vm_host[vms] = c.vm_pm[vms]
        first = 2 * c.vm_pm[vms] + np.where(two, 0, c.vm_numa[vms])
        self._first_node[vms] = first
        node = self.n_slots + vms
        self._ei[0, vms], self._ei[1, vms] = node, first
        e2 = c.n_vms + self._two_rank[vms[two]]
        self._ei[0, e2], self._ei[1, e2] = node[two], first[two] + 1
        e1 = self._e1
        self._ei[0, e1 + vms], self._ei[1, e1 + vms] = first, node
        self._ei[0, e1 + e2], self._ei[1, e1 + e2] = first[two] + 1, node[two]

    def _place_one(self, v: int) -> None:
        """:meth:`_place_rows` of one VM."""
        c = self.cluster
        two = bool(self._two[v])
        numa, pm = int(c.vm_numa[v]), int(c.vm_pm[v])
        self._vmf[v, 3] = two or numa == 0
        self._vmf[v, 4] = two or numa == 1
        self._vm_host[v] = pm
        first = 2 * pm + (0 if two else numa)
        self._first_node[v] = first
        node = self.n_slots + v
        e1 = self._e1
        ei = self._ei
        ei[0, v], ei[1, v] = node, first
        ei[0, e1 + v], ei[1, e1 + v] = first, node
        if two:
            e2 = c.n_vms + int(self._two_rank[v])
            ei[0, e2], ei[1, e2] = node, first + 1
            ei[0, e1 + e2], ei[1, e1 + e2] = first + 1, node

    def _observation(self) -> dict[str, np.ndarray]:
        c = self.cluster
        x = self._x.copy()
        if self.selected >= 0:
            x[self.n_slots + self.selected, 9] = 1.0
            x[: c.n_nodes, 11] = self._arrive_feature(self.selected)
        obs = {
            "phase": np.array([self.phase], np.int8), "selected_vm": np.array([self.selected], np.int64),
            "global_features": np.array([c.fragment_rate(), self.fr_initial, self.migrations / self.mnl,
                                         c.total_free_cpu / self._total_cpu if self._total_cpu > 0 else 0.0,
                                         self.phase], np.float32),
            "graph_x": x, "graph_edge_index": self._ei.copy(), "graph_edge_type": self._et.copy(),
            "graph_node_mask": self._nm.copy(), "graph_edge_mask": self._em.copy(),
        }
        if self.action_mode != "joint":
            obs["action_node"] = self._action_node[self.phase].copy()
        if self.observation == "all":
            pm_features = np.zeros((self.max_pms, PM_FEATURES), np.float32)
            pm_features[: c.n_pms] = self._pmf
            vmf = self._vmf.copy()
            if self.selected >= 0:
                vmf[self.selected, 6] = 1.0
            obs.update({"pm_features": pm_features, "pm_mask": self._pm_mask.copy(), "vm_features": vmf,
                        "vm_mask": self._vm_mask.copy(), "vm_host": self._vm_host.copy()})
        return obs

    def _make_action_node(self) -> np.ndarray:
        c = self.cluster
        an = np.full((2, self.n_actions), NO_NODE, np.int64)
        if self.action_mode == "joint":
            return an
        an[0, : c.n_vms] = self.n_slots + np.arange(c.n_vms)
        an[0, self.stop_action] = GLOBAL_ACTION   # stop: scored from the whole graph
        an[1, : c.n_nodes] = np.arange(c.n_nodes)
        return an

    # --------------------------------------------------------------------------- info
    def _step_info(self) -> dict[str, Any]:
        c = self.cluster
        return {"fragment_rate": c.fragment_rate(), "migrations": self.migrations, "phase": self.phase,
                "selected_vm": self.selected}

    def _episode_metrics(self) -> dict[str, float]:
        c = self.cluster
        slots = c.slots()
        fr = c.fragment_rate()
        return {"fr_initial": self.fr_initial, "fr_final": fr, "fr_reduction": self.fr_initial - fr,
                "migrations": float(self.migrations), "slots16_initial": float(self.slots_initial),
                "slots16_final": float(slots), "slots16_gained": float(slots - self.slots_initial),
                "return": self.total_return, "invalid_actions": float(self.invalid),
                "migrated_mem_gb": self.migrated_mem_mb / 1024.0,
                "empty_pms_initial": float(self.empty_initial), "empty_pms_final": float(self.empty_pms()),
                "weighted_fr_initial": self.wfr_initial, "weighted_fr_final": self.weighted_fr()}

    # --------------------------------------------------------------------------- helpers
    def encode_migration(self, v: int, slot: int) -> list[int]:
        """The action(s) that migrate VM ``v`` to ``slot`` in this action mode."""
        if self.action_mode == "joint":
            return [v * self.n_slots + slot]
        return [v, slot]

    def at_decision_boundary(self) -> bool:
        """Between migrations (phase 0): a two-stage migration is half done in phase 1."""
        return self.phase == 0

    def _render_ansi(self) -> str:
        from .render import render_ansi
        return render_ansi(self)

    def _render_rgb(self) -> np.ndarray:
        from .render import render_rgb
        return render_rgb(self)
