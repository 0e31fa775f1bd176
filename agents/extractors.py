"""Features extractors for SB3 policies over rlsys observations.

* :func:`unpad_graph_batch` -- a batch of padded graphs (``core.graph`` layout) -> one
  torch-geometric style batch (node features, edge index, edge types, batch vector), vectorised:
  edge indices are offset by ``b * max_nodes``, masked edges and padded nodes are dropped, and the
  surviving nodes renumbered, with no Python loop over the batch.
* :class:`GraphEncoder` -- GIN (``GINEConv``) or GATv2 message passing over that batch, returning
  dense per-node embeddings ``[B, max_nodes, H]`` (node ``i`` stays at position ``i``) and a
  mean+max pooled graph embedding ``[B, 2H]``. Its weights do not depend on ``max_nodes``.
* :class:`GraphExtractor` -- SB3 features extractor: pooled graph embedding plus the other
  (non-graph) observation keys flattened. Used by ``gnn_ppo`` with SB3's standard action head.
* :class:`GraphNodeExtractor` -- the encoder wrapped for :class:`rlsys_agents.policies.PointerPolicy`.
* :class:`EntityAttentionExtractor` -- transformer encoder over entity tables (e.g. PMs and VMs):
  every 2-D ``Box`` key ``[n_entities, F]`` is a table of entities of one type.
"""
from __future__ import annotations

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from rlsys_envs.core.entities import FEATURES_SUFFIX, MASK_SUFFIX, entity_tables
from rlsys_envs.core.graph import graph_keys, graph_prefixes


def _graph_key_set(space: gym.spaces.Dict) -> set[str]:
    """Every key of every padded graph of ``space``."""
    return {k for p in graph_prefixes(space) for k in graph_keys(p)}


def unpad_graph_batch(obs: dict[str, torch.Tensor], prefix: str):
    """Unpad a batch of padded graphs into one disjoint-union graph.

    Returns ``(x, edge_index, edge_type, batch, node_index)``: ``x`` ``[n_real, F]``,
    ``edge_index`` ``[2, e_real]`` (indices into ``x``), ``edge_type`` ``[e_real]``, ``batch``
    ``[n_real]`` (graph of each node) and ``node_index`` ``[n_real]`` (flat position
    ``b * max_nodes + i`` of each real node, to scatter results back to the padded layout).
    """
    x = obs[f"{prefix}_x"]
    B, N, F = x.shape
    node_mask = obs[f"{prefix}_node_mask"].reshape(B * N) > 0.5
    edge_index = obs[f"{prefix}_edge_index"].long()                       # [B, 2, E]
    E = edge_index.shape[-1]
    edge_mask = obs[f"{prefix}_edge_mask"].reshape(B * E) > 0.5
    edge_type = obs[f"{prefix}_edge_type"].long().reshape(B * E)
    offset = (torch.arange(B, device=x.device) * N).view(B, 1, 1)
    flat_edges = (edge_index + offset).permute(1, 0, 2).reshape(2, B * E)
    # (index_select with explicit indices: on CPU several times faster than boolean-mask indexing)
    keep = torch.nonzero(edge_mask).squeeze(1)
    flat_edges, edge_type = flat_edges.index_select(1, keep), edge_type.index_select(0, keep)
    # keep only edges between real nodes (a well-formed observation has no others)
    ok = node_mask.index_select(0, flat_edges[0]) & node_mask.index_select(0, flat_edges[1])
    if not bool(ok.all()):
        keep = torch.nonzero(ok).squeeze(1)
        flat_edges, edge_type = flat_edges.index_select(1, keep), edge_type.index_select(0, keep)
    node_index = torch.nonzero(node_mask, as_tuple=False).squeeze(1)
    remap = torch.cumsum(node_mask.long(), 0) - 1
    return (x.reshape(B * N, F).index_select(0, node_index), remap[flat_edges], edge_type,
            torch.div(node_index, N, rounding_mode="floor"), node_index)


def masked_pool(h: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean and max over the real rows of ``h`` ``[B, N, H]`` -> ``[B, 2H]`` (zeros for empty rows)."""
    m = mask.unsqueeze(-1).to(h.dtype)
    count = m.sum(1).clamp(min=1.0)
    mean = (h * m).sum(1) / count
    neg = torch.finfo(h.dtype).min
    mx = h.masked_fill(m == 0, neg).max(1).values
    mx = torch.where(m.sum(1) > 0, mx, torch.zeros_like(mx))
    return torch.cat([mean, mx], dim=-1)


class GraphEncoder(nn.Module):
    """Message passing over the padded graph ``prefix``; weights independent of the graph size.

    :param conv: ``gin`` (GINEConv, edge types as edge features) or ``gat`` (GATv2Conv)
    :param bidirectional: also pass messages against each edge's direction (as a separate edge type)
    """

    def __init__(self, prefix: str, node_dim: int, n_edge_types: int, hidden: int = 64, layers: int = 3,
                 conv: str = "gin", heads: int = 4, bidirectional: bool = True):
        super().__init__()
        from torch_geometric.nn import GATv2Conv, GINEConv

        if conv not in ("gin", "gat"):
            raise ValueError(f"extractor conv must be 'gin' or 'gat', got {conv!r}")
        self.prefix, self.hidden, self.bidirectional, self.conv = prefix, hidden, bidirectional, conv
        self.n_edge_types = max(int(n_edge_types), 1)
        self.inp = nn.Sequential(nn.Linear(node_dim, hidden), nn.ReLU())
        self.edge_emb = nn.Embedding(self.n_edge_types * (2 if bidirectional else 1), hidden)
        convs = []
        for _ in range(layers):
            if conv == "gin":
                mlp = nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, hidden))
                convs.append(GINEConv(mlp, edge_dim=hidden))
            else:
                if hidden % heads:
                    raise ValueError(f"extractor hidden={hidden} must be divisible by heads={heads}")
                convs.append(GATv2Conv(hidden, hidden // heads, heads=heads, edge_dim=hidden, add_self_loops=False))
        self.convs = nn.ModuleList(convs)
        self.norms = nn.ModuleList(nn.LayerNorm(hidden) for _ in range(layers))

    def _gine_typed(self, conv, h: torch.Tensor, edge_index: torch.Tensor, edge_type: torch.Tensor) -> torch.Tensor:
        """``conv(h, edge_index, edge_emb(edge_type))`` of a GINEConv, computed per edge *type*.

        GINEConv passes every edge's attribute through its Linear ``conv.lin``; the attributes here
        are embeddings of a handful of edge types, so the layer is applied to the type table once and
        gathered, instead of once per edge (~10k edges per M-size VM graph). Same parameters and
        result as the PyG call (``nn((1 + eps) x_i + sum_j relu(x_j + lin(e_ji)))``), about half the
        time of a training batch.
        """
        table = conv.lin(self.edge_emb.weight)
        msg = torch.relu(h.index_select(0, edge_index[0]) + table.index_select(0, edge_type))
        agg = torch.zeros_like(h).index_add_(0, edge_index[1], msg)
        return conv.nn(agg + (1 + conv.eps) * h)

    @classmethod
    def from_space(cls, space: gym.spaces.Dict, prefix: str | None = None, **kwargs) -> "GraphEncoder":
        prefixes = graph_prefixes(space)
        if not prefixes:
            raise ValueError("the observation space has no padded graph (keys '<prefix>_edge_index'); "
                             "use an MLP policy or an env option with a graph observation")
        prefix = prefix or prefixes[0]
        if prefix not in prefixes:
            raise ValueError(f"graph prefix {prefix!r} not in the observation; graphs: {prefixes}")
        node_dim = space.spaces[f"{prefix}_x"].shape[-1]
        n_types = int(space.spaces[f"{prefix}_edge_type"].high.max()) + 1
        return cls(prefix, node_dim, n_types, **kwargs)

    def forward(self, obs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """-> dense node embeddings ``[B, N, H]``, node mask ``[B, N]`` (bool), pooled ``[B, 2H]``."""
        x_pad = obs[f"{self.prefix}_x"]
        B, N, _ = x_pad.shape
        x, edge_index, edge_type, _batch, node_index = unpad_graph_batch(obs, self.prefix)
        edge_type = edge_type.clamp(0, self.n_edge_types - 1)
        if self.bidirectional:
            edge_index = torch.cat([edge_index, edge_index.flip(0)], dim=1)
            edge_type = torch.cat([edge_type, edge_type + self.n_edge_types])
        h = self.inp(x)
        if self.conv == "gin":
            for conv, norm in zip(self.convs, self.norms):
                h = norm(h + torch.relu(self._gine_typed(conv, h, edge_index, edge_type)))
        else:
            edge_attr = self.edge_emb(edge_type)
            for conv, norm in zip(self.convs, self.norms):
                h = norm(h + torch.relu(conv(h, edge_index, edge_attr)))
        dense = h.new_zeros(B * N, self.hidden)
        dense[node_index] = h
        dense = dense.view(B, N, self.hidden)
        mask = obs[f"{self.prefix}_node_mask"] > 0.5
        return dense, mask, masked_pool(dense, mask)


def _flat_dim(space: gym.spaces.Box) -> int:
    n = 1
    for s in space.shape:
        n *= int(s)
    return n


class GraphExtractor(BaseFeaturesExtractor):
    """Pooled GNN embedding of the padded graph plus the other observation keys flattened.

    ``extra_keys``: non-graph keys to append (default: every non-graph key except ``action_node``).
    """

    def __init__(self, observation_space: gym.spaces.Dict, prefix: str | None = None, hidden: int = 64,
                 layers: int = 3, conv: str = "gin", heads: int = 4, bidirectional: bool = True,
                 extra_keys: list | None = None):
        encoder = GraphEncoder.from_space(observation_space, prefix, hidden=hidden, layers=layers, conv=conv,
                                          heads=heads, bidirectional=bidirectional)
        graph = _graph_key_set(observation_space)
        if extra_keys is None:
            extra_keys = [k for k in observation_space.spaces if k not in graph and k != "action_node"]
        extra = sum(_flat_dim(observation_space.spaces[k]) for k in extra_keys)
        super().__init__(observation_space, features_dim=2 * hidden + extra)
        self.encoder = encoder
        self.extra_keys = list(extra_keys)

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        _, _, pooled = self.encoder(obs)
        parts = [pooled] + [obs[k].reshape(obs[k].shape[0], -1) for k in self.extra_keys]
        return torch.cat(parts, dim=1)


class GraphNodeExtractor(BaseFeaturesExtractor):
    """The GNN encoder for the pointer policy: ``forward`` returns ``(nodes, mask, pooled)``.

    ``global_keys``: size-independent non-graph keys concatenated to the pooled embedding
    (default none, so the same weights run on any padding).
    """

    def __init__(self, observation_space: gym.spaces.Dict, prefix: str | None = None, hidden: int = 64,
                 layers: int = 3, conv: str = "gin", heads: int = 4, bidirectional: bool = True,
                 global_keys: list | None = None):
        global_keys = list(global_keys or [])
        extra = sum(_flat_dim(observation_space.spaces[k]) for k in global_keys)
        super().__init__(observation_space, features_dim=2 * hidden + extra)
        self.encoder = GraphEncoder.from_space(observation_space, prefix, hidden=hidden, layers=layers, conv=conv,
                                               heads=heads, bidirectional=bidirectional)
        self.hidden = hidden
        self.global_keys = global_keys

    def forward(self, obs: dict[str, torch.Tensor]):
        nodes, mask, pooled = self.encoder(obs)
        if self.global_keys:
            pooled = torch.cat([pooled] + [obs[k].reshape(obs[k].shape[0], -1) for k in self.global_keys], 1)
        return nodes, mask, pooled


class EntityAttentionExtractor(BaseFeaturesExtractor):
    """Transformer encoder over entity tables; mean+max pooled, plus global keys flattened.

    The entity tables are those the environment declares (``rlsys_envs.core.entity_spaces``:
    ``<name>_features`` with its row mask ``<name>_mask``; for the VM env ``pm`` and ``vm``), then
    every other 2-D ``Box`` key ``[n, F]`` outside the graphs as a table without a mask (or the keys
    listed in ``entity_keys``). Each table gets its own input projection and a type embedding; all
    entities then attend to each other. The remaining keys (``global_keys``, default: every key
    that is neither a table nor a mask) are flattened and appended.
    """

    def __init__(self, observation_space: gym.spaces.Dict, entity_keys: list | None = None,
                 global_keys: list | None = None, hidden: int = 64, layers: int = 2, heads: int = 4,
                 ff: int = 128):
        spaces_ = observation_space.spaces
        graph = _graph_key_set(observation_space)
        declared = {f"{name}{FEATURES_SUFFIX}": f"{name}{MASK_SUFFIX}" for name in entity_tables(observation_space)}
        if entity_keys is None:
            entity_keys = [k for k, s in spaces_.items() if len(s.shape) == 2 and k not in graph]
        if not entity_keys:
            raise ValueError("attention extractor: the observation has no entity table (2-D Box key)")
        mask_keys = {k: declared[k] for k in entity_keys if k in declared}
        if global_keys is None:
            used = set(entity_keys) | set(mask_keys.values())
            global_keys = [k for k, s in spaces_.items() if k not in used and k not in graph and len(s.shape) <= 1
                           and k != "action_node" and not k.endswith("_mask")
                           # raw indices (e.g. a host id per VM) are not features: keep small-range ints only
                           and (np.issubdtype(s.dtype, np.floating) or float(np.max(s.high)) <= 16)]
        extra = sum(_flat_dim(spaces_[k]) for k in global_keys)
        super().__init__(observation_space, features_dim=2 * hidden + extra)
        self.entity_keys, self.mask_keys, self.global_keys = list(entity_keys), mask_keys, list(global_keys)
        self.proj = nn.ModuleDict({k.replace(".", "_"): nn.Linear(spaces_[k].shape[1], hidden) for k in entity_keys})
        self.type_emb = nn.Embedding(len(entity_keys), hidden)
        layer = nn.TransformerEncoderLayer(hidden, heads, ff, dropout=0.0, batch_first=True)
        self.encoder = nn.TransformerEncoder(layer, layers, enable_nested_tensor=False)

    def encode(self, obs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        """-> entity embeddings ``[B, n_total, H]`` (tables concatenated in order) and mask ``[B, n_total]``."""
        tokens, masks = [], []
        for i, k in enumerate(self.entity_keys):
            t = obs[k]
            tokens.append(self.proj[k.replace(".", "_")](t) + self.type_emb.weight[i])
            if k in self.mask_keys:
                masks.append(obs[self.mask_keys[k]] > 0.5)
            else:
                masks.append(torch.ones(t.shape[:2], dtype=torch.bool, device=t.device))
        h, mask = torch.cat(tokens, 1), torch.cat(masks, 1)
        # a row with no real entity would make attention produce NaN: let it attend to everything
        key_padding = ~mask & mask.any(1, keepdim=True)
        return self.encoder(h, src_key_padding_mask=key_padding), mask

    def forward(self, obs: dict[str, torch.Tensor]) -> torch.Tensor:
        h, mask = self.encode(obs)
        parts = [masked_pool(h, mask)] + [obs[k].reshape(obs[k].shape[0], -1) for k in self.global_keys]
        return torch.cat(parts, 1)


class EntityNodeExtractor(BaseFeaturesExtractor):
    """Per-row encoder of an entity table whose row ``a`` is action ``a`` (pointer over a table).

    For observations without a graph, e.g. the job-shop ``observation="flat"``: ``table`` (default
    ``jobs``) is ``[n_actions, F]``; every row goes through the same MLP (optionally followed by
    ``attention_layers`` transformer layers across rows), and the other 2-D tables
    (``context_tables``, default all) are encoded row-wise and mean+max pooled into the context.
    ``forward`` returns ``(rows [B, n_actions, H], row_mask [B, n_actions], pooled)`` like
    :class:`GraphNodeExtractor`; padded rows (all zeros) are left out of the pooling. No weight
    depends on the number of rows.
    """

    rows_are_actions = True

    def __init__(self, observation_space: gym.spaces.Dict, table: str = "jobs", context_tables: list | None = None,
                 hidden: int = 64, layers: int = 2, attention_layers: int = 0, heads: int = 4):
        spaces_ = observation_space.spaces
        if table not in spaces_ or len(spaces_[table].shape) != 2:
            raise ValueError(f"entity pointer: observation key {table!r} must be a 2-D table [n_actions, F]; "
                             f"keys: {list(spaces_)}")
        if context_tables is None:
            graph = _graph_key_set(observation_space)
            context_tables = [k for k, s in spaces_.items() if k != table and len(s.shape) == 2 and k not in graph]
        super().__init__(observation_space, features_dim=2 * hidden * (1 + len(context_tables)))
        self.table, self.context_tables, self.hidden = table, list(context_tables), hidden

        def mlp(inp):
            mods, d = [], inp
            for _ in range(max(layers, 1)):
                mods += [nn.Linear(d, hidden), nn.ReLU()]
                d = hidden
            return nn.Sequential(*mods)

        self.row_net = mlp(spaces_[table].shape[1])
        self.ctx_nets = nn.ModuleDict({k: mlp(spaces_[k].shape[1]) for k in self.context_tables})
        self.attn = None
        if attention_layers:
            layer = nn.TransformerEncoderLayer(hidden, heads, 2 * hidden, dropout=0.0, batch_first=True)
            self.attn = nn.TransformerEncoder(layer, attention_layers, enable_nested_tensor=False)

    def forward(self, obs: dict[str, torch.Tensor]):
        rows = obs[self.table]
        mask = rows.abs().sum(-1) > 0
        h = self.row_net(rows)
        if self.attn is not None:
            h = self.attn(h, src_key_padding_mask=~mask & mask.any(1, keepdim=True))
        parts = [masked_pool(h, mask)]
        for k in self.context_tables:
            t = obs[k]
            parts.append(masked_pool(self.ctx_nets[k](t), t.abs().sum(-1) > 0))
        return h, mask, torch.cat(parts, -1)
