"""Greedy inference of row-pointer checkpoints in numpy, incremental over the context tables.

A row-pointer checkpoint (``PointerPolicy`` over :class:`rlsys_agents.extractors.EntityNodeExtractor`,
e.g. the memory mapping game's ``malloc_ppo.zip``) encodes *every* row of its context tables at
every step: on a 2,000-buffer program that is a 2,000-row MLP per decision, plus SB3's
``predict`` overhead, about 28 s for one episode. :class:`FastPointerPolicy` computes the same
greedy action in numpy and only what changes:

* **context tables** (:class:`_PooledTable`): between two steps only a few rows of the buffer
  table change (the buffer just decided, the current one, savings of buffers that share an
  operation with it), so each row's embedding is kept and re-encoded only when its features
  change; a *toggle* column (a 0/1 feature that flips for hundreds of rows per step, such as
  "overlaps the current buffer") keeps both embeddings of each row. The mean and max pooling is
  kept up to date incrementally too (a running sum and per-block maxima), so a step costs the
  changed rows, not the table;
* **the action table**: only its real rows (the keys of the attention and of the pooling) and
  the legal ones are encoded, and only the legal ones are scored;
* **a single legal action** is returned without running the network at all (the argmax of one
  logit is that action); on large programs most buffers fit nowhere and have only the slow one.

The greedy action is the argmax of the masked logits, the mode that ``predict(deterministic=True)``
returns (ties and float32 rounding aside; the tests compare them step by step).

Supported: ``EntityNodeExtractor`` with ``Linear`` + activation row MLPs, context MLPs ending in
ReLU and post-norm ``TransformerEncoderLayer``s with ReLU (the defaults of the extractor),
``PointerPolicy``'s ``score_net``. :func:`supports` says whether a model qualifies.
"""
from __future__ import annotations

import numpy as np

from rlsys_envs.core.policy import Policy

from .fast_inference import _ACTIVATIONS, _layers


def _run(layers, x: np.ndarray) -> np.ndarray:
    for layer in layers:
        x = x @ layer[1] + layer[2] if layer[0] == "linear" else layer[1](x)
    return x


def _layer_norm(x, weight, bias, eps):
    mu = x.mean(-1, keepdims=True)
    var = ((x - mu) ** 2).mean(-1, keepdims=True)
    return (x - mu) / np.sqrt(var + eps) * weight + bias


def _np(t) -> np.ndarray:
    return t.detach().cpu().numpy().astype(np.float32).copy()


def supports(model) -> bool:
    """Whether ``model`` is a row-pointer checkpoint :class:`FastPointerPolicy` can run."""
    try:
        _Weights(model)
    except (ValueError, AttributeError):
        return False
    return True


class _Weights:
    def __init__(self, model):
        pol = model.policy
        fe = pol.features_extractor
        if type(fe).__name__ != "EntityNodeExtractor" or not getattr(pol, "rows_are_actions", False):
            raise ValueError("not a row-pointer checkpoint (EntityNodeExtractor whose rows are the actions)")
        self.table, self.ctx_keys = fe.table, list(fe.context_tables)
        self.row = _layers(fe.row_net)
        self.ctx = {k: _layers(fe.ctx_nets[k]) for k in self.ctx_keys}
        for key, layers in self.ctx.items():
            if not layers or layers[-1][0] != "act" or layers[-1][1] is not _ACTIVATIONS["ReLU"]:
                raise ValueError(f"the numpy inference needs context MLPs ending in ReLU ({key!r})")
        self.attn = []
        if fe.attn is not None:
            for layer in fe.attn.layers:
                if layer.norm_first or getattr(layer.activation, "__name__", "") != "relu":
                    raise ValueError("only post-norm attention layers with ReLU are supported")
                sa = layer.self_attn
                self.attn.append({
                    "heads": sa.num_heads, "w_in": _np(sa.in_proj_weight).T, "b_in": _np(sa.in_proj_bias),
                    "w_out": _np(sa.out_proj.weight).T, "b_out": _np(sa.out_proj.bias),
                    "w1": _np(layer.linear1.weight).T, "b1": _np(layer.linear1.bias),
                    "w2": _np(layer.linear2.weight).T, "b2": _np(layer.linear2.bias),
                    "n1": (_np(layer.norm1.weight), _np(layer.norm1.bias), layer.norm1.eps),
                    "n2": (_np(layer.norm2.weight), _np(layer.norm2.bias), layer.norm2.eps)})
        first, act, last = pol.score_net
        hidden = fe.hidden
        w = _np(first.weight)
        self.w_row, self.w_ctx, self.b_first = w[:, :hidden].T, w[:, hidden:].T, _np(first.bias)
        if type(act).__name__ not in _ACTIVATIONS:
            raise ValueError(f"score activation {type(act).__name__} is not supported")
        self.act = _ACTIVATIONS[type(act).__name__]
        self.w_last, self.b_last = _np(last.weight).T, _np(last.bias)
        self.keys = set(model.observation_space.spaces)


class _PooledTable:
    """The mean and max pooled embedding of one context table, kept up to date row by row.

    Each row's embedding (``emb``; with a *toggle* column, a 0/1 feature that flips for many rows
    at once such as "overlaps the current buffer", both embeddings, column 0 and 1) is computed
    once and again only when another feature of the row changes. The pooled result is kept
    incrementally too: ``sel`` holds each row's embedding under its current toggle (zeros for
    the padded rows), ``total`` their float64 sum and ``block_max`` the maximum over blocks of
    ``BLOCK`` rows, so a step costs the changed rows and the blocks they fall in, not the whole
    table (a 2,000-row buffer table where about 200 toggles flip per step). The context MLP ends
    in a ReLU, so every embedding is >= 0 and a padded row's zeros never change the max.
    """

    BLOCK = 32     # rows per block of the maximum (16-64 cost about the same on a 2,000-row table)

    def __init__(self, layers, shape, toggle: int | None, key: str):
        self.layers, self.toggle, self.key, self.shape = layers, toggle, key, shape
        n = shape[0]
        width = [la for la in layers if la[0] == "linear"][-1][1].shape[1]
        blocks = -(-n // self.BLOCK)
        self.prev = np.zeros(shape, np.float32)
        self.emb = np.zeros((n, 2 if toggle is not None else 1, width), np.float32)
        self.valid = np.zeros(n, bool)                  # a nonzero feature besides the toggle
        self.on = np.zeros(n, bool)
        self.sel = np.zeros((blocks * self.BLOCK, width), np.float32)
        self.total = np.zeros(width, np.float64)
        self.block_max = np.zeros((blocks, width), np.float32)
        self.first = True
        self.ones = np.ones(shape[1], np.uint8)

    def _check_toggle(self, values: np.ndarray) -> None:
        if not ((values == 0.0) | (values == 1.0)).all():
            raise ValueError(f"toggle column {self.toggle} of {self.key!r} holds values other than 0 and 1")

    def update(self, table: np.ndarray) -> np.ndarray:
        """The pooled embedding of ``table`` (the previous call's table with some rows changed)."""
        c = self.toggle
        if self.first:
            rows = encode = np.arange(len(table))
            self.first = False
        else:
            # rows that differ: a product with ones is much faster than any() over a short axis
            rows = np.flatnonzero((table != self.prev).view(np.uint8) @ self.ones)
            if not len(rows):
                return self._pooled()
            changed = table[rows] != self.prev[rows]
            if c is not None:
                changed[:, c] = False
            encode = rows[changed.any(1)]
        sub = table[rows]
        if c is not None:
            self._check_toggle(sub[:, c])
            self.on[rows] = sub[:, c] > 0.5
        self.prev[rows] = sub
        if len(encode):
            x = table[encode]
            if c is not None:
                x[:, c] = 0.0
            self.valid[encode] = (x != 0).any(1)
            # an all-zero row is padding (left out of the pooling): its embedding is zeros; with the
            # toggle set the row is real (nonzero), whatever its other features
            self.emb[encode, 0] = _run(self.layers, x) * self.valid[encode, None]
            if c is not None:
                x[:, c] = 1.0
                self.emb[encode, 1] = _run(self.layers, x)
        new = self.emb[rows, self.on[rows].astype(np.intp)]
        self.total += (new - self.sel[rows]).sum(0, dtype=np.float64)
        self.sel[rows] = new
        touched = np.zeros(len(self.block_max), bool)
        touched[rows // self.BLOCK] = True
        blocks = np.flatnonzero(touched)
        self.block_max[blocks] = self.sel.reshape(len(self.block_max), self.BLOCK, -1)[blocks].max(1)
        return self._pooled()

    def _pooled(self) -> np.ndarray:
        count = int(np.count_nonzero(self.valid | self.on))
        if not count:
            return np.zeros(2 * self.sel.shape[1], np.float32)
        return np.concatenate([self.total / count, self.block_max.max(0)]).astype(np.float32)


class FastPointerPolicy(Policy):
    """Greedy actions of a row-pointer checkpoint (module docstring); ``model`` is the loaded
    SB3 model (:func:`rlsys_agents.evaluation.load_sb3`)."""

    def __init__(self, model, toggles: dict | None = None, name: str = "policy (fast greedy)"):
        self.w = _Weights(model)
        self.name = name
        self.toggles = {k: tuple(int(c) for c in v) for k, v in (toggles or {}).items()}
        for key, cols in self.toggles.items():
            if key not in self.w.ctx_keys or len(cols) != 1:
                raise ValueError(f"toggles: one 0/1 column of a context table ({self.w.ctx_keys}) per key, "
                                 f"got {key!r}: {cols}")
        self._cache: dict = {}

    def reset(self, env, seed=None):
        super().reset(env, seed)
        self._cache = {}

    def _context(self, key: str, table: np.ndarray) -> np.ndarray:
        """Pooled embedding (mean and max over the real rows) of a context table, re-encoding
        only the rows that changed since the previous call (:class:`_PooledTable`)."""
        table = np.asarray(table, np.float32)
        state = self._cache.get(key)
        if state is None or state.shape != table.shape:
            cols = self.toggles.get(key, ())
            state = self._cache[key] = _PooledTable(self.w.ctx[key], table.shape, cols[0] if cols else None, key)
        return state.update(table)

    @staticmethod
    def _attention(x: np.ndarray, keys: np.ndarray | None, p: dict) -> np.ndarray:
        """One post-norm transformer layer over the rows ``x``; every row attends to the rows
        ``keys`` (indices into ``x``; None: all of them), as torch's key padding mask does."""
        n, d = x.shape
        heads = p["heads"]
        dh = d // heads
        qkv = x @ p["w_in"] + p["b_in"]
        q = qkv[:, :d].reshape(n, heads, dh).transpose(1, 0, 2)
        kv = qkv if keys is None else qkv[keys]
        m = len(kv)
        k = kv[:, d:2 * d].reshape(m, heads, dh).transpose(1, 2, 0)
        v = kv[:, 2 * d:].reshape(m, heads, dh).transpose(1, 0, 2)
        scores = q @ k
        scores *= np.float32(1.0 / np.sqrt(dh))
        scores -= scores.max(-1, keepdims=True)
        att = np.exp(scores, out=scores)
        att /= att.sum(-1, keepdims=True)
        out = (att @ v).transpose(1, 0, 2).reshape(n, d) @ p["w_out"] + p["b_out"]
        x = _layer_norm(x + out, *p["n1"])
        ff = np.maximum(x @ p["w1"] + p["b1"], 0.0) @ p["w2"] + p["b2"]
        return _layer_norm(x + ff, *p["n2"])

    def _scores(self, obs: dict, wanted: np.ndarray | None) -> np.ndarray:
        """Logits of the action rows ``wanted`` (indices, increasing; None: every row).

        Only the rows that matter are encoded: the real rows of the action table (the keys of
        the attention and the pooling; padded, all-zero rows are neither) and the wanted ones."""
        w = self.w
        if set(obs) != w.keys:
            raise ValueError(f"checkpoint {self.name!r} expects observation keys {sorted(w.keys)} but the env "
                             f"gives {sorted(obs)}")
        table = np.asarray(obs[w.table], np.float32)
        valid = (table != 0).any(1)
        if not valid.any() or wanted is None:
            used = np.arange(len(table))              # (no real row: torch attends over all rows)
        else:
            used = np.union1d(np.flatnonzero(valid), wanted)
        inside = valid[used]
        keys = None if inside.all() or not inside.any() else np.flatnonzero(inside)
        h = _run(w.row, table[used])
        for p in w.attn:
            h = self._attention(h, keys, p)
        real = h if keys is None else h[keys]
        own = np.concatenate([real.mean(0), real.max(0)]) if inside.any() else np.zeros(2 * h.shape[1], np.float32)
        pooled = np.concatenate([own] + [self._context(k, obs[k]) for k in w.ctx_keys])
        if wanted is not None and len(used) != len(wanted):
            h = h[np.searchsorted(used, wanted)]
        z = w.act(h @ w.w_row + (pooled @ w.w_ctx + w.b_first))
        return (z @ w.w_last + w.b_last).reshape(-1)

    def logits(self, obs: dict) -> np.ndarray:
        """Action logits ``[n_actions]`` (before the mask)."""
        return self._scores(obs, None)

    def act(self, env, obs, info):
        """The legal action of the highest logit (the first on ties); a single legal action is
        returned without running the network (the greedy choice cannot differ), so the context
        tables are only brought up to date at the decisions that need them."""
        legal = np.flatnonzero(env.action_masks())
        if len(legal) == 1:
            return int(legal[0])
        return int(legal[np.argmax(self._scores(obs, legal))])
