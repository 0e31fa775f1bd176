"""The environment base class every rlsys environment derives from.

It holds what the six environments would otherwise each write again:

* seeding through ``reset(seed=...)`` and ``self.np_random`` only (never global random state);
* the action-mask contract: ``action_masks()`` for sb3-contrib's ``MaskablePPO`` and the same
  mask in ``info["action_mask"]`` on every ``reset`` and ``step``;
* a ``Discrete`` action space (:meth:`masked_discrete`) whose ``sample()`` draws legal actions,
  so ``check_env`` and users sampling ``env.action_space`` never hit a masked-out action;
* refusal of an action outside the mask with :class:`InvalidActionError` *before* any state
  changes, so a bad action can never corrupt an episode;
* headline metrics in ``info["metrics"]`` at the end of every episode.

Subclasses implement ``_reset_model(options)``, ``_apply_action(action) -> (reward, terminated,
truncated)``, ``_observation()``, ``_action_mask()`` and ``_episode_metrics()``; the base class
turns those into Gymnasium's ``reset`` / ``step``.
"""
from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from .spaces import MaskedDiscrete


class InvalidActionError(ValueError):
    """Raised when an action is outside the action space or masked out in the current state."""


class RlsysEnv(gym.Env):
    """Base class: seeding, action masks, invalid-action refusal, end-of-episode metrics."""

    metadata = {"render_modes": ["ansi", "rgb_array"], "render_fps": 4}

    def __init__(self, render_mode: str | None = None):
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}")
        self.render_mode = render_mode
        self._episode_over = True

    # ----------------------------------------------------------------- hooks for subclasses
    def _reset_model(self, options: dict | None) -> None:
        """Build the episode's initial state, drawing randomness from ``self.np_random`` only."""
        raise NotImplementedError

    def _apply_action(self, action) -> tuple[float, bool, bool]:
        """Apply a legal action; return ``(reward, terminated, truncated)``."""
        raise NotImplementedError

    def _observation(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _action_mask(self) -> np.ndarray | None:
        """Boolean mask over discrete actions (flattened for MultiDiscrete), or None if unmasked."""
        return None

    def _episode_metrics(self) -> dict[str, float]:
        """Headline metrics of the finished episode (floats), put in ``info["metrics"]``."""
        return {}

    def _step_info(self) -> dict[str, Any]:
        """Extra per-step info entries (optional)."""
        return {}

    def _is_legal(self, action, mask: np.ndarray | None) -> bool:
        """Whether ``action`` is allowed under ``mask``; override for non-Discrete spaces."""
        if mask is None:
            return True
        return bool(mask[int(action)])

    # ------------------------------------------------------------------------ Gymnasium API
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._reset_model(options)
        self._episode_over = False
        return self._observation(), self._info(final=False)

    def step(self, action):
        if self._episode_over:
            raise RuntimeError("step() called on a finished episode: call reset() first")
        self.check_action(action)
        reward, terminated, truncated = self._apply_action(action)
        self._episode_over = bool(terminated or truncated)
        return (self._observation(), float(reward), bool(terminated), bool(truncated),
                self._info(final=self._episode_over))

    def masked_discrete(self, n: int) -> "MaskedDiscrete":
        """A ``Discrete(n)`` action space whose ``sample()`` draws among the legal actions."""
        return MaskedDiscrete(n, self._current_mask_or_none)

    def _current_mask_or_none(self) -> np.ndarray | None:
        return None if self._episode_over else self._action_mask()

    def action_masks(self) -> np.ndarray:
        """The current legal-action mask (sb3-contrib's ``MaskablePPO`` calls this)."""
        mask = self._action_mask()
        if mask is None:
            n = self.action_space.n if hasattr(self.action_space, "n") else 1
            return np.ones(int(n), dtype=bool)
        return mask

    def check_action(self, action) -> None:
        """Raise :class:`InvalidActionError` if ``action`` is outside the space or the mask."""
        try:
            in_space = self.action_space.contains(np.asarray(action, dtype=self.action_space.dtype)
                                                  if not np.isscalar(action) else action)
        except (TypeError, ValueError):
            in_space = False
        if not in_space and isinstance(self.action_space, gym.spaces.Discrete):
            in_space = (np.ndim(action) == 0 and float(action) == int(action)
                        and self.action_space.start <= int(action) < self.action_space.start + self.action_space.n)
        if not in_space:
            raise InvalidActionError(f"action {action!r} is outside the action space {self.action_space}")
        mask = self._action_mask()
        if not self._is_legal(action, mask):
            legal = np.flatnonzero(mask)
            shown = ", ".join(map(str, legal[:20])) + (" ..." if len(legal) > 20 else "")
            raise InvalidActionError(
                f"action {action!r} is masked out in the current state; legal actions: [{shown}]")

    # ----------------------------------------------------------------------------- helpers
    def _info(self, final: bool) -> dict[str, Any]:
        info: dict[str, Any] = dict(self._step_info())
        mask = self._action_mask()
        if mask is not None:
            info["action_mask"] = mask.copy()
        if final:
            info["metrics"] = {k: float(v) for k, v in self._episode_metrics().items()}
        return info
