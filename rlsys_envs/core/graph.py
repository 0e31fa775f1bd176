"""Padded graph observations that SB3 can store and a torch-geometric extractor can unpad.

Stable-Baselines3 stores observations in fixed-shape buffers and does not accept nested ``Dict``
spaces, so a variable-size graph is flattened into five top-level keys sharing a prefix:

=========================  ===================  ==================================================
key                        shape / dtype        meaning
=========================  ===================  ==================================================
``<p>_x``                  [N, F] float32       node features (rows past the real nodes are 0)
``<p>_edge_index``         [2, E] int64 [#]_    (source, target) node indices, padded with -1
``<p>_edge_type``          [E]    int64 [#]_    edge type in ``[0, n_edge_types)``, 0 when padded
``<p>_node_mask``          [N]    int8          1 for a real node
``<p>_edge_mask``          [E]    int8          1 for a real edge
=========================  ===================  ==================================================

.. [#] or a smaller integer type given to :func:`graph_spaces` (the VM env uses int32 / int8).

``rlsys_agents.extractors`` turns a batch of these back into a ``torch_geometric`` batch. Node ``i`` of
the padded array is node ``i`` of the graph, so an environment can address nodes by position
(e.g. "the next operation of job j is node k").
"""
from __future__ import annotations

import numpy as np
from gymnasium import spaces

GRAPH_KEYS = ("x", "edge_index", "edge_type", "node_mask", "edge_mask")

#: ``action_node`` value of an action that has no graph node (a pointer policy never chooses it)
NO_NODE = -1
#: ``action_node`` value of a *global* action (e.g. stop), scored from the pooled graph embedding
GLOBAL_ACTION = -2


def graph_spaces(prefix: str, max_nodes: int, node_dim: int, max_edges: int, n_edge_types: int,
                 low: float = -np.inf, high: float = np.inf, index_dtype=np.int64,
                 type_dtype=np.int64) -> dict[str, spaces.Box]:
    """The five ``Box`` spaces of a padded graph, keyed ``<prefix>_<part>``.

    ``index_dtype`` / ``type_dtype``: integer dtypes of the edge index and edge types (int64 by
    default); a large graph can use int32 / int8 to copy fewer bytes per step (the extractors cast).
    """
    if np.iinfo(index_dtype).max < max_nodes or np.iinfo(type_dtype).max < n_edge_types:
        raise ValueError(f"index_dtype {np.dtype(index_dtype)} / type_dtype {np.dtype(type_dtype)} cannot hold "
                         f"{max_nodes} nodes / {n_edge_types} edge types")
    return {
        f"{prefix}_x": spaces.Box(low, high, (max_nodes, node_dim), np.float32),
        f"{prefix}_edge_index": spaces.Box(-1, max(max_nodes - 1, 0), (2, max_edges), index_dtype),
        f"{prefix}_edge_type": spaces.Box(0, max(n_edge_types - 1, 0), (max_edges,), type_dtype),
        f"{prefix}_node_mask": spaces.Box(0, 1, (max_nodes,), np.int8),
        f"{prefix}_edge_mask": spaces.Box(0, 1, (max_edges,), np.int8),
    }


def pack_graph(prefix: str, x: np.ndarray, edge_index: np.ndarray, edge_type: np.ndarray | None,
               max_nodes: int, max_edges: int) -> dict[str, np.ndarray]:
    """Pad a graph with ``n <= max_nodes`` nodes and ``e <= max_edges`` edges into the five arrays."""
    x = np.asarray(x, dtype=np.float32)
    edge_index = np.asarray(edge_index, dtype=np.int64).reshape(2, -1)
    n, e = x.shape[0], edge_index.shape[1]
    if n > max_nodes:
        raise ValueError(f"graph has {n} nodes, more than max_nodes={max_nodes}")
    if e > max_edges:
        raise ValueError(f"graph has {e} edges, more than max_edges={max_edges}")
    px = np.zeros((max_nodes, x.shape[1]), np.float32)
    px[:n] = x
    pei = np.full((2, max_edges), -1, np.int64)
    pei[:, :e] = edge_index
    pet = np.zeros(max_edges, np.int64)
    if edge_type is not None:
        pet[:e] = edge_type
    nm = np.zeros(max_nodes, np.int8)
    nm[:n] = 1
    em = np.zeros(max_edges, np.int8)
    em[:e] = 1
    return {f"{prefix}_x": px, f"{prefix}_edge_index": pei, f"{prefix}_edge_type": pet,
            f"{prefix}_node_mask": nm, f"{prefix}_edge_mask": em}


def graph_prefixes(observation_space: spaces.Dict) -> list[str]:
    """Prefixes of the padded graphs contained in a ``Dict`` observation space."""
    return sorted(k[: -len("_edge_index")] for k in observation_space.spaces if k.endswith("_edge_index"))


def graph_keys(prefix: str) -> list[str]:
    """The five observation keys of the padded graph ``prefix``."""
    return [f"{prefix}_{part}" for part in GRAPH_KEYS]
