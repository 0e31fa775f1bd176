"""The environment base classes every rlsys environment derives from.

:class:`EnvContract` holds what the six environments, single-agent or several-agent, would
otherwise each write again:

* keyword-only construction, with the constructor's arguments kept in ``init_kwargs`` so that
  :meth:`~EnvContract.spawn` builds a twin (one way to copy an environment);
* seeding through ``reset(seed=...)`` and ``self.np_random`` only (never global random state);
* ``reset(options=...)``: unknown option keys are refused, ``options["instance"]`` starts the
  episode from a given instance (:mod:`rlsys_envs.core.instances`) in every environment, and a
  failed reset leaves no episode to step;
* refusal of an action outside the space or the mask with :class:`InvalidActionError` *before*
  any state changes, so a bad action can never corrupt an episode;
* headline metrics in ``info["metrics"]`` at the end of every episode;
* render dispatch (``ansi`` text, ``rgb_array`` picture) and ``metadata``;
* state snapshots (:meth:`~EnvContract.get_state` / :meth:`~EnvContract.set_state`) for search:
  best-of-K, look-ahead and MCTS branch from any state without replaying the episode;
* :meth:`~EnvContract.at_decision_boundary`: whether the agent stands between two complete
  decisions (a two-stage action is half done otherwise), where an expert may take over.

:class:`RlsysEnv` turns that into Gymnasium's ``reset`` / ``step`` for one agent. Subclasses
implement ``_reset_model(options)``, ``_apply_action(action) -> (reward, terminated, truncated)``,
``_observation()``, ``_action_mask()``, ``_episode_metrics()``, and for rendering
``_render_ansi()`` / ``_render_rgb()``. The several-agent twin is
:class:`rlsys_envs.core.parallel.RlsysParallelEnv`.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from numbers import Integral
from typing import Any

import gymnasium as gym
import numpy as np

from .spaces import MaskedDiscrete, MaskedMultiDiscrete

#: ``render_mode`` values every rlsys environment supports
RENDER_MODES = ("ansi", "rgb_array")


class InvalidActionError(ValueError):
    """Raised when an action is outside the action space or masked out in the current state."""


@dataclass(frozen=True)
class EnvState:
    """A snapshot of an environment's episode (:meth:`EnvContract.get_state`).

    ``attributes`` are deep copies of the environment's mutable attributes (its random generator
    included), taken together so that objects shared between them stay shared after a restore.
    """

    env_class: str
    attributes: dict


def describe_action(action) -> str:
    """``repr`` of an action for error messages, shortened for large arrays."""
    text = repr(action)
    return text if len(text) <= 200 else text[:200] + " ..."


def is_integer_action(action) -> bool:
    """An integer (python or numpy, not a bool), or a 0-d / one-element integer array."""
    if isinstance(action, (bool, np.bool_)):
        return False
    if isinstance(action, Integral):
        return True
    if isinstance(action, np.ndarray) and action.size == 1 and np.issubdtype(action.dtype, np.integer):
        return True
    return False


def check_action_in_space(space: gym.Space, action, who: str = "action") -> None:
    """Raise :class:`InvalidActionError` unless ``action`` is an element of ``space``.

    Discrete spaces take integers only (see :func:`is_integer_action`): a float, a bool, a string,
    ``None`` or a complex number is refused, never rounded or cast. Box spaces take arrays of the
    space's shape whose values are finite and within the bounds; MultiDiscrete spaces integer
    arrays within ``nvec``.
    """
    if isinstance(space, gym.spaces.Discrete):
        if type(action) is int:                     # the common case, checked without numpy
            if space.start <= action < space.start + space.n:
                return
            raise InvalidActionError(f"{who} {describe_action(action)} is outside the action space {space}")
        if not is_integer_action(action):
            raise InvalidActionError(f"{who} {describe_action(action)} is not an integer; the action space is {space}")
        a = int(np.asarray(action).reshape(-1)[0])
        if not space.start <= a < space.start + space.n:
            raise InvalidActionError(f"{who} {describe_action(action)} is outside the action space {space}")
        return
    try:
        arr = np.asarray(action)
    except (TypeError, ValueError):
        raise InvalidActionError(f"{who} {describe_action(action)} is not an array"
                                 f"; the action space is {space}") from None
    if isinstance(space, gym.spaces.MultiDiscrete):
        if arr.dtype == bool or not np.issubdtype(arr.dtype, np.integer):
            raise InvalidActionError(f"{who} {describe_action(action)} is not an integer array"
                                     f"; the action space is {space}")
    elif isinstance(space, gym.spaces.Box):
        if not (np.issubdtype(arr.dtype, np.floating) or np.issubdtype(arr.dtype, np.integer)) or arr.dtype == bool:
            raise InvalidActionError(f"{who} {describe_action(action)} is not a real-valued array"
                                     f"; the action space is {space}")
        if arr.shape == space.shape and not np.all(np.isfinite(arr)):
            raise InvalidActionError(f"{who} {describe_action(action)}"
                                     " has a value that is not finite (NaN or infinite)")
        arr = arr.astype(space.dtype)
    if not space.contains(arr):
        raise InvalidActionError(f"{who} {describe_action(action)} is outside the action space {space}")


class EnvContract:
    """What :class:`RlsysEnv` and :class:`~rlsys_envs.core.parallel.RlsysParallelEnv` share."""

    metadata = {"render_modes": list(RENDER_MODES), "render_fps": 4}
    #: keys ``reset(options=...)`` accepts; every environment honours ``instance``
    reset_options: tuple[str, ...] = ("instance",)
    #: attributes that never change during an episode but are rebuilt at reset, so a snapshot
    #: keeps them by reference instead of copying them (large immutable instances, loaded files)
    shared_state_attributes: tuple[str, ...] = ()
    #: attributes that hold another rlsys environment (a single-agent view's parallel env): a
    #: snapshot takes theirs with their own ``get_state``, so their shared attributes stay shared
    nested_env_attributes: tuple[str, ...] = ()
    #: attributes fixed at construction (spaces, configuration): never part of a snapshot
    _NOT_STATE = frozenset({"action_space", "observation_space", "action_spaces", "observation_spaces",
                            "spec", "render_mode", "init_kwargs", "metadata", "possible_agents", "_pz_spaces"})

    def __new__(cls, *args, **kwargs):
        if args:
            raise TypeError(f"{cls.__name__} takes keyword arguments only (got {len(args)} positional); "
                            f"e.g. {cls.__name__}(render_mode='ansi')")
        obj = super().__new__(cls)
        #: the constructor's keyword arguments (without ``render_mode``): :meth:`spawn` rebuilds from them
        obj.init_kwargs = {k: v for k, v in kwargs.items() if k != "render_mode"}
        return obj

    def _init_contract(self, render_mode: str | None) -> None:
        if render_mode is not None and render_mode not in self.metadata["render_modes"]:
            raise ValueError(
                f"render_mode must be one of {self.metadata['render_modes']} or None, got {render_mode!r}")
        self.render_mode = render_mode
        self._episode_over = True
        self._episode_started = False

    # ----------------------------------------------------------------- hooks for subclasses
    def _reset_model(self, options: dict) -> None:
        """Build the episode's initial state, drawing randomness from ``self.np_random`` only.

        ``options`` holds only keys of :attr:`reset_options`; ``options.get("instance")`` is an
        instance to start from (None: draw one from the environment's instance source).
        """
        raise NotImplementedError

    def _episode_metrics(self) -> dict[str, float]:
        """Headline metrics of the finished episode (floats), put in ``info["metrics"]``."""
        return {}

    def _render_ansi(self) -> str:
        raise NotImplementedError(f"{type(self).__name__} has no text view")

    def _render_rgb(self) -> np.ndarray:
        raise NotImplementedError(f"{type(self).__name__} has no picture")

    def at_decision_boundary(self) -> bool:
        """Whether the agent stands between complete decisions (False in the middle of a
        two-stage action), i.e. where another policy or an expert may take over."""
        return True

    # ------------------------------------------------------------------------- public API
    def spawn(self, **overrides):
        """A new environment built with this one's constructor arguments (and ``overrides``),
        with no episode: ``reset`` it, or :meth:`set_state` a snapshot into it."""
        kwargs = {**self.init_kwargs, **overrides}
        if "render_mode" not in overrides:
            kwargs["render_mode"] = self.render_mode
        return type(self)(**kwargs)

    def get_state(self) -> EnvState:
        """A snapshot of the current episode (deep copy of the mutable state and the random
        generator), which :meth:`set_state` restores here or in a :meth:`spawn` twin any number
        of times: the rest of the episode is then bit-identical for the same actions."""
        shared = {id(self.__dict__[k]): self.__dict__[k] for k in self.shared_state_attributes if k in self.__dict__}
        shared[id(self)] = self            # back-references to the environment are not copied
        nested = {k: self.__dict__[k] for k in self.nested_env_attributes if k in self.__dict__}
        shared.update({id(env): env for env in nested.values()})
        attrs = {k: v for k, v in self.__dict__.items() if k not in self._NOT_STATE and k not in nested}
        attrs = copy.deepcopy(attrs, memo=shared)
        attrs.update({k: env.get_state() for k, env in nested.items()})
        return EnvState(type(self).__qualname__, attrs)

    def set_state(self, state: EnvState) -> None:
        """Restore a snapshot of :meth:`get_state` (of this class and constructor arguments)."""
        if not isinstance(state, EnvState) or state.env_class != type(self).__qualname__:
            got = state.env_class if isinstance(state, EnvState) else type(state).__name__
            raise ValueError(f"set_state needs a snapshot of {type(self).__qualname__}, got one of {got}")
        shared = {id(state.attributes[k]): state.attributes[k]
                  for k in self.shared_state_attributes if k in state.attributes}
        shared[id(self)] = self
        nested = {k: state.attributes[k] for k in self.nested_env_attributes if k in state.attributes}
        shared.update({id(self.__dict__[k]): self.__dict__[k] for k in nested if k in self.__dict__})
        self.__dict__.update(copy.deepcopy({k: v for k, v in state.attributes.items() if k not in nested}, memo=shared))
        for k, inner in nested.items():
            self.__dict__[k].set_state(inner)

    def render(self):
        """The current state as text (``render_mode="ansi"``) or an ``[H, W, 3]`` uint8 picture
        (``"rgb_array"``); None without a render mode or before the first reset."""
        if self.render_mode is None or not self._episode_started:
            return None
        return self._render_ansi() if self.render_mode == "ansi" else self._render_rgb()

    # ----------------------------------------------------------------------------- helpers
    def _check_reset_options(self, options: dict | None) -> dict:
        options = dict(options or {})
        unknown = sorted(set(options) - set(self.reset_options))
        if unknown:
            raise ValueError(f"reset(options=...): unknown option(s) {', '.join(map(repr, unknown))}; "
                             f"{type(self).__name__} accepts {', '.join(map(repr, self.reset_options))}")
        return options

    def _start_episode(self, options: dict | None) -> None:
        """Validate ``options`` and build the initial state; the previous episode is over first,
        so a failed reset leaves nothing to step."""
        self._episode_over = True
        self._reset_model(self._check_reset_options(options))
        self._episode_over = False
        self._episode_started = True

    def _final_metrics(self) -> dict[str, float]:
        return {k: float(v) for k, v in self._episode_metrics().items()}


class RlsysEnv(EnvContract, gym.Env):
    """Single-agent base class: Gymnasium ``reset`` / ``step`` over the subclass hooks."""

    def __init__(self, *, render_mode: str | None = None):
        self._init_contract(render_mode)

    # ----------------------------------------------------------------- hooks for subclasses
    def _apply_action(self, action) -> tuple[float, bool, bool]:
        """Apply a legal action; return ``(reward, terminated, truncated)``."""
        raise NotImplementedError

    def _observation(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def _action_mask(self) -> np.ndarray | None:
        """Boolean mask over discrete actions (flattened for MultiDiscrete), or None if unmasked."""
        return None

    def _step_info(self) -> dict[str, Any]:
        """Extra per-step info entries (optional)."""
        return {}

    def _is_legal(self, action, mask: np.ndarray | None) -> bool:
        """Whether ``action`` (inside the space) is allowed under ``mask``; override for
        MultiDiscrete spaces (per-dimension masks)."""
        if mask is None:
            return True
        if type(action) is int:
            return bool(mask[action])
        return bool(mask[int(np.asarray(action).reshape(-1)[0])])

    # ------------------------------------------------------------------------ Gymnasium API
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        self._start_episode(options)
        return self._observation(), self._info(final=False)

    def step(self, action):
        if self._episode_over:
            raise RuntimeError("step() called without an episode in progress: call reset() first")
        self.check_action(action)
        reward, terminated, truncated = self._apply_action(action)
        self._episode_over = bool(terminated or truncated)
        return (self._observation(), float(reward), bool(terminated), bool(truncated),
                self._info(final=self._episode_over))

    def observe(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        """The observation and info of the current state (e.g. after :meth:`set_state`)."""
        return self._observation(), self._info(final=self._episode_over)

    def masked_discrete(self, n: int) -> MaskedDiscrete:
        """A ``Discrete(n)`` action space whose ``sample()`` draws among the legal actions."""
        return MaskedDiscrete(n, self._current_mask_or_none)

    def masked_multi_discrete(self, nvec) -> MaskedMultiDiscrete:
        """A 1-D ``MultiDiscrete(nvec)`` action space whose ``sample()`` draws every component among
        the legal values of its dimension (the flat mask of :meth:`_action_mask`); pair it with
        :func:`~rlsys_envs.core.spaces.multi_discrete_legal` in :meth:`_is_legal`."""
        return MaskedMultiDiscrete(nvec, self._current_mask_or_none)

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
        check_action_in_space(self.action_space, action)
        mask = self._action_mask()
        if not self._is_legal(action, mask):
            legal = np.flatnonzero(mask)
            shown = ", ".join(map(str, legal[:20])) + (" ..." if len(legal) > 20 else "")
            raise InvalidActionError(
                f"action {describe_action(action)} is masked out in the current state; legal actions: [{shown}]")

    # ----------------------------------------------------------------------------- helpers
    def _info(self, final: bool) -> dict[str, Any]:
        info: dict[str, Any] = dict(self._step_info())
        mask = self._action_mask()
        if mask is not None:
            info["action_mask"] = mask.copy()
        if final:
            info["metrics"] = self._final_metrics()
        return info
