"""train.py --sweep: sweep files, trial configs, gathering of results, and a 2-trial sweep on a local Ray."""
import csv
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import yaml

from rlsys_agents.config import ConfigError, load_config
from rlsys_agents.sweep import (draw_samples, grid_points, load_spec, run_sweep, trial_config, write_results)
from rlsys_agents.training import main

ROOT = Path(__file__).resolve().parents[1]
TINY = ["env.kwargs.observation=flat", "env.kwargs.n_jobs=[3,5]", "env.kwargs.n_machines=[3,4]",
        "env.kwargs.max_jobs=6", "env.kwargs.max_machines=6", "env.n_envs=2",
        "algo.kwargs={n_steps: 64, batch_size: 64, n_epochs: 1}", "algo.extractor_kwargs.hidden=8",
        "train.total_timesteps=128", "train.checkpoint_freq=128", "eval.episodes=3", "eval.freq=64",
        "eval.baselines=[SPT,MWKR]", "eval.reference=MWKR", "eval.gap_metrics=[makespan]"]


def write_sweep(folder: Path, **keys) -> Path:
    data = {"name": "t", "base": str(ROOT / "configs" / "default.yaml"),
            "overrides": TINY + [f"train.run_dir={folder / 'runs'}"], "verbose": 0, **keys}
    path = folder / "sweep.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.mark.parametrize("keys, message", [
    ({"grids": {}}, "unknown key 'grids'"),
    ({"search": {"algo.kwargs.learning_rate": {"normal": [0, 1]}}, "searcher": "random"}, "must be one of"),
    ({"search": {"algo.kwargs.learning_rate": {"loguniform": [0, 1]}}, "searcher": "random"}, "low > 0"),
    ({"search": {"algo.kwargs.ent_coef": {"uniform": [1, 0]}}, "searcher": "random"}, "low < high"),
    ({"search": {"algo.kwargs.ent_coef": {"uniform": [0, 1]}}}, "need searcher: random or optuna"),
    ({"grid": {"algo.kwargs.ent_coef": [0.0]}, "search": {"algo.kwargs.gamma": {"uniform": [0.9, 1]}},
      "searcher": "optuna"}, "optuna samples every parameter"),
    ({"grid": {"train.seeds": [[0], [1]]}}, "set by the sweep itself"),
    ({"seeds": [0, 1], "search": {"algo.kwargs.gamma": {"uniform": [0.9, 1]}}, "searcher": "optuna",
      "scheduler": "asha"}, "asha with optuna needs one seed"),
    ({"seeds": []}, "seeds must be a non-empty list"),
    ({"scheduler": "pbt"}, "scheduler must be one of"),
])
def test_sweep_file_errors_name_the_key(tmp_path, keys, message):
    with pytest.raises(ConfigError, match=message):
        load_spec(write_sweep(tmp_path, **keys))


def test_grid_random_samples_and_trial_configs(tmp_path):
    spec = load_spec(write_sweep(tmp_path, grid={"algo.kwargs.n_epochs": [1, 2]}, searcher="random", num_samples=3,
                                 search={"algo.kwargs.learning_rate": {"loguniform": [1e-4, 1e-2]},
                                         "algo.kwargs.batch_size": {"randint": [16, 64]},
                                         "env.kwargs.reward": {"choice": ["lb", "makespan"]}}))
    samples = draw_samples(spec)
    assert samples == draw_samples(spec) and len(samples) == 3          # seeded by search_seed
    assert all(1e-4 <= s["algo.kwargs.learning_rate"] <= 1e-2 and 16 <= s["algo.kwargs.batch_size"] < 64
               for s in samples)
    points = grid_points(spec)
    assert len(points) == 6 and {p["algo.kwargs.n_epochs"] for p in points} == {1, 2}
    from rlsys_agents.sweep import base_config

    cfg = trial_config(base_config(spec), points[0], 7, tmp_path / "trials", "abc_00001")
    assert cfg.train.seeds == [7] and cfg.train.torch_threads == 1 and not cfg.train.progress_bar
    assert cfg.algo.kwargs["n_epochs"] == points[0]["algo.kwargs.n_epochs"] and cfg.algo.kwargs["n_steps"] == 64
    assert cfg.env.kwargs["reward"] == points[0]["env.kwargs.reward"]
    from rlsys_agents.training import run_dir_of

    assert run_dir_of(cfg, 7) == tmp_path / "trials" / "abc_00001" / "seed_7"
    # every grid point is checked before anything starts
    bad = write_sweep(tmp_path, grid={"env.kwargs.max_jobs": [6, 1]})
    with pytest.raises(ConfigError, match="max_jobs"):
        run_sweep(str(bad), [])
    assert not (tmp_path / "runs" / "sweeps").exists()


def _fake_trial(folder: Path, trial_id: str, seed: int, params: dict, offset: float | None, episodes: int = 6):
    run = folder / "trials" / trial_id / f"seed_{seed}"
    run.mkdir(parents=True)
    (run / "trial.json").write_text(json.dumps({"trial_id": trial_id, "seed": seed, "params": params}))
    base = np.linspace(-2.0, -1.0, episodes)
    if offset is None:           # stopped by ASHA: only evaluations, no results.json
        (run / "eval_history.jsonl").write_text(json.dumps({"timesteps": 64, "policy": {"return": -5.0}}) + "\n")
        return
    results = {"policy": {"return": list(base + offset + 0.01 * seed)}, "SPT": {"return": list(base)},
               "MWKR": {"return": list(base - 0.1)}}
    (run / "results.json").write_text(json.dumps({"timesteps": 128, "train_seconds": 1.0, "results": results,
                                                  "summary": {"policy": {"return": float(np.mean(
                                                      results["policy"]["return"]))}}}))


def test_results_are_gathered_per_configuration_with_intervals_and_best_config(tmp_path):
    spec = load_spec(write_sweep(tmp_path, grid={"algo.kwargs.learning_rate": [1e-3, 1e-4]}, seeds=[0, 1]))
    from rlsys_agents.sweep import base_config

    base = base_config(spec)
    sweep = tmp_path / "sweep"
    for i, (lr, offset) in enumerate([(1e-3, 0.5), (1e-4, -0.5)]):
        for seed in (0, 1):
            _fake_trial(sweep, f"x_{2 * i + seed:05d}", seed, {"algo.kwargs.learning_rate": lr}, offset)
    _fake_trial(sweep, "x_00009", 0, {"algo.kwargs.learning_rate": 5e-3}, None)
    summary = write_results(spec, base, sweep, log=lambda *_: None)
    md = (sweep / "results.md").read_text()
    assert "### Configurations" in md and "### Trials" in md and "stopped early" in md
    groups = summary["configurations"]
    assert [g["params"]["algo.kwargs.learning_rate"] for g in groups] == [1e-3, 1e-4]   # best mean return first
    assert groups[0]["seeds"] == [0, 1] and groups[0]["best_baseline"] == "SPT"
    assert groups[0]["probability_of_improvement"]["policy"]["probability"][0] == 1.0
    assert groups[1]["probability_of_improvement"]["policy"]["probability"][0] == 0.0
    mean = groups[0]["estimates"]["policy"]["return"]["mean"]
    assert mean[1] <= mean[0] <= mean[2] and groups[0]["estimates"]["policy"]["return"]["runs"] == 2
    rows = list(csv.DictReader(open(sweep / "results.csv")))
    assert len(rows) == 5 and {r["status"] for r in rows} == {"finished", "stopped early"}
    best = load_config(sweep / "best_config.yaml")            # a config train.py --config accepts
    assert best.algo.kwargs["learning_rate"] == 1e-3 and best.train.seeds == [0, 1] and best.experiment == "t_best"


def test_without_ray_the_package_works_and_sweep_says_what_to_install(tmp_path, monkeypatch):
    code = ("import sys; sys.modules['ray'] = None; sys.modules['optuna'] = None\n"
            "import rlsys_agents.training, rlsys_agents.sweep, rlsys_agents.statistics, rlsys_envs.cli\n"
            "print(rlsys_agents.statistics.mean_interval([1.0, 2.0, 3.0]).point)")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0 and r.stdout.strip() == "2.0", r.stderr
    monkeypatch.setitem(sys.modules, "ray", None)             # `import ray` fails as if not installed
    with pytest.raises(SystemExit, match=r'Ray Tune, which is not installed: pip install -e "\.\[distributed\]"'):
        main(["--sweep", str(write_sweep(tmp_path))])
    assert not (tmp_path / "runs" / "sweeps" / "t" / "sweep.json").exists()


def test_resume_without_a_sweep_and_run_dir_errors(tmp_path):
    with pytest.raises(SystemExit, match="no sweep to resume"):
        main(["--sweep", str(write_sweep(tmp_path)), "--resume"])
    with pytest.raises(SystemExit, match="--resume needs a run folder"):
        main(["--resume"])


@pytest.fixture(scope="module")
def ray_installed():
    pytest.importorskip("ray.tune")


def test_two_trial_sweep_on_local_ray(tmp_path, ray_installed):
    path = write_sweep(tmp_path, grid={"algo.kwargs.learning_rate": [1e-3, 3e-4]})
    t0 = time.perf_counter()
    assert main(["--sweep", str(path)]) == 0
    print(f"2-trial sweep on local Ray: {time.perf_counter() - t0:.1f} s")
    sweep = tmp_path / "runs" / "sweeps" / "t"
    runs = sorted(sweep.glob("trials/*/seed_0"))
    assert len(runs) == 2
    lrs = set()
    for run in runs:                          # each trial is an ordinary train.py run folder
        res = json.loads((run / "results.json").read_text())
        assert res["timesteps"] == 128 and set(res["results"]) == {"policy", "SPT", "MWKR"}
        assert (run / "final_model.zip").is_file() and list(run.glob("events.out.tfevents.*"))
        lrs.add(yaml.safe_load((run / "config.yaml").read_text())["algo"]["kwargs"]["learning_rate"])
    assert lrs == {1e-3, 3e-4}
    summary = json.loads((sweep / "results.json").read_text())
    assert len(summary["trials"]) == 2 and {t["status"] for t in summary["trials"]} == {"finished"}
    assert len(summary["configurations"]) == 2
    assert len(list(csv.DictReader(open(sweep / "results.csv")))) == 2
    assert "### Configurations" in (sweep / "results.md").read_text()
    best = load_config(sweep / "best_config.yaml")
    assert best.algo.kwargs["learning_rate"] in lrs
    with pytest.raises(SystemExit, match="exists: continue it with --resume"):
        main(["--sweep", str(path)])


@pytest.mark.slow
def test_killed_sweep_resumes_its_trials_from_their_checkpoints(tmp_path, ray_installed):
    path = write_sweep(tmp_path, seeds=[0, 1], overrides=TINY + [f"train.run_dir={tmp_path / 'runs'}",
                                                                  "train.total_timesteps=4096",
                                                                  "train.checkpoint_freq=256", "eval.freq=1024"])
    sweep = tmp_path / "runs" / "sweeps" / "t"
    # its own process group, so that the kill takes the local Ray it started as well
    proc = subprocess.Popen([sys.executable, str(ROOT / "train.py"), "--sweep", str(path)], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and len(list(sweep.glob("trials/*/seed_*/checkpoints/model_512_steps.zip"))) < 2:
            time.sleep(1)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not list(sweep.glob("trials/*/seed_*/results.json"))
    assert main(["--sweep", str(path), "--resume"]) == 0
    for log in sweep.glob("trials/*/seed_*/train.log"):
        assert "(resumed)" in log.read_text() and "resuming from" in log.read_text()
    summary = json.loads((sweep / "results.json").read_text())
    assert [t["timesteps"] for t in summary["trials"]] == [4096, 4096]


def test_trials_share_the_baseline_evaluations_they_have_made(tmp_path):
    from rlsys_agents.sweep import share_baselines

    for i, entries in enumerate([{"k1": {"baseline": "cpsat", "metrics": {"makespan": [55.0]}}},
                                 {"k2": {"baseline": "SPT", "metrics": {"makespan": [60.0]}}}]):
        run = tmp_path / f"t{i}" / "seed_0"
        run.mkdir(parents=True)
        (run / "baselines.json").write_text(json.dumps(entries))
    (tmp_path / "t2" / "seed_0").mkdir(parents=True)
    (tmp_path / "t2" / "seed_0" / "baselines.json").write_text('{"k1": {"trunc')    # being written: skipped
    new = tmp_path / "t3" / "seed_1"
    new.mkdir(parents=True)
    share_baselines(tmp_path, new)
    assert set(json.loads((new / "baselines.json").read_text())) == {"k1", "k2"}


@pytest.mark.parametrize("path", sorted((ROOT / "configs" / "sweeps").glob("*.yaml")), ids=lambda p: p.name)
def test_every_shipped_sweep_is_valid(path):
    from rlsys_agents.sweep import base_config, preflight_sweep

    spec = load_spec(path)
    preflight_sweep(spec, base_config(spec))
