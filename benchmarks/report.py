#!/usr/bin/env python
"""The results page: run every environment's benchmark and write ``docs/results.md``.

    python benchmarks/report.py --quick            # minutes: every bench_<env>.py with --quick
    python benchmarks/report.py                    # the published tables (full budgets; long)
    python benchmarks/report.py --quick --only jobshop,serverless --out /tmp/results.md

Every ``benchmarks/bench_<env>.py`` is found by its name (a new environment's script is picked up
without changes here) and run in a fresh process as ``bench_<env>.py [--quick] --out <tmp>/<env>.md``.
The page gets, per script, the markdown it wrote and the figures it saved beside that file
(``<env>_<name>.png``, copied to ``docs/img/results/``), and at the top the machine (CPUs,
platform, Python and library versions), the git commit, the budget and each script's wall time.
A script that fails is reported on the page with the end of its output, and the exit status is 1.
The page and the figures are written atomically; the numbers on it are what the scripts printed.
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rlsys_agents.files import write_atomic  # noqa: E402

LIBRARIES = ("numpy", "torch", "gymnasium", "stable_baselines3", "sb3_contrib", "torch_geometric", "ortools", "scipy")


def discover(folder: Path) -> dict[str, Path]:
    """``{env: path}`` of every ``bench_<env>.py`` in ``folder`` (``bench_common.py`` is the shared helper)."""
    return {p.stem[len("bench_"):]: p for p in sorted(folder.glob("bench_*.py")) if p.stem != "bench_common"}


def machine() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    cpu = platform.processor() or ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    out = {"platform": platform.platform(), "cpu": cpu or "unknown", "cpu count": str(os.cpu_count()),
           "python": platform.python_version()}
    for lib in LIBRARIES:
        try:
            out[lib] = version(lib.replace("_", "-"))
        except PackageNotFoundError:
            out[lib] = "not installed"
    return out


def git_commit(root: Path) -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=30,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown (not a git checkout)"
    return sha + (" with uncommitted changes" if dirty else "")


def demote(markdown: str) -> str:
    """Headings one level down (the page's ``##`` is the environment), at most ``######``."""
    return re.sub(r"^(#{1,5}) ", lambda m: "#" + m.group(1) + " ", markdown, flags=re.M)


def run_script(env: str, script: Path, quick: bool, work: Path, timeout: float | None) -> dict:
    out = work / f"{env}.md"
    cmd = [sys.executable, str(script)] + (["--quick"] if quick else []) + ["--out", str(out)]
    log = work / f"{env}.log"
    t0 = time.perf_counter()
    env_vars = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in (str(ROOT), os.environ.get("PYTHONPATH"))
                                                           if p)}
    with open(log, "w") as fh:
        try:
            rc = subprocess.run(cmd, cwd=ROOT, stdout=fh, stderr=subprocess.STDOUT, timeout=timeout,
                                env=env_vars).returncode
        except subprocess.TimeoutExpired:
            rc = "timeout"
    wall = time.perf_counter() - t0
    text = out.read_text() if out.is_file() else ""
    figures = sorted(work.glob(f"{env}_*.png"))
    tail = "\n".join(log.read_text(errors="replace").splitlines()[-25:])
    shown = f"python benchmarks/{script.name}" + (" --quick" if quick else "")
    return {"env": env, "script": script.name, "command": shown, "rc": rc, "wall_s": wall, "markdown": text,
            "figures": figures, "tail": tail}


def page(results: list[dict], quick: bool, img_rel: str, info: dict, commit: str, argv: list[str]) -> str:
    ok = all(r["rc"] == 0 for r in results)
    lines = ["# Results", "",
             f"Written by `python benchmarks/report.py{' ' + ' '.join(argv) if argv else ''}` on "
             f"{datetime.datetime.now().astimezone().strftime('%Y-%m-%d %H:%M %Z')}; every number below is what "
             "the benchmark scripts printed (regenerate the page, do not edit it).", "",
             f"- budget: {'quick (each script with --quick)' if quick else 'full'}",
             f"- commit: `{commit}`"]
    lines += [f"- {k}: {v}" for k, v in info.items()]
    lines += ["", "| environment | script | status | wall time |", "|---|---|---|---|"]
    for r in results:
        status = "ok" if r["rc"] == 0 else ("timed out" if r["rc"] == "timeout" else f"failed (exit {r['rc']})")
        lines.append(f"| [{r['env']}](#{r['env']}) | `{r['command']}` | {status} | {r['wall_s']:.0f} s |")
    if not ok:
        lines += ["", "**Some benchmarks failed: their sections show the end of their output.**"]
    for r in results:
        lines += ["", f"## {r['env']}", "", f"`{r['command']}` ({r['wall_s']:.0f} s)", ""]
        text = r["markdown"]
        linked = set()
        for fig in r["figures"]:
            pattern = f"]({fig.name})"
            if pattern in text:
                linked.add(fig.name)
                text = text.replace(pattern, f"]({img_rel}/{fig.name})")
        lines.append(demote(text.strip()) if text.strip() else "_(no tables written)_")
        for fig in r["figures"]:
            if fig.name not in linked:
                lines += ["", f"![{fig.stem}]({img_rel}/{fig.name})"]
        if r["rc"] != 0:
            lines += ["", f"**{r['script']} {'timed out' if r['rc'] == 'timeout' else 'failed'}**; the end of its "
                          "output:", "", "```", r["tail"], "```"]
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="every benchmark with --quick (minutes each)")
    ap.add_argument("--only", default=None, metavar="ENVS",
                    help="comma-separated environments (bench_<env>.py) to run (default: all)")
    ap.add_argument("--out", default=str(ROOT / "docs" / "results.md"), metavar="FILE.md",
                    help="the page (default docs/results.md); figures go to img/results/ beside it")
    ap.add_argument("--timeout", type=float, default=None, metavar="S", help="per-script time limit in seconds")
    ap.add_argument("--bench-dir", default=str(ROOT / "benchmarks"), help=argparse.SUPPRESS)
    argv = sys.argv[1:] if argv is None else list(argv)
    args = ap.parse_args(argv)
    scripts = discover(Path(args.bench_dir))
    if args.only:
        wanted = [e.strip() for e in args.only.split(",") if e.strip()]
        unknown = [e for e in wanted if e not in scripts]
        if unknown:
            raise SystemExit(f"--only: no benchmarks/bench_<env>.py for {', '.join(unknown)}; "
                             f"found: {', '.join(scripts)}")
        scripts = {e: scripts[e] for e in wanted}
    if not scripts:
        raise SystemExit(f"no bench_<env>.py scripts in {args.bench_dir}")
    out = Path(args.out).resolve()
    img_dir = out.parent / "img" / "results"
    from tqdm import tqdm

    results = []
    with tempfile.TemporaryDirectory(prefix="rlsys_report_") as tmp:
        bar = tqdm(scripts.items(), desc="benchmarks", unit="script", file=sys.stderr)
        for env, script in bar:
            bar.set_postfix_str(f"{script.name}{' --quick' if args.quick else ''}")
            r = run_script(env, script, args.quick, Path(tmp), args.timeout)
            results.append(r)
            bar.write(f"{env}: {'ok' if r['rc'] == 0 else 'FAILED'} in {r['wall_s']:.0f} s", file=sys.stderr)
        for r in results:
            for fig in r["figures"]:
                write_atomic(img_dir / fig.name, fig.read_bytes())
        shown = (["--quick"] if args.quick else []) + (["--only", args.only] if args.only else []) + (
            ["--timeout", f"{args.timeout:g}"] if args.timeout else [])
        text = page(results, args.quick, os.path.relpath(img_dir, out.parent), machine(), git_commit(ROOT), shown)
    write_atomic(out, text)
    print(f"wrote {out} ({len(results)} benchmarks, {sum(r['wall_s'] for r in results):.0f} s)")
    return 0 if all(r["rc"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
