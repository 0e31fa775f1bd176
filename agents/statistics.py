"""How sure a comparison is: mean and interquartile mean (IQM) with 95% bootstrap confidence
intervals, and the probability of improvement of one policy over another.

This follows Agarwal et al., "Deep Reinforcement Learning at the Edge of the Statistical Precipice"
(NeurIPS 2021), the method of the ``rliable`` package: scores form a matrix of shape
``(runs, tasks)``, here ``runs`` = training seeds (1 for a baseline or one checkpoint) and
``tasks`` = evaluation episodes (episode ``i`` starts from ``env.reset(seed=eval.seed + i)`` for
every policy, so the tasks are shared and paired across policies).

* **IQM** -- the mean of the middle 50 % of all ``runs x tasks`` scores (25 % trimmed mean,
  ``scipy.stats.trim_mean``), as in rliable.
* **Probability of improvement** ``P(X > Y)`` -- per task, the Mann-Whitney statistic
  ``P(x > y) + 0.5 P(x = y)`` over all pairs of a run of X and a run of Y, averaged over the tasks
  (rliable's ``probability_of_improvement``). 0.5 means no difference; for a metric where lower is
  better both sides are negated first.
* **Confidence intervals** -- percentile intervals of a stratified bootstrap, computed by
  ``scipy.stats.bootstrap(method="percentile")``. Each resample draws the tasks with replacement
  and then, independently for each drawn task, the runs with replacement (rliable's
  ``StratifiedBootstrap`` with ``task_bootstrap=True``). Resampling the tasks as well as the runs is
  our choice: the evaluation episodes are draws of the environment's instance generator, so the
  interval should cover the uncertainty from evaluating on finitely many of them, and a policy
  with a single run (a baseline, one checkpoint) then still gets an interval. Where the two sides
  of a probability of improvement are compared, one draw of tasks serves both (paired).

The ``rliable`` package itself is not used: its release 1.2.0 fails to import with pandas 3 (the
``arch`` package it requires, pinned below 8, calls pandas' ``deprecate_kwarg`` with the old
signature). ``scipy.stats.bootstrap`` resamples every sample it is given independently, so the
two-level draw above is expressed as one sample of task indices plus, per task position, one
sample of run indices.

Everything here is deterministic for a given ``seed``.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

#: bootstrap resamples per interval (rliable's figures use 50,000; 10,000 keeps a table under a second)
REPS = 10_000
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Interval:
    """A point estimate with the bounds of its confidence interval (nan where none can be given)."""

    point: float
    low: float
    high: float

    @property
    def has_interval(self) -> bool:
        return not (math.isnan(self.low) or math.isnan(self.high))

    def as_list(self) -> list[float]:
        return [self.point, self.low, self.high]


def score_matrix(runs: Sequence[Sequence[float]] | np.ndarray, name: str = "scores") -> np.ndarray:
    """``runs`` (one sequence of per-task scores per run) as a float array ``(runs, tasks)``."""
    try:
        m = np.asarray(runs, dtype=float)
    except ValueError:
        raise ValueError(f"{name}: every run must have a score for each of the same tasks (episodes)") from None
    if m.ndim == 1:
        m = m[None, :]
    if m.ndim != 2 or m.shape[0] < 1 or m.shape[1] < 1:
        raise ValueError(f"{name}: expected a (runs, tasks) matrix, got shape {m.shape}")
    if not np.all(np.isfinite(m)):
        raise ValueError(f"{name}: scores must be finite, got {m[~np.isfinite(m)][:3].tolist()}")
    return m


def iqm(values: np.ndarray, axis=None) -> np.ndarray:
    """Interquartile mean: the 25 % trimmed mean."""
    from scipy.stats import trim_mean

    return trim_mean(values, proportiontocut=0.25, axis=axis)


def _mean_of(arrays: list[np.ndarray]) -> np.ndarray:
    (a,) = arrays
    return a.reshape(a.shape[0], -1).mean(axis=1)


def _iqm_of(arrays: list[np.ndarray]) -> np.ndarray:
    (a,) = arrays
    return iqm(a.reshape(a.shape[0], -1), axis=1)


def _improvement_of(arrays: list[np.ndarray]) -> np.ndarray:
    x, y = arrays                                    # (B, Rx, M), (B, Ry, M)
    xx, yy = x[:, :, None, :], y[:, None, :, :]
    per_task = ((xx > yy) + 0.5 * (xx == yy)).mean(axis=(1, 2))
    return per_task.mean(axis=1)


def bootstrap(matrices: Sequence[np.ndarray], statistic: Callable[[list[np.ndarray]], np.ndarray],
              reps: int = REPS, confidence: float = CONFIDENCE, seed: int = 0) -> Interval:
    """Point estimate and percentile interval of ``statistic`` under the stratified bootstrap.

    ``matrices``: score matrices ``(runs_k, tasks)`` with the same tasks. ``statistic`` takes a list
    of arrays ``(B, runs_k, tasks)`` (B resampled matrices of each input) and returns ``(B,)``.
    """
    from scipy.stats import bootstrap as scipy_bootstrap

    matrices = [np.asarray(m, dtype=float) for m in matrices]
    n_tasks = matrices[0].shape[1]
    if any(m.shape[1] != n_tasks for m in matrices):
        raise ValueError(f"score matrices cover different numbers of tasks: {[m.shape for m in matrices]}")
    point = float(statistic([m[None] for m in matrices])[0])
    # samples: task indices (if >= 2 tasks), then per input with >= 2 runs one run-index sample per task position
    resample_tasks = n_tasks >= 2
    data = [np.arange(n_tasks)] if resample_tasks else []
    layout = []
    for m in matrices:
        if m.shape[0] >= 2:
            layout.append(len(data))
            data += [np.arange(m.shape[0])] * n_tasks
        else:
            layout.append(None)
    if not data:
        return Interval(point, math.nan, math.nan)

    def resampled(*samples, axis=-1):
        samples = [np.asarray(s).astype(int) for s in samples]
        if samples[0].ndim == 1:
            samples = [s[None] for s in samples]
        batch = samples[0].shape[0]
        tasks = samples[0] if resample_tasks else np.zeros((batch, n_tasks), int)
        out = []
        for m, start in zip(matrices, layout):
            if start is None:
                runs = np.zeros((batch, 1, n_tasks), int)
            else:
                runs = np.stack(samples[start:start + n_tasks], axis=-1)          # (B, R, M): run r of position j
            out.append(m[runs, tasks[:, None, :]])
        return statistic(out)

    size = max(int(np.prod([m.shape[0] for m in matrices])) * n_tasks, 1)
    res = scipy_bootstrap(data, resampled, n_resamples=int(reps), batch=max(1, min(int(reps), 4_000_000 // size)),
                          vectorized=True, paired=False, confidence_level=confidence, method="percentile",
                          rng=np.random.default_rng(seed))
    return Interval(point, float(res.confidence_interval.low), float(res.confidence_interval.high))


def mean_interval(scores, reps: int = REPS, confidence: float = CONFIDENCE, seed: int = 0) -> Interval:
    return bootstrap([score_matrix(scores)], _mean_of, reps, confidence, seed)


def iqm_interval(scores, reps: int = REPS, confidence: float = CONFIDENCE, seed: int = 0) -> Interval:
    return bootstrap([score_matrix(scores)], _iqm_of, reps, confidence, seed)


def probability_of_improvement(x, y, higher_is_better: bool = True, reps: int = REPS,
                               confidence: float = CONFIDENCE, seed: int = 0) -> Interval:
    """``P(X better than Y)`` with its interval; ``x``, ``y``: score matrices on the same tasks."""
    sign = 1.0 if higher_is_better else -1.0
    return bootstrap([sign * score_matrix(x, "x"), sign * score_matrix(y, "y")], _improvement_of, reps, confidence,
                     seed)


def gap_matrix(scores, reference) -> np.ndarray:
    """Per run and task ``(score - ref) / |ref|`` against a reference with one run (``|ref| = 0`` -> 1)."""
    s, ref = score_matrix(scores), score_matrix(reference, "reference")
    if ref.shape[0] != 1 or ref.shape[1] != s.shape[1]:
        raise ValueError(f"reference must have one run on the same {s.shape[1]} tasks, got shape {ref.shape}")
    denom = np.where(np.abs(ref) > 0, np.abs(ref), 1.0)
    return (s - ref) / denom


# ------------------------------------------------------------------------------------ tables
Runs = Sequence[dict]          # one {metric: [value per episode]} per run


@dataclass
class Comparison:
    """What :func:`compare` found: per policy and metric the mean and IQM intervals; per candidate the
    probability of improvement over the best baseline on the objective."""

    rows: dict                 # {policy: {metric: {"mean": Interval, "iqm": Interval, "runs": R, "tasks": M}}}
    improvement: dict          # {candidate: {"over": baseline, "probability": Interval}}
    objective: str
    higher_is_better: bool
    best_baseline: str | None
    reps: int
    confidence: float

    def to_json(self) -> dict:
        rows = {p: {m: {"mean": e["mean"].as_list(), "iqm": e["iqm"].as_list(), "runs": e["runs"],
                        "episodes": e["tasks"]} for m, e in row.items()} for p, row in self.rows.items()}
        imp = {c: {"over": v["over"], "metric": self.objective, "probability": v["probability"].as_list()}
               for c, v in self.improvement.items()}
        return {"estimates": rows, "probability_of_improvement": imp, "objective": self.objective,
                "higher_is_better": self.higher_is_better, "best_baseline": self.best_baseline,
                "bootstrap_resamples": self.reps, "confidence": self.confidence,
                "format": "[point, low, high]"}


def best_baseline(results: dict[str, Runs], baselines: Sequence[str], objective: str,
                  higher_is_better: bool = True) -> str | None:
    """The baseline with the best mean ``objective`` (None if none has it)."""
    scored = [(float(np.mean(score_matrix([r[objective] for r in results[b]]))), b) for b in baselines
              if b in results and all(objective in r for r in results[b])]
    if not scored:
        return None
    return (max if higher_is_better else min)(scored)[1]


def compare(results: dict[str, Runs], metrics: Sequence[str], candidates: Sequence[str], baselines: Sequence[str],
            objective: str = "return", higher_is_better: bool = True, reference: str | None = None,
            gap_metrics: Sequence[str] = (), reps: int = REPS, confidence: float = CONFIDENCE,
            seed: int = 0) -> Comparison:
    """Intervals for every policy of ``results`` (``{policy: [run, ...]}``, each run
    ``{metric: [value per episode]}``) on ``metrics`` (and ``gap_<m>`` for ``m`` in ``gap_metrics``
    against the one-run ``reference``), and the probability of improvement of each candidate over
    the best of ``baselines`` on ``objective``."""
    def estimates(s: np.ndarray) -> dict:
        return {"mean": mean_interval(s, reps, confidence, seed), "iqm": iqm_interval(s, reps, confidence, seed),
                "runs": s.shape[0], "tasks": s.shape[1]}

    rows: dict = {}
    ref_runs = results.get(reference) if reference else None
    for name, runs in results.items():
        row = {}
        for m in metrics:
            if all(m in r for r in runs):
                row[m] = estimates(score_matrix([r[m] for r in runs], f"{name} {m}"))
        if ref_runs is not None and name != reference:
            for m in gap_metrics:
                if all(m in r for r in runs) and all(m in r for r in ref_runs):
                    row[f"gap_{m}"] = estimates(gap_matrix([r[m] for r in runs], [ref_runs[0][m]]))
        rows[name] = row
    best = best_baseline(results, baselines, objective, higher_is_better)
    improvement = {}
    if best is not None:
        y = score_matrix([r[objective] for r in results[best]])
        for c in candidates:
            if c in results and c != best and all(objective in r for r in results[c]):
                x = score_matrix([r[objective] for r in results[c]])
                improvement[c] = {"over": best, "probability": probability_of_improvement(
                    x, y, higher_is_better, reps, confidence, seed)}
    return Comparison(rows, improvement, objective, higher_is_better, best, reps, confidence)


def _num(v: float, percent: bool = False) -> str:
    if math.isnan(v):
        return "-"
    if percent:
        return f"{100 * v:+.1f} %"
    if abs(v) >= 1e7:
        return f"{v:.4g}"
    if abs(v) >= 100:
        return f"{v:.1f}"
    return f"{v:.4g}"


def _ci(e: Interval, percent: bool = False) -> str:
    if not e.has_interval:
        return "-"
    return f"[{_num(e.low, percent)}, {_num(e.high, percent)}]"


def format_comparison(cmp: Comparison, title: str | None = None) -> str:
    """Markdown: one row per metric and policy (mean, IQM, their CIs), then the probabilities of improvement."""
    pct = f"{round(100 * cmp.confidence)}%"
    lines = [f"### {title}", ""] if title else []
    header = ["metric", "policy", "runs x episodes", "mean", f"mean {pct} CI", "IQM", f"IQM {pct} CI"]
    lines += ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    metrics: list[str] = []
    for row in cmp.rows.values():
        metrics += [m for m in row if m not in metrics]
    metrics = [m for m in metrics if not m.startswith("gap_")] + [m for m in metrics if m.startswith("gap_")]
    for m in metrics:
        percent = m.startswith("gap_")
        label = f"{m[4:]} gap" if percent else m
        for name, row in cmp.rows.items():
            if m in row:
                e = row[m]
                mean, mid = e["mean"], e["iqm"]
                lines.append(f"| {label} | {name} | {e['runs']} x {e['tasks']} | {_num(mean.point, percent)} | "
                             f"{_ci(mean, percent)} | {_num(mid.point, percent)} | {_ci(mid, percent)} |")
    lines.append("")
    lines.append(f"{pct} CIs: percentile intervals of {cmp.reps} stratified bootstrap resamples (episodes drawn with "
                 f"replacement, then seeds within each episode; rlsys_agents.statistics). IQM: mean of the middle 50 % "
                 f"of all seed x episode scores.")
    if cmp.improvement:
        direction = "higher" if cmp.higher_is_better else "lower"
        lines += ["", f"Probability of improvement on `{cmp.objective}` ({direction} is better) over the best "
                      f"baseline by mean {cmp.objective} ({cmp.best_baseline}); 0.5 = no difference:", "",
                  f"| policy | over | P(policy better) | {pct} CI |", "|---|---|---|---|"]
        for c, v in cmp.improvement.items():
            p = v["probability"]
            lines.append(f"| {c} | {v['over']} | {p.point:.3f} | "
                         + (f"[{p.low:.3f}, {p.high:.3f}]" if p.has_interval else "-") + " |")
    return "\n".join(lines)


def plot_comparison(cmp: Comparison, path, title: str = "", metrics: Sequence[str] | None = None) -> None:
    """One panel per metric (and per gap metric): each policy's mean (circle) and IQM (diamond) with
    their confidence intervals as horizontal bars, the values written beside them; the probability
    of improvement goes under the title. Written atomically as a PNG."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .files import write_atomic

    found: list[str] = []
    for row in cmp.rows.values():
        found += [m for m in row if m not in found]
    cols = [m for m in (metrics or found) if m in found]
    cols += [m for m in found if m.startswith("gap_") and m not in cols]
    if not cols:
        raise ValueError("nothing to plot: no metric has estimates")
    names = list(cmp.rows)
    pct = round(100 * cmp.confidence)
    fig, axes = plt.subplots(1, len(cols), figsize=(4.6 * len(cols), 0.55 * len(names) + 1.9), squeeze=False)
    for ax, m in zip(axes[0], cols):
        percent = m.startswith("gap_")
        scale = 100.0 if percent else 1.0
        ys = []
        for i, name in enumerate(names):
            e = cmp.rows[name].get(m)
            if e is None:
                continue
            ys.append(i)
            for off, key, marker, color in ((-0.15, "mean", "o", "tab:blue"), (0.15, "iqm", "D", "tab:orange")):
                est = e[key]
                y = i + off
                if est.has_interval:
                    ax.hlines(y, scale * est.low, scale * est.high, color=color, lw=2.2)
                ax.plot(scale * est.point, y, marker=marker, color=color, ms=5, ls="none",
                        label=("mean" if key == "mean" else "IQM") if i == ys[0] else None)
                ax.annotate(_num(est.point, percent), (scale * est.point, y), xytext=(0, 4), textcoords="offset points",
                            ha="center", fontsize=7)
        ax.set_yticks(range(len(names)), [n.rsplit("/", 1)[-1] for n in names], fontsize=8)
        ax.set_ylim(len(names) - 0.5, -0.5)
        ax.grid(axis="x", alpha=0.3)
        ax.set_title(f"{m[4:]} gap to reference [%]" if percent else m, fontsize=10)
        if percent:
            ax.axvline(0.0, color="grey", lw=0.8)
    axes[0][0].legend(fontsize=7, loc="best")
    sub = f"points: mean (circle) and IQM (diamond); bars: {pct}% stratified bootstrap CIs ({cmp.reps} resamples)"
    if cmp.improvement:
        parts = []
        for c, v in cmp.improvement.items():
            p = v["probability"]
            parts.append(f"P({c.rsplit('/', 1)[-1]} better than {v['over']} on {cmp.objective}) = {p.point:.2f}"
                         + (f" [{p.low:.2f}, {p.high:.2f}]" if p.has_interval else ""))
        sub += "\n" + "; ".join(parts)
    fig.suptitle((title + "\n" if title else "") + sub, fontsize=9)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=120)
    plt.close(fig)
    write_atomic(path, buf.getvalue())
