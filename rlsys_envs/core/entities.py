"""Padded entity tables: rows of entities of one kind (PMs, VMs, buffers, devices, tasks, ...).

An environment whose entity counts change between episodes pads each table to a maximum and
marks the real rows. :func:`entity_spaces` declares a table as two observation keys,

=========================  ===================  ==================================================
key                        shape / dtype        meaning
=========================  ===================  ==================================================
``<name>_features``        [rows, F] float32    one row per entity (padding rows are 0)
``<name>_mask``            [rows]    int8       1 for a real entity
=========================  ===================  ==================================================

and :func:`entity_tables` finds the declared tables of an observation space, so that the
attention extractors in ``agents/`` read them by declaration, whatever else the observation holds.
"""
from __future__ import annotations

import numpy as np
from gymnasium import spaces

FEATURES_SUFFIX = "_features"
MASK_SUFFIX = "_mask"


def entity_spaces(name: str, max_rows: int, n_features: int, low: float = 0.0, high: float = 1.0,
                  dtype=np.float32) -> dict[str, spaces.Box]:
    """The two ``Box`` spaces of a padded table of ``max_rows`` entities with ``n_features`` each."""
    if max_rows < 1 or n_features < 1:
        raise ValueError(f"entity table {name!r} needs max_rows >= 1 and n_features >= 1, got {max_rows}, {n_features}")
    return {f"{name}{FEATURES_SUFFIX}": spaces.Box(low, high, (max_rows, n_features), dtype),
            f"{name}{MASK_SUFFIX}": spaces.Box(0, 1, (max_rows,), np.int8)}


def pack_entities(name: str, rows: np.ndarray, max_rows: int, dtype=np.float32) -> dict[str, np.ndarray]:
    """Pad ``rows`` (``[n, F]``, ``n <= max_rows``) into the two arrays of table ``name``."""
    rows = np.asarray(rows, dtype=dtype)
    n = rows.shape[0]
    if n > max_rows:
        raise ValueError(f"entity table {name!r} has {n} rows, more than max_rows={max_rows}")
    features = np.zeros((max_rows, rows.shape[1]), dtype)
    features[:n] = rows
    mask = np.zeros(max_rows, np.int8)
    mask[:n] = 1
    return {f"{name}{FEATURES_SUFFIX}": features, f"{name}{MASK_SUFFIX}": mask}


def entity_tables(observation_space: spaces.Dict) -> list[str]:
    """Names of the entity tables declared in ``observation_space`` (in key order): every
    ``<name>_features`` key ``[rows, F]`` with a ``<name>_mask`` key ``[rows]``."""
    sp = observation_space.spaces
    out = []
    for key, space in sp.items():
        if not key.endswith(FEATURES_SUFFIX) or len(space.shape) != 2:
            continue
        name = key[: -len(FEATURES_SUFFIX)]
        mask = sp.get(f"{name}{MASK_SUFFIX}")
        if mask is not None and mask.shape == space.shape[:1]:
            out.append(name)
    return out
