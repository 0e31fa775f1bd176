"""Greedy inference of row-pointer checkpoints in numpy, incremental over the context tables.

A row-pointer checkpoint (``PointerPolicy`` over :class:`rlsys_agents.extractors.EntityNodeExtractor`,
e.g. the memory mapping game's ``malloc_ppo.zip``) encodes *every* row of its context tables at
every step: on a 2,000-buffer program that is a 2,000-row MLP per decision, plus SB3's
``predict`` overhead, about 13 s for one episode. Between two steps only a few rows of the
buffer table change (the buffer just decided, the current one, savings of buffers that share an
operation with it), so :class:`FastPointerPolicy` keeps each context row's embedding and
re-encodes only the rows whose features changed (compared with the previous observation), then
pools (mean and max over the real rows), runs the action table (MLP, the attention layers) and
the score head in numpy. The greedy action is the argmax of the masked logits, the mode that
``predict(deterministic=True)`` returns (ties and float32 rounding aside; the tests compare them).

Supported: ``EntityNodeExtractor`` with ``Linear`` + activation row / context MLPs and post-norm
``TransformerEncoderLayer``s with ReLU (the defaults of the extractor), ``PointerPolicy``'s
``score_net``. :func:`supports` says whether a model qualifies.
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


def _pool(h: np.ndarray, valid: np.ndarray) -> np.ndarray:
    if not valid.any():
        return np.zeros(2 * h.shape[1], np.float32)
    real = h[valid]
    return np.concatenate([real.mean(0), real.max(0)])


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
        for key in self.toggles:
            if self.w.ctx[key][-1][0] != "act" or self.w.ctx[key][-1][1] is not _ACTIVATIONS["ReLU"]:
                raise ValueError(f"toggles need a context MLP ending in ReLU ({key!r})")
        self._cache: dict = {}

    def reset(self, env, seed=None):
        super().reset(env, seed)
        self._cache = {}

    def _context(self, key: str, table: np.ndarray) -> np.ndarray:
        """Pooled embedding of a context table, re-encoding only the rows that changed. With a
        *toggle* column (a 0/1 feature that flips for many rows at once, e.g. "overlaps the
        current buffer"), each row keeps both embeddings (column 0 and 1), re-encoded only when
        another feature of the row changes."""
        table = np.asarray(table, np.float32)
        cols = self.toggles.get(key, ())
        base = table.copy()
        if cols:
            c = cols[0]
            if not ((table[:, c] == 0.0) | (table[:, c] == 1.0)).all():
                raise ValueError(f"toggle column {c} of {key!r} holds values other than 0 and 1")
            base[:, c] = 0.0
        old = self._cache.get(key)
        if old is None or old[0].shape != base.shape:
            rows = np.arange(len(base))
            prev = base.copy()
            width = [la for la in self.w.ctx[key] if la[0] == "linear"][-1][1].shape[1]
            emb = np.zeros((len(base), 2 if cols else 1, width), np.float32)
            valid = np.zeros(len(base), bool)
        else:
            prev, emb, valid = old
            rows = np.flatnonzero((base != prev).any(1))
        if len(rows):
            prev[rows] = base[rows]
            valid[rows] = (base[rows] != 0).any(1)   # a real row has a nonzero feature besides the toggle
            x = base[rows]
            emb[rows, 0] = _run(self.w.ctx[key], x) * valid[rows, None]     # padded rows embed as zeros
            if cols:
                x[:, cols[0]] = 1.0
                emb[rows, 1] = _run(self.w.ctx[key], x) * valid[rows, None]
        self._cache[key] = (prev, emb, valid)
        if not cols:
            return _pool(emb[:, 0], valid)
        on = table[:, cols[0]] > 0.5
        count = int(np.count_nonzero(valid | on))
        if not count:
            return np.zeros(2 * emb.shape[2], np.float32)
        # the context MLP ends in a ReLU: embeddings are >= 0, so the padded rows' zeros never
        # change the max, and they add nothing to the sum
        h = emb[np.arange(len(on)), on.astype(np.intp)]
        return np.concatenate([h.sum(0) / count, h.max(0)]).astype(np.float32)

    def _attention(self, x: np.ndarray, valid: np.ndarray, p: dict) -> np.ndarray:
        n, d = x.shape
        heads = p["heads"]
        q, k, v = np.split(x @ p["w_in"] + p["b_in"], 3, axis=1)
        dh = d // heads
        q = q.reshape(n, heads, dh).transpose(1, 0, 2)
        k = k.reshape(n, heads, dh).transpose(1, 0, 2)
        v = v.reshape(n, heads, dh).transpose(1, 0, 2)
        scores = q @ k.transpose(0, 2, 1) / np.float32(np.sqrt(dh))
        if valid.any():
            scores = np.where(valid[None, None, :], scores, -np.inf)
        scores = scores - scores.max(-1, keepdims=True)
        att = np.exp(scores)
        att /= att.sum(-1, keepdims=True)
        out = (att @ v).transpose(1, 0, 2).reshape(n, d) @ p["w_out"] + p["b_out"]
        x = _layer_norm(x + out, *p["n1"])
        ff = np.maximum(x @ p["w1"] + p["b1"], 0.0) @ p["w2"] + p["b2"]
        return _layer_norm(x + ff, *p["n2"])

    def logits(self, obs: dict) -> np.ndarray:
        """Action logits ``[n_actions]`` (before the mask)."""
        w = self.w
        if set(obs) != w.keys:
            raise ValueError(f"checkpoint {self.name!r} expects observation keys {sorted(w.keys)} but the env "
                             f"gives {sorted(obs)}")
        rows = np.asarray(obs[w.table], np.float32)
        valid = np.abs(rows).sum(1) > 0
        h = _run(w.row, rows)
        for p in w.attn:
            h = self._attention(h, valid, p)
        pooled = np.concatenate([_pool(h, valid)] + [self._context(k, obs[k]) for k in w.ctx_keys])
        z = w.act(h @ w.w_row + (pooled @ w.w_ctx + w.b_first))
        return (z @ w.w_last + w.b_last).reshape(-1)

    def act(self, env, obs, info):
        mask = np.asarray(env.action_masks(), bool)
        logits = self.logits(obs)
        return int(np.argmax(np.where(mask, logits, -np.inf)))
