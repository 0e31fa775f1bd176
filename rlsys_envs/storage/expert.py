"""Behaviour-cloning demonstrations of the placement agent from a placement baseline
(``rlsys_agents.imitation``; ``pretrain.expert: oracle`` in a config of ``rlsys/HybridStorage-v0``).

Why: on the HDD configurations (H&L, H&M&L) the Oracle's placement on the agents' own system (LRU
eviction) is about 45 % below CDE's mean latency, and its whole margin is *which* requests it lets
onto the fast device: a write or a read goes there only when its pages are read again sooner than
the pages the LRU eviction would displace (``baselines.OraclePlacement``). That is a reuse
prediction, which the agent can learn from what it sees (access count and interval, last reuse
distance, the fast device's LRU age, size, type) as a supervised problem; PPO with the latency
reward on H&L instead converges to LRU (every request to the fast device) or collapses on single
workloads. The learner cannot see the future, so the clone is a predictor of the Oracle's choice,
not the Oracle.

:class:`PlacementExpert` plays any placement baseline of :data:`.baselines.PLACEMENT_POLICIES`
(``oracle`` by default) in the placement view, on the env exactly as configured (the agents'
system: LRU eviction unless the config says otherwise, no migration unless a partner is set); the
accepted action of each step is the baseline's.
"""
from __future__ import annotations

from typing import Callable

from rlsys_envs.core import Demonstration, play_prefix

from .baselines import PLACEMENT_POLICIES


class PlacementExpert:
    """Demonstrations of placement baseline ``baseline`` (built with ``kwargs``) from
    ``env.reset(seed)`` after the ``prefix`` actions (a DAgger learner's)."""

    name = "placement"
    version = 1

    def __init__(self, baseline: str = "oracle", **kwargs):
        factory = PLACEMENT_POLICIES.get(baseline)
        if factory is None or baseline == "random":
            known = [k for k in PLACEMENT_POLICIES if k != "random"]
            raise ValueError(f"{type(self).__name__}: baseline must be a deterministic placement baseline "
                             f"({', '.join(known)}); got {baseline!r}")
        self.baseline, self.kwargs = baseline, dict(kwargs)
        factory(**self.kwargs)          # bad keyword arguments: fail here, not mid-episode

    def demonstrate(self, env, seed: int, prefix=()) -> Demonstration:
        """Play the baseline from ``env.reset(seed=seed)`` (after the ``prefix`` actions)."""
        base = env.unwrapped
        if getattr(base, "agent", None) != "placement":
            raise ValueError(f"{type(self).__name__} needs the placement view rlsys/HybridStorage-v0, "
                             f"got {type(base).__name__}")
        obs, info = play_prefix(env, seed, prefix, type(self).__name__)
        actions = [int(a) for a in prefix]
        policy = PLACEMENT_POLICIES[self.baseline](**self.kwargs)
        policy.reset(base, int(seed))
        while True:
            a = int(policy.act(base, obs, info))
            actions.append(a)
            obs, _r, terminated, truncated, info = env.step(a)
            if terminated or truncated:
                break
        metrics = info.get("metrics", {})
        return Demonstration(int(seed), actions, [[a] for a in actions],
                             {k: float(metrics[k]) for k in ("mean_latency_us", "evictions_per_1k") if k in metrics},
                             len(prefix))


class OracleExpert(PlacementExpert):
    """The Oracle's placement (``baselines.OraclePlacement``: by next reuse against the page the
    eviction would displace) on the env's own eviction."""

    name = "oracle"

    def __init__(self, **kwargs):
        super().__init__("oracle", **kwargs)


EXPERTS: dict[str, Callable[..., PlacementExpert]] = {"oracle": OracleExpert, "placement": PlacementExpert}
