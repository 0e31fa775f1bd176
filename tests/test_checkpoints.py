"""Every shipped checkpoint in agents/checkpoints/ loads and plays an episode of its environment.

This catches an observation or policy change that silently breaks a published checkpoint (as
the VM env's two new node features would have broken the first VM policy).
"""
import json
import re
from pathlib import Path

import pytest
import torch

import rlsys_envs  # noqa: F401
from rlsys_agents.evaluation import evaluate, load_policy

torch.set_num_threads(1)
CKPT = Path(__file__).resolve().parents[1] / "agents" / "checkpoints"
SERVERLESS = "rlsys/ServerlessAutoscaling-v0"
#: file-name prefix -> (env ID, small env kwargs it must run on, metric that must be finite)
ENVS = {
    "jobshop_": ("rlsys/JobShop-v0", {"n_jobs": 6, "n_machines": 6}, "makespan"),
    "serverless_ppo_": (SERVERLESS, {"action_type": "absolute", "reward": "slo"}, "throughput"),
    "serverless_sac_": (SERVERLESS, {"action_type": "continuous", "reward": "slo"}, "throughput"),
    "serverless_multi_": ("rlsys/ServerlessMultiFunction-v0", {"workload": "revisions", "action_type": "absolute",
                                                               "initial_limit": 30, "episode_decisions": 6},
                          "throughput"),
    "storage_placement_ppo_hml": ("rlsys/HybridStorage-v0", {"episode_requests": 500, "config": "H&M&L"},
                                  "mean_latency_us"),
    "storage_placement_bc_hl": ("rlsys/HybridStorage-v0", {"episode_requests": 500, "config": "H&L",
                                                           "placement_features": "reuse"}, "mean_latency_us"),
    "storage_placement_qrdqn_hl": ("rlsys/HybridStorage-v0", {"episode_requests": 500, "config": "H&L"},
                                   "mean_latency_us"),
    "storage_placement_": ("rlsys/HybridStorage-v0", {"episode_requests": 500}, "mean_latency_us"),
    "storage_migration_ppo_hl": ("rlsys/HybridStorageMigration-v0", {"episode_requests": 500, "config": "H&L"},
                                 "mean_latency_us"),
    "storage_migration_": ("rlsys/HybridStorageMigration-v0", {"episode_requests": 500}, "mean_latency_us"),
    "malloc_": ("rlsys/MemoryMapping-v0", {"instance": "small"}, "saved_fraction"),
    "taskalloc_almighty_": ("rlsys/TaskAllocation-v0", {"scenario": "almighty"}, "total_net_value"),
    "taskalloc_material_": ("rlsys/TaskAllocation-v0", {"scenario": "material", "n_tasks": 6}, "total_net_value"),
    "taskalloc_electric_": ("rlsys/TaskAllocation-v0", {"scenario": "electric", "n_tasks": 8}, "total_net_value"),
    "taskalloc_rbf_": ("rlsys/TaskAllocation-v0", {"scenario": "rbf", "n_tasks": 6}, "total_net_value"),
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


@pytest.mark.parametrize("path", sorted(CKPT.glob("*.zip")), ids=lambda p: p.name)
def test_shipped_checkpoint_carries_its_environment(path):
    from rlsys_agents.checkpoint_env import read_env_metadata

    env_id = _entry(path.name)[0]
    meta = read_env_metadata(path)
    assert meta is not None and meta["env_id"] == env_id, meta
    assert meta["observation_layout"]["type"] in ("Dict", "Box") and "type" in meta["action_layout"]
    # without env kwargs it loads against the environment it was trained on (spaces checked)
    load_policy(str(path), env_id, None)


def test_a_checkpoint_without_env_kwargs_runs_on_its_own_environment(capsys):
    from rlsys_agents.evaluation import checkpoint_env_kwargs
    from rlsys_envs.cli import main

    # the VM policy was trained with allow_stop=False; the default env allows stopping
    vm = checkpoint_env_kwargs(CKPT / "vm_gnn_bc.zip", "rlsys/VMRescheduling-v0")
    assert vm["allow_stop"] is False and vm["size"] == "M" and vm["mnl"] == 50
    # the serverless PPO (absolute action, 16 limits) on the default env (delta action) failed inside torch
    assert main(["evaluate", SERVERLESS, "--policy", str(CKPT / "serverless_ppo_cpu.zip"), "--episodes", "1",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["env_kwargs"]["action_type"] == "absolute" and out["env_kwargs"]["profile"] == "cpu"
    assert out["metrics"]["throughput"]["mean"] > 0


@pytest.mark.parametrize("name, kwargs, what", [
    ("serverless_ppo_cpu.zip", {"action_type": "continuous"}, "action: Discrete(16) expected, the env gives Box"),
    ("serverless_sac_cpu.zip", {"action_type": "absolute"}, "action: Box(shape=(1,), float32) expected"),
    ("serverless_ppo_cpu.zip", {}, "action: Discrete(16) expected, the env gives Discrete(3)"),
])
def test_a_target_environment_that_does_not_fit_is_refused(name, kwargs, what):
    from rlsys_envs.cli import main

    with pytest.raises(ValueError, match=re.escape(what)) as err:
        load_policy(str(CKPT / name), SERVERLESS, kwargs)
    assert "it was trained on rlsys/ServerlessAutoscaling-v0 with env kwargs" in str(err.value)
    with pytest.raises(SystemExit, match="does not fit the target environment"):
        main(["evaluate", SERVERLESS, "--policy", str(CKPT / name), "--env-kwargs", json.dumps(kwargs),
              "--replace-env-kwargs"])


def _doc_commands():
    """Every ``rlsys evaluate`` of a shipped checkpoint in a bash block of the README and the docs."""
    import shlex

    root = CKPT.parents[1]
    docs = [root / "README.md", *sorted((root / "docs").rglob("*.md")), *sorted(CKPT.glob("*.md"))]
    out, seen = [], set()
    for doc in docs:
        for block in re.findall(r"```bash\n(.*?)```", doc.read_text(), re.S):
            for line in block.replace("\\\n", " ").splitlines():
                if line.strip().startswith("rlsys evaluate") and "agents/checkpoints/" in line:
                    argv = shlex.split(line.strip())[1:]
                    if tuple(argv) not in seen:         # (the same command in several pages runs once)
                        seen.add(tuple(argv))
                        out.append(pytest.param(argv, id=f"{doc.relative_to(root)}:{argv[3].split('/')[-1]}"))
    return out


@pytest.mark.parametrize("argv", _doc_commands())
def test_the_docs_checkpoint_commands_work_as_written(argv, monkeypatch, capsys):
    """As written, from the repository root, except one episode instead of the documented number."""
    from rlsys_envs.cli import main

    argv = list(argv)
    if "--episodes" in argv:
        argv[argv.index("--episodes") + 1] = "1"
    monkeypatch.chdir(CKPT.parents[1])
    assert main(argv) == 0
    assert "agents/checkpoints/" in capsys.readouterr().out


def test_a_benchmark_gives_a_checkpoint_the_observation_it_was_trained_with():
    """bench_vm plays the shipped policy on its own snapshots: the observation comes from the
    checkpoint's record (without it the graph-trained policy would be refused on the default one)."""
    import argparse
    import sys

    from rlsys_agents.evaluation import recorded_env_kwargs

    ENV = "rlsys/VMRescheduling-v0"
    assert recorded_env_kwargs("vm_gnn_bc", ("observation", "no_such_key"), ENV) == {"observation": "graph"}
    assert recorded_env_kwargs("vm_gnn_bc", ("observation",), "rlsys/JobShop-v0") == {}   # another env's record
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    import bench_vm

    kwargs = bench_vm.policy_env_kwargs(argparse.Namespace(checkpoint="agents/checkpoints/vm_gnn_bc.zip"),
                                        {"size": "M", "workload": "high", "mnl": 50})
    assert kwargs == {"size": "M", "workload": "high", "mnl": 50, "allow_stop": False, "observation": "graph"}
    load_policy("vm_gnn_bc", ENV, kwargs)                                          # fits: no error
    with pytest.raises(ValueError, match="does not fit the target environment"):
        load_policy("vm_gnn_bc", ENV, {"size": "M", "workload": "high", "mnl": 50, "allow_stop": False})


def test_given_env_kwargs_are_laid_over_the_recorded_ones():
    """A user who changes one setting keeps the rest the checkpoint was trained with."""
    from rlsys_agents.evaluation import merge_env_kwargs

    rec = {"observation": "graph", "size": "M"}
    assert merge_env_kwargs(rec, {"size": "L"}) == {"observation": "graph", "size": "L"}
    assert merge_env_kwargs(rec, None) == rec and merge_env_kwargs(None, {"size": "L"}) == {"size": "L"}
    suite = [{"obs": "g", "instance": "ta01"}, {"obs": "g", "instance": "ta02"}]
    assert merge_env_kwargs(suite, {"reward": "lb"}) == [{**s, "reward": "lb"} for s in suite]
    assert merge_env_kwargs(suite, [{"instance": "ta09"}, {}, {"x": 1}]) == [
        {"obs": "g", "instance": "ta09"}, suite[1], {**suite[0], "x": 1}]
    assert merge_env_kwargs(rec, [{"size": "S"}, {}]) == [{"observation": "graph", "size": "S"}, rec]
    assert rec == {"observation": "graph", "size": "M"}          # inputs untouched

