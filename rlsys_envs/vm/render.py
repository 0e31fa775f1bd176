"""Cluster views: a heat map of PMs x NUMA nodes (used / usable free / fragmented cores), before and
now, as an RGB array (matplotlib Agg), and a text view (ansi)."""
from __future__ import annotations

import numpy as np

from rlsys_envs.core.render import figure_to_rgb

from .model import Cluster

USED = np.array([0.55, 0.60, 0.70])
FREE = np.array([0.20, 0.70, 0.30])
FRAG = np.array([0.90, 0.25, 0.20])
BACK = np.array([1.0, 1.0, 1.0])


def cluster_image(cluster: Cluster, pms_per_row: int | None = None) -> np.ndarray:
    """An RGB float image: one block per PM with a column per NUMA node, one row of pixels per core.

    From the bottom of each column: used cores (grey), free cores in whole fragment units (green),
    fragmented free cores ``free mod unit`` (red).
    """
    n = cluster.n_pms
    per_row = pms_per_row or max(1, int(np.ceil(np.sqrt(n * 2.0))))
    rows = int(np.ceil(n / per_row))
    h = int(cluster.numa_cpu.max())
    cell_w, cell_h = 6, h + 2  # two 2-pixel NUMA columns with a 1-pixel gap, then a 1-pixel spacer
    img = np.ones((rows * cell_h, per_row * cell_w, 3)) * BACK
    free = cluster.free[:, 0].reshape(n, 2)
    cap = cluster.numa_cpu
    u = cluster.frag_unit
    for p in range(n):
        r, col = divmod(p, per_row)
        for k in range(2):
            c, f = int(cap[p, k]), int(free[p, k])
            frag = f % u
            used = c - f
            x = col * cell_w + 3 * k
            base = (r + 1) * cell_h - 1  # bottom row of this cell (exclusive of the spacer)
            column = np.ones((h, 3)) * BACK
            column[h - used:] = USED
            column[h - c: h - used] = FREE
            column[h - c: h - c + frag] = FRAG
            img[base - h: base, x] = column
            img[base - h: base, x + 1] = column
    return img


def render_rgb(env) -> np.ndarray:
    """Before (at reset) and now, side by side, with FR and slot counts; uint8 ``[H, W, 3]``."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    before, now = env.initial, env.cluster
    fig, axes = plt.subplots(1, 2, figsize=(12, 5.2), dpi=80)
    for ax, c, title in ((axes[0], before, "at reset"), (axes[1], now, f"after {env.migrations} migrations")):
        ax.imshow(cluster_image(c), interpolation="nearest", aspect="auto")
        ax.set_title(f"{title}: FR {c.fragment_rate():.3f}, {c.slots()} x {c.frag_unit}-core slots", fontsize=10)
        ax.set_xticks([])
        ax.set_yticks([])
    fig.legend(handles=[Patch(color=USED, label="used cores"), Patch(color=FREE, label="free (whole units)"),
                        Patch(color=FRAG, label=f"fragmented (free mod {now.frag_unit})")],
               loc="lower center", ncol=3, fontsize=9, frameon=False)
    fig.suptitle(f"{now.n_pms} PMs x 2 NUMA nodes, {now.n_vms} VMs (one column per NUMA node, one pixel per core)",
                 fontsize=10)
    fig.tight_layout(rect=(0, 0.06, 1, 0.95))
    return figure_to_rgb(fig)


def _bar(cap: int, free: int, unit: int, width: int = 22) -> str:
    used = cap - free
    frag = free % unit
    scale = width / max(cap, 1)
    nu, nf = int(round(used * scale)), int(round(frag * scale))
    return ("#" * nu + "." * max(0, width - nu - nf) + "x" * nf)[:width].ljust(width)


def render_ansi(env, max_rows: int = 24) -> str:
    """Summary lines, then one line per PM (the most fragmented ones first when there are many)."""
    c = env.cluster
    u = c.frag_unit
    lines = [f"VM rescheduling: {c.n_pms} PMs, {c.n_vms} VMs, migrations {env.migrations}/{env.mnl}, "
             f"phase {env.phase}" + (f" (VM {env.selected} selected)" if env.selected >= 0 else ""),
             f"FR {c.fragment_rate():.4f} (at reset {env.fr_initial:.4f}), {c.slots()} x {u}-core slots "
             f"(at reset {env.slots_initial}), {c.total_free_cpu} free cores",
             f"legend: # used, . free in whole {u}-core units, x fragmented (free mod {u})"]
    free = c.free[:, 0].reshape(c.n_pms, 2)
    order = np.arange(c.n_pms)
    if c.n_pms > max_rows:
        order = np.argsort(-(free % u).sum(axis=1), kind="stable")[:max_rows]
        lines.append(f"(the {max_rows} PMs with most fragmented cores)")
    for p in order:
        nv = int((c.vm_pm == p).sum())
        lines.append(f"pm {p:>4} [{_bar(int(c.numa_cpu[p, 0]), int(free[p, 0]), u)}|"
                     f"{_bar(int(c.numa_cpu[p, 1]), int(free[p, 1]), u)}]"
                     f" free {int(free[p, 0]):>2}/{int(free[p, 1]):>2}"
                     f" frag {int(free[p, 0] % u):>2}/{int(free[p, 1] % u):>2} vms {nv}")
    return "\n".join(lines) + "\n"
