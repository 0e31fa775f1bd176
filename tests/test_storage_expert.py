"""The placement experts of rlsys/HybridStorage-v0 (behaviour cloning, rlsys_envs.storage.expert)."""
import numpy as np
import pytest

import rlsys_envs
from rlsys_agents.imitation import collect_demonstrations, replay
from rlsys_envs.storage import HybridStorageEnv
from rlsys_envs.storage.baselines import ORACLE_SYSTEM, PLACEMENT_POLICIES
from rlsys_envs.storage.expert import OracleExpert, PlacementExpert

ENV_ID = "rlsys/HybridStorage-v0"
KWARGS = {"instance": "read_after_write", "config": "H&L", "episode_requests": 400, "placement_features": "reuse"}


def _play(name, seed, **kwargs):
    env = HybridStorageEnv(**{**KWARGS, **kwargs})
    policy = PLACEMENT_POLICIES[name]()
    obs, info = env.reset(seed=seed)
    policy.reset(env, seed)
    actions = []
    while True:
        a = int(policy.act(env, obs, info))
        actions.append(a)
        obs, _r, term, trunc, info = env.step(a)
        if term or trunc:
            return actions, info["metrics"]


def test_registered_and_bad_names_fail_early():
    assert set(rlsys_envs.experts(ENV_ID)) >= {"oracle", "placement"}
    with pytest.raises(ValueError, match="deterministic placement baseline"):
        PlacementExpert("random")
    with pytest.raises(ValueError, match="deterministic placement baseline"):
        PlacementExpert("nope")
    with pytest.raises(TypeError):
        PlacementExpert("cde", bogus=1)


@pytest.mark.parametrize("kwargs", [{}, ORACLE_SYSTEM])
def test_oracle_demonstration_is_the_oracle_placement_on_the_env_as_configured(kwargs):
    env = HybridStorageEnv(**{**KWARGS, **kwargs})
    demo = OracleExpert().demonstrate(env, 5)
    actions, metrics = _play("oracle", 5, **kwargs)
    assert demo.actions == actions and demo.targets == [[a] for a in actions]
    assert demo.info["mean_latency_us"] == pytest.approx(metrics["mean_latency_us"])
    assert 0 < sum(a == 0 for a in actions) < len(actions)     # it sends some requests to each device


def test_prefix_is_replayed_and_not_imitated():
    env = HybridStorageEnv(**KWARGS)
    prefix = [1] * 50                                    # a learner that leaves the first 50 requests on the HDD
    demo = PlacementExpert("cde").demonstrate(env, 3, prefix=prefix)
    assert demo.prefix == 50 and demo.actions[:50] == prefix and len(demo.actions) == KWARGS["episode_requests"]
    obs, masks, accepted, returns = replay(env, demo)
    assert len(obs) == len(demo.actions) - 50 and all(o is not None for o in obs)
    assert all(m[a] for m, a in zip(masks, demo.actions[50:]))          # every expert action is legal
    assert np.all(np.diff(returns) >= -1e-3)                            # rewards are negative latencies


def test_cached_demonstrations_round_trip(tmp_path):
    cache = tmp_path / "demos.jsonl"
    first = collect_demonstrations(ENV_ID, KWARGS, "oracle", {}, [1, 2], cache=cache, progress=False,
                                   log=lambda *_: None)
    again = collect_demonstrations(ENV_ID, KWARGS, "oracle", {}, [1, 2], cache=cache, progress=False,
                                   log=lambda *_: pytest.fail("made again"))
    assert [d.actions for d in first] == [d.actions for d in again]


def test_shipped_hl_clone_plays_legally_and_uses_both_devices():
    from pathlib import Path

    from rlsys_agents.fast_inference import numpy_partner

    path = Path(__file__).resolve().parents[1] / "agents" / "checkpoints" / "storage_placement_bc_hl.zip"
    policy = numpy_partner(str(path))()
    env = HybridStorageEnv(**{**KWARGS, "instance": "zipf_oltp"})
    obs, info = env.reset(seed=0)
    actions = []
    while True:
        a = int(policy.act(env, obs, info))
        assert info["action_mask"][a], a
        actions.append(a)
        obs, _r, term, trunc, info = env.step(a)
        if term or trunc:
            break
    assert 0 < actions.count(0) < len(actions)
    assert np.isfinite(info["metrics"]["mean_latency_us"])
