"""Used as an installed package: configs and checkpoints by name, one training entry point, and a
wheel that has everything (built, installed in a fresh virtual environment, used from outside the
repository)."""
import importlib.metadata
import inspect
import json
import os
import re
import runpy
import shutil
import site
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

from rlsys_agents import shipped
from rlsys_agents.config import ConfigError, load_config

ROOT = Path(__file__).resolve().parents[1]
ENV = "rlsys/JobShop-v0"
#: import name of the learning package (the folder agents/) in an installed wheel
PKG = shipped.__package__


# ------------------------------------------------------------------------------------- by name
def test_configs_resolve_by_name_and_by_path(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)                                # outside the repository
    default = ROOT / "configs" / "default.yaml"
    for value in ("default", "default.yaml", "configs/default.yaml", default):
        assert shipped.resolve_config(value).samefile(default), value
    assert shipped.resolve_sweep("smoke").samefile(ROOT / "configs" / "sweeps" / "smoke.yaml")
    assert shipped.resolve_sweep("sweeps/smoke").samefile(ROOT / "configs" / "sweeps" / "smoke.yaml")
    assert sorted(p.stem for p in (ROOT / "configs").glob("*.yaml")) == shipped.config_names()
    # a file of the user's wins over the shipped config of the same name
    (tmp_path / "default.yaml").write_text("experiment: mine\n")
    assert load_config("default.yaml").experiment == "mine" and load_config("default").experiment == "default"
    with pytest.raises(ConfigError, match="not found, and no shipped config has that name .*jobshop_gnn_ppo"):
        load_config("no_such_config")


def test_the_default_experiment_is_configs_default_yaml(monkeypatch):
    """train.py, rlsys train, python -m rlsys_agents.training and load_config() all mean configs/default.yaml."""
    from rlsys_agents import training
    from rlsys_envs import cli

    expected = load_config(ROOT / "configs" / "default.yaml").to_dict()
    assert load_config().to_dict() == expected
    seen = []
    monkeypatch.setattr(training, "run", lambda config, resume_dir: seen.append(config.to_dict()))
    assert training.main([]) == 0 and cli.main(["train"]) == 0
    assert seen == [expected, expected]
    assert runpy.run_path(str(ROOT / "train.py"))["main"] is training.main
    with pytest.raises(SystemExit, match="config error: unknown config key 'nope'"):
        cli.main(["train", "--config", "jobshop_gnn_ppo", "nope=1"])


def test_list_shows_environments_registered_at_run_time(capsys):
    import toy_parallel

    from rlsys_envs import cli

    toy_parallel.register()
    assert cli.main(["list", "--json"]) == 0
    rows = {row["env_id"]: row for row in json.loads(capsys.readouterr().out)}
    assert rows[toy_parallel.VIEW_ID]["baselines"] == ["first_free", "random"] and toy_parallel.PARALLEL_ID in rows
    assert rows[ENV]["configs"] == shipped.configs_by_env()[ENV]


@pytest.mark.parametrize("command, prog", [
    (["train.py"], "train.py"),
    (["-m", "rlsys_envs.cli", "train"], "rlsys train"),
    (["-m", "rlsys_agents.training"], "python -m rlsys_agents.training"),
])
def test_training_help_names_its_command(command, prog):
    if command[0] == "train.py":
        command = [str(ROOT / "train.py")]
    r = subprocess.run([sys.executable, *command, "--help"], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(f"usage: {prog} [-h] [--config CONFIG]") and "shipped config" in r.stdout


def test_checkpoints_resolve_by_name(tmp_path, monkeypatch):
    from rlsys_agents.evaluation import load_policy

    monkeypatch.chdir(tmp_path)
    zip_ = ROOT / "agents" / "checkpoints" / "jobshop_gnn_ppo.zip"
    for value in ("jobshop_gnn_ppo", "jobshop_gnn_ppo.zip", "agents/checkpoints/jobshop_gnn_ppo.zip", zip_):
        assert shipped.resolve_checkpoint(value).samefile(zip_), value
        assert shipped.is_checkpoint(value)
    assert not shipped.is_checkpoint("SPT") and not shipped.is_checkpoint("default")
    assert "jobshop_gnn_ppo" in shipped.checkpoint_names() and "vm_gnn_bc" in shipped.checkpoint_names()
    # every shipped checkpoint has its note (a .md of its own or a row of the README naming a note)
    readme = (shipped.checkpoints_dir() / "README.md").read_text()
    for name in shipped.checkpoint_names():
        assert (shipped.checkpoints_dir() / f"{name}.md").is_file() or name.split("_")[0] in readme, name
    with pytest.raises(ValueError, match="nor a shipped checkpoint .*jobshop_gnn_ppo"):
        load_policy("no_such_checkpoint", ENV)


def test_one_import_name_for_the_learning_package():
    """The folder agents/ is imported under one name only (a second would load its modules twice)."""
    other = {"agents": "rlsys_agents", "rlsys_agents": "agents"}[PKG]
    pattern = re.compile(rf"^\s*(from|import)\s+{other}\b", re.M)
    files = [ROOT / "train.py"] + [Path(d, f) for top in ("agents", "rlsys_envs", "tests", "benchmarks")
                                   for d, _, names in os.walk(ROOT / top) for f in names if f.endswith(".py")]
    assert [str(p.relative_to(ROOT)) for p in files if pattern.search(p.read_text())] == []


def test_an_old_import_name_loads_pickles_saved_under_it(tmp_path, monkeypatch):
    """rlsys_agents._compat: a class pickled as oldpkg.mod.C loads as newpkg.mod.C, the same object."""
    import pickle

    from rlsys_agents._compat import AliasFinder, alias

    new = tmp_path / "newpkg_compat"
    new.mkdir()
    (new / "__init__.py").write_text("")
    (new / "mod.py").write_text("class C:\n    pass\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    import newpkg_compat.mod

    saved = pickle.dumps(newpkg_compat.mod.C).replace(b"newpkg_compat", b"oldpkg_compat")
    with pytest.raises(ModuleNotFoundError):
        pickle.loads(saved)
    finder = alias("oldpkg_compat", "newpkg_compat", new)
    try:
        assert alias("oldpkg_compat", "newpkg_compat", new) is finder and alias("agents", "agents", new) is None
        assert pickle.loads(saved) is newpkg_compat.mod.C
        assert sys.modules["oldpkg_compat.mod"] is newpkg_compat.mod
        assert newpkg_compat.mod.__spec__.name == "newpkg_compat.mod"          # keeps its own spec
        # a real package of the old name elsewhere on sys.path keeps its name
        other = tmp_path / "other"
        (other / "taken_compat").mkdir(parents=True)
        (other / "taken_compat" / "__init__.py").write_text("REAL = True\n")
        monkeypatch.syspath_prepend(str(other))
        alias("taken_compat", "newpkg_compat", new)
        assert importlib.import_module("taken_compat").REAL
    finally:
        sys.meta_path[:] = [f for f in sys.meta_path if not isinstance(f, AliasFinder) or f.old == "agents"]
        for name in [m for m in sys.modules if m.split(".")[0] in ("oldpkg_compat", "newpkg_compat", "taken_compat")]:
            del sys.modules[name]


# ------------------------------------------------------------------------------------- the wheel
#: not copied into the build tree: VCS data, caches, build outputs, runs
IGNORE = shutil.ignore_patterns(".git", "runs", "build", "dist", "*.egg-info", ".venv", ".ci-venv", "__pycache__",
                                ".pytest_cache", ".hypothesis", ".ruff_cache", "out")


def _setuptools_builds_here() -> bool:
    try:
        return int(importlib.metadata.version("setuptools").split(".")[0]) >= 77
    except importlib.metadata.PackageNotFoundError:
        return False


def _vector_script() -> str:
    """make_vec (sync) on every single-agent ID, a few hundred random legal steps each."""
    from test_vector_envs import batch_actions, run_vector

    return "\n".join([
        "import gymnasium as gym, numpy as np, rlsys_envs",
        inspect.getsource(batch_actions), inspect.getsource(run_vector),
        textwrap.dedent("""
            ids = rlsys_envs.env_ids("single")
            for env_id in ids:
                envs = gym.make_vec(env_id, num_envs=2, vectorization_mode="sync")
                try:
                    run_vector(envs, 200)
                finally:
                    envs.close()
            print("make_vec ok:", " ".join(ids))
        """)])


def test_wheel_installs_and_works_outside_the_repository(tmp_path):
    """``pip wheel`` of a copy of the tree, installed (without dependencies: they come from this
    interpreter's site-packages) in a fresh venv, used from a folder outside the repository."""
    src, dist, venv, work = tmp_path / "src", tmp_path / "dist", tmp_path / "venv", tmp_path / "work"
    shutil.copytree(ROOT, src, symlinks=True, ignore=IGNORE)
    build = [sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "-q", "-w", str(dist)]
    if _setuptools_builds_here():
        build.append("--no-build-isolation")
    subprocess.run(build, check=True, capture_output=True, timeout=300)
    wheel = next(dist.glob("rlsys-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in [f"{PKG}/checkpoints/README.md", f"{PKG}/configs/default.yaml", f"{PKG}/configs/sweeps/smoke.yaml",
                 *[f"{PKG}/configs/{p.name}" for p in (ROOT / "configs").glob("*.yaml")],
                 *[f"{PKG}/checkpoints/{p.name}" for p in (ROOT / "agents" / "checkpoints").iterdir()]]:
        assert name in names, f"{name} is not in the wheel"

    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=120)
    py = venv / "bin" / "python"
    purelib = subprocess.run([py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                             check=True, capture_output=True, text=True).stdout.strip()
    # the dependencies (and pip) from this interpreter's site-packages, as plain paths: their .pth
    # files (an editable install of this repository among them) are not processed
    outer = [p for p in site.getsitepackages() + [site.getusersitepackages()] if Path(p).is_dir()]
    Path(purelib, "outer_site_packages.pth").write_text("\n".join(outer) + "\n")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["OMP_NUM_THREADS"] = "1"
    subprocess.run([py, "-m", "pip", "install", "--no-deps", "--ignore-installed", "-q", str(wheel)], check=True,
                   capture_output=True, env=env, timeout=300)
    work.mkdir()

    def run(*args, timeout=240):
        r = subprocess.run([str(a) for a in args], capture_output=True, text=True, cwd=work, env=env, timeout=timeout)
        assert r.returncode == 0, f"{args}:\n{r.stdout[-3000:]}\n{r.stderr[-3000:]}"
        return r.stdout

    where = run(py, "-c", f"import {PKG}, rlsys_envs; print({PKG}.__file__); print(rlsys_envs.__file__)")
    assert all(line.startswith(purelib) for line in where.split()), where   # the wheel's code, not the repo's

    rlsys = venv / "bin" / "rlsys"
    listing = {row["env_id"]: row for row in json.loads(run(rlsys, "list", "--json"))}
    assert "default" in listing[ENV]["configs"] and "jobshop_gnn_ppo" in listing[ENV]["configs"]
    assert {k: row["configs"] for k, row in listing.items() if row["configs"]} == shipped.configs_by_env()
    assert str(Path(purelib, PKG, "checkpoints")) in run(rlsys, "list")

    # the default experiment by name, a few hundred steps (smaller rollouts and evaluation)
    run(rlsys, "train", "--config", "default", "train.total_timesteps=256", "env.n_envs=2",
        "algo.kwargs.n_steps=64", "algo.kwargs.batch_size=64", "algo.kwargs.n_epochs=1", "train.checkpoint_freq=0",
        "train.progress_bar=false", "eval.episodes=2", "eval.freq=0", "eval.baselines=[SPT,MWKR]",
        "eval.reference=MWKR", "train.run_dir=runs")
    run_dir = work / "runs" / "default" / "seed_0"
    assert (run_dir / "final_model.zip").is_file() and "MWKR" in (run_dir / "results.md").read_text()
    assert load_config(run_dir / "config.yaml").env.kwargs == load_config("default").env.kwargs

    res = json.loads(run(rlsys, "evaluate", ENV, "--policy", "jobshop_gnn_ppo", "--episodes", "1", "--json"))
    r = subprocess.run([str(rlsys), "report", "--list"], capture_output=True, text=True, cwd=work, env=env,
                       timeout=120)   # the benchmarks belong to the repository: a wheel says so, and where
    assert r.returncode != 0 and "rlsys report runs the benchmark scripts of a source checkout" in r.stderr
    assert res["metrics"]["makespan"]["mean"] > 0

    out = run(py, "-c", _vector_script())
    import rlsys_envs

    # the built-in IDs (this process may hold rows that other tests registered)
    assert out.split("make_vec ok: ")[1].split() == [e.id for e in rlsys_envs.ENVIRONMENTS if e.kind == "single"]
