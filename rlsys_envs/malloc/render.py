"""Views of a memory mapping episode: the fast-memory map (``rgb_array``) and a text view (``ansi``).

The map is drawn like XLA's heap view: program position on x, address on y, one rectangle per
buffer in fast memory coloured by its standalone saving; the current buffer's live range is
shaded, and the buffers left in slow memory are listed beside the map.
"""
from __future__ import annotations

import numpy as np

from rlsys_envs.core.render import figure_to_rgb


def memory_map_figure(program, offsets: np.ndarray, current: int | None = None, title: str = ""):
    """A matplotlib Figure of the placement ``offsets`` (``[N]``, -1 = slow) of ``program``."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    p = program
    fig, (ax, side) = plt.subplots(1, 2, figsize=(11, 5), dpi=90, gridspec_kw={"width_ratios": [4, 1]})
    cmap = matplotlib.colormaps["viridis"]
    scale = max(float(p.standalone.max()), 1e-300)
    fast = np.flatnonzero(offsets >= 0)
    for i in fast:
        ax.add_patch(Rectangle((p.start[i], offsets[i]), p.end[i] - p.start[i], p.size[i],
                               facecolor=cmap(p.standalone[i] / scale), edgecolor="black", linewidth=0.4))
    if current is not None and current >= 0:
        ax.axvspan(p.start[current], p.end[current], color="red", alpha=0.12, linewidth=0)
    ax.set_xlim(0, p.n_ops)
    ax.set_ylim(0, max(p.capacity, 1))
    ax.set_xlabel("program position")
    ax.set_ylabel("fast-memory address (bytes)")
    ax.set_title(title or f"{p.name}: {len(fast)} of {p.n_buffers} buffers in fast memory")
    sm = matplotlib.cm.ScalarMappable(cmap=cmap, norm=matplotlib.colors.Normalize(0, scale * 1e6))
    fig.colorbar(sm, ax=ax, label="standalone saving (us)")
    side.axis("off")
    slow = [i for i in np.argsort(-p.standalone) if offsets[i] < 0]
    lines = [f"{p.names[i]}  {p.size[i] / 2**20:.2f} MiB" for i in slow[:24]]
    if len(slow) > 24:
        lines.append(f"... {len(slow) - 24} more")
    side.text(0.0, 1.0, "slow memory (or undecided):\n" + "\n".join(lines), va="top", family="monospace",
              fontsize=7)
    fig.tight_layout()
    return fig


def render_rgb(env) -> np.ndarray:
    p, st = env.program, env.state
    title = (f"{p.name}: step {env.step_index}/{p.n_buffers}, time saved "
             f"{100 * (p.slow_time - st.time) / p.slow_time:.1f}%")
    return figure_to_rgb(memory_map_figure(p, st.offset, None if env.done else env.current, title))


def render_ansi(env, width: int = 64, height: int = 12) -> str:
    """A character map (``#`` = in use, rows = address bands from the top) and a summary."""
    p, st = env.program, env.state
    grid = np.full((height, width), ".")
    cap = max(p.capacity, 1)
    for i in np.flatnonzero(st.fast):
        x0 = int(p.start[i] * width / p.n_ops)
        x1 = max(int(np.ceil(p.end[i] * width / p.n_ops)), x0 + 1)
        y0 = int(st.offset[i] * height / cap)
        y1 = max(int(np.ceil((st.offset[i] + p.size[i]) * height / cap)), y0 + 1)
        grid[height - y1: height - y0, x0:x1] = "#"
    lines = ["".join(r) for r in grid]
    saved = 100 * (p.slow_time - st.time) / p.slow_time
    lines.append(f"{p.name}: step {env.step_index}/{p.n_buffers}, {int(st.fast.sum())} fast, "
                 f"{int((st.decided & ~st.fast).sum())} slow, time saved {saved:.2f}% "
                 f"(all-fast bound {100 * (p.slow_time - p.fast_time) / p.slow_time:.2f}%)")
    if not env.done:
        i = env.current
        lines.append(f"current: {p.names[i]} ({p.kinds[i]}), {p.size[i]} B, live [{p.start[i]}, {p.end[i]}), "
                     f"candidates {env.cand_offsets.tolist()[:8]}")
    return "\n".join(lines)
