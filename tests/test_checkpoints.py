"""Every shipped checkpoint in agents/checkpoints/ loads and plays an episode of its environment.

This catches an observation or policy change that silently breaks a published checkpoint (as
the VM env's two new node features would have broken the first VM policy).
"""
import json
from pathlib import Path

import pytest
import torch

import rlsys_envs  # noqa: F401
from agents.evaluation import evaluate, load_policy

torch.set_num_threads(1)
CKPT = Path(__file__).resolve().parents[1] / "agents" / "checkpoints"
SERVERLESS = "rlsys/ServerlessAutoscaling-v0"
#: file-name prefix -> (env ID, small env kwargs it must run on, metric that must be finite)
ENVS = {
    "jobshop_": ("rlsys/JobShop-v0", {"n_jobs": 6, "n_machines": 6}, "makespan"),
    "serverless_ppo_": (SERVERLESS, {"action_type": "absolute", "reward": "slo"}, "throughput"),
    "serverless_sac_": (SERVERLESS, {"action_type": "continuous", "reward": "slo"}, "throughput"),
    "storage_placement_": ("rlsys/HybridStorage-v0", {"episode_requests": 500}, "mean_latency_us"),
    "storage_migration_": ("rlsys/HybridStorageMigration-v0", {"episode_requests": 500}, "mean_latency_us"),
    "taskalloc_almighty_": ("rlsys/TaskAllocation-v0", {"scenario": "almighty"}, "total_net_value"),
    "taskalloc_electric_": ("rlsys/TaskAllocation-v0", {"scenario": "electric", "n_tasks": 8}, "total_net_value"),
    "vm_": ("rlsys/VMRescheduling-v0", {"size": "S", "mnl": 10, "allow_stop": False, "observation": "graph"},
            "fr_final"),
}


def _entry(name: str):
    for prefix, entry in ENVS.items():
        if name.startswith(prefix):
            return entry
    raise AssertionError(f"{name}: no environment known for this checkpoint; add it to ENVS in {__file__}")


@pytest.mark.parametrize("path", sorted(CKPT.glob("*.zip")), ids=lambda p: p.name)
def test_shipped_checkpoint_loads_and_plays(path):
    env_id, kwargs, metric = _entry(path.name)
    policy = load_policy(str(path), env_id, kwargs)
    out = evaluate(env_id, policy, 1, 0, kwargs)
    assert out[metric] and all(v == v for v in out[metric]), json.dumps(out)
