"""benchmarks/report.py: discovers bench_<env>.py, runs each script's published runs (or --quick) with
--out, and writes the results page, one section per environment that --only can replace alone."""
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import report  # noqa: E402

GOOD = '''
import argparse, sys
sys.path.insert(0, {bench!r})
from bench_common import figure_beside, table, tee_stdout
PUBLISHED = [{{"args": "--size 1", "about": "The small case."}},
             {{"args": "--size 2"}}]
ap = argparse.ArgumentParser()
ap.add_argument("--quick", action="store_true")
ap.add_argument("--size", type=int, default=0)
ap.add_argument("--out")
args = ap.parse_args()
with tee_stdout(args.out):
    print("## Good benchmark (" + ("quick" if args.quick else f"size {{args.size}}") + ")\\n")
    print(table(["policy", "score"], [["a", 1.5 + args.size], ["b", 2.5]]))
    import matplotlib; matplotlib.use("Agg"); import matplotlib.pyplot as plt
    fig = figure_beside(args.out, "curve")
    plt.plot([0, 1]); plt.savefig(fig)
    print(f"\\n![a curve]({{fig.name}})")
'''
BAD = "import sys\nprint('starting')\nprint('something broke', file=sys.stderr)\nsys.exit(3)\n"


@pytest.fixture
def bench(tmp_path):
    folder = tmp_path / "benchmarks"
    folder.mkdir()
    (folder / "bench_good.py").write_text(GOOD.format(bench=str(ROOT / "benchmarks")))
    (folder / "bench_bad.py").write_text(BAD)
    (folder / "bench_common.py").write_text("raise SystemExit('the helper module is not a benchmark')\n")
    (folder / "other.py").write_text("raise SystemExit('not a bench_ script')\n")
    return folder


def test_quick_report_runs_every_bench_script_once_and_writes_the_page(bench, tmp_path):
    out = tmp_path / "docs" / "results.md"
    rc = report.main(["--quick", "--bench-dir", str(bench), "--out", str(out)])
    assert rc == 1                                            # one script failed
    text = out.read_text()
    assert "| [bad](#bad) | 1 | quick | failed (exit 3) |" in text and "| [good](#good) | 1 | quick | ok |" in text
    assert "### `python benchmarks/bench_good.py --quick`" in text
    assert "#### Good benchmark (quick)" in text and "| a | 1.5 |" in text   # headings two levels down
    assert "something broke" in text and "Some runs failed (bad)" in text
    assert "other.py" not in text and "bench_common" not in text
    assert "![a curve](img/results/good_curve.png)" in text
    assert (out.parent / "img" / "results" / "good_curve.png").read_bytes()[:4] == b"\x89PNG"
    good = text.split("<!-- report:good begin -->")[1]
    for key in ("cpu count ", "python ", "torch ", "platform ", "commit `", "budget quick", "load average "):
        assert key in good
    assert not list(out.parent.glob(".results.md.*"))        # written atomically, no temporary left


def test_full_report_runs_the_published_list_and_only_replaces_its_own_section(bench, tmp_path):
    out = tmp_path / "results.md"
    assert report.main(["--quick", "--bench-dir", str(bench), "--out", str(out)]) == 1
    before = out.read_text()
    bad_section = before.split("<!-- report:bad begin -->")[1].split("<!-- report:bad end -->")[0]
    assert report.main(["--bench-dir", str(bench), "--out", str(out), "--only", "good"]) == 0
    text = out.read_text()
    assert bad_section in text                                # the other environment's section is kept as it was
    assert "| [good](#good) | 2 | full | ok |" in text and "| [bad](#bad) | 1 | quick | failed (exit 3) |" in text
    assert "### `python benchmarks/bench_good.py --size 1`" in text and "The small case." in text
    assert "### `python benchmarks/bench_good.py --size 2`" in text and "| a | 3.5 |" in text
    assert "(quick)" not in text.split("<!-- report:good begin -->")[1].split("<!-- report:good end -->")[0]
    assert "![a curve](img/results/good_0_curve.png)" in text and "![a curve](img/results/good_1_curve.png)" in text
    assert text.count("<!-- report:good begin -->") == 1
    figures = sorted(p.name for p in (out.parent / "img" / "results").glob("*.png"))
    assert figures == ["good_0_curve.png", "good_1_curve.png"]   # the quick run's good_curve.png is gone
    assert report.main(["--bench-dir", str(bench), "--out", str(out), "--only", "good", "--fresh"]) == 0
    assert "report:bad" not in out.read_text()


def test_list_prints_the_commands_and_bad_input_is_named(bench, tmp_path, capsys):
    assert report.main(["--bench-dir", str(bench), "--list", "--only", "good,bad"]) == 0
    assert capsys.readouterr().out.splitlines() == ["python benchmarks/bench_good.py --size 1",
                                                    "python benchmarks/bench_good.py --size 2",
                                                    "python benchmarks/bench_bad.py"]
    with pytest.raises(SystemExit, match="no benchmarks/bench_<env>.py for nope"):
        report.main(["--bench-dir", str(bench), "--only", "nope"])
    (bench / "bench_worse.py").write_text("X = 1\nPUBLISHED = [{'args': '--quick'}]\n")
    with pytest.raises(SystemExit, match=r"bench_worse.py:2: PUBLISHED\[0\]: args may not set --out or --quick"):
        report.main(["--bench-dir", str(bench), "--only", "worse", "--list"])
    (bench / "bench_worse.py").write_text("PUBLISHED = [{'args': 3}]\n")
    with pytest.raises(SystemExit, match="must be a dict with a string 'args'"):
        report.main(["--bench-dir", str(bench), "--only", "worse", "--list"])


def test_every_benchmark_script_takes_quick_and_out_and_its_published_runs_parse():
    scripts = report.discover(ROOT / "benchmarks")
    assert {"jobshop", "serverless", "vm", "malloc", "storage", "taskalloc"} <= set(scripts)
    for env, script in scripts.items():
        r = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, cwd=ROOT,
                           timeout=120)
        assert r.returncode == 0 and "--quick" in r.stdout and "--out" in r.stdout, (env, r.stderr[-500:])
        for run in report.published_runs(script):
            for path in re.findall(r"agents/checkpoints/[\w.-]+\.zip", run["args"]):
                assert (ROOT / path).is_file(), (env, path)    # a shipped checkpoint a published run names


def test_a_section_another_report_wrote_meanwhile_is_kept(bench, tmp_path, monkeypatch):
    """Two `--only` reports on one page (e.g. two environments re-run side by side): each lays
    its own sections over the page as it is when it writes, so neither loses the other's."""
    out = tmp_path / "results.md"
    assert report.main(["--quick", "--bench-dir", str(bench), "--out", str(out)]) == 1
    real_run_one = report.run_one

    def run_one_while_another_report_writes(env, *args, **kwargs):
        res = real_run_one(env, *args, **kwargs)
        sections, rows = report.existing_sections(out)          # the other report finishes 'bad' now
        sections["bad"] = sections["bad"].replace("failed (exit 3)", "failed (exit 3) NEWER")
        report.write_atomic(out, report.page(sections, rows, ["--only", "bad"]))
        return res

    monkeypatch.setattr(report, "run_one", run_one_while_another_report_writes)
    assert report.main(["--bench-dir", str(bench), "--out", str(out), "--only", "good"]) == 0
    text = out.read_text()
    assert "NEWER" in text and "| [good](#good) | 2 | full | ok |" in text


def test_stale_figures_of_the_rerun_environment_only_are_removed(tmp_path):
    """A re-run section leaves in img/results/ only the figures its runs wrote: an earlier run's
    figure that is no longer saved goes, another environment's (even one whose name starts the
    same) and other files stay."""
    envs = {"vm": None, "vm_big": None, "jobshop": None}
    for name in ("vm_0_heatmap.png", "vm_1_heatmap.png", "vm_big_0_map.png", "jobshop_0_gantt.png", "vm_notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    assert report.owner("vm_big_0_map.png", envs) == "vm_big" and report.owner("vm_1_heatmap.png", envs) == "vm"
    assert report.remove_stale_figures(tmp_path, "vm", {"vm_0_heatmap.png"}, envs) == ["vm_1_heatmap.png"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["jobshop_0_gantt.png", "vm_0_heatmap.png",
                                                          "vm_big_0_map.png", "vm_notes.txt"]
