"""Views of the hybrid-storage environment: per-device occupancy and request latency over the
episode, with the migration agent's migrations marked (``rgb_array``), and a text summary (``ansi``)."""
from __future__ import annotations

import numpy as np

from rlsys_envs.core.render import figure_to_rgb


def render_ansi(env) -> str:
    m = env.model
    lines = [f"{env.config} | {env.trace.name}: request {m.i}/{m.tr.n}, working set {m.tr.n_pages} pages"]
    for d, dev in enumerate(env.devices):
        used, cap = m.pool.used[d], m.pool.cap[d]
        bar = "#" * int(round(20 * used / cap)) if cap else ""
        lines.append(f"  dev {d} {dev.key:<9} {used:>8}/{cap:<8} pages [{bar:<20}] backlog {m.backlog_us(d):9.1f} us")
    lat = m.latencies()
    mean = float(lat.mean()) if len(lat) else 0.0
    lines.append(f"  mean latency {mean:.1f} us, evictions {m.evictions}, migrations {m.migrations}, "
                 f"placement moves {m.placement_moves}; migration decisions left {env.decisions_left}")
    return "\n".join(lines)


def render_rgb(env) -> np.ndarray:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = env.model
    hist = env.history
    x = np.array([h[0] for h in hist], float)
    used = np.array([h[1] for h in hist], float).reshape(len(hist), env.n_devices)
    fig, (ax0, ax1) = plt.subplots(2, 1, figsize=(8, 5), dpi=80, sharex=True)
    for d, dev in enumerate(env.devices):
        ax0.plot(x, 100 * used[:, d], drawstyle="steps-post", label=f"{d}: {dev.key}")
    ax0.set_ylabel("occupancy %")
    ax0.set_ylim(-2, 105)
    ax0.legend(loc="center right", fontsize=7)
    ax0.set_title(f"{env.config} on {env.trace.name}: request {m.i} of {m.tr.n}", fontsize=9)
    lat = m.latencies()
    if len(lat):
        w = max(1, len(lat) // 200)
        n = len(lat) // w * w
        if n:
            xs = np.arange(n).reshape(-1, w).mean(1)
            ax1.plot(xs, lat[:n].reshape(-1, w).mean(1), color="0.3", lw=0.8, label=f"mean of {w} requests")
        ax1.set_yscale("log")
    marks = np.array(env.migration_marks, float).reshape(-1, 2)
    for kind, colour, marker, label in ((1, "tab:green", "^", "promotion"), (0, "tab:red", "v", "eviction")):
        sel = marks[marks[:, 1] == kind, 0]
        if len(sel):
            ax0.scatter(sel, np.full(len(sel), 102.0), s=10, c=colour, marker=marker, label=None)
            for xv in sel[:400]:
                ax1.axvline(xv, color=colour, alpha=0.15, lw=0.6)
            ax1.plot([], [], color=colour, label=f"migration ({label})")
    ax1.set_ylabel("latency us")
    ax1.set_xlabel("request")
    ax1.legend(loc="upper right", fontsize=7)
    ax1.set_xlim(0, max(m.tr.n, 1))
    fig.tight_layout()
    return figure_to_rgb(fig)
