"""benchmarks/report.py: discovers bench_<env>.py, runs each with --out, assembles the results page."""
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
ap = argparse.ArgumentParser()
ap.add_argument("--quick", action="store_true")
ap.add_argument("--out")
args = ap.parse_args()
with tee_stdout(args.out):
    print("## Good benchmark (" + ("quick" if args.quick else "full") + ")\\n")
    print(table(["policy", "score"], [["a", 1.5], ["b", 2.5]]))
    import matplotlib; matplotlib.use("Agg"); import matplotlib.pyplot as plt
    fig = figure_beside(args.out, "curve")
    plt.plot([0, 1]); plt.savefig(fig)
    print(f"\\n![a curve]({{fig.name}})")
'''
BAD = "import sys\nprint('starting')\nprint('something broke', file=sys.stderr)\nsys.exit(3)\n"


def test_report_runs_every_bench_script_and_writes_the_page(tmp_path):
    bench = tmp_path / "benchmarks"
    bench.mkdir()
    (bench / "bench_good.py").write_text(GOOD.format(bench=str(ROOT / "benchmarks")))
    (bench / "bench_bad.py").write_text(BAD)
    (bench / "bench_common.py").write_text("raise SystemExit('the helper module is not a benchmark')\n")
    (bench / "other.py").write_text("raise SystemExit('not a bench_ script')\n")
    out = tmp_path / "docs" / "results.md"
    (out.parent / "img" / "results").mkdir(parents=True)
    rc = report.main(["--quick", "--bench-dir", str(bench), "--out", str(out)])
    assert rc == 1                                            # one script failed
    text = out.read_text()
    assert "| [bad](#bad) | `python benchmarks/bench_bad.py --quick` | failed (exit 3) |" in text
    assert "| [good](#good) | `python benchmarks/bench_good.py --quick` | ok |" in text
    assert "### Good benchmark (quick)" in text and "| a | 1.5 |" in text   # headings one level down
    assert "something broke" in text and "common" not in text.split("## bad")[0].split("| environment")[1]
    assert "![a curve](img/results/good_curve.png)" in text
    assert (out.parent / "img" / "results" / "good_curve.png").read_bytes()[:4] == b"\x89PNG"
    for key in ("- cpu count: ", "- python: ", "- torch: ", "- platform: ", "- commit: `"):
        assert key in text
    assert not list(out.parent.glob(".results.md.*"))        # written atomically, no temporary left
    assert report.main(["--bench-dir", str(bench), "--out", str(out), "--only", "good"]) == 0
    assert "bench_bad" not in out.read_text() and "(full)" in out.read_text()
    with pytest.raises(SystemExit, match="no benchmarks/bench_<env>.py for nope"):
        report.main(["--bench-dir", str(bench), "--only", "nope"])


def test_every_benchmark_script_takes_quick_and_out():
    scripts = report.discover(ROOT / "benchmarks")
    assert {"jobshop", "serverless", "vm"} <= set(scripts)
    for env, script in scripts.items():
        r = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, cwd=ROOT,
                           timeout=120)
        assert r.returncode == 0 and "--quick" in r.stdout and "--out" in r.stdout, (env, r.stderr[-500:])
