"""Bad input to train.py and the instance loaders stops with an error naming what is wrong, before any work."""
import pytest
import torch

from rlsys_agents.training import main
from rlsys_envs.jobshop.generator import InstanceFormatError, load_file, load_standard, load_taillard

torch.set_num_threads(1)
SMALL = ["train.total_timesteps=64", "eval.episodes=1", "eval.baselines=[SPT]", "eval.reference=null",
         "eval.gap_metrics=[]", "train.progress_bar=false"]


@pytest.mark.parametrize("override, message", [
    ("env.kwargs.no_such_kwarg=1",
     "config error: env.kwargs.no_such_kwarg: not a keyword argument of rlsys/JobShop-v0"),
    ("env.kwargs.max_job=10", "(did you mean 'max_jobs'?)"),
    ("eval.env_kwargs.bogus=1", "config error: eval.env_kwargs.bogus: not a keyword argument"),
    ("eval.suite=[{instance: ta01},{instanse: ta02}]", "config error: eval.suite[1].instanse: not a keyword argument"),
    ("algo.kwargs.n_steps=0", "config error: algo.kwargs.n_steps must be an integer >= 1, got 0"),
    ("algo.kwargs.batch_size=0", "config error: algo.kwargs.batch_size must be an integer >= 1, got 0"),
    ("algo.kwargs.batch_size=1", "config error: algo.kwargs.batch_size must be >= 2 for maskable_ppo"),
    ("algo.kwargs.learning_rate=fast", "config error: algo.kwargs.learning_rate must be a number > 0, got 'fast'"),
    ("algo.kwargs.learning_rate=.nan", "config error: algo.kwargs.learning_rate must be a number > 0"),
    ("algo.kwargs.gamma=5", "config error: algo.kwargs.gamma must be a number in [0, 1], got 5"),
    ("algo.kwargs.gae_lambda=-0.1", "config error: algo.kwargs.gae_lambda must be a number in [0, 1]"),
    ("eval.metrics=[nope]", "config error: eval.metrics: 'nope' is not a metric of rlsys/JobShop-v0"),
    ("eval.gap_metrics=[makespn]", "config error: eval.gap_metrics: 'makespn' is not a metric of rlsys/JobShop-v0 "
                                   "(did you mean 'makespan'?)"),
    ("eval.objective=speed", "config error: eval.objective: 'speed' is not a metric"),
    ("train.seeds=[-1]", "config error: train.seeds: seeds must be integers in [0, 2**32)"),
    ("train.seeds=[0,4294967296]", "config error: train.seeds: seeds must be integers in [0, 2**32)"),
    ("eval.seed=-5", "config error: eval.seed: seeds must be integers"),
    ("experiment=../../x", "config error: experiment='../../x' must be a name (or relative folder) inside "
                           "train.run_dir"),
    ("experiment=/tmp/elsewhere", "config error: experiment='/tmp/elsewhere' must be a name"),
    ("train.device=gpu0", "config error: train.device='gpu0' is not a torch device"),
])
def test_bad_config_values_stop_before_any_work(override, message, tmp_path, capsys):
    runs = tmp_path / "runs"
    with pytest.raises(SystemExit) as err:
        main([f"train.run_dir={runs}"] + SMALL + [override])
    assert message in str(err.value), str(err.value)
    assert not runs.exists() and list(tmp_path.iterdir()) == []        # nothing written, no baseline ran
    assert "baseline" not in capsys.readouterr().out


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_cuda_is_a_config_error(tmp_path):
    with pytest.raises(SystemExit, match=r"config error: train.device='cuda': this machine has no CUDA device"):
        main([f"train.run_dir={tmp_path}/runs"] + SMALL + ["train.device=cuda"])
    with pytest.raises(SystemExit, match=r"config error: train.device='cuda:0': this machine has no CUDA"):
        main([f"train.run_dir={tmp_path}/runs"] + SMALL + ["train.device=cuda:0"])


def test_nested_experiment_names_stay_inside_run_dir(tmp_path):
    from rlsys_agents.config import load_config
    from rlsys_agents.config_checks import check_experiment

    check_experiment(load_config(None, ["experiment=ablations/small"]))   # a relative folder is fine
    for bad in ("a/../../b", "~/x", ""):
        with pytest.raises(ValueError, match="must be a name"):
            check_experiment(load_config(None, [f"experiment={bad}"]))


@pytest.mark.parametrize("text, where", [
    ("env:\n  id: rlsys/JobShop-v0\n  kwargs: {a: 1\nalgo:\n  name: ppo\n", "line 4, column 5"),
    ("env:\n  id: rlsys/JobShop-v0\n   n_envs: 2\n", "line 3, column 10"),
    ("train:\n\ttotal_timesteps: 5\n", "line 2, column 1"),
])
def test_yaml_syntax_errors_name_file_and_line(text, where, tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(text)
    with pytest.raises(SystemExit) as err:
        main(["--config", str(cfg), f"train.run_dir={tmp_path}/runs"])
    msg = str(err.value)
    assert msg.startswith(f"config error: config file '{cfg}', {where}: YAML syntax error"), msg


def test_a_config_file_that_is_not_utf8_is_named(tmp_path):
    cfg = tmp_path / "bad.yaml"
    cfg.write_bytes(b"experiment: a\nenv:\n  id: \xff\xfe\n")
    with pytest.raises(SystemExit, match=r"config error: config file '.*bad.yaml', line 3: not UTF-8 text"):
        main(["--config", str(cfg)])


# ------------------------------------------------------------------------- job-shop instance files
@pytest.mark.parametrize("loader", [load_file, load_standard, load_taillard])
def test_instance_file_that_is_not_utf8_names_file_and_line(loader, tmp_path):
    f = tmp_path / "inst.txt"
    f.write_bytes(b"2 2\n0 3 1 \xe9\n1 2 0 4\n")
    with pytest.raises(InstanceFormatError, match=r"inst.txt, line 2: not UTF-8 text \(byte 0xe9 at column 7\)"):
        loader(f)


@pytest.mark.parametrize("text, line", [
    ("2 2\n0 3 1 12345678901234567890\n1 2 0 4\n", 2),
    ("99999999999999999999 2\n0 3 1 4\n1 2 0 4\n", 1),
])
def test_instance_file_with_a_huge_number_names_file_and_line(text, line, tmp_path):
    f = tmp_path / "inst.txt"
    f.write_text(text)
    with pytest.raises(InstanceFormatError, match=rf"inst.txt, line {line}: .*is too large \(at most 2147483647\)"):
        load_file(f)
    assert issubclass(InstanceFormatError, ValueError)


def test_env_with_a_bad_instance_file_names_it(tmp_path, capsys):
    f = tmp_path / "inst.txt"
    f.write_bytes(b"2 2\n0 3 1 \xe9\n1 2 0 4\n")
    with pytest.raises(SystemExit, match=r"config error: .*inst.txt, line 2: not UTF-8 text"):
        main([f"train.run_dir={tmp_path}/runs", f"env.kwargs.instance={f}"] + SMALL)


def test_readme_baseline_names_are_the_codes():
    """Every name in the baselines column of the README's environment table is one that
    ``rlsys evaluate --policy NAME`` takes (``static_10 .. static_310`` names a range)."""
    import re
    from pathlib import Path

    import rlsys_envs

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    checked = 0
    for line in readme.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) != 6 or not cells[0].startswith("[`rlsys/") or cells[5] != "ready":
            continue
        ids = re.findall(r"`(rlsys/[^`]+)`", cells[0])
        known = {b for i in ids for b in rlsys_envs.baselines(i)}
        for name in re.findall(r"`([^`]+)`", cells[4]):
            assert name in known, f"README names baseline {name!r} for {ids}; the code's: {sorted(known)}"
            checked += 1
    assert checked >= 20
