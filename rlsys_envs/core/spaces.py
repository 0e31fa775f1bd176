"""Action spaces that know the environment's current action mask.

Gymnasium's and SB3's ``check_env`` (and many users) call ``env.action_space.sample()`` with no
mask. In rlsys an action outside the mask is an error, so a plain ``Discrete`` would make those
samples fail. :class:`MaskedDiscrete` is a ``Discrete`` whose ``sample()`` draws among the
currently legal actions of its environment when no explicit mask is given. It holds only a weak
reference to the environment and pickles as a plain ``Discrete``, so checkpoints never carry an
environment with them.
"""
from __future__ import annotations

import weakref
from typing import Callable

import numpy as np
from gymnasium import spaces


class MaskedDiscrete(spaces.Discrete):
    """``Discrete(n)`` whose default ``sample()`` respects the bound environment's action mask."""

    def __init__(self, n: int, mask_fn: Callable[[], np.ndarray | None] | None = None, seed=None, start: int = 0):
        super().__init__(n, seed=seed, start=start)
        self._mask_ref = weakref.WeakMethod(mask_fn) if mask_fn is not None else None

    def sample(self, mask=None, probability=None):
        if mask is None and probability is None and self._mask_ref is not None:
            mask_fn = self._mask_ref()
            current = mask_fn() if mask_fn is not None else None
            if current is not None and np.any(current):
                mask = np.asarray(current, dtype=np.int8)
        return super().sample(mask=mask, probability=probability)

    def __reduce__(self):
        return (spaces.Discrete, (int(self.n), None, int(self.start)))


def split_mask(mask: np.ndarray, nvec) -> list[np.ndarray]:
    """A flat ``MultiDiscrete`` mask (the per-dimension masks concatenated, as sb3-contrib's
    ``MaskablePPO`` takes it) split into one mask per dimension."""
    nvec = np.asarray(nvec, np.int64).reshape(-1)
    return np.split(np.asarray(mask), np.cumsum(nvec)[:-1])


def multi_discrete_legal(mask: np.ndarray | None, nvec, action) -> bool:
    """Whether every component of a ``MultiDiscrete`` ``action`` is allowed by its dimension's part
    of the flat ``mask`` (per-dimension masks: the components are chosen independently)."""
    if mask is None:
        return True
    nvec = np.asarray(nvec, np.int64).reshape(-1)
    offsets = np.concatenate([[0], np.cumsum(nvec)[:-1]])
    return bool(np.all(np.asarray(mask)[offsets + np.asarray(action, np.int64).reshape(-1)]))


class MaskedMultiDiscrete(spaces.MultiDiscrete):
    """1-D ``MultiDiscrete(nvec)`` whose default ``sample()`` draws every component among the legal
    values of its dimension in the bound environment's flat mask (see :func:`split_mask`)."""

    def __init__(self, nvec, mask_fn: Callable[[], np.ndarray | None] | None = None, seed=None):
        super().__init__(np.asarray(nvec, np.int64), seed=seed)
        if len(self.nvec.shape) != 1:
            raise ValueError(f"MaskedMultiDiscrete takes a 1-D nvec, got shape {self.nvec.shape}")
        self._mask_ref = weakref.WeakMethod(mask_fn) if mask_fn is not None else None

    def sample(self, mask=None, probability=None):
        if mask is None and probability is None and self._mask_ref is not None:
            mask_fn = self._mask_ref()
            current = mask_fn() if mask_fn is not None else None
            if current is not None:
                parts = split_mask(current, self.nvec)
                if all(p.any() for p in parts):
                    mask = tuple(p.astype(np.int8) for p in parts)
        return super().sample(mask=mask, probability=probability)

    def __reduce__(self):
        return (spaces.MultiDiscrete, (self.nvec.copy(),))
