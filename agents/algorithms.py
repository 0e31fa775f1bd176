"""Algorithm registry and policy presets.

``ALGORITHMS`` maps a config name (``algo.name``) to the SB3 / sb3-contrib class and its default
policy preset; ``POLICIES`` lists the presets of ``algo.policy``:

==========  ==================================================================================
preset      policy
==========  ==================================================================================
auto       the algorithm's default (below)
mlp        SB3's ``MultiInputPolicy`` (CombinedExtractor) for Dict obs, ``MlpPolicy`` for Box obs;
           with ``policy_kwargs.prior_actions`` (MaskablePPO only) :class:`rlsys_agents.policies.ActionPriorPolicy`,
           the same network whose action head starts biased towards those actions (e.g. a delta action's "keep")
gnn        ``MultiInputPolicy`` + :class:`rlsys_agents.extractors.GraphExtractor` (torch-geometric)
pointer    :class:`rlsys_agents.policies.PointerPolicy` over the graph (GNN, needs ``action_node``)
rowpointer :class:`rlsys_agents.policies.PointerPolicy` over an entity table whose row a is action a
           (:class:`rlsys_agents.extractors.EntityNodeExtractor`; job-shop ``jobs`` table, flat obs)
attention  ``MultiInputPolicy`` + :class:`rlsys_agents.extractors.EntityAttentionExtractor`
allocation :class:`rlsys_agents.policies.AllocationPolicy` (task allocation: entity-task attention, two stages)
==========  ==================================================================================

``gnn_ppo`` is MaskablePPO whose default preset is ``gnn``.
"""
from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from typing import Any

import gymnasium as gym


@dataclass(frozen=True)
class Algorithm:
    name: str
    cls: str               # "module:Class"
    default_policy: str
    maskable: bool         # predict() takes action_masks (evaluation passes env.action_masks())
    off_policy: bool
    actions: str           # "discrete", "continuous" or "any"

    def load_class(self):
        module, _, attr = self.cls.partition(":")
        return getattr(importlib.import_module(module), attr)


ALGORITHMS: dict[str, Algorithm] = {a.name: a for a in (
    Algorithm("ppo", "stable_baselines3:PPO", "mlp", False, False, "any"),
    Algorithm("maskable_ppo", "sb3_contrib:MaskablePPO", "mlp", True, False, "discrete"),
    Algorithm("gnn_ppo", "sb3_contrib:MaskablePPO", "gnn", True, False, "discrete"),
    # DQN / QR-DQN act greedily among the legal actions (rlsys_agents.masked_q); checkpoints are plain zips
    Algorithm("dqn", "rlsys_agents.masked_q:MaskableDQN", "mlp", True, True, "discrete"),
    Algorithm("qrdqn", "rlsys_agents.masked_q:MaskableQRDQN", "mlp", True, True, "discrete"),
    Algorithm("sac", "stable_baselines3:SAC", "mlp", False, True, "continuous"),
)}

POLICIES = ("auto", "mlp", "gnn", "pointer", "rowpointer", "attention", "allocation")


def get_algorithm(name: str) -> Algorithm:
    try:
        return ALGORITHMS[name]
    except KeyError:
        raise ValueError(f"unknown algorithm {name!r}; known: {', '.join(ALGORITHMS)}") from None


def _activation(name):
    from torch import nn

    if not isinstance(name, str):
        return name
    table = {"tanh": nn.Tanh, "relu": nn.ReLU, "elu": nn.ELU, "gelu": nn.GELU, "leaky_relu": nn.LeakyReLU}
    if name not in table:
        raise ValueError(f"algo.policy_kwargs.activation_fn must be one of {', '.join(table)}, got {name!r}")
    return table[name]


def policy_spec(algo: Algorithm, preset: str, observation_space: gym.Space, policy_kwargs: dict,
                extractor_kwargs: dict) -> tuple[Any, dict]:
    """The ``policy`` argument and ``policy_kwargs`` of the SB3 constructor for a preset."""
    preset = algo.default_policy if preset == "auto" else preset
    if preset not in POLICIES:
        raise ValueError(f"unknown policy preset {preset!r}; known: {', '.join(POLICIES)}")
    kwargs = dict(policy_kwargs)
    if "activation_fn" in kwargs:
        kwargs["activation_fn"] = _activation(kwargs["activation_fn"])
    is_dict = isinstance(observation_space, gym.spaces.Dict)
    if preset == "mlp":
        if extractor_kwargs:
            raise ValueError("algo.extractor_kwargs is not used by the 'mlp' preset; use algo.policy_kwargs")
        if "prior_actions" in kwargs or "prior_logit" in kwargs:
            if algo.cls != "sb3_contrib:MaskablePPO":
                raise ValueError(f"algo.policy_kwargs.prior_actions / prior_logit (ActionPriorPolicy) run with "
                                 f"MaskablePPO (maskable_ppo), not {algo.name!r}")
            from .policies import ActionPriorPolicy

            return ActionPriorPolicy, kwargs
        return ("MultiInputPolicy" if is_dict else "MlpPolicy"), kwargs
    if not is_dict:
        raise ValueError(f"policy preset {preset!r} needs a Dict observation (graph or entity tables), "
                         f"got {type(observation_space).__name__}")
    if preset in ("pointer", "rowpointer"):
        if algo.name not in ("maskable_ppo", "gnn_ppo"):
            raise ValueError(f"the pointer policy runs with MaskablePPO (maskable_ppo / gnn_ppo), not {algo.name!r}")
        from .extractors import EntityNodeExtractor, GraphNodeExtractor
        from .policies import PointerPolicy

        kwargs["features_extractor_class"] = GraphNodeExtractor if preset == "pointer" else EntityNodeExtractor
        kwargs["features_extractor_kwargs"] = dict(extractor_kwargs)
        kwargs.pop("net_arch", None)
        return PointerPolicy, kwargs
    if preset == "allocation":
        if algo.name not in ("maskable_ppo", "gnn_ppo"):
            raise ValueError(f"the allocation policy runs with MaskablePPO (maskable_ppo), not {algo.name!r}")
        from .policies import AllocationPolicy

        kwargs["features_extractor_kwargs"] = dict(extractor_kwargs)
        kwargs.pop("net_arch", None)
        return AllocationPolicy, kwargs
    from . import extractors

    cls = extractors.GraphExtractor if preset == "gnn" else extractors.EntityAttentionExtractor
    kwargs["features_extractor_class"] = cls
    kwargs["features_extractor_kwargs"] = dict(extractor_kwargs)
    return "MultiInputPolicy", kwargs


def check_algo_kwargs(algo: Algorithm, kwargs: dict) -> None:
    """Unknown keyword arguments of the SB3 class raise ValueError naming them."""
    params = inspect.signature(algo.load_class().__init__).parameters
    reserved = {"policy", "env", "seed", "tensorboard_log", "policy_kwargs", "device", "verbose", "_init_setup_model"}
    for key in kwargs:
        if key in reserved:
            raise ValueError(f"algo.kwargs.{key} is set by train.py (use the config's own field), remove it")
        if key not in params:
            known = sorted(p for p in params if p not in reserved and p != "self")
            raise ValueError(f"unknown config key 'algo.kwargs.{key}' for {algo.name}; known: {', '.join(known)}")


def check_action_space(algo: Algorithm, action_space: gym.Space, env_id: str) -> None:
    discrete = isinstance(action_space, gym.spaces.Discrete)
    if algo.name == "ppo" and discrete:
        raise ValueError(f"ppo ignores action masks, and {env_id} refuses masked-out actions: use maskable_ppo "
                         "for a Discrete action space (ppo is for Box actions, e.g. a continuous variant)")
    # sb3-contrib's MaskablePPO also takes MultiDiscrete actions (the mask: per-dimension masks concatenated)
    multi = isinstance(action_space, gym.spaces.MultiDiscrete) and algo.cls == "sb3_contrib:MaskablePPO"
    if algo.actions == "discrete" and not discrete and not multi:
        raise ValueError(f"{algo.name} needs a Discrete action space; {env_id} has {action_space}")
    if algo.actions == "continuous" and not isinstance(action_space, gym.spaces.Box):
        raise ValueError(f"{algo.name} needs a Box action space; {env_id} has {action_space} "
                         "(choose the env's continuous action option or another algorithm)")


def algorithm_of_policy_class(policy_class) -> str:
    """The registry name that loads a checkpoint whose policy is ``policy_class``."""
    from sb3_contrib.common.maskable.policies import MaskableActorCriticPolicy
    from sb3_contrib.qrdqn.policies import QRDQNPolicy
    from stable_baselines3.common.policies import ActorCriticPolicy
    from stable_baselines3.dqn.policies import DQNPolicy
    from stable_baselines3.sac.policies import SACPolicy

    for base, name in ((MaskableActorCriticPolicy, "maskable_ppo"), (QRDQNPolicy, "qrdqn"), (DQNPolicy, "dqn"),
                       (SACPolicy, "sac"), (ActorCriticPolicy, "ppo")):
        if isinstance(policy_class, type) and issubclass(policy_class, base):
            return name
    raise ValueError(f"cannot tell which algorithm saved a policy of class {policy_class!r}")
