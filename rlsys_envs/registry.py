"""The one table of rlsys environments: ID -> entry point, default kwargs, baselines, configs.

``import rlsys_envs`` calls :func:`register_all`, which registers every single-agent row with
Gymnasium, so ``gym.make("rlsys/JobShop-v0")`` works after the import; rows of kind
``"parallel"`` (PettingZoo ``ParallelEnv``) are made with :func:`make_parallel`. Entry points and
baseline tables are strings resolved on first use, so importing the package stays cheap.
:func:`register` adds a row of your own (an environment written on ``rlsys_envs.core``) at run
time, so ``train.py``, ``rlsys evaluate`` and the contract tests treat it like the built-in ones.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping

import gymnasium as gym


@dataclass(frozen=True)
class EnvEntry:
    id: str
    entry_point: str | Callable[..., Any]    # "module:Class" (or the class / factory itself)
    baselines: str | Mapping[str, Callable[[], Any]]   # "module:DICT" (or the dict) of name -> Policy factory
    summary: str              # one line: paper, action, observation
    kwargs: dict[str, Any] = field(default_factory=dict)
    max_episode_steps: int | None = None
    #: documented variants (name -> kwargs) that the test-suite runs check_env on
    variants: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: "module:DICT" of name -> expert class for behaviour cloning (``rlsys_agents.imitation``), or None
    experts: str | Mapping[str, Callable[..., Any]] | None = None
    #: "single" (a Gymnasium env, registered with ``gym.register``) or "parallel" (a PettingZoo
    #: ``ParallelEnv``, made with :func:`make_parallel`; its baselines are joint: name -> factory of
    #: a dict agent -> Policy)
    kind: str = "single"

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"EnvEntry {self.id!r}: kind must be one of {KINDS}, got {self.kind!r}")


KINDS = ("single", "parallel")

#: the built-in environments (see :func:`entries` for these plus the ones added with :func:`register`)
ENVIRONMENTS: tuple[EnvEntry, ...] = (
    EnvEntry(
        id="rlsys/JobShop-v0",
        entry_point="rlsys_envs.jobshop.env:JobShopEnv",
        baselines="rlsys_envs.jobshop.baselines:BASELINES",
        summary="ISBJSSP job-shop dispatching (blocking, swaps, machine shutdowns); Discrete(job); graph obs",
        kwargs={"instance": "random", "n_jobs": (6, 10), "n_machines": (6, 10), "max_jobs": 20, "max_machines": 20,
                "rule": "nondelay", "observation": "graph"},
        variants={
            "classic_ta01": {"instance": "ta01", "observation": "flat"},
            "isbjssp": {"blocking": True, "swap_allowed": True, "shutdown_prob": 0.1},
            "flat": {"observation": "flat"},
            "blocking_noswap": {"blocking": True, "swap_allowed": False},
        },
    ),
    EnvEntry(
        id="rlsys/ServerlessAutoscaling-v0",
        entry_point="rlsys_envs.serverless.env:ServerlessAutoscalingEnv",
        baselines="rlsys_envs.serverless.baselines:BASELINES",
        summary="Knative concurrency-limit autoscaling (Schuler et al. 2021); Discrete/Box limit; metrics obs",
        variants={
            "delta": {},
            "absolute": {"action_type": "absolute"},
            "continuous": {"action_type": "continuous"},
            "memory": {"profile": "memory"},
            "sleep": {"profile": "sleep"},
            "poisson": {"workload": "poisson"},
            "bursty": {"workload": "bursty"},
            "diurnal": {"workload": "diurnal"},
            "switching": {"workload": "switching", "profile": "memory", "switch_profile": "sleep"},
            "switching_cpu": {"workload": "switching", "profile": "cpu", "switch_profile": "sleep"},
            "switching_random": {"workload": "switching", "profile": "memory", "switch_profile": "sleep",
                                 "switch_spread": 0.2},
            "slo": {"reward": "slo", "action_type": "absolute"},
            "paper_reward": {"reward": "paper"},
            "instant_limit": {"limit_change": "instant"},
        },
    ),
    EnvEntry(
        id="rlsys/ServerlessMultiFunction-v0",
        entry_point="rlsys_envs.serverless.multi:ServerlessMultiFunctionEnv",
        baselines="rlsys_envs.serverless.multi:BASELINES",
        experts="rlsys_envs.serverless.multi:EXPERTS",
        summary="Several Knative functions on one shared cluster; Box limit per function; per-function metrics obs",
        variants={
            "diurnal": {"workload": "diurnal"},
            "bursty": {"workload": "bursty"},
            "instant_limit": {"limit_change": "instant"},
        },
    ),
    EnvEntry(
        id="rlsys/VMRescheduling-v0",
        entry_point="rlsys_envs.vm.env:VMReschedulingEnv",
        baselines="rlsys_envs.vm.baselines:BASELINES",
        experts="rlsys_envs.vm.expert:EXPERTS",
        summary="VMR2L NUMA-aware VM rescheduling; two-stage Discrete(VM then PM); PM/VM features",
        kwargs={"size": "M", "workload": "high", "mnl": 50, "action_mode": "two_stage"},
        variants={
            "small": {"size": "S", "workload": "medium"},
            # joint actions on one fixed tiny snapshot (small enough to compare with brute force)
            "joint": {"size": "tiny", "workload": "low", "instance_seed": 0, "mnl": 10, "action_mode": "joint"},
            "penalty": {"size": "S", "workload": "medium", "action_mode": "penalty"},
            "no_stop_constrained": {"size": "S", "allow_stop": False, "frac_unmovable": 0.2,
                                    "n_affinity_groups": 5},
            "graph_obs": {"size": "S", "observation": "graph"},
            "memory_heavy": {"size": "S", "workload": "medium", "memory": "heavy"},
            "rack_constrained": {"size": "S", "n_affinity_groups": 5, "affinity_granularity": "rack"},
            "empty_pms": {"size": "S", "workload": "low", "objective": "empty_pms"},
            "weighted_fr_cost": {"size": "S", "objective": "weighted_fr", "migration_cost": 0.05},
        },
    ),
)

# memory mapping game (mallocGame, Wang et al. 2023) and its static-allocation mode
ENVIRONMENTS += (
    EnvEntry(
        id="rlsys/MemoryMapping-v0",
        entry_point="rlsys_envs.malloc.env:MemoryMappingEnv",
        baselines="rlsys_envs.malloc.baselines:BASELINES",
        experts="rlsys_envs.malloc.expert:EXPERTS",
        summary="mallocGame memory mapping (Wang et al. 2023): fast-memory offset or HBM per buffer; "
                "Discrete(candidate offset + slow); buffer/candidate tables",
        kwargs={"instance": "medium", "objective": "map", "order": "xla", "max_candidates": 16},
        variants={
            "small": {"instance": "small"},
            "start_order": {"instance": "small", "order": "start"},
            # every buffer must be placed (MiniMalloc / TelaMalloc); room for the peak live bytes
            "allocate": {"instance": "small", "objective": "allocate", "order": "size", "capacity_fraction": 1.25},
            # the agent also picks the buffer: (buffer, candidate offset) pairs, as MiniMalloc's search
            "allocate_choice": {"instance": "small", "objective": "allocate", "capacity_fraction": 1.25,
                                "buffer_choice": True, "max_candidates": 4},
        },
    ),
)

# hybrid storage (Sibyl / Harmonia): one two-agent env and the two agents' single-agent views
_STORAGE_VARIANTS = {
    "small": {"episode_requests": 1000, "migration_interval": 50},
    "hl": {"config": "H&L", "episode_requests": 1000},
    "hml": {"config": "H&M&L", "episode_requests": 1000},
    "four_devices": {"config": "H&N&M&L", "episode_requests": 1000},
    "heldout": {"instance": "heldout", "episode_requests": 1000},
    "closed_loop_gc": {"arrival": "closed", "flash_gc": True, "episode_requests": 1000},
    "sibyl_reward": {"reward": "sibyl", "queueing": False, "episode_requests": 1000},
}
ENVIRONMENTS += (
    EnvEntry(
        id="rlsys/HybridStorageParallel-v0",
        entry_point="rlsys_envs.storage.env:HybridStorageParallelEnv",
        baselines="rlsys_envs.storage.baselines:JOINT_BASELINES",
        summary="Hybrid storage placement + migration, two agents (Sibyl / Harmonia); PettingZoo parallel",
        kind="parallel",
        variants=_STORAGE_VARIANTS,
    ),
    EnvEntry(
        id="rlsys/HybridStorage-v0",
        entry_point="rlsys_envs.storage.env:HybridStorageEnv",
        baselines="rlsys_envs.storage.baselines:BASELINES",
        experts="rlsys_envs.storage.expert:EXPERTS",
        summary="Hybrid storage data placement per request (Sibyl); Discrete(device); request features",
        variants={**_STORAGE_VARIANTS, "with_hps_migration": {"migration": "hps", "episode_requests": 1000}},
    ),
    EnvEntry(
        id="rlsys/HybridStorageMigration-v0",
        entry_point="rlsys_envs.storage.env:HybridStorageMigrationEnv",
        baselines="rlsys_envs.storage.baselines:MIGRATION_BASELINES",
        summary="Hybrid storage migration every K requests (Harmonia-like); Discrete(no-op + candidates)",
        variants={**_STORAGE_VARIANTS, "cde_placement": {"placement": "cde", "episode_requests": 1000}},
    ),
)

# multi-entity task allocation (Gong et al. 2024): scenarios and modes as variants
ENVIRONMENTS += (
    EnvEntry(
        id="rlsys/TaskAllocation-v0",
        entry_point="rlsys_envs.taskalloc.env:TaskAllocationEnv",
        baselines="rlsys_envs.taskalloc.baselines:BASELINES",
        experts="rlsys_envs.taskalloc.expert:EXPERTS",
        summary="Multi-entity task allocation, two-stage (Gong et al. 2024); MultiDiscrete pre-assign then "
                "Discrete picks; entity/task tables",
        kwargs={"scenario": "rbf", "mode": "two_stage"},
        variants={
            "material": {"scenario": "material"},
            "electric": {"scenario": "electric"},
            "almighty": {"scenario": "almighty"},
            "sequential": {"mode": "sequential"},
            "almighty_sequential": {"scenario": "almighty", "mode": "sequential"},
            "varied_counts": {"n_entities": (40, 60), "n_tasks": (20, 30)},
            "graph_obs": {"scenario": "electric", "observation": "graph"},
        },
    ),
)

_BY_ID: dict[str, EnvEntry] = {e.id: e for e in ENVIRONMENTS}


def _resolve(ref):
    """A "module:attribute" string -> the attribute (imported on first use); anything else as it is."""
    if not isinstance(ref, str):
        return ref
    module, _, attr = ref.partition(":")
    return getattr(importlib.import_module(module), attr)


def get_entry(env_id: str) -> EnvEntry:
    """The registry row of ``env_id``; ``ValueError`` listing the known IDs otherwise."""
    try:
        return _BY_ID[env_id]
    except KeyError:
        raise ValueError(f"unknown environment ID {env_id!r}; known IDs: {', '.join(_BY_ID)}") from None


def entries() -> list[EnvEntry]:
    """Every registry row: the built-in ones, then those added with :func:`register`."""
    return list(_BY_ID.values())


def env_ids(kind: str | None = None) -> list[str]:
    """The registered IDs (of one ``kind`` if given)."""
    return [e.id for e in _BY_ID.values() if kind is None or e.kind == kind]


def register(entry: EnvEntry) -> None:
    """Add a row (an environment of your own); re-registering the same row is a no-op."""
    if not isinstance(entry, EnvEntry):
        raise TypeError(f"register() takes an EnvEntry, got {type(entry).__name__}")
    known = _BY_ID.get(entry.id)
    if known is not None and known != entry:
        raise ValueError(f"environment ID {entry.id!r} is registered already with another entry")
    _BY_ID[entry.id] = entry
    _register_with_gymnasium(entry)


def make_parallel(env_id: str, **kwargs):
    """Build the PettingZoo ``ParallelEnv`` of a ``kind="parallel"`` row with ``kwargs`` over its defaults."""
    entry = get_entry(env_id)
    if entry.kind != "parallel":
        raise ValueError(f"{env_id} is a single-agent environment: use gymnasium.make({env_id!r})")
    return _resolve(entry.entry_point)(**{**entry.kwargs, **kwargs})


def baselines(env_id: str) -> dict[str, Callable[[], Any]]:
    """Name -> factory of every baseline policy of ``env_id`` (heuristics and exact references)."""
    return dict(_resolve(get_entry(env_id).baselines))


def experts(env_id: str) -> dict[str, Callable[..., Any]]:
    """Name -> class of every expert of ``env_id`` that behaviour cloning can learn from (may be empty)."""
    ref = get_entry(env_id).experts
    return dict(_resolve(ref)) if ref else {}


def _register_with_gymnasium(e: EnvEntry) -> None:
    if e.kind == "single" and e.id not in gym.registry:
        gym.register(id=e.id, entry_point=e.entry_point, kwargs=dict(e.kwargs), max_episode_steps=e.max_episode_steps)


def register_all() -> None:
    """Register every single-agent row with Gymnasium (idempotent)."""
    for e in _BY_ID.values():
        _register_with_gymnasium(e)
