"""Environments with several deciding agents: a PettingZoo ``ParallelEnv`` on the rlsys contract,
and the single-agent Gymnasium view of one of its agents.

:class:`RlsysParallelEnv` keeps the contract of :class:`~rlsys_envs.core.base.RlsysEnv`
(it shares :class:`~rlsys_envs.core.base.EnvContract` with it): seeding only through
``reset(seed=...)``, keyword-only construction, ``reset(options={"instance": ...})``, snapshots,
render dispatch, ``info["metrics"]`` for every agent at the end of the episode, and refusal of an
illegal action of *any* agent with :class:`~rlsys_envs.core.base.InvalidActionError` before *any*
state changes. Masked agents carry their mask in their observation (key ``action_mask``, int8, as
PettingZoo's tests and samplers expect) and in :meth:`RlsysParallelEnv.action_masks`.

Every agent acts at every step until the episode ends for all of them together (an agent with
nothing to decide at a step has a one-action mask, its no-op). Subclasses declare each agent
with :meth:`RlsysParallelEnv._declare_agent` and implement ``_reset_model(options)``,
``_apply_actions(actions) -> (rewards, terminated, truncated)``, ``_agent_observation(agent)``,
``_agent_action_mask(agent)``, ``_episode_metrics()`` and the renderers.

:class:`SingleAgentView` turns one agent into a :class:`~rlsys_envs.core.base.RlsysEnv` (so
Gymnasium's and SB3's checkers, vector envs and every trainer apply), the other agents played by
*partner* policies: :class:`~rlsys_envs.core.policy.Policy` objects whose ``act(env, obs, info)``
gets the parallel environment and that agent's observation and info. ``rlsys_agents.multiagent`` adds
frozen checkpoints as partners and the joint evaluation.
"""
from __future__ import annotations

import warnings
from typing import Any, Callable, Mapping

import numpy as np
from gymnasium import spaces
from gymnasium.utils import seeding
from pettingzoo import ParallelEnv

from .base import EnvContract, InvalidActionError, RlsysEnv, check_action_in_space, describe_action

ACTION_MASK_KEY = "action_mask"


class RlsysParallelEnv(EnvContract, ParallelEnv):
    """PettingZoo parallel environment with the rlsys contract (see the module docstring)."""


    def __init__(self, *, render_mode: str | None = None):
        self._init_contract(render_mode)
        self.possible_agents: list[str] = []
        self.agents: list[str] = []
        self.observation_spaces: dict[str, spaces.Dict] = {}
        self.action_spaces: dict[str, spaces.Space] = {}
        self._masked: dict[str, bool] = {}
        self._np_random = None
        self._np_random_seed = None

    # ----------------------------------------------------------------- declaring agents
    def _declare_agent(self, agent: str, observation: Mapping[str, spaces.Box], action_space: spaces.Space,
                       masked: bool) -> None:
        """Declare ``agent``: its observation keys, its action space, and whether it has a mask
        (then its observation gets ``action_mask``, int8 ``[n]`` for ``Discrete(n)``)."""
        obs = dict(observation)
        if masked:
            if not isinstance(action_space, spaces.Discrete):
                raise TypeError(f"agent {agent!r}: only Discrete action spaces carry a mask")
            obs[ACTION_MASK_KEY] = spaces.Box(0, 1, (int(action_space.n),), np.int8)
        self.possible_agents.append(agent)
        self.observation_spaces[agent] = spaces.Dict(obs)
        self.action_spaces[agent] = action_space
        self._masked[agent] = masked

    def observation_space(self, agent: str) -> spaces.Dict:
        return self.observation_spaces[self._known(agent)]

    def action_space(self, agent: str) -> spaces.Space:
        return self.action_spaces[self._known(agent)]

    def _known(self, agent: str) -> str:
        if agent not in self.observation_spaces:
            raise KeyError(f"unknown agent {agent!r}; agents are {self.possible_agents}")
        return agent

    # ----------------------------------------------------------------- hooks for subclasses
    def _apply_actions(self, actions: dict[str, Any]) -> tuple[dict[str, float], bool, bool]:
        """Apply every agent's legal action; return ``(rewards, terminated, truncated)`` (the
        episode ends for all agents together)."""
        raise NotImplementedError

    def _agent_observation(self, agent: str) -> dict[str, np.ndarray]:
        """``agent``'s observation without ``action_mask`` (the base class adds it), in fresh
        arrays (they are handed to the caller)."""
        raise NotImplementedError

    def _agent_action_mask(self, agent: str) -> np.ndarray | None:
        """Boolean mask over ``agent``'s discrete actions (None: unmasked agent)."""
        return None

    def _agent_info(self, agent: str) -> dict[str, Any]:
        """Extra per-step info entries of ``agent`` (optional)."""
        return {}

    # --------------------------------------------------------------------- PettingZoo API
    @property
    def np_random(self) -> np.random.Generator:
        """The environment's random generator (seeded by ``reset(seed=...)``)."""
        if self._np_random is None:
            self._np_random, self._np_random_seed = seeding.np_random()
        return self._np_random

    def reset(self, seed: int | None = None, options: dict | None = None):
        if seed is not None or self._np_random is None:
            self._np_random, self._np_random_seed = seeding.np_random(seed)
        self.agents = []
        self._start_episode(options)
        self.agents = list(self.possible_agents)
        return self._observations(), {a: self._info(a, final=False) for a in self.agents}

    def step(self, actions: dict[str, Any]):
        agents = list(self.agents)
        rewards, terminated, truncated = self.step_without_observations(actions)
        obs = self._observations(agents)
        infos = {a: self._info(a, final=self._episode_over) for a in agents}
        return (obs, {a: float(rewards[a]) for a in agents}, dict.fromkeys(agents, bool(terminated)),
                dict.fromkeys(agents, bool(truncated)), infos)

    def step_without_observations(self, actions: dict[str, Any], trusted: tuple[str, ...] = ()
                                  ) -> tuple[dict[str, float], bool, bool]:
        """:meth:`step` without building the observations and infos (a single-agent view asks
        only for those it needs, :meth:`observe_agent`): ``(rewards, terminated, truncated)``.
        The actions of the agents in ``trusted`` are not checked again (the caller checked them
        against the current state, or took them from the mask)."""
        if self._episode_over:
            raise RuntimeError("step() called without an episode in progress: call reset() first")
        self.check_actions(actions, trusted)
        rewards, terminated, truncated = self._apply_actions(dict(actions))
        self._episode_over = bool(terminated or truncated)
        if self._episode_over:
            self.agents = []
        return rewards, bool(terminated), bool(truncated)

    def action_masks(self, agent: str) -> np.ndarray:
        """``agent``'s current legal-action mask (all ones for an unmasked discrete agent)."""
        mask = self._agent_action_mask(self._known(agent))
        if mask is None:
            space = self.action_spaces[agent]
            return np.ones(int(space.n) if hasattr(space, "n") else 1, dtype=bool)
        return mask

    def check_actions(self, actions: dict[str, Any], trusted: tuple[str, ...] = ()) -> None:
        """Raise :class:`InvalidActionError` unless ``actions`` has exactly one legal action per
        live agent (checked for all agents but those in ``trusted`` before anything changes)."""
        if type(actions) is not dict and not isinstance(actions, Mapping):
            raise InvalidActionError(f"step() takes a dict agent -> action, got {describe_action(actions)}")
        agents = self.agents
        complete = len(actions) == len(agents)
        for a in agents:
            if a not in actions:
                complete = False
        if not complete:
            missing = [a for a in agents if a not in actions]
            extra = [a for a in actions if a not in agents]
            raise InvalidActionError(f"step() needs one action per live agent {self.agents}; "
                                     + (f"missing {missing}" if missing else "") + (" " if missing and extra else "")
                                     + (f"not live or unknown {extra}" if extra else ""))
        for agent in agents:
            if agent not in trusted:
                self.check_action(agent, actions[agent])

    def check_action(self, agent: str, action) -> None:
        """Raise :class:`InvalidActionError` if ``action`` is outside ``agent``'s space or mask."""
        check_action_in_space(self.action_spaces[agent], action, who=f"agent {agent!r}: action")
        mask = self._agent_action_mask(agent)
        if mask is not None and not mask[action if type(action) is int else int(np.asarray(action).reshape(-1)[0])]:
            legal = np.flatnonzero(mask)
            shown = ", ".join(map(str, legal[:20])) + (" ..." if len(legal) > 20 else "")
            raise InvalidActionError(f"agent {agent!r}: action {describe_action(action)} is masked out in the "
                                     f"current state; legal actions: [{shown}]")

    def forced(self, agent: str) -> bool:
        """Whether ``agent`` has exactly one legal action now (a masked agent with nothing to
        decide); subclasses may answer faster than from the mask."""
        mask = self._agent_action_mask(self._known(agent))
        return mask is not None and int(np.count_nonzero(mask)) == 1

    def forced_action(self, agent: str) -> int:
        """The only legal action of a :meth:`forced` agent."""
        return int(np.flatnonzero(self.action_masks(agent))[0])

    def observe_agent(self, agent: str) -> tuple[dict, dict]:
        """``agent``'s observation and info in the current state: what the last :meth:`step` (or
        ``reset``) returned for it."""
        return self._observations([agent])[agent], self._info(agent, final=self._episode_over)

    def observe(self) -> tuple[dict[str, dict], dict[str, dict]]:
        """Every live agent's observation and info in the current state (e.g. after ``set_state``)."""
        agents = self.agents if self.agents else self.possible_agents
        return self._observations(agents), {a: self._info(a, final=self._episode_over) for a in agents}

    def close(self) -> None:
        pass

    # ----------------------------------------------------------------------------- helpers
    def _check_reset_options(self, options: dict | None) -> dict:
        """Unknown option keys are warned about and ignored, not refused as in single-agent
        environments: PettingZoo's ``parallel_api_test`` resets with an option key of its own."""
        options = dict(options or {})
        unknown = sorted(set(options) - set(self.reset_options))
        if unknown:
            warnings.warn(f"reset(options=...): unknown option(s) {', '.join(map(repr, unknown))} ignored; "
                          f"{type(self).__name__} accepts {', '.join(map(repr, self.reset_options))}", stacklevel=3)
        return {k: v for k, v in options.items() if k in self.reset_options}

    def _observations(self, agents: list[str] | None = None) -> dict[str, dict]:
        out = {}
        for agent in self.agents if agents is None else agents:
            obs = self._agent_observation(agent)
            if self._masked[agent]:
                obs[ACTION_MASK_KEY] = self.action_masks(agent).astype(np.int8)
            out[agent] = obs
        return out

    def _info(self, agent: str, final: bool) -> dict[str, Any]:
        info = dict(self._agent_info(agent))
        if self._masked[agent]:
            info[ACTION_MASK_KEY] = self.action_masks(agent).copy()
        if final:
            info["metrics"] = self._final_metrics()
        return info


class SingleAgentView(RlsysEnv):
    """One agent of a :class:`RlsysParallelEnv` as a single-agent Gymnasium environment.

    ``parallel_env``: a factory (zero arguments, e.g. the parallel class with its kwargs bound) of
    the parallel environment; ``agent``: the agent this view plays; ``partners``: agent -> factory
    of the :class:`~rlsys_envs.core.policy.Policy` that plays each other agent (reset with the
    episode's seed, so the episode is reproducible). ``reset(seed=s)`` resets the parallel
    environment with ``s``: the view's episode is exactly the parallel episode with the partners'
    actions. Observation and action spaces are the agent's; the reward is the agent's;
    ``info["metrics"]`` are the parallel environment's (joint) metrics; ``info["partner_actions"]``
    the partners' actions of the step.

    ``lazy_partners=True`` (opt-in) is the fast path of a view whose partners often have nothing
    to decide: a partner that is :meth:`~RlsysParallelEnv.forced` (one legal action) is not
    called, its action is that one; the other partners get their observation and info built
    only when they are called (:meth:`~RlsysParallelEnv.observe_agent`), and the parallel
    environment builds only this agent's. The episode is the same as without it for partners
    that do not change their state on forced steps (e.g. every policy that answers a one-action
    mask without drawing a random number; ``RandomMaskedPolicy`` draws none there).
    """

    nested_env_attributes = ("parallel",)

    def __init__(self, *, parallel_env: Callable[[], RlsysParallelEnv], agent: str,
                 partners: Mapping[str, Callable[[], Any]], render_mode: str | None = None,
                 lazy_partners: bool = False):
        super().__init__(render_mode=render_mode)
        self.lazy_partners = bool(lazy_partners)
        self.parallel = parallel_env() if callable(parallel_env) and not isinstance(parallel_env, RlsysParallelEnv) \
            else parallel_env
        if not isinstance(self.parallel, RlsysParallelEnv):
            raise ValueError(f"parallel_env must build an RlsysParallelEnv, got {type(self.parallel).__name__}")
        if agent not in self.parallel.possible_agents:
            raise ValueError(f"agent must be one of {self.parallel.possible_agents}, got {agent!r}")
        others = [a for a in self.parallel.possible_agents if a != agent]
        missing = [a for a in others if a not in partners]
        unknown = [a for a in partners if a not in others]
        if missing or unknown:
            raise ValueError(f"partners must give a policy for each other agent {others}; "
                             f"missing {missing}, unknown {unknown}")
        self.agent = agent
        self.partner_factories = dict(partners)
        self.parallel.render_mode = render_mode
        self.action_space = self.parallel.action_spaces[agent]
        if self.parallel._masked[agent]:
            self.action_space = self.masked_discrete(int(self.action_space.n))
        self.observation_space = self.parallel.observation_spaces[agent]
        self.reset_options = self.parallel.reset_options
        self.metadata = self.parallel.metadata

    # --------------------------------------------------------------------------- hooks
    def _reset_model(self, options):
        seed = self._pending_seed
        obs, infos = self.parallel.reset(seed=seed, options=options)
        self._obs, self._infos = (None, None) if self.lazy_partners else (obs, infos)
        self.partners = {a: make() for a, make in self.partner_factories.items()}
        for i, (a, p) in enumerate(self.partners.items()):
            p.reset(self.parallel, None if seed is None else int(seed) + i)
        self._partner_actions: dict[str, Any] = {}

    def reset(self, *, seed: int | None = None, options: dict | None = None):
        self._pending_seed = seed
        return super().reset(seed=seed, options=options)

    def _apply_action(self, action):
        par = self.parallel
        if self.lazy_partners:
            actions, trusted = {}, [self.agent]
            for a, p in self.partners.items():
                if par.forced(a):
                    actions[a] = par.forced_action(a)
                    trusted.append(a)
                else:
                    actions[a] = p.act(par, *par.observe_agent(a))
            self._partner_actions = dict(actions)
            actions[self.agent] = action
            rewards, term, trunc = par.step_without_observations(actions, tuple(trusted))
            return rewards[self.agent], term, trunc
        actions = {a: p.act(par, self._obs[a], self._infos[a]) for a, p in self.partners.items()}
        self._partner_actions = dict(actions)
        actions[self.agent] = action
        obs, rewards, term, trunc, infos = par.step(actions)
        self._obs, self._infos = obs, infos
        return rewards[self.agent], term[self.agent], trunc[self.agent]

    def _observation(self):
        if self.lazy_partners:                     # what the parallel env's step would return (fresh arrays)
            par = self.parallel
            obs = par._agent_observation(self.agent)
            if par._masked[self.agent]:
                obs[ACTION_MASK_KEY] = self._action_mask().astype(np.int8)
            return obs
        return {k: np.array(v, copy=True) for k, v in self._obs[self.agent].items()}

    def _action_mask(self):
        par = self.parallel
        if not par._masked[self.agent]:
            return None
        if self.lazy_partners:           # read-only here: action_masks() and the info copy it
            mask = par._agent_action_mask(self.agent)
            if mask is None:
                return par.action_masks(self.agent)
            return mask if mask.dtype == bool else mask.astype(bool)
        return np.asarray(self._infos[self.agent][ACTION_MASK_KEY], bool).copy()   # the current state's mask

    def action_masks(self) -> np.ndarray:
        mask = super().action_masks()
        return mask.copy() if self.lazy_partners else mask

    def _step_info(self):
        if self.lazy_partners:
            info = dict(self.parallel._agent_info(self.agent))
        else:
            info = {k: v for k, v in self._infos[self.agent].items() if k not in ("metrics", ACTION_MASK_KEY)}
        info["partner_actions"] = dict(self._partner_actions)
        return info

    def _episode_metrics(self):
        if self.lazy_partners:
            return self.parallel._final_metrics()
        return self._infos[self.agent]["metrics"]

    def at_decision_boundary(self) -> bool:
        return self.parallel.at_decision_boundary()

    def _render_ansi(self):
        return self.parallel._render_ansi()

    def _render_rgb(self):
        return self.parallel._render_rgb()


def play_joint_episode(env: RlsysParallelEnv, policies: Mapping[str, Any], seed: int | None,
                       options: dict | None = None) -> dict:
    """One episode of a parallel environment with one policy per agent (``policies[agent]``, each
    reset with the episode seed plus the agent's index). Returns ``{"metrics", "returns" (per
    agent), "steps"}``; the metrics are those of the last step (the same for every agent)."""
    missing = [a for a in env.possible_agents if a not in policies]
    if missing:
        raise ValueError(f"play_joint_episode needs a policy for every agent; missing {missing}")
    obs, infos = env.reset(seed=seed, options=options)
    for i, agent in enumerate(env.possible_agents):
        policies[agent].reset(env, None if seed is None else int(seed) + i)
    returns = dict.fromkeys(env.possible_agents, 0.0)
    steps = 0
    while env.agents:
        actions = {a: policies[a].act(env, obs[a], infos[a]) for a in env.agents}
        obs, rewards, _term, _trunc, infos = env.step(actions)
        for a, r in rewards.items():
            returns[a] += float(r)
        steps += 1
    metrics = next(iter(infos.values()))["metrics"]
    return {"metrics": dict(metrics), "returns": returns, "steps": steps}
