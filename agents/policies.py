"""Size-agnostic pointer policy for MaskablePPO.

The environment gives, for each discrete action ``a``, the graph node that represents it
(observation key ``action_node``, -1 if none). The policy embeds the graph with a GNN
(:class:`agents.extractors.GraphNodeExtractor`), reads the embedding of node ``action_node[a]``
(or, with :class:`agents.extractors.EntityNodeExtractor`, the embedding of row ``a`` of an
entity table such as the job-shop ``jobs`` table),
and scores it with a small MLP (together with the pooled graph embedding) to get the logit of
``a``. The value is an MLP of the mean+max pooled graph embedding. No weight depends on the
number of nodes or actions, so a checkpoint trained on small padding runs on a larger
environment: load it with :func:`agents.evaluation.load_policy`, which overrides the spaces.

``action_node`` values: ``>= 0`` the node of the action; ``-1`` no node (the action gets a logit
of -1e8, i.e. it is never chosen); ``-2`` a *global* action such as "stop", scored by an MLP of
the pooled graph embedding. The global head exists only when the observation space allows -2
(``action_node`` low bound <= -2), so checkpoints of environments without global actions keep
their parameters.
"""
from __future__ import annotations

from typing import Any

import torch
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from torch import nn

from rlsys_envs.core.graph import GLOBAL_ACTION, NO_NODE

from .extractors import GraphNodeExtractor

_NO_NODE_LOGIT = -1e8


class PointerPolicy(MaskableActorCriticPolicy):
    """MaskableActorCriticPolicy whose logits are per-node scores read at ``action_node``."""

    #: tells :func:`agents.evaluation.load_policy` to load with the target env's spaces
    size_agnostic = True

    def __init__(self, observation_space, action_space, lr_schedule, net_arch=None, activation_fn=nn.Tanh,
                 features_extractor_class=GraphNodeExtractor, features_extractor_kwargs=None,
                 head_hidden: int = 64, **kwargs):
        fe_cls = features_extractor_class
        self.rows_are_actions = bool(getattr(fe_cls, "rows_are_actions", False))
        if not self.rows_are_actions and "action_node" not in observation_space.spaces:
            raise ValueError("the pointer policy needs an observation key 'action_node' (graph node of each "
                             "action), or an entity-table extractor (EntityNodeExtractor) whose rows are the actions")
        self.head_hidden = head_hidden
        self.has_global_actions = (not self.rows_are_actions
                                   and float(observation_space["action_node"].low.min()) <= GLOBAL_ACTION)
        kwargs.pop("share_features_extractor", None)
        super().__init__(observation_space, action_space, lr_schedule, net_arch=[], activation_fn=activation_fn,
                         features_extractor_class=features_extractor_class,
                         features_extractor_kwargs=features_extractor_kwargs, share_features_extractor=True,
                         **kwargs)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data["head_hidden"] = self.head_hidden
        data.pop("net_arch", None)
        return data

    def _build(self, lr_schedule) -> None:
        hidden = self.features_extractor.hidden
        pooled = self.features_extractor.features_dim
        act = self.activation_fn
        self.score_net = nn.Sequential(nn.Linear(hidden + pooled, self.head_hidden), act(),
                                       nn.Linear(self.head_hidden, 1))
        self.value_net = nn.Sequential(nn.Linear(pooled, self.head_hidden), act(), nn.Linear(self.head_hidden, 1))
        if self.has_global_actions:
            self.global_net = nn.Sequential(nn.Linear(pooled, self.head_hidden), act(), nn.Linear(self.head_hidden, 1))
        self.mlp_extractor = nn.Identity()  # kept for code that expects the attribute
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)

    # ------------------------------------------------------------------------------- heads
    def _logits_and_pooled(self, obs) -> tuple[torch.Tensor, torch.Tensor]:
        nodes, _mask, pooled = self.extract_features(obs)
        if self.rows_are_actions:
            B, A = nodes.shape[:2]
            action_node = torch.arange(A, device=nodes.device).expand(B, A)
        else:
            action_node = obs["action_node"].long()                              # [B, A]
            B, A = action_node.shape
        # score_net(cat[node, pooled]) with its first Linear split in a node part and a pooled part:
        # the pooled part is computed once per graph instead of once per action (same parameters),
        # and only actions with a node are scored (in a two-stage env, those of the current phase)
        first, act, last = self.score_net
        B_N, hidden = nodes.shape[0] * nodes.shape[1], nodes.shape[-1]
        node_part = (nodes @ first.weight[:, :hidden].T).reshape(B_N, -1)         # [B * N, head]
        ctx_part = pooled @ first.weight[:, hidden:].T + first.bias               # [B, head]
        flat_node = action_node.reshape(-1)
        scored = torch.nonzero(flat_node > NO_NODE).squeeze(1)                         # flat (b, a) positions
        graph = torch.div(scored, A, rounding_mode="floor")
        z = act(node_part.index_select(0, flat_node.index_select(0, scored) + graph * nodes.shape[1])
                + ctx_part.index_select(0, graph))                                 # [scored, head]
        logits = torch.full((B * A,), _NO_NODE_LOGIT, dtype=nodes.dtype, device=nodes.device)
        logits = logits.index_put((scored,), last(z).squeeze(-1)).view(B, A)
        if self.has_global_actions:
            logits = torch.where(action_node == GLOBAL_ACTION, self.global_net(pooled), logits)
        return logits, pooled

    def logits_and_values(self, obs) -> tuple[torch.Tensor, torch.Tensor]:
        """Action logits ``[B, n_actions]`` (before the mask) and values ``[B, 1]`` in one pass."""
        logits, pooled = self._logits_and_pooled(obs)
        return logits, self.value_net(pooled)

    def logits(self, obs) -> torch.Tensor:
        """Action logits ``[B, n_actions]`` (before the action mask), for tests and analysis."""
        return self._logits_and_pooled(obs)[0]

    def forward(self, obs, deterministic: bool = False, action_masks=None):
        logits, pooled = self._logits_and_pooled(obs)
        values = self.value_net(pooled)
        distribution = self.action_dist.proba_distribution(action_logits=logits)
        if action_masks is not None:
            distribution.apply_masking(action_masks)
        actions = distribution.get_actions(deterministic=deterministic)
        log_prob = distribution.log_prob(actions)
        return actions.reshape((-1, *self.action_space.shape)), values, log_prob

    def evaluate_actions(self, obs, actions, action_masks=None):
        logits, pooled = self._logits_and_pooled(obs)
        distribution = self.action_dist.proba_distribution(action_logits=logits)
        if action_masks is not None:
            distribution.apply_masking(action_masks)
        return self.value_net(pooled), distribution.log_prob(actions), distribution.entropy()

    def get_distribution(self, obs, action_masks=None):
        logits, _ = self._logits_and_pooled(obs)
        distribution = self.action_dist.proba_distribution(action_logits=logits)
        if action_masks is not None:
            distribution.apply_masking(action_masks)
        return distribution

    def predict_values(self, obs) -> torch.Tensor:
        _nodes, _mask, pooled = self.extract_features(obs)
        return self.value_net(pooled)
