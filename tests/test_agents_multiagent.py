"""Several agents: one agent of the toy parallel env trains through train.py on its single-agent
view, and its checkpoint then plays that agent in the joint evaluation."""
import json

import numpy as np
import pytest
import toy_parallel

import rlsys_envs
from rlsys_agents.multiagent import CheckpointPartner, evaluate_joint, partner
from rlsys_agents.training import main
from rlsys_envs.core.parallel import SingleAgentView, play_joint_episode

toy_parallel.register()


def test_single_agent_view_replays_the_parallel_episode_with_the_partners_actions():
    view = rlsys_envs.get_entry(toy_parallel.VIEW_ID).entry_point()
    obs, info = view.reset(seed=7)
    par = toy_parallel.ToySlotsParallelEnv()
    par_obs, par_infos = par.reset(seed=7)
    evictor = toy_parallel.EvictOldest()
    evictor.reset(par, 7 + 1)
    rng = np.random.default_rng(0)
    while True:
        a = int(rng.choice(np.flatnonzero(view.action_masks())))
        e = evictor.act(par, par_obs["evictor"], par_infos["evictor"])
        obs, r, term, trunc, info = view.step(a)
        par_obs, rew, _, _, par_infos = par.step({"placer": a, "evictor": e})
        assert info["partner_actions"] == {"evictor": e} and r == rew["placer"]
        for k in obs:
            assert np.array_equal(obs[k], par_obs["placer"][k]), k
        if term or trunc:
            break
    assert info["metrics"] == par_infos["placer"]["metrics"]


def test_view_refuses_an_unknown_agent_or_missing_partners():
    with pytest.raises(ValueError, match="agent must be one of"):
        SingleAgentView(parallel_env=toy_parallel.ToySlotsParallelEnv, agent="nobody", partners={})
    with pytest.raises(ValueError, match="missing \\['evictor'\\]"):
        SingleAgentView(parallel_env=toy_parallel.ToySlotsParallelEnv, agent="placer", partners={})


def test_one_agent_trains_through_train_py_and_plays_in_the_joint_evaluation(tmp_path):
    main([f"train.run_dir={tmp_path}", "experiment=toy", f"env.id={toy_parallel.VIEW_ID}", "env.kwargs={}",
          "env.n_envs=2", "algo.name=maskable_ppo", "algo.policy=mlp",
          "algo.kwargs={n_steps: 64, batch_size: 64, n_epochs: 2}", "algo.policy_kwargs={net_arch: [16]}",
          "algo.extractor_kwargs={}", "train.total_timesteps=384", "train.checkpoint_freq=0",
          "train.progress_bar=false", "eval.episodes=3", "eval.freq=0", "eval.reference=null", "eval.gap_metrics=[]",
          "eval.suite=[]", "eval.env_kwargs={}", "eval.baselines=null"])
    run = tmp_path / "toy" / "seed_0"
    results = json.loads((run / "results.json").read_text())
    assert results["timesteps"] >= 384 and {"policy", "first_free", "random"} <= set(results["results"])
    ckpt = run / "final_model.zip"
    joint = {"placer": partner(str(ckpt), toy_parallel.VIEW_ID), "evictor": toy_parallel.EvictOldest}
    scores = evaluate_joint(toy_parallel.PARALLEL_ID, joint, episodes=3, seed=10_000)
    # the joint evaluation of (checkpoint, evict_oldest) is the view's evaluation of the checkpoint
    assert scores["earned"] == pytest.approx(results["results"]["policy"]["earned"])
    assert set(scores) >= {"earned", "dropped", "return_placer", "return_evictor"}


def test_a_checkpoint_partner_is_deterministic_and_shared_by_copies(tmp_path):
    main([f"train.run_dir={tmp_path}", "experiment=toy2", f"env.id={toy_parallel.VIEW_ID}", "env.kwargs={}",
          "env.n_envs=1", "algo.name=maskable_ppo", "algo.policy=mlp", "algo.kwargs={n_steps: 32, batch_size: 32}",
          "algo.policy_kwargs={net_arch: [8]}", "algo.extractor_kwargs={}", "train.total_timesteps=32",
          "train.checkpoint_freq=0", "train.progress_bar=false", "eval.episodes=1", "eval.freq=0",
          "eval.reference=null", "eval.gap_metrics=[]", "eval.suite=[]", "eval.env_kwargs={}",
          "eval.baselines=[first_free]"])
    p = CheckpointPartner(tmp_path / "toy2" / "seed_0" / "final_model.zip")
    env = toy_parallel.ToySlotsParallelEnv()
    policies = {"placer": p, "evictor": toy_parallel.EvictOldest()}
    a = play_joint_episode(env, policies, seed=3)
    b = play_joint_episode(env, {"placer": __import__("copy").deepcopy(p), "evictor": toy_parallel.EvictOldest()}, 3)
    assert a == b
