"""DQN and QR-DQN that respect action masks.

rlsys environments refuse masked-out actions (``InvalidActionError``), and SB3's DQN / QR-DQN
know nothing about masks: their greedy or random action may be illegal. These subclasses take
the masks from the training env (``env_method("action_masks")``) or from ``predict(...,
action_masks=...)``, and act greedily among the legal actions (epsilon-exploration and the
warm-up phase draw uniformly among the legal actions). Environments without masks are unaffected.
The TD target still maximises over all actions (no next-state masks are stored in the buffer).
Checkpoints are ordinary DQN / QR-DQN zips.
"""
from __future__ import annotations

import numpy as np
import torch
from sb3_contrib import QRDQN
from stable_baselines3 import DQN


class _MaskedQMixin:
    def _env_masks(self):
        from sb3_contrib.common.maskable.utils import get_action_masks, is_masking_supported

        env = getattr(self, "env", None)
        if env is None or not is_masking_supported(env):
            return None
        return np.asarray(get_action_masks(env), dtype=bool)

    def _q_values(self, obs_tensor) -> torch.Tensor:
        raise NotImplementedError

    def _random_legal(self, masks: np.ndarray) -> np.ndarray:
        return np.array([np.random.choice(np.flatnonzero(m)) for m in masks])

    def predict(self, observation, state=None, episode_start=None, deterministic=False, action_masks=None):
        masks = action_masks if action_masks is not None else self._env_masks()
        if masks is None:
            return super().predict(observation, state, episode_start, deterministic)
        obs_tensor, vectorized = self.policy.obs_to_tensor(observation)
        masks = np.asarray(masks, dtype=bool).reshape(-1, self.action_space.n)
        if not deterministic and np.random.rand() < self.exploration_rate:
            actions = self._random_legal(masks)
        else:
            self.policy.set_training_mode(False)
            with torch.no_grad():
                q = self._q_values(obs_tensor).cpu().numpy()
            q = np.where(masks, q, -np.inf)
            actions = q.argmax(axis=1)
        if not vectorized:
            actions = actions[0]
        return actions, state

    def _sample_action(self, learning_starts, action_noise=None, n_envs=1):
        if self.num_timesteps < learning_starts:
            masks = self._env_masks()
            if masks is not None:
                actions = self._random_legal(masks)
                return actions, actions
        return super()._sample_action(learning_starts, action_noise, n_envs)


class MaskableDQN(_MaskedQMixin, DQN):
    """DQN acting greedily among the legal actions."""

    def _q_values(self, obs_tensor):
        return self.policy.q_net(obs_tensor)


class MaskableQRDQN(_MaskedQMixin, QRDQN):
    """QR-DQN acting greedily (mean over quantiles) among the legal actions."""

    def _q_values(self, obs_tensor):
        return self.policy.quantile_net(obs_tensor).mean(dim=1)
