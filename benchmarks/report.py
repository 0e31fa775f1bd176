#!/usr/bin/env python
"""The results page: run every environment's benchmark and write ``docs/results.md``.

    python benchmarks/report.py                    # the published tables (full budgets; hours on 2 cores)
    python benchmarks/report.py --quick            # minutes: every bench_<env>.py with --quick
    python benchmarks/report.py --only vm          # re-run one environment's runs; the other sections stay
    python benchmarks/report.py --quick --out /tmp/results.md
    rlsys report ...                               # the same, where the package is installed from a clone

Every ``benchmarks/bench_<env>.py`` is found by its name (a new environment's script is picked up
without changes here). A full run runs, per script, each run its module-level ``PUBLISHED`` list
names (read from the source, not imported)::

    PUBLISHED = [
        {"args": "--only c --checkpoint agents/checkpoints/jobshop_gnn_ppo.zip", "about": "What it shows."},
        ...
    ]

each in a fresh process as ``bench_<env>.py <args> --out <tmp>/<env>_<k>.md`` (a script without the list
is run once without arguments); ``--quick`` runs each script once as ``bench_<env>.py --quick``. The
page gets, per run, its command, the ``about`` text, the markdown the script wrote and the figures it
saved beside that file (``<env>_<k>_<name>.png``, copied to ``docs/img/results/``).

Each environment's section carries its own provenance (date, commit, budget, wall time, machine), so
``--only`` can re-run some environments into an existing page and keep the other sections as they
were (``--fresh`` writes a page with only the environments run). A run that fails or times out is
reported in its section with the end of its output, and the exit status is 1. The page and the
figures are written atomically; the numbers on it are what the scripts printed. When a section is
finished, the environment's figures in ``img/results/`` that its runs did not write now are deleted
(an earlier report's, of runs that no longer save them).
"""
from __future__ import annotations

import argparse
import ast
import datetime
import os
import platform
import re
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from rlsys_agents.files import write_atomic  # noqa: E402

LIBRARIES = ("numpy", "torch", "gymnasium", "stable_baselines3", "sb3_contrib", "torch_geometric", "ortools", "scipy")
BEGIN, END = "<!-- report:{env} begin -->", "<!-- report:{env} end -->"
SECTION = re.compile(r"<!-- report:(?P<env>[\w-]+) begin -->\n(?P<body>.*?)<!-- report:(?P=env) end -->", re.S)
SUMMARY_ROW = re.compile(r"^<!-- row:(?P<env>[\w-]+) -->(?P<row>.*)$", re.M)


def discover(folder: Path) -> dict[str, Path]:
    """``{env: path}`` of every ``bench_<env>.py`` in ``folder`` (``bench_common.py`` is the shared helper)."""
    return {p.stem[len("bench_"):]: p for p in sorted(folder.glob("bench_*.py")) if p.stem != "bench_common"}


def published_runs(script: Path) -> list[dict]:
    """The runs of ``script``'s full budget: its module-level ``PUBLISHED`` list of ``{"args": str, "about":
    str}`` literals, read with :mod:`ast` (so no heavy import); ``[{"args": "", "about": ""}]`` without one.
    A malformed list is an error naming the script and the line."""
    tree = ast.parse(script.read_text(), filename=str(script))
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "PUBLISHED" for t in node.targets):
            where = f"{script}:{node.lineno}: PUBLISHED"
            try:
                runs = ast.literal_eval(node.value)
            except ValueError:
                raise ValueError(f"{where} must be a literal list of {{'args': str, 'about': str}}") from None
            if not isinstance(runs, list) or not runs:
                raise ValueError(f"{where} must be a non-empty list, got {type(runs).__name__}")
            for i, r in enumerate(runs):
                if not isinstance(r, dict) or not isinstance(r.get("args"), str) or set(r) - {"args", "about"}:
                    raise ValueError(f"{where}[{i}] must be a dict with a string 'args' (and an optional "
                                     f"'about'), got {r!r}")
                if {"--out", "--quick"} & set(shlex.split(r["args"])):
                    raise ValueError(f"{where}[{i}]: args may not set --out or --quick (the report does)")
            return [{"args": r["args"], "about": r.get("about", "")} for r in runs]
    return [{"args": "", "about": ""}]


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


def load_average() -> str:
    """The 1-minute load average (other work on the machine changes wall times and throughput)."""
    try:
        return f"{os.getloadavg()[0]:.1f}"
    except (OSError, AttributeError):
        return "unknown"


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
    """Headings two levels down (the page's ``##`` is the environment, ``###`` a run), at most ``######``."""
    return re.sub(r"^(#{1,4}) ", lambda m: "##" + m.group(1) + " ", markdown, flags=re.M)


def command_line(script: Path, args: str, quick: bool) -> str:
    """How a run is shown on the page and by ``--list``: as a user would type it from the repository root."""
    return " ".join(["python", f"benchmarks/{script.name}"] + ([args] if args else []) + (["--quick"] if quick else []))


def run_one(env: str, script: Path, args: str, quick: bool, out: Path, timeout: float | None) -> dict:
    """Run ``script`` once with ``args`` (plus ``--quick``) and ``--out out``; what it wrote and how it ended."""
    cmd = [sys.executable, str(script)] + shlex.split(args) + (["--quick"] if quick else []) + ["--out", str(out)]
    log = out.with_suffix(".log")
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
    return {"env": env, "command": command_line(script, args, quick), "rc": rc, "wall_s": wall,
            "markdown": out.read_text() if out.is_file() else "",
            "figures": sorted(out.parent.glob(f"{out.stem}_*.png")),
            "tail": "\n".join(log.read_text(errors="replace").splitlines()[-25:])}


def owner(figure: str, envs) -> str | None:
    """The environment whose runs wrote the figure file ``figure`` (``<env>_<k>_<name>.png`` or
    ``<env>_<name>.png``): the longest of ``envs`` it starts with followed by ``_``; None for another file."""
    owners = [env for env in envs if figure.startswith(f"{env}_") and figure.endswith(".png")]
    return max(owners, key=len) if owners else None


def remove_stale_figures(img_dir: Path, env: str, written: set[str], envs) -> list[str]:
    """Delete the figures of ``env`` in ``img_dir`` that its finished section does not have (``written``):
    an earlier report's, from runs that no longer save them, so the folder holds what the page shows."""
    stale = [p for p in sorted(img_dir.glob(f"{env}_*.png")) if owner(p.name, envs) == env and p.name not in written]
    for p in stale:
        p.unlink()
    return [p.name for p in stale]


def status_of(rc) -> str:
    return "ok" if rc == 0 else ("timed out" if rc == "timeout" else f"failed (exit {rc})")


def section(env: str, runs: list[dict], quick: bool, img_rel: str, provenance: dict) -> str:
    """The markdown of one environment's section, between its markers."""
    wall = sum(r["wall_s"] for r in runs)
    info = ", ".join(f"{k} {v}" for k, v in provenance["machine"].items())
    lines = [BEGIN.format(env=env), f"## {env}", "",
             f"Ran {provenance['date']}, commit `{provenance['commit']}`, budget "
             f"{'quick' if quick else 'full'}, {wall:.0f} s in all, load average {provenance['load']} at the start. "
             f"Machine: {info}.", ""]
    for r in runs:
        lines += [f"### `{r['command']}`", "", f"_{status_of(r['rc'])}, {r['wall_s']:.0f} s_", ""]
        if r.get("about"):
            lines += [r["about"].strip(), ""]
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
            lines += ["", f"**{status_of(r['rc'])}**; the end of its output:", "", "```", r["tail"], "```"]
        lines.append("")
    lines.append(END.format(env=env))
    return "\n".join(lines)


def summary_row(env: str, runs: list[dict], quick: bool, provenance: dict) -> str:
    status = "; ".join(status_of(r["rc"]) for r in runs if r["rc"] != 0) or "ok"
    return (f"<!-- row:{env} -->| [{env}](#{env}) | {len(runs)} | {'quick' if quick else 'full'} | {status} | "
            f"{sum(r['wall_s'] for r in runs):.0f} s | {provenance['date']} | `{provenance['commit'][:12]}` |")


def page(sections: dict[str, str], rows: dict[str, str], argv: list[str]) -> str:
    """The whole page: the header, one summary row per environment, the sections in name order."""
    failed = [env for env, row in rows.items() if "failed (exit" in row or "timed out" in row]
    lines = ["# Results", "",
             "Written by `python benchmarks/report.py` (`rlsys report`), last as `python benchmarks/report.py"
             f"{' ' + ' '.join(argv) if argv else ''}`; every number below is what the benchmark scripts printed "
             "(regenerate the page or a section with `--only ENV`, do not edit it). Each section says when, at "
             "which commit and on which machine it ran; wall times and throughput depend on the machine and "
             "its load, results of wall-clock-limited solvers can too. How the shipped checkpoints were trained: "
             "[agents/checkpoints/README.md](../agents/checkpoints/README.md); statistics over training seeds and "
             "sweeps: [sweeps.md](sweeps.md).", "",
             "| environment | runs | budget | status | wall time | ran | commit |", "|---|---|---|---|---|---|---|"]
    lines += [rows[env] for env in sorted(rows)]
    if failed:
        lines += ["", f"**Some runs failed ({', '.join(sorted(failed))}): their sections show the end of their "
                      "output.**"]
    for env in sorted(sections):
        lines += ["", sections[env]]
    return "\n".join(lines) + "\n"


def existing_sections(path: Path) -> tuple[dict[str, str], dict[str, str]]:
    """The sections and summary rows of a page this script wrote (empty for another or missing file)."""
    if not path.is_file():
        return {}, {}
    text = path.read_text()
    sections = {m["env"]: m.group(0) for m in SECTION.finditer(text)}
    rows = {m["env"]: m.group(0) for m in SUMMARY_ROW.finditer(text) if m["env"] in sections}
    return sections, rows


def main(argv=None, prog=None) -> int:
    """``python benchmarks/report.py`` and ``rlsys report`` (``prog``: the name the help shows)."""
    ap = argparse.ArgumentParser(prog=prog, description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="every benchmark once with --quick (minutes each)")
    ap.add_argument("--only", default=None, metavar="ENVS",
                    help="comma-separated environments (bench_<env>.py) to run (default: all); the page keeps "
                         "the other environments' sections")
    ap.add_argument("--fresh", action="store_true", help="write a page with only the environments run now")
    ap.add_argument("--out", default=str(ROOT / "docs" / "results.md"), metavar="FILE.md",
                    help="the page (default docs/results.md); figures go to img/results/ beside it")
    ap.add_argument("--timeout", type=float, default=None, metavar="S", help="per-run time limit in seconds")
    ap.add_argument("--list", action="store_true", help="print the commands a run would make, and stop")
    ap.add_argument("--bench-dir", default=str(ROOT / "benchmarks"), help=argparse.SUPPRESS)
    argv = sys.argv[1:] if argv is None else list(argv)
    args = ap.parse_args(argv)
    scripts = discover(Path(args.bench_dir))
    every_env = list(scripts)           # whose figures are whose in img/results/ (remove_stale_figures)
    if args.only:
        wanted = [e.strip() for e in args.only.split(",") if e.strip()]
        unknown = [e for e in wanted if e not in scripts]
        if unknown:
            raise SystemExit(f"--only: no benchmarks/bench_<env>.py for {', '.join(unknown)}; "
                             f"found: {', '.join(scripts)}")
        scripts = {e: scripts[e] for e in wanted}
    if not scripts:
        raise SystemExit(f"no bench_<env>.py scripts in {args.bench_dir}")
    try:
        plan = {env: ([{"args": "", "about": ""}] if args.quick else published_runs(script))
                for env, script in scripts.items()}
    except (ValueError, SyntaxError) as exc:
        raise SystemExit(f"report: {exc}") from None
    if args.list:
        for env, runs in plan.items():
            for r in runs:
                print(command_line(scripts[env], r["args"], args.quick))
        return 0
    out = Path(args.out).resolve()
    img_dir = out.parent / "img" / "results"
    img_rel = os.path.relpath(img_dir, out.parent)
    sections, rows = {}, {}     # the sections this run finished
    from tqdm import tqdm

    todo = [(env, k, r) for env, runs in plan.items() for k, r in enumerate(runs)]
    done: dict[str, list[dict]] = {env: [] for env in plan}
    provenance = {env: None for env in plan}
    with tempfile.TemporaryDirectory(prefix="rlsys_report_") as tmp:
        bar = tqdm(todo, desc="benchmark runs", unit="run", file=sys.stderr)
        for env, k, r in bar:
            if provenance[env] is None:
                provenance[env] = {"date": datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
                                   "commit": git_commit(ROOT), "machine": machine(), "load": load_average()}
            bar.set_postfix_str(f"{scripts[env].name} {r['args']}{' --quick' if args.quick else ''}"[:60])
            tag = env if len(plan[env]) == 1 else f"{env}_{k}"
            res = run_one(env, scripts[env], r["args"], args.quick, Path(tmp) / f"{tag}.md", args.timeout)
            res["about"] = r["about"]
            done[env].append(res)
            bar.write(f"{res['command']}: {status_of(res['rc'])} in {res['wall_s']:.0f} s", file=sys.stderr)
            for fig in res["figures"]:
                write_atomic(img_dir / fig.name, fig.read_bytes())
            if len(done[env]) == len(plan[env]):    # the section is complete: put it on the page now
                sections[env] = section(env, done[env], args.quick, img_rel, provenance[env])
                remove_stale_figures(img_dir, env, {f.name for r in done[env] for f in r["figures"]}, every_env)
                rows[env] = summary_row(env, done[env], args.quick, provenance[env])
                # the page as it is now, with this run's sections laid over it: the sections another
                # report (e.g. `--only serverless` beside `--only taskalloc`) wrote meanwhile stay
                on_page, page_rows = ({}, {}) if args.fresh else existing_sections(out)
                write_atomic(out, page({**on_page, **sections}, {**page_rows, **rows}, argv))
    runs = [r for rs in done.values() for r in rs]
    print(f"wrote {out} ({len(runs)} runs of {len(plan)} benchmarks, {sum(r['wall_s'] for r in runs):.0f} s)")
    return 0 if all(r["rc"] == 0 for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
