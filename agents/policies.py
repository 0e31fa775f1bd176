"""Size-agnostic pointer policy for MaskablePPO.

The environment gives, for each discrete action ``a``, the graph node that represents it
(observation key ``action_node``, -1 if none). The policy embeds the graph with a GNN
(:class:`rlsys_agents.extractors.GraphNodeExtractor`), reads the embedding of node ``action_node[a]``
(or, with :class:`rlsys_agents.extractors.EntityNodeExtractor`, the embedding of row ``a`` of an
entity table such as the job-shop ``jobs`` table),
and scores it with a small MLP (together with the pooled graph embedding) to get the logit of
``a``. The value is an MLP of the mean+max pooled graph embedding. No weight depends on the
number of nodes or actions, so a checkpoint trained on small padding runs on a larger
environment: load it with :func:`rlsys_agents.evaluation.load_policy`, which overrides the spaces.

``action_node`` values: ``>= 0`` the node of the action; ``-1`` no node (the action gets a logit
of -1e8, i.e. it is never chosen); ``-2`` a *global* action such as "stop", scored by an MLP of
the pooled graph embedding. The global head exists only when the observation space allows -2
(``action_node`` low bound <= -2), so checkpoints of environments without global actions keep
their parameters.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
from torch import nn

from rlsys_envs.core.graph import GLOBAL_ACTION, NO_NODE

from .extractors import GraphNodeExtractor, masked_pool

_NO_NODE_LOGIT = -1e8
#: pairwise features of AllocationPolicy(pair_features=True): cost, share covered, covers all, distance
PAIR_FEATURES = 4


class PointerPolicy(MaskableActorCriticPolicy):
    """MaskableActorCriticPolicy whose logits are per-node scores read at ``action_node``."""

    #: tells :func:`rlsys_agents.evaluation.load_policy` to load with the target env's spaces
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


class GroupedCategorical:
    """Independent categorical components in groups of equal size, vectorised: ``groups`` is a
    list of logit tensors ``[B, n_components, n_values]`` (components in action order), ``masks``
    the flat per-component masks concatenated (sb3-contrib's ``MultiDiscrete`` layout). It has the
    methods MaskablePPO uses (``get_actions``, ``log_prob``, ``entropy``) and computes in one pass
    what sb3-contrib's ``MaskableMultiCategoricalDistribution`` does with one ``Categorical`` per
    component (RBF-like, 61 components, a batch of 8: sample + log-prob + entropy in 0.25 ms of CPU
    instead of 12 ms); the numbers are the same (``tests/test_taskalloc_policy.py``)."""

    def __init__(self, groups, masks=None):
        self.sizes = [g.shape[1] * g.shape[2] for g in groups]
        if masks is not None:
            masks = torch.as_tensor(masks, dtype=torch.bool, device=groups[0].device).reshape(groups[0].shape[0], -1)
            parts = torch.split(masks, self.sizes, dim=1)
            groups = [torch.where(m.reshape(g.shape), g, torch.full_like(g, -1e8)) for g, m in zip(groups, parts)]
        self.log_p = [torch.log_softmax(g, dim=-1) for g in groups]

    def get_actions(self, deterministic: bool = False) -> torch.Tensor:
        return self.mode() if deterministic else self.sample()

    def sample(self) -> torch.Tensor:
        out = []
        for lp in self.log_p:
            gumbel = -torch.log(-torch.log(torch.rand_like(lp).clamp(1e-20, 1.0)))
            out.append(torch.argmax(lp + gumbel, dim=-1))
        return torch.cat(out, 1).squeeze(-1) if len(out) == 1 and out[0].shape[1] == 1 else torch.cat(out, 1)

    def mode(self) -> torch.Tensor:
        out = [torch.argmax(lp, dim=-1) for lp in self.log_p]
        return torch.cat(out, 1).squeeze(-1) if len(out) == 1 and out[0].shape[1] == 1 else torch.cat(out, 1)

    def log_prob(self, actions: torch.Tensor) -> torch.Tensor:
        actions = actions.long().reshape(self.log_p[0].shape[0], -1)
        total, start = 0.0, 0
        for lp in self.log_p:
            n = lp.shape[1]
            total = total + lp.gather(-1, actions[:, start: start + n].unsqueeze(-1)).squeeze(-1).sum(1)
            start += n
        return total

    def entropy(self) -> torch.Tensor:
        return sum(-(lp.exp() * lp).sum(-1).sum(1) for lp in self.log_p)


class AllocationPolicy(MaskableActorCriticPolicy):
    """Count-agnostic attention policy for two-stage allocation (``rlsys/TaskAllocation-v0``), after
    Gong et al. 2024: entity and task embeddings, dot-product compatibility, masked softmax, and a
    critic with an attention mixer over the entities.

    The entity table ``entities_features`` ``[E, Fe]`` and the task table ``tasks_features``
    ``[K, Ft]`` go through :class:`rlsys_agents.extractors.EntityAttentionExtractor` (one transformer over
    entities and tasks together; ``stage`` and ``time`` as global features). Then

    * stage 1 (``MultiDiscrete``: component ``e`` is entity ``e``'s task, or none): logit of
      (entity ``e``, slot ``k``) = ``<q(e), k(k)> / sqrt(H) + w * pair_cost[e, k]``, the none logit
      ``<q(e), none(context)> / sqrt(H)``;
    * stage 2 (the last component, or the whole ``Discrete(E + 1)`` action of the sequential mode):
      the current task (the row flagged current) queries the entities, logit of entity ``e`` =
      ``<q2(task), k2(e)> / sqrt(H) + w2 * pair_cost[e, task]``, END from an MLP of the task and the
      context;
    * with ``pair_features=True``, both stages add to the logit of (entity, task) an MLP of four
      pairwise features computed from the tables (no observation change): the pair cost, the share of
      the task's remaining requirement the entity covers, whether it covers all of it, and the
      Manhattan distance between their positions (the travel that keeps a slot busy). Ours: a
      one-layer transformer does not recover these products of two rows well; off by default, so
      checkpoints saved without it load unchanged;
    * the components of the stage that is not being played get constant (zero) logits, so their
      log-probability does not depend on the parameters (they are ignored or have one legal value);
    * value: attention mixer, a query from the pooled context attends over the entity embeddings
      (masked), the mixed value vector and the context go through an MLP.

    No weight depends on the numbers of entities or tasks: a checkpoint runs with other counts
    (:func:`rlsys_agents.evaluation.load_policy` loads it with the target environment's spaces).
    """

    size_agnostic = True

    def __init__(self, observation_space, action_space, lr_schedule, net_arch=None, activation_fn=nn.Tanh,
                 features_extractor_class=None, features_extractor_kwargs=None, head_hidden: int = 64,
                 current_column: int | None = None, pair_features: bool = False, **kwargs):
        from .extractors import EntityAttentionExtractor

        for key in ("entities_features", "tasks_features", "pair_cost", "stage"):
            if key not in observation_space.spaces:
                raise ValueError(f"the allocation policy needs the observation key {key!r} (rlsys/TaskAllocation-v0)")
        fe_kwargs = {"entity_keys": ["entities_features", "tasks_features"], **(features_extractor_kwargs or {})}
        self.head_hidden, self.pair_features = head_hidden, bool(pair_features)
        # the tables' layout (rlsys/TaskAllocation-v0): entity = cost, d capabilities, position, 4 flags;
        # task = value, d requirements, d remaining requirements, position, 4 flags
        self.n_dims = observation_space["entities_features"].shape[1] - 7
        if self.pair_features and observation_space["tasks_features"].shape[1] != 2 * self.n_dims + 7:
            raise ValueError("pair_features needs the entity and task tables of rlsys/TaskAllocation-v0 (got widths "
                             f"{observation_space['entities_features'].shape[1]} and "
                             f"{observation_space['tasks_features'].shape[1]})")
        # the task table's "current task" flag: 3rd of the 4 flags at the end of each row
        self.current_column = (observation_space["tasks_features"].shape[1] - 2 if current_column is None
                               else int(current_column))
        kwargs.pop("share_features_extractor", None)
        super().__init__(observation_space, action_space, lr_schedule, net_arch=[], activation_fn=activation_fn,
                         features_extractor_class=EntityAttentionExtractor, features_extractor_kwargs=fe_kwargs,
                         share_features_extractor=True, **kwargs)

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(head_hidden=self.head_hidden, current_column=self.current_column)
        if self.pair_features:          # saved only when on: older checkpoints' parameters stay valid
            data.update(pair_features=True)
        data.pop("net_arch", None)
        data.pop("features_extractor_class", None)
        return data

    def _build(self, lr_schedule) -> None:
        fe = self.features_extractor
        H = fe.proj["entities_features"].out_features
        ctx = fe.features_dim
        hh, act = self.head_hidden, self.activation_fn
        self.hidden = H
        self.q1, self.k1 = nn.Linear(H, H), nn.Linear(H, H)
        self.none_net = nn.Sequential(nn.Linear(ctx, hh), act(), nn.Linear(hh, H))
        self.q2 = nn.Sequential(nn.Linear(H + ctx, hh), act(), nn.Linear(hh, H))
        self.k2 = nn.Linear(H, H)
        self.end_net = nn.Sequential(nn.Linear(H + ctx, hh), act(), nn.Linear(hh, 1))
        self.cost_w = nn.Parameter(torch.tensor([-1.0, -1.0]))
        if self.pair_features:
            self.pair1, self.pair2 = (nn.Sequential(nn.Linear(PAIR_FEATURES, hh), act(), nn.Linear(hh, 1))
                                      for _ in range(2))
            for net in (self.pair1, self.pair2):       # zero at the start: the logits of the plain policy
                nn.init.zeros_(net[-1].weight)
                nn.init.zeros_(net[-1].bias)
        # attention mixer critic
        self.mix_q = nn.Linear(ctx, H)
        self.mix_k, self.mix_v = nn.Linear(H, H), nn.Linear(H, H)
        self.value_net = nn.Sequential(nn.Linear(H + ctx, hh), act(), nn.Linear(hh, 1))
        self.mlp_extractor = nn.Identity()
        self.optimizer = self.optimizer_class(self.parameters(), lr=lr_schedule(1), **self.optimizer_kwargs)

    def _encode(self, obs):
        fe = self.features_extractor
        h, mask = fe.encode(obs)
        E = obs["entities_features"].shape[1]
        parts = [masked_pool(h, mask)] + [obs[k].reshape(obs[k].shape[0], -1) for k in fe.global_keys]
        return h[:, :E], mask[:, :E], h[:, E:], mask[:, E:], torch.cat(parts, 1)

    def _pairs(self, obs) -> torch.Tensor:
        """``[B, E, K, PAIR_FEATURES]``: pair cost, share of the task's remaining requirement the
        entity covers, whether it covers all of it, Manhattan distance (normalised units)."""
        d, ent, task = self.n_dims, obs["entities_features"], obs["tasks_features"]
        cap, epos = ent[..., 1: 1 + d], ent[..., 1 + d: 3 + d]
        rem, tpos = task[..., 1 + d: 1 + 2 * d], task[..., 1 + 2 * d: 3 + 2 * d]
        covered = torch.minimum(cap[:, :, None], rem[:, None])                          # [B, E, K, d]
        share = covered.sum(-1) / rem.sum(-1).clamp_min(1e-6)[:, None]
        whole = (covered >= rem[:, None] - 1e-6).all(-1).float()
        dist = (epos[:, :, None] - tpos[:, None]).abs().sum(-1)
        return torch.stack([obs["pair_cost"], share, whole, dist], -1)

    def _logits_and_values(self, obs):
        ent, ent_mask, task, _task_mask, ctx = self._encode(obs)
        B, E, H = ent.shape
        K = task.shape[1]
        scale = 1.0 / float(np.sqrt(H))
        cost = obs["pair_cost"]                                                        # [B, E, K]
        stage = obs["stage"]
        # stage 2: the current task queries the entities
        current = obs["tasks_features"][:, :, self.current_column]                     # [B, K]
        cur_task = (task * current.unsqueeze(-1)).sum(1)                               # [B, H]
        cur_cost = (cost * current.unsqueeze(1)).sum(2)                                # [B, E]
        q2 = self.q2(torch.cat([cur_task, ctx], 1))
        pick = torch.einsum("bh,beh->be", q2, self.k2(ent)) * scale + self.cost_w[1] * cur_cost
        pairs = self._pairs(obs) if self.pair_features else None
        if pairs is not None:
            pick = pick + (self.pair2(pairs).squeeze(-1) * current.unsqueeze(1)).sum(2)
        end = self.end_net(torch.cat([cur_task, ctx], 1))
        second = torch.cat([pick, end], 1) * stage[:, 1:2]                             # [B, E + 1]
        # value: attention mixer over the entities
        att = torch.einsum("bh,beh->be", self.mix_q(ctx), self.mix_k(ent)) * scale
        att = att.masked_fill(~ent_mask, -1e9)
        w = torch.softmax(att, 1) * ent_mask.any(1, keepdim=True)
        mixed = torch.einsum("be,beh->bh", w, self.mix_v(ent))
        values = self.value_net(torch.cat([mixed, ctx], 1))
        if isinstance(self.action_space, spaces.Discrete):
            return second, values
        first = torch.einsum("beh,bkh->bek", self.q1(ent), self.k1(task)) * scale + self.cost_w[0] * cost
        if pairs is not None:
            first = first + self.pair1(pairs).squeeze(-1)
        none = torch.einsum("beh,bh->be", self.q1(ent), self.none_net(ctx)) * scale
        first = torch.cat([first, none.unsqueeze(-1)], 2).reshape(B, E * (K + 1)) * stage[:, 0:1]
        return torch.cat([first, second], 1), values

    def logits_and_values(self, obs):
        return self._logits_and_values(obs)

    def _distribution(self, logits, action_masks):
        if isinstance(self.action_space, spaces.Discrete):
            groups = [logits.unsqueeze(1)]
        else:
            B, total = logits.shape
            n_first = int(self.action_space.nvec[0])
            E = (total - int(self.action_space.nvec[-1])) // n_first
            groups = [logits[:, : E * n_first].reshape(B, E, n_first), logits[:, E * n_first:].unsqueeze(1)]
        return GroupedCategorical(groups, action_masks)

    def forward(self, obs, deterministic: bool = False, action_masks=None):
        logits, values = self._logits_and_values(obs)
        distribution = self._distribution(logits, action_masks)
        actions = distribution.get_actions(deterministic=deterministic)
        log_prob = distribution.log_prob(actions)
        return actions.reshape((-1, *self.action_space.shape)), values, log_prob

    def evaluate_actions(self, obs, actions, action_masks=None):
        logits, values = self._logits_and_values(obs)
        distribution = self._distribution(logits, action_masks)
        return values, distribution.log_prob(actions), distribution.entropy()

    def get_distribution(self, obs, action_masks=None):
        return self._distribution(self._logits_and_values(obs)[0], action_masks)

    def predict_values(self, obs) -> torch.Tensor:
        return self._logits_and_values(obs)[1]

    def imitation_terms(self, obs, action_masks, accepted):
        """Behaviour-cloning terms (:func:`rlsys_agents.imitation.behaviour_clone` uses them when a
        policy has them): ``accepted`` ``[B, sum(nvec)]`` holds the accepted values of every component
        in the mask layout (:class:`rlsys_envs.taskalloc.expert.CPSatExpert`). Returns the negative
        log-probability of "an accepted value in every component" (the components are independent,
        so it is a sum over them of ``-log sum_{v accepted} pi(v)``), whether the most likely value
        of every component is accepted (``[B]``, float), and the values ``[B, 1]``."""
        logits, values = self._logits_and_values(obs)
        dist = self._distribution(logits, action_masks)
        accepted = torch.as_tensor(accepted, dtype=torch.bool, device=logits.device).reshape(logits.shape[0], -1)
        nll, hit, start = 0.0, torch.ones(logits.shape[0], dtype=torch.bool, device=logits.device), 0
        for lp in dist.log_p:
            acc = accepted[:, start: start + lp.shape[1] * lp.shape[2]].reshape(lp.shape)
            start += lp.shape[1] * lp.shape[2]
            nll = nll - torch.logsumexp(lp.masked_fill(~acc, -1e9), -1).sum(1)
            hit &= acc.gather(-1, lp.argmax(-1, keepdim=True)).squeeze(-1).all(1)
        return nll, hit.float(), values


class ActionPriorPolicy(MaskableActorCriticPolicy):
    """MaskablePPO's MLP actor-critic whose action head starts out preferring chosen actions.

    ``prior_actions``: for a ``Discrete`` action space one index, for a ``MultiDiscrete`` one index
    per component (e.g. every function's "keep" of a delta action); ``prior_logit`` (default 3.0)
    is added to those actions' logits through the bias of the action layer at construction (SB3
    starts that layer near zero, so every action is about equally likely before). Why: where most
    moves away from a safe default are costly (an OOM kill, a crash-loop back-off), a uniform
    start explores by wrecking episodes; with a prior of 3 on one of 3 actions the untrained
    policy keeps 91 % of the time, so training starts from the default's return and learns when to
    move. The prior is only an initialisation: the bias is trained like any weight, and a loaded
    checkpoint takes its trained value. Everything else is ``MaskableActorCriticPolicy`` (use the
    ``mlp`` preset with these two ``policy_kwargs``; Dict observations get SB3's CombinedExtractor).
    """

    def __init__(self, observation_space, action_space, lr_schedule, *args, prior_actions=None,
                 prior_logit: float = 3.0, **kwargs):
        if prior_actions is None:
            raise ValueError("ActionPriorPolicy needs policy_kwargs.prior_actions (the favoured action index, "
                             "one per MultiDiscrete component)")
        if isinstance(action_space, spaces.Discrete):
            nvec = [int(action_space.n)]
        elif isinstance(action_space, spaces.MultiDiscrete):
            nvec = [int(n) for n in np.asarray(action_space.nvec).reshape(-1)]
        else:
            raise ValueError(f"ActionPriorPolicy needs a Discrete or MultiDiscrete action space, got {action_space}")
        prior = [int(prior_actions)] if np.isscalar(prior_actions) else [int(a) for a in prior_actions]
        if len(prior) != len(nvec) or any(not 0 <= a < n for a, n in zip(prior, nvec)):
            raise ValueError(f"policy_kwargs.prior_actions={list(prior)} must give one index per action component "
                             f"within {nvec}")
        self.prior_actions, self.prior_logit = prior, float(prior_logit)
        self._nvec = nvec
        if isinstance(observation_space, spaces.Dict) and "features_extractor_class" not in kwargs:
            from stable_baselines3.common.torch_layers import CombinedExtractor

            kwargs["features_extractor_class"] = CombinedExtractor
        super().__init__(observation_space, action_space, lr_schedule, *args, **kwargs)

    def _build(self, lr_schedule) -> None:
        super()._build(lr_schedule)
        offsets = np.concatenate([[0], np.cumsum(self._nvec)[:-1]])
        with torch.no_grad():
            for off, a in zip(offsets, self.prior_actions):
                self.action_net.bias[int(off) + a] += self.prior_logit

    def _get_constructor_parameters(self) -> dict[str, Any]:
        data = super()._get_constructor_parameters()
        data.update(prior_actions=self.prior_actions, prior_logit=self.prior_logit)
        return data
