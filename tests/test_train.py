"""train.py: smoke run on the real job-shop env, TensorBoard + checkpoints, --resume, config errors."""
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from rlsys_agents.config import ConfigError, load_config, parse_overrides
from rlsys_agents.training import main, preflight

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]
TINY = ["experiment=smoke", "env.kwargs.observation=flat", "env.kwargs.n_jobs=[3,5]", "env.kwargs.n_machines=[3,4]",
        "env.kwargs.max_jobs=6", "env.kwargs.max_machines=6", "env.n_envs=2", "algo.name=maskable_ppo",
        "algo.kwargs={n_steps: 64, batch_size: 64, n_epochs: 1}", "algo.extractor_kwargs.hidden=8",
        "train.total_timesteps=256", "train.checkpoint_freq=128", "train.progress_bar=false",
        "eval.episodes=2", "eval.freq=128", "eval.baselines=[SPT,MWKR]", "eval.reference=MWKR",
        "eval.gap_metrics=[makespan]", "eval.suite=[]", "eval.env_kwargs={}"]


def scalars(run_dir: Path) -> dict[str, list[int]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out: dict[str, list[int]] = {}
    for f in sorted(run_dir.glob("events.out.tfevents.*")):
        acc = EventAccumulator(str(f))
        acc.Reload()
        for tag in acc.Tags()["scalars"]:
            out.setdefault(tag, []).extend(e.step for e in acc.Scalars(tag))
    return out


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    runs = tmp_path_factory.mktemp("runs")
    main(["--config", str(ROOT / "configs" / "default.yaml"), f"train.run_dir={runs}"] + TINY)
    return runs / "smoke" / "seed_0"


def test_smoke_run_writes_tensorboard_checkpoints_and_results(trained, capsys):
    assert (trained / "checkpoints" / "model_128_steps.zip").is_file()
    assert (trained / "checkpoints" / "model_256_steps.zip").is_file()
    assert (trained / "final_model.zip").is_file()
    cfg = yaml.safe_load((trained / "config.yaml").read_text())
    assert cfg["train"]["total_timesteps"] == 256 and cfg["env"]["kwargs"]["max_jobs"] == 6
    tags = scalars(trained)
    for tag in ("eval/makespan/policy", "eval/makespan/SPT", "eval/makespan/MWKR", "eval/gap_makespan/policy",
                "rollout_metrics/makespan", "train/value_loss"):
        assert tag in tags, sorted(tags)
    # baselines are logged at every evaluation step, so their lines overlay the policy's curve
    assert tags["eval/makespan/SPT"] == tags["eval/makespan/policy"]
    assert 0 in tags["eval/makespan/policy"] and max(tags["eval/makespan/policy"]) == 256
    # the Custom Scalars layout puts policy and baselines in one chart per metric
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    layouts = []
    for f in trained.glob("events.out.tfevents.*"):
        acc = EventAccumulator(str(f))
        acc.Reload()
        if "custom_scalars__config__" in acc.Tags().get("tensors", []):
            layouts.append(f)
    assert layouts, "no custom scalars layout written"
    res = json.loads((trained / "results.json").read_text())
    assert set(res["summary"]) == {"policy", "SPT", "MWKR"} and res["timesteps"] == 256


def test_every_saved_model_carries_its_environment(trained):
    from sb3_contrib import MaskablePPO

    from rlsys_agents.checkpoint_env import read_env_metadata
    from rlsys_agents.evaluation import checkpoint_env_kwargs

    for path in [trained / "final_model.zip", *(trained / "checkpoints").glob("*.zip")]:
        meta = read_env_metadata(path)
        assert meta["env_id"] == "rlsys/JobShop-v0" and meta["env_kwargs"]["max_jobs"] == 6, path
        assert meta["observation_layout"]["spaces"]["jobs"]["shape"][0] == 6
        assert meta["action_layout"] == {"type": "Discrete", "n": 6, "shape": [], "dtype": "int64"}
        assert meta["algo"] == "maskable_ppo" and meta["experiment"] == "smoke"
        MaskablePPO.load(path)      # SB3 reads the zip as before (it ignores the extra entry)
    assert checkpoint_env_kwargs(trained / "final_model.zip")["n_jobs"] == [3, 5]


def test_resume_continues_from_last_checkpoint(trained, capsys):
    from sb3_contrib import MaskablePPO

    main(["--resume", str(trained), "train.total_timesteps=384"])
    out = capsys.readouterr().out
    assert "resuming from" in out and "at 256 steps" in out
    assert MaskablePPO.load(trained / "final_model.zip").num_timesteps == 384
    assert (trained / "checkpoints" / "model_384_steps.zip").is_file()
    steps = scalars(trained)["eval/makespan/policy"]
    assert max(steps) == 384 and 256 in steps  # TensorBoard continues at the step count


def test_resume_refuses_algorithm_overrides_it_would_ignore(trained):
    # once RL has taken steps the checkpoint keeps its own hyperparameters: an override would be
    # written to config.yaml without taking effect, so it is refused before anything changes
    before = (trained / "config.yaml").read_text()
    with pytest.raises(SystemExit, match="can change algo.kwargs only before RL starts"):
        main(["--resume", str(trained), "algo.kwargs.learning_rate=1e-5"])
    assert (trained / "config.yaml").read_text() == before


@pytest.mark.parametrize("override, message", [
    ("train.no_such_key=1", "unknown config key 'train.no_such_key'"),
    ("nosection.x=1", "unknown config key 'nosection'"),
    ("env.id=rlsys/NoSuchEnv-v0", "unknown environment ID 'rlsys/NoSuchEnv-v0'"),
    ("algo.name=a2c_foo", "unknown algorithm algo.name='a2c_foo'"),
    ("train.total_timesteps=lots", "'train.total_timesteps' must be of type int"),
    ("train.progress_bar=3", "'train.progress_bar' must be of type bool"),
    ("algo.kwargs.not_an_arg=1", "unknown config key 'algo.kwargs.not_an_arg'"),
    ("env.kwargs.max_jobs=1", "max_jobs"),
    ("eval.baselines=[SPT,nope]", "'nope' is not a baseline"),
    ("algo.name=sac algo.kwargs={} algo.policy=mlp algo.extractor_kwargs={}", "sac needs a Box action space"),
])
def test_config_errors_name_the_problem(override, message, tmp_path):
    with pytest.raises(SystemExit, match=message.replace("[", r"\[").replace("(", r"\(")):
        main([f"train.run_dir={tmp_path}"] + override.split())


def test_overrides_are_yaml_scalars_and_merge_dicts():
    tree = parse_overrides(["a.b=1e-3", "a.c=[0,1]", "a.d=true", "a.e=ppo"])
    assert tree == {"a": {"b": 1e-3, "c": [0, 1], "d": True, "e": "ppo"}}
    cfg = load_config(None, ["env.kwargs.max_jobs=10", "env.kwargs.observation=flat", "train.seeds=[0,1,2]"])
    assert cfg.env.kwargs == {"max_jobs": 10, "observation": "flat"} and cfg.train.seeds == [0, 1, 2]
    # a dotted key inside a dict sets one entry; naming the dict itself replaces it
    cfg = load_config(ROOT / "configs" / "default.yaml", ["algo.kwargs.n_steps=64", "algo.extractor_kwargs={}"])
    assert cfg.algo.kwargs["n_steps"] == 64 and cfg.algo.kwargs["gamma"] == 1.0 and cfg.algo.extractor_kwargs == {}
    with pytest.raises(ConfigError, match="train.seeds"):
        load_config(None, ["train.seeds=[a]"])


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_config_is_valid(path):
    import importlib.util

    from rlsys_envs.registry import get_entry

    cfg = load_config(path)
    module = get_entry(cfg.env.id).entry_point.split(":")[0]
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not in this checkout")
    preflight(cfg)  # env kwargs, algorithm kwargs, policy preset, baselines, eval suite


def test_train_py_script_reports_config_errors():
    r = subprocess.run([sys.executable, str(ROOT / "train.py"), "algo.name=nope"], capture_output=True, text=True,
                       cwd=ROOT, timeout=120)
    assert r.returncode != 0 and "unknown algorithm" in r.stderr


def test_off_policy_checkpoints_save_and_resume_the_replay_buffer(tmp_path, capsys):
    args = [f"train.run_dir={tmp_path}", "experiment=q", "algo.name=dqn", "algo.policy=mlp", "algo.extractor_kwargs={}",
            "algo.kwargs={learning_starts: 20, buffer_size: 300, train_freq: 4}", "algo.policy_kwargs.net_arch=[16]",
            "env.n_envs=1", "env.kwargs.n_jobs=[3,5]", "env.kwargs.n_machines=[3,4]", "env.kwargs.max_jobs=6",
            "env.kwargs.max_machines=6", "train.total_timesteps=80", "train.checkpoint_freq=40",
            "train.progress_bar=false", "eval.episodes=1", "eval.freq=0", "eval.baselines=[SPT]",
            "eval.reference=null", "eval.gap_metrics=[]"]
    main(args)
    run = tmp_path / "q" / "seed_0"
    assert (run / "checkpoints" / "replay_buffer_80_steps.pkl").is_file()
    main(["--resume", str(run), "train.total_timesteps=120"])
    out = capsys.readouterr().out
    assert "at 80 steps, replay buffer of 80 transitions" in out
    from rlsys_agents.masked_q import MaskableDQN

    assert MaskableDQN.load(run / "final_model.zip").num_timesteps == 120


def test_tensorboard_serves_the_policy_and_baseline_eval_curves(trained):
    """``tensorboard --logdir runs`` starts on a fresh install (no missing module, no traceback) and
    serves the evaluation scalars of the policy and of a baseline over HTTP."""
    import os
    import socket
    import time
    import urllib.parse
    import urllib.request

    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    logdir = trained.parent.parent
    proc = subprocess.Popen([sys.executable, "-m", "tensorboard.main", "--logdir", str(logdir), "--port", str(port),
                             "--host", "localhost", "--load_fast", "false"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env={k: v for k, v in os.environ.items() if k != "PYTHONWARNINGS"})
    base = f"http://localhost:{port}"

    def get(path):
        with urllib.request.urlopen(base + path, timeout=10) as r:
            return json.loads(r.read().decode())

    try:
        deadline = time.time() + 90
        runs = {}
        while time.time() < deadline:
            if proc.poll() is not None:
                break
            try:
                runs = get("/data/plugin/scalars/tags")
                if runs:
                    break
            except OSError:
                pass
            time.sleep(1)
        assert proc.poll() is None, f"tensorboard exited: {proc.stdout.read()}"
        run = next(r for r in runs if r.endswith("seed_0"))
        for tag in ("eval/makespan/policy", "eval/makespan/SPT"):
            assert tag in runs[run], sorted(runs[run])
            points = get(f"/data/plugin/scalars/scalars?run={urllib.parse.quote(run)}&tag={urllib.parse.quote(tag)}")
            # the points served are those in the run's event files (the module's runs may have resumed it)
            served = {p[1] for p in points}
            assert served == set(scalars(trained)[tag]) and 256 in served
            assert all(isinstance(p[2], float) for p in points)
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=30)
    for bad in ("Traceback", "ModuleNotFoundError", "pkg_resources", "Warning"):
        assert bad not in out, out
