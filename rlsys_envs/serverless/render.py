"""Views of a serverless episode: a time-series plot (rgb_array) and a text table (ansi)."""
from __future__ import annotations

import numpy as np

from rlsys_envs.core.render import figure_to_rgb


def render_ansi(env) -> str:
    """One line per decision so far: time, arrivals, throughput, pods, limit, p95, errors."""
    h = env.history
    snap = env.sim.snapshot()
    lines = [f"ServerlessAutoscaling  workload={env.workload_kind} profile={env.profile_name} "
             f"t={env.sim.now:.0f}s limit={env.sim.limit} ready={snap['ready']} pending={snap['pending']} "
             f"in_flight={snap['in_flight']:.0f} queued={snap['queued']:.0f}",
             f"{'t[s]':>7} {'arr/s':>8} {'done/s':>8} {'pods':>5} {'limit':>5} {'p95[s]':>8} {'err':>6}"]
    for i in range(len(h.get("t", []))):
        lines.append(f"{h['t'][i]:7.0f} {h['arrival_rate'][i]:8.1f} {h['throughput'][i]:8.1f} "
                     f"{h['pods_ready'][i]:5.1f} {h['limit'][i]:5d} {h['p95'][i]:8.2f} {h['error_rate'][i]:6.3f}")
    return "\n".join(lines) + "\n"


def render_rgb(env) -> np.ndarray:
    """Three stacked panels over simulated time: arrival rate and throughput; ready pods and the
    concurrency limit; p95 latency and error rate. Returns an RGB array (H, W, 3) uint8."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h = env.history
    t = np.array(h.get("t", []), float)
    fig, axes = plt.subplots(3, 1, figsize=(8, 6), dpi=80, sharex=True)
    try:
        ax = axes[0]
        ax.step(t, h.get("arrival_rate", []), where="pre", label="arrivals/s")
        ax.step(t, h.get("throughput", []), where="pre", label="completions/s")
        ax.set_ylabel("req/s")
        ax.legend(loc="upper right", fontsize=7)
        ax.set_title(f"{env.workload_kind} / {env.profile_name}: t = {env.sim.now:.0f} s", fontsize=9)
        ax = axes[1]
        ax.step(t, h.get("pods_ready", []), where="pre", color="tab:green", label="ready pods (mean)")
        ax.set_ylabel("pods")
        ax.set_ylim(0, env.max_pods + 1)
        ax2 = ax.twinx()
        ax2.step(t, h.get("limit", []), where="pre", color="tab:red", label="limit")
        ax2.set_ylabel("limit", color="tab:red")
        ax2.set_ylim(0, 320)
        h1, l1 = ax.get_legend_handles_labels()
        h2, l2 = ax2.get_legend_handles_labels()
        ax.legend(h1 + h2, l1 + l2, loc="upper left", fontsize=7)
        ax = axes[2]
        ax.step(t, h.get("p95", []), where="pre", color="tab:purple", label="p95 latency")
        ax.set_ylabel("p95 [s]")
        ax.set_xlabel("simulated time [s]")
        ax3 = ax.twinx()
        ax3.step(t, h.get("error_rate", []), where="pre", color="tab:orange", label="error rate")
        ax3.set_ylim(0, 1)
        ax3.set_ylabel("errors", color="tab:orange")
        h1, l1 = ax.get_legend_handles_labels()
        h2, l2 = ax3.get_legend_handles_labels()
        ax.legend(h1 + h2, l1 + l2, loc="upper right", fontsize=7)
        fig.tight_layout()
        return figure_to_rgb(fig)
    finally:
        plt.close(fig)
