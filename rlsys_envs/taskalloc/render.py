"""Views of a task-allocation episode: the map (``rgb_array``) and a text view (``ansi``).

The map shows entities (dots, grey when working), the active tasks (squares sized by value, open
or working) and the assignments as lines (solid: working on the task, dashed: pre-assigned
candidate of stage 1). Instances without positions (Almighty) are drawn as a bipartite picture:
entities in a column on the left, tasks on the right, the same lines between them.
"""
from __future__ import annotations

import numpy as np

from rlsys_envs.core.render import figure_to_rgb

from .model import ASSIGN, EMPTY, OPEN, PICK, WORKING

STAGE_NAMES = {ASSIGN: "stage 1 (pre-assign)", PICK: "stage 2 (pick)"}


def _layout(env):
    """Positions of entities ``[E, 2]`` and slots ``[K, 2]``, and whether the view is bipartite."""
    m, inst = env.model, env.inst
    if inst.travel == "none" and np.ptp(inst.task_pos) == 0:
        ent = np.stack([np.zeros(m.E), np.linspace(1, 0, m.E)], 1)
        slots = np.stack([np.ones(m.K), np.linspace(0.9, 0.1, m.K)], 1)
        return ent, slots, True
    q = np.maximum(m.slot_task, 0)
    return m.pos, inst.task_pos[q], False


def render_rgb(env) -> np.ndarray:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m, inst = env.model, env.inst
    ent, slots, bipartite = _layout(env)
    fig, ax = plt.subplots(figsize=(7, 6), dpi=80)
    shown = m.slot_task >= 0
    cmap = matplotlib.colormaps["tab10"]
    for s in np.flatnonzero(shown):
        color = cmap(s % 10)
        for e in np.flatnonzero(m.entity_slot == s):
            ax.plot([ent[e, 0], slots[s, 0]], [ent[e, 1], slots[s, 1]], color=color, lw=1.2, alpha=0.8)
        if m.two_stage and m.phase in (ASSIGN, PICK):
            for e in np.flatnonzero(m.candidate == s):
                ax.plot([ent[e, 0], slots[s, 0]], [ent[e, 1], slots[s, 1]], color=color, lw=0.8, ls="--", alpha=0.6)
        q = m.slot_task[s]
        size = 80 + 400 * max(m.value[q], 0) / env.money_scale
        face = color if m.slot_state[s] == WORKING else "white"
        ax.scatter(*slots[s], marker="s", s=size, facecolor=face, edgecolor=color, linewidth=2, zorder=3)
        ax.annotate(f"T{q} {m.value[q]:.1f}", slots[s], textcoords="offset points", xytext=(6, 6), fontsize=8)
    working = m.entity_slot >= 0
    jitter = 0 if bipartite else 0.08 * inst.map_size / 6
    offs = np.random.default_rng(0).uniform(-jitter, jitter, ent.shape) if jitter else 0
    pts = ent + offs
    ax.scatter(pts[~working, 0], pts[~working, 1], s=18, color="tab:blue", label="free entity", zorder=4)
    ax.scatter(pts[working, 0], pts[working, 1], s=18, color="0.5", label="working entity", zorder=4)
    if bipartite:
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_xlim(-0.3, 1.4)
        for e in range(m.E):
            skills = ",".join(inst.dims[i][-1] if len(inst.dims[i]) else str(i)
                              for i in np.flatnonzero(inst.entity_cap[e]))
            if m.E <= 40:
                ax.annotate(f"E{e} [{skills}]", ent[e], textcoords="offset points", xytext=(-62, -3), fontsize=6)
    else:
        pad = 0.05 * inst.map_size
        ax.set_xlim(-pad, inst.map_size + pad)
        ax.set_ylim(-pad, inst.map_size + pad)
        ax.set_aspect("equal")
    stage = STAGE_NAMES.get(m.phase, "between epochs")
    ax.set_title(f"{inst.name}: t={m.t}/{inst.max_steps}, {stage}, net {m.total_net:.1f}, "
                 f"done {m.completed}, declined {m.declined}", fontsize=9)
    ax.legend(loc="lower right", fontsize=7)
    return figure_to_rgb(fig)


def render_ansi(env) -> str:
    m, inst = env.model, env.inst
    stage = STAGE_NAMES.get(m.phase, "between epochs")
    lines = [f"{inst.name} t={m.t}/{inst.max_steps} {stage}; net value {m.total_net:.2f}; completed {m.completed}, "
             f"declined {m.declined}; queue {inst.n_tasks - m.next_task} left"]
    state_name = {EMPTY: "empty", OPEN: "open", WORKING: "working"}
    for s in range(m.K):
        q = int(m.slot_task[s])
        if q < 0:
            lines.append(f"  slot {s}: empty")
            continue
        req = inst.task_req[q].tolist()
        who = np.flatnonzero(m.entity_slot == s).tolist()
        extra = f" entities {who}" if who else ""
        if m.current_slot == s:
            extra += f" <- picking {m.picks}, remaining {m.remaining.tolist()}"
        lines.append(f"  slot {s}: task {q} {state_name[int(m.slot_state[s])]} value {m.value[q]:.2f} "
                     f"req {req}{extra}")
    free = int(m.available().sum())
    lines.append(f"  entities: {m.E} ({free} available, {int((m.entity_slot >= 0).sum())} working)")
    return "\n".join(lines)
