"""Views of a job-shop episode: a Gantt chart (``rgb_array``) and a text view (``ansi``)."""
from __future__ import annotations

import numpy as np

from rlsys_envs.core.render import figure_to_rgb


def _job_colors(n):
    import matplotlib
    cmap = matplotlib.colormaps["tab20"] if n > 10 else matplotlib.colormaps["tab10"]
    return [cmap(i % cmap.N) for i in range(n)]


def gantt_figure(rows: np.ndarray, n_jobs: int, n_machines: int, title: str = "", now: float | None = None,
                 downs=(), blocking: bool = False):
    """A matplotlib Figure: one lane per machine, one bar per processed segment, coloured by job.
    Shutdowns are grey hatched bars; under blocking the time a finished job keeps its machine is a
    light bar of the job's colour."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = np.asarray(rows, dtype=np.int64).reshape(-1, 5)
    colors = _job_colors(n_jobs)
    h = max(2.5, 0.45 * n_machines + 1.2)
    fig, ax = plt.subplots(figsize=(10, h), dpi=100)
    if blocking and len(rows):
        # blocked time: from the end of op k to the start of op k+1 of the same job, on op k's machine
        order = np.lexsort((rows[:, 1], rows[:, 0]))
        r = rows[order]
        last = {}
        for j, k, m, s, e in r:
            last[(j, k)] = (m, e)
        firsts = {}
        for j, k, m, s, e in r:
            firsts.setdefault((j, k), s)
        for (j, k), (m, e) in last.items():
            s_next = firsts.get((j, k + 1))
            if s_next is not None and s_next > e:
                ax.barh(m, s_next - e, left=e, color=colors[j], alpha=0.3, edgecolor="none", height=0.8)
    for m, s, e in downs:
        ax.barh(m, e - s, left=s, color="0.6", hatch="///", edgecolor="0.3", height=0.8, alpha=0.6)
    for j, k, m, s, e in rows:
        ax.barh(m, e - s, left=s, color=colors[j], edgecolor="black", linewidth=0.5, height=0.8)
        if e - s > 0 and n_jobs <= 30:
            ax.text(s + (e - s) / 2, m, f"{j}", ha="center", va="center", fontsize=7)
    if now is not None:
        ax.axvline(now, color="red", linewidth=1)
    ax.set_yticks(range(n_machines))
    ax.set_yticklabels([f"M{m}" for m in range(n_machines)])
    ax.invert_yaxis()
    ax.set_xlabel("time")
    ax.set_title(title)
    end = max(int(rows[:, 4].max()) if len(rows) else 1, 1)
    ax.set_xlim(0, end * 1.02)
    from matplotlib.patches import Patch
    handles = [Patch(color=colors[j], label=f"J{j}") for j in range(n_jobs)] if n_jobs <= 20 else []
    if blocking:
        handles.append(Patch(color="0.5", alpha=0.3, label="blocked"))
    if len(downs):
        handles.append(Patch(facecolor="0.6", hatch="///", edgecolor="0.3", alpha=0.6, label="shutdown"))
    if handles:
        ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=7,
                  ncol=1 if len(handles) <= 12 else 2)
    fig.tight_layout()
    return fig


def render_gantt(env) -> np.ndarray:
    md = env.model
    rows = md.schedule_rows()
    title = f"{env.instance.name}: t={md.t}" + (f", makespan {md.makespan()}" if md.done and not md.deadlock else "")
    if md.deadlock:
        title += " (deadlock)"
    fig = gantt_figure(rows, md.n_jobs, md.n_machines, title, now=md.t, downs=getattr(md, "down_log", ()),
                       blocking=md.blocking)
    return figure_to_rgb(fig)


def save_gantt(rows, n_jobs, n_machines, path, title="", downs=(), blocking=False) -> None:
    import matplotlib.pyplot as plt
    fig = gantt_figure(rows, n_jobs, n_machines, title, downs=downs, blocking=blocking)
    fig.savefig(path)
    plt.close(fig)


_STATUS = {0: "idle", 1: "proc", 2: "blocked", 3: "done"}


def render_ansi(env) -> str:
    md = env.model
    lines = [f"{env.instance.name}  t={md.t}  decisions={env.decisions}  swaps={md.swaps}  shutdowns={md.shutdowns}"
             + ("  DEADLOCK" if md.deadlock else "") + ("  done" if md.done else "")]
    for m in range(md.n_machines):
        h = int(md.holder[m])
        state = "DOWN" if md.down[m] else ("free" if h < 0 else f"J{h} {_STATUS[int(md.job_status[h])]}")
        lines.append(f"M{m:<3} {state}")
    cand = md.cand
    for j in range(md.n_jobs):
        k = int(md.next_k[j])
        nxt = f"op {k} on M{int(md.next_m[j])} p={int(md.next_p[j])}" if md.next_m[j] >= 0 else "-"
        lines.append(f"J{j:<3} {_STATUS[int(md.job_status[j])]:<8} next: {nxt}" + ("  *" if cand[j] else ""))
    return "\n".join(lines) + "\n"
