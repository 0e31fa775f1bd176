"""evaluate() on seeded episodes, load_policy for baselines and checkpoints (incl. size-agnostic ones)."""
import pytest
import torch

import rlsys_envs  # noqa: F401  (registers the rlsys/ IDs)
from rlsys_agents.evaluation import evaluate, format_table, load_policy, summarise

torch.set_num_threads(1)
ENV = "rlsys/JobShop-v0"
SMALL = dict(n_jobs=(3, 5), n_machines=(3, 4), max_jobs=6, max_machines=6)


def test_evaluate_is_seeded_per_episode():
    a = evaluate(ENV, "MWKR", episodes=3, seed=5, env_kwargs=SMALL)
    b = evaluate(ENV, "MWKR", episodes=2, seed=6, env_kwargs=SMALL)
    assert len(a["makespan"]) == 3
    assert a["makespan"][1:] == b["makespan"]  # episode i is env.reset(seed=seed+i)
    # the random baseline is seeded by policy.reset(env, seed+i) too
    assert evaluate(ENV, "random", 3, 0, SMALL) == evaluate(ENV, "random", 3, 0, SMALL)


def test_evaluate_with_per_episode_kwargs_runs_each_instance():
    res = evaluate(ENV, "SPT", episodes=2, seed=0, env_kwargs=[{"instance": "ft06"}, {"instance": "la01"}])
    assert res["n_jobs"] == [6.0, 10.0]
    assert "gap" in res  # benchmark instances with a known optimum report the gap


def test_load_policy_unknown_name_is_a_clear_error():
    with pytest.raises(ValueError, match="neither a baseline"):
        load_policy("no_such_policy", ENV)


def test_summary_gap_to_reference():
    s = summarise({"a": {"makespan": [110.0, 120.0]}, "ref": {"makespan": [100.0, 100.0]}}, "ref", ["makespan"])
    assert s["a"]["gap_makespan"] == pytest.approx(0.15)
    assert "+15.0" in format_table(s)


def _train_tiny(tmp_path, policy_kwargs, env_kwargs, policy="MultiInputPolicy"):
    from sb3_contrib import MaskablePPO

    import gymnasium as gym

    env = gym.make(ENV, **env_kwargs)
    model = MaskablePPO(policy, env, n_steps=32, batch_size=32, n_epochs=1, seed=0, policy_kwargs=policy_kwargs)
    model.learn(64)
    path = tmp_path / "model.zip"
    model.save(path)
    return path


def test_load_policy_of_saved_checkpoint_evaluates(tmp_path):
    kw = {**SMALL, "observation": "flat"}
    path = _train_tiny(tmp_path, dict(net_arch=[16]), kw)
    pol = load_policy(str(path), ENV, kw)
    res = evaluate(ENV, pol, episodes=2, seed=0, env_kwargs=kw)
    ref = evaluate(ENV, "SPT", episodes=2, seed=0, env_kwargs=kw)
    assert len(res["makespan"]) == 2
    assert res["lower_bound0"] == ref["lower_bound0"]  # same seeded instances as the baseline
    assert evaluate(ENV, str(path), 2, 0, kw) == res  # deterministic by default; loadable by path


def test_pointer_checkpoint_runs_on_a_larger_env(tmp_path):
    from rlsys_agents.extractors import GraphNodeExtractor
    from rlsys_agents.policies import PointerPolicy

    path = _train_tiny(tmp_path, dict(features_extractor_class=GraphNodeExtractor,
                                      features_extractor_kwargs=dict(hidden=8, layers=1)), SMALL, PointerPolicy)
    big = dict(n_jobs=(8, 10), n_machines=(6, 8), max_jobs=12, max_machines=10)
    pol = load_policy(str(path), ENV, big)
    assert pol.model.action_space.n == 12
    res = evaluate(ENV, pol, episodes=2, seed=0, env_kwargs=big)
    assert min(res["n_jobs"]) >= 8 and len(res["makespan"]) == 2


def test_best_of_k_keeps_the_best_sampled_run():
    from rlsys_agents.evaluation import best_of_k
    from rlsys_envs.core import RandomMaskedPolicy

    single = evaluate(ENV, "random", episodes=3, seed=0, env_kwargs=SMALL)
    best = best_of_k(ENV, RandomMaskedPolicy, k=4, episodes=3, seed=0, metric="makespan", env_kwargs=SMALL)
    assert best["lower_bound0"] == single["lower_bound0"]  # same instances
    assert all(b <= s for b, s in zip(best["makespan"], single["makespan"]))  # run 0 is the single run
