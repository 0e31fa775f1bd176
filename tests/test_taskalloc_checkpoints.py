"""The checkpoints that ``benchmarks/bench_taskalloc.py`` plays by default (``DEFAULT_CHECKPOINTS``)
are shipped, load on their scenario and play a short episode with legal actions only, and the
benchmark's published description (``PUBLISHED``, what report.py prints) names each of them.

Why: the benchmark skips a default checkpoint whose file is missing, so a renamed or broken file
would silently drop the policy row from the published tables.
"""
import sys
from types import SimpleNamespace
from pathlib import Path

import numpy as np
import pytest
import torch

from rlsys_agents.evaluation import load_policy
from rlsys_envs.taskalloc.env import TaskAllocationEnv

torch.set_num_threads(1)
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench_taskalloc  # noqa: E402

#: a short episode of each scenario: few tasks (the entity counts stay those the checkpoint was made for)
SHORT = {"almighty": {}, "electric": {"n_tasks": 8}, "material": {"n_tasks": 6}, "rbf": {"n_tasks": 6}}
DEFAULTS = [tuple(item.partition("=")[::2]) for item in bench_taskalloc.DEFAULT_CHECKPOINTS]


@pytest.mark.parametrize("scenario,path", DEFAULTS, ids=[f"{s}:{Path(p).name}" for s, p in DEFAULTS])
def test_default_checkpoint_plays_a_short_episode_legally(scenario, path):
    assert Path(path).is_file(), f"DEFAULT_CHECKPOINTS names {path}, which is not shipped"
    kwargs = {"scenario": scenario, **SHORT[scenario]}
    env = TaskAllocationEnv(**kwargs)
    policy = load_policy(path, bench_taskalloc.ENV_ID, kwargs)
    obs, info = env.reset(seed=7)
    policy.reset(env, 7)
    done, steps = False, 0
    while not done:
        a = np.asarray(policy.act(env, obs, info), np.int64)
        legal = env.action_masks()[env._offsets + a]
        assert legal.all(), f"step {steps}: illegal components {np.flatnonzero(~legal).tolist()}"
        obs, _r, terminated, truncated, info = env.step(a)
        done, steps = terminated or truncated, steps + 1
    metrics = info["metrics"]
    assert np.isfinite(metrics["total_net_value"]) and metrics["tasks_completed"] > 0, metrics


def test_the_published_description_names_every_default_checkpoint():
    about = " ".join(run["about"] for run in bench_taskalloc.PUBLISHED)
    for scenario, path in DEFAULTS:
        assert Path(path).name in about, f"PUBLISHED does not say that {Path(path).name} plays {scenario}"


def test_the_checkpoint_plays_the_episodes_of_ga_and_cpsat(monkeypatch):
    """On Material, ga and cpsat play fewer episodes (``--expensive-episodes``); the checkpoint plays
    those same episodes, so that its mean in the table compares with theirs."""
    calls = []

    def fake_evaluate(kwargs, names, episodes, seed, ckpt=None):
        calls.append((tuple(names), episodes))
        return {name: {"value": [1.0] * episodes, "ms_step": 0.0, "ms_epoch": 0.0, "completed": 0,
                       "statuses": {}} for name in names}

    monkeypatch.setattr(bench_taskalloc, "evaluate", fake_evaluate)
    args = SimpleNamespace(scenarios=["material"], checkpoints={"material": "x.zip"}, episodes=20,
                           expensive_episodes=4, seed=10_000)
    text = bench_taskalloc.bench_quality(args)
    episodes = {name: n for names, n in calls for name in names}
    assert episodes == {"random": 20, "sequential": 20, "greedy": 20, "ga": 4, "cpsat": 4, "policy": 4}
    assert "ga, cpsat and the checkpoint (policy) on the first 4" in text


def test_the_paired_line_gives_an_interval_over_episodes_and_none_for_one():
    many = bench_taskalloc.paired_line([3.0, 5.0, 7.0, 2.0], [1.0, 5.0, 4.0, 3.0], "ga")
    assert "paired on the same 4 episodes: +1.00 net value per episode (95% bootstrap CI [" in many
    assert "ahead on 2 of 4, level on 1" in many
    one = bench_taskalloc.paired_line([35.0], [28.0], "ga")       # Almighty: one deterministic episode
    assert one == "policy - ga on the same 1 episode: +7.00 net value; the policy is ahead on 1 of 1, level on 0."
    assert "nan" not in one
