"""Greedy inference of small MLP checkpoints in numpy, for partners that act at every step.

SB3's ``predict`` costs a few hundred microseconds per call (tensor conversion, preprocessing,
mask handling), far more than a forward pass of a 20-30-unit MLP. A partner that plays one agent
at every request of a hybrid-storage episode pays that on every step. :class:`NumpyGreedyPolicy`
copies the weights of a checkpoint once and computes the same greedy action in numpy:

* DQN / QR-DQN (``MlpPolicy`` / ``MultiInputPolicy``): argmax over the legal actions of the Q-values
  (the mean over quantiles for QR-DQN), as :class:`rlsys_agents.masked_q.MaskableQRDQN` does;
* MaskablePPO / PPO with SB3's MLP policy: argmax of the masked action logits (the mode of the
  masked categorical distribution, i.e. ``predict(deterministic=True)``).

Only flatten feature extractors (``FlattenExtractor``, ``CombinedExtractor`` over Box keys) and
``Linear`` + elementwise activation stacks are supported; :func:`supports` says whether a model
qualifies and :func:`numpy_partner` falls back to :class:`rlsys_agents.multiagent.CheckpointPartner`
otherwise. Ties and float32 rounding aside, the actions equal SB3's (the tests compare them).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from rlsys_envs.core.policy import Policy

_ACTIVATIONS = {
    "Tanh": np.tanh,
    "ReLU": lambda x: np.maximum(x, 0.0),
    "ELU": lambda x: np.where(x > 0, x, np.expm1(np.minimum(x, 0.0))),
    "LeakyReLU": lambda x: np.where(x > 0, x, 0.01 * x),
}


def _layers(seq) -> list:
    """A torch ``Sequential`` (or a single Linear / empty) as [("linear", W, b) | ("act", fn)]."""
    from torch import nn

    mods = [seq] if isinstance(seq, nn.Linear) else list(seq)
    out = []
    for mod in mods:
        if isinstance(mod, nn.Linear):
            out.append(("linear", mod.weight.detach().cpu().numpy().T.copy(), mod.bias.detach().cpu().numpy().copy()))
        elif type(mod).__name__ in _ACTIVATIONS:
            if type(mod).__name__ == "ELU" and getattr(mod, "alpha", 1.0) != 1.0:
                raise ValueError("ELU with alpha != 1 is not supported")
            if type(mod).__name__ == "LeakyReLU" and getattr(mod, "negative_slope", 0.01) != 0.01:
                raise ValueError("LeakyReLU with a slope other than 0.01 is not supported")
            out.append(("act", _ACTIVATIONS[type(mod).__name__]))
        else:
            raise ValueError(f"layer {type(mod).__name__} is not supported")
    return out


def _extractor_keys(extractor) -> list[str] | None:
    """The Dict keys in the order a flatten extractor concatenates them (None: a Box observation)."""
    name = type(extractor).__name__
    if name == "FlattenExtractor":
        return None
    if name == "CombinedExtractor":
        for sub in extractor.extractors.values():
            if type(sub).__name__ != "Flatten":
                raise ValueError(f"CombinedExtractor with a {type(sub).__name__} sub-extractor is not supported")
        return list(extractor.extractors.keys())
    raise ValueError(f"feature extractor {name} is not supported")


def _network(model):
    """``(keys, layers, n_quantiles or None)`` of a supported model; ValueError otherwise."""
    policy = model.policy
    if hasattr(policy, "quantile_net"):                   # QR-DQN
        net = policy.quantile_net
        return _extractor_keys(net.features_extractor), _layers(net.quantile_net), int(net.n_quantiles)
    if hasattr(policy, "q_net"):                          # DQN
        net = policy.q_net
        return _extractor_keys(net.features_extractor), _layers(net.q_net), None
    if hasattr(policy, "action_net") and hasattr(policy, "mlp_extractor"):   # (Maskable)PPO
        if not getattr(policy, "share_features_extractor", True):
            extractor = policy.pi_features_extractor
        else:
            extractor = policy.features_extractor
        layers = _layers(policy.mlp_extractor.policy_net) + _layers(policy.action_net)
        return _extractor_keys(extractor), layers, None
    raise ValueError(f"policy {type(policy).__name__} is not supported")


def _plain_box(space) -> bool:
    """A Box observation that SB3 feeds to the network as it is (no one-hot, no image scaling)."""
    from gymnasium import spaces

    if not isinstance(space, spaces.Box):
        return False
    return not (space.dtype == np.uint8 and len(space.shape) == 3)


def supports(model) -> bool:
    """Whether :class:`NumpyGreedyPolicy` can run ``model``: an SB3 model with a Discrete action
    space, a Box (not image) or Dict-of-Box observation space and a supported network."""
    from gymnasium import spaces

    try:
        _network(model)
    except ValueError:
        return False
    obs_space = model.observation_space
    boxes = obs_space.spaces.values() if isinstance(obs_space, spaces.Dict) else [obs_space]
    return isinstance(model.action_space, spaces.Discrete) and all(_plain_box(b) for b in boxes)


class NumpyGreedyPolicy(Policy):
    """The greedy action of an SB3 MLP checkpoint, computed in numpy (mask from ``info["action_mask"]``
    or ``env.action_masks()``). ``forward(obs)`` returns the action scores (Q-values or logits)."""

    def __init__(self, model, name: str = "checkpoint"):
        self.keys, self.layers, self.n_quantiles = _network(model)
        self.n_actions = int(model.action_space.n)
        self.name = name

    @classmethod
    def load(cls, path: str | Path) -> "NumpyGreedyPolicy":
        import torch

        from .evaluation import load_sb3

        torch.set_num_threads(1)
        model, _ = load_sb3(path)
        return cls(model, name=Path(path).stem)

    def forward(self, obs) -> np.ndarray:
        if self.keys is None:
            x = np.asarray(obs, np.float32).reshape(-1)
        else:
            x = np.concatenate([np.asarray(obs[k], np.float32).reshape(-1) for k in self.keys])
        for layer in self.layers:
            if layer[0] == "linear":
                x = x @ layer[1] + layer[2]
            else:
                x = layer[1](x)
        if self.n_quantiles is not None:
            return x.reshape(self.n_quantiles, self.n_actions).mean(axis=0)
        return x

    def act(self, env, obs, info):
        mask = info.get("action_mask") if isinstance(info, dict) else None
        if mask is None and hasattr(env, "action_masks"):
            mask = env.action_masks()
        scores = self.forward(obs)
        if mask is not None:
            scores = np.where(np.asarray(mask, bool), scores, -np.inf)
        return int(np.argmax(scores))


def numpy_partner(path: str | Path):
    """A zero-argument factory of the fastest exact partner for the checkpoint ``path``: a
    :class:`NumpyGreedyPolicy` when the model qualifies, else a deterministic
    :class:`rlsys_agents.multiagent.CheckpointPartner`."""
    import torch

    from .evaluation import load_sb3
    from .multiagent import CheckpointPartner

    torch.set_num_threads(1)
    model, _ = load_sb3(path)
    if supports(model):
        fast = NumpyGreedyPolicy(model, name=Path(path).stem)
        return lambda: fast
    loaded = CheckpointPartner(path)
    return lambda: loaded.__deepcopy__({})
