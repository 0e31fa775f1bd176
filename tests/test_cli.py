"""The rlsys command line, run as a subprocess with the project's python."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
ENV = "rlsys/JobShop-v0"
SMALL = json.dumps({"n_jobs": [3, 5], "n_machines": [3, 4], "max_jobs": 6, "max_machines": 6})


def rlsys(*args, timeout=120):
    r = subprocess.run([sys.executable, "-m", "rlsys_envs.cli", *args], capture_output=True, text=True, cwd=ROOT,
                       timeout=timeout)
    return r


def test_list_shows_ids_baselines_and_configs():
    r = rlsys("list")
    assert r.returncode == 0, r.stderr
    assert ENV in r.stdout and "MWKR" in r.stdout and "configs:   default, " in r.stdout   # --config NAME
    assert "experts:   cpsat" in r.stdout and "vm_gnn_bc" in r.stdout   # VM: CP-SAT to clone
    # listing must not pay for torch / stable-baselines3
    code = ("import sys, rlsys_envs.cli as c; c.main(['list']); "
            "print('torch' in sys.modules, 'stable_baselines3' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=60).stdout
    assert out.strip().endswith("False False")


def test_evaluate_json_on_a_baseline_matches_the_library():
    from rlsys_agents.evaluation import evaluate

    r = rlsys("evaluate", ENV, "--policy", "MWKR", "--episodes", "3", "--seed", "7", "--env-kwargs", SMALL, "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)  # exactly one JSON object on stdout
    assert {"env_id", "policy", "episodes", "seed", "metrics"} <= set(out)
    assert (out["env_id"], out["policy"], out["episodes"], out["seed"]) == (ENV, "MWKR", 3, 7)
    ms = out["metrics"]["makespan"]
    assert len(ms["values"]) == 3 and ms["mean"] == pytest.approx(sum(ms["values"]) / 3)
    ref = evaluate(ENV, "MWKR", 3, 7, json.loads(SMALL))
    assert ms["values"] == ref["makespan"]


def test_evaluate_errors_are_clear():
    r = rlsys("evaluate", "rlsys/Nope-v0", "--policy", "MWKR")
    assert r.returncode != 0 and "unknown environment ID" in r.stderr
    r = rlsys("evaluate", ENV, "--policy", "nope")
    assert r.returncode != 0 and "neither a baseline" in r.stderr
    r = rlsys("evaluate", ENV, "--policy", "SPT", "--env-kwargs", '{"max_jobs": 0}')
    assert r.returncode != 0 and "max_jobs" in r.stderr


def test_env_kwargs_change_one_setting_of_a_checkpoint():
    """`--env-kwargs` on a checkpoint keeps its recorded action type; `--replace-env-kwargs` drops it
    and the checkpoint is refused with the spaces named."""
    args = ("evaluate", "rlsys/ServerlessAutoscaling-v0", "--policy", "serverless_ppo_cpu",
            "--env-kwargs", '{"episode_decisions": 3}', "--episodes", "1")
    r = rlsys(*args, "--json")
    assert r.returncode == 0, r.stderr
    kwargs = json.loads(r.stdout)["env_kwargs"]
    assert kwargs["episode_decisions"] == 3 and kwargs["action_type"] == "absolute" and kwargs["profile"] == "cpu"
    r = rlsys(*args, "--replace-env-kwargs")
    assert r.returncode != 0 and "does not fit the target environment" in r.stderr and "Discrete(16)" in r.stderr


def test_bench_json():
    r = rlsys("bench", ENV, "--env-kwargs", SMALL, "--seconds", "0.5", "--json")
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["steps"] > 0 and out["steps_per_s"] > 0


def test_compare_table_and_png(tmp_path):
    png = tmp_path / "cmp.png"
    r = rlsys("compare", ENV, "--baselines", "SPT", "MWKR", "random", "--episodes", "2", "--env-kwargs", SMALL,
              "--metrics", "makespan", "--reference", "MWKR", "--gap", "makespan", "--png", str(png))
    assert r.returncode == 0, r.stderr
    means, intervals = r.stdout.split("mean and IQM with 95% CIs")
    rows = [line for line in means.splitlines() if line.startswith("| ")]
    assert rows[0].startswith("| policy | makespan") and len(rows) == 4
    # the interval table: makespan of the three policies, the gap of the two that are not the reference
    rows = [line for line in intervals.splitlines() if line.startswith("| makespan")]
    assert len(rows) == 5 and rows[0].startswith("| makespan | SPT | 1 x 2 |")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_compare_reports_the_probability_of_improvement_of_a_policy(tmp_path):
    png = tmp_path / "cmp.png"
    r = rlsys("compare", ENV, "--baselines", "SPT", "MWKR", "--policies", "random", "--episodes", "6",
              "--env-kwargs", SMALL, "--objective", "makespan", "--minimise", "--reps", "500", "--png", str(png))
    assert r.returncode == 0, r.stderr
    assert "Probability of improvement on `makespan` (lower is better)" in r.stdout
    import re

    found = re.search(r"^\| random \| (SPT|MWKR) \| ([0-9.]+) \| \[([0-9.]+), ([0-9.]+)\] \|$", r.stdout, re.M)
    assert found, r.stdout
    p, lo, hi = (float(v) for v in found.groups()[1:])
    assert 0.0 <= lo <= p <= hi <= 1.0
    assert png.is_file()


def test_rlsys_report_is_the_report_script_of_the_checkout(capsys):
    from rlsys_envs import cli

    assert cli.main(["report", "--list", "--only", "jobshop,vm"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines and all(line.startswith(("python benchmarks/bench_jobshop.py", "python benchmarks/bench_vm.py"))
                         for line in lines)
    with pytest.raises(SystemExit, match="--only: no benchmarks/bench_<env>.py for nope"):
        cli.main(["report", "--only", "nope"])
