"""Checkpoints survive a kill: atomic writes, --resume past an unreadable checkpoint, one point per step."""
import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from rlsys_agents.callbacks import read_history_steps, truncate_history, unreadable_reason
from rlsys_agents.files import atomic_path, remove_stale_temporaries
from rlsys_agents.training import main

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]
FAST = ["env.kwargs.observation=flat", "env.kwargs.n_jobs=[3,5]", "env.kwargs.n_machines=[3,4]",
        "env.kwargs.max_jobs=6", "env.kwargs.max_machines=6", "env.n_envs=2",
        "algo.kwargs={n_steps: 32, batch_size: 64, n_epochs: 1}", "algo.extractor_kwargs.hidden=8",
        "train.progress_bar=false", "eval.episodes=1", "eval.baselines=[SPT,MWKR]", "eval.reference=MWKR",
        "eval.gap_metrics=[makespan]"]


def tensorboard_steps(run_dir: Path, tag: str) -> list[int]:
    """The steps of ``tag`` as TensorBoard shows them: all event files of the run folder in one
    accumulator, which applies the purge steps that resumed runs write. Both of TensorBoard's Python
    readers must agree (the server's ``--load_fast false`` one purges only at a second session start)."""
    from tensorboard.backend.event_processing import event_accumulator, plugin_event_accumulator

    acc = event_accumulator.EventAccumulator(str(run_dir))
    acc.Reload()
    legacy = [e.step for e in acc.Scalars(tag)]
    acc = plugin_event_accumulator.EventAccumulator(str(run_dir))
    acc.Reload()
    served = [e.step for e in acc.Tensors(tag)]
    assert legacy == served, (tag, legacy, served)
    return served


def assert_every_tag_once_per_step(run_dir: Path) -> None:
    """Every scalar of the run (eval, train, rollout, time) at increasing steps, each step once."""
    from tensorboard.backend.event_processing import plugin_event_accumulator

    acc = plugin_event_accumulator.EventAccumulator(str(run_dir))
    acc.Reload()
    tags = [t for t in acc.Tags()["tensors"] if t != "custom_scalars__config__"]     # (a layout, not a curve)
    assert any(t.startswith("train/") for t in tags) and any(t.startswith("eval/") for t in tags), tags
    for tag in tags:
        steps = [e.step for e in acc.Tensors(tag)]
        assert steps == sorted(set(steps)), (tag, steps)


def test_atomic_path_leaves_the_old_file_when_the_writer_fails(tmp_path):
    target = tmp_path / "model.zip"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError):
        with atomic_path(target) as tmp:
            assert tmp.suffix == ".zip" and tmp.parent == tmp_path
            tmp.write_bytes(b"half")
            raise RuntimeError("killed")
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["model.zip"]
    with atomic_path(target) as tmp:
        tmp.write_bytes(b"new")
    assert target.read_bytes() == b"new"
    # what a SIGKILL would leave: a temporary file, removed on resume
    (tmp_path / ".model.abc123.tmp.zip").write_bytes(b"x")
    (tmp_path / ".results.json.q1w2.tmp").write_bytes(b"x")
    assert len(remove_stale_temporaries(tmp_path)) == 2 and [p.name for p in tmp_path.iterdir()] == ["model.zip"]


def test_history_truncation_drops_later_and_part_written_records(tmp_path):
    h = tmp_path / "eval_history.jsonl"
    h.write_text("".join(json.dumps({"timesteps": s, "policy": {}}) + "\n" for s in (0, 128, 256, 384))
                 + '{"timesteps": 51')
    assert read_history_steps(h) == [0, 128, 256, 384]
    assert truncate_history(h, 128) == 3
    assert read_history_steps(h) == [0, 128] and h.read_text().endswith("\n")


def test_resume_skips_an_unreadable_newest_checkpoint(tmp_path, capsys):
    args = [f"train.run_dir={tmp_path}", "experiment=trunc", "train.total_timesteps=256", "train.checkpoint_freq=128",
            "eval.freq=128"] + FAST
    main(["--config", str(ROOT / "configs" / "default.yaml")] + args)
    run = tmp_path / "trunc" / "seed_0"
    newest = run / "checkpoints" / "model_256_steps.zip"
    data = newest.read_bytes()
    newest.write_bytes(data[: len(data) // 2])      # what an in-place write killed half-way leaves
    assert unreadable_reason(newest) is not None
    assert unreadable_reason(run / "checkpoints" / "model_128_steps.zip") is None
    capsys.readouterr()
    main(["--resume", str(run), "train.total_timesteps=384"])
    out = capsys.readouterr().out
    assert f"skipping unreadable checkpoint {newest}" in out
    assert "at 128 steps" in out
    assert unreadable_reason(newest) is None        # rewritten whole by the resumed run
    steps = read_history_steps(run / "eval_history.jsonl")
    assert steps == [0, 128, 256, 384]
    assert tensorboard_steps(run, "eval/makespan/policy") == [0, 128, 256, 384]
    assert_every_tag_once_per_step(run)


def test_sigkill_at_random_moments_always_resumes_with_one_point_per_step(tmp_path):
    """A run killed with SIGKILL several times, wherever it is (imports, baselines, training, a
    checkpoint write, the final evaluation), then resumed each time, finishes with every evaluation
    step once in eval_history.jsonl and in TensorBoard."""
    total, freq = 1536, 256
    args = [f"train.run_dir={tmp_path}", "experiment=kill", f"train.total_timesteps={total}",
            f"train.checkpoint_freq={freq}", f"eval.freq={freq}"] + FAST
    run = tmp_path / "kill" / "seed_0"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    rng = random.Random(16)
    kills, resumed, outputs = 0, 0, []

    def start():
        cmd = ([sys.executable, str(ROOT / "train.py"), "--resume", str(run)] if (run / "config.yaml").is_file()
               else [sys.executable, str(ROOT / "train.py"), "--config", str(ROOT / "configs" / "default.yaml")]
               + args)
        return subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)

    # kill 0 lands at a random moment of the start (imports, config.yaml, baselines); kills 1-3 a
    # random fraction of a second after the run logged its 2nd, 3rd and 5th evaluation (so
    # during training, rollouts, checkpoint writes, on any machine speed)
    for attempt, after_points in enumerate([None, 2, 3, 5]):
        proc = start()
        if after_points is None:
            time.sleep(rng.uniform(0.3, 2.5))
        else:
            deadline = time.time() + 60
            while (proc.poll() is None and time.time() < deadline
                   and len(read_history_steps(run / "eval_history.jsonl")) < after_points):
                time.sleep(0.02)
            time.sleep(rng.uniform(0.0, 0.4))
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGKILL)
            kills += 1
        out, _ = proc.communicate(timeout=60)
        outputs.append(out)
        assert "Traceback" not in out, out
        resumed += "resuming from" in out
    proc = start()
    out, _ = proc.communicate(timeout=120)
    outputs.append(out)
    assert proc.returncode == 0, "\n-----\n".join(outputs)
    resumed += "resuming from" in out
    assert kills >= 3 and resumed >= 2, (kills, resumed, "\n-----\n".join(outputs))
    expected = list(range(0, total + 1, freq))
    assert read_history_steps(run / "eval_history.jsonl") == expected, "\n-----\n".join(outputs)
    for tag in ("eval/makespan/policy", "eval/makespan/SPT", "eval/gap_makespan/policy"):
        assert tensorboard_steps(run, tag) == expected, (tag, "\n-----\n".join(outputs))
    assert_every_tag_once_per_step(run)
    res = json.loads((run / "results.json").read_text())
    assert res["timesteps"] == total and set(res["summary"]) == {"policy", "SPT", "MWKR"}
    assert not list(run.rglob(".*.tmp*"))


@pytest.mark.parametrize("algo, kwargs, n_envs, total, end", [
    ("PPO", {"n_steps": 32, "batch_size": 32, "n_epochs": 1}, 2, 100, 128),
    ("PPO", {"n_steps": 32, "batch_size": 32, "n_epochs": 1}, 2, 128, 128),
    ("DQN", {"train_freq": 4, "learning_starts": 10, "buffer_size": 200}, 1, 102, 104),
    ("DQN", {"train_freq": 1, "learning_starts": 10, "buffer_size": 200}, 3, 100, 102),
])
def test_the_progress_bar_total_is_where_the_run_really_ends(algo, kwargs, n_envs, total, end):
    import stable_baselines3
    from stable_baselines3.common.env_util import make_vec_env

    from rlsys_agents.callbacks import ProgressBar, final_timesteps

    venv = make_vec_env("CartPole-v1", n_envs=n_envs, seed=0)
    model = getattr(stable_baselines3, algo)("MlpPolicy", venv, seed=0, policy_kwargs={"net_arch": [8]}, **kwargs)
    assert final_timesteps(model, total) == end
    bar = ProgressBar(total)
    model.learn(total, callback=bar)
    assert model.num_timesteps == end and bar.pbar.total == end and bar.pbar.n == end


def test_a_part_written_demonstration_record_is_dropped(tmp_path):
    """A run killed while appending to demonstrations.jsonl leaves a part of a line; the cache
    drops it (appends would otherwise glue the next record onto it)."""
    from rlsys_agents.imitation import collect_demonstrations

    cache = tmp_path / "demonstrations.jsonl"
    cache.write_text('{"key": "k", "seed": 1, "actions": [1, 2')
    assert collect_demonstrations("rlsys/VMRescheduling-v0", {"size": "S"}, "cpsat", {}, [], cache=cache,
                                  progress=False) == []
    assert cache.read_text() == ""
