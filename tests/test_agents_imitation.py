"""Behaviour cloning (rlsys_agents.imitation) and the VM CP-SAT expert it learns from."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

import rlsys_envs  # noqa: F401
from rlsys_agents.imitation import behaviour_clone, collect_demonstrations, replay
from rlsys_agents.training import main
from rlsys_envs.core import Demonstration
from rlsys_envs.vm.exact import solve_cpsat
from rlsys_envs.vm.expert import CPSatExpert
from rlsys_envs.vm.planning import sequence_moves
from rlsys_envs.vm.env import VMReschedulingEnv

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[1]
ENV = "rlsys/VMRescheduling-v0"
TINY = {"size": "tiny", "workload": "low", "mnl": 4, "observation": "graph"}


def test_cpsat_expert_replays_the_solver_plan_and_accepts_interchangeable_vms():
    env = VMReschedulingEnv(**TINY)
    for seed in range(3):
        demo = CPSatExpert(time_limit=60, deterministic_time=2.0).demonstrate(env, seed)
        env.reset(seed=seed)
        best = solve_cpsat(env.cluster, env.mnl, 5.0)
        assert demo.info["status"] == "OPTIMAL"
        for i, (a, accepted) in enumerate(zip(demo.actions, demo.targets)):
            assert a in accepted and env.action_masks()[accepted].all(), i
            if env.phase == 0 and a != env.stop_action:
                c = env.cluster
                own = 2 * c.vm_pm + np.where(c.vm_span == 2, 0, c.vm_numa)
                same = np.flatnonzero((c.vm_shape == c.vm_shape[a]) & (own == own[a]) & c.vm_movable)
                assert set(same.tolist()) <= set(accepted)       # identical VMs on the same slot
            _, _, term, trunc, info = env.step(a)
        assert term or trunc
        # allow_stop (default): the expert stops once its plan is done, at the solver's optimum
        assert info["metrics"]["fr_final"] == pytest.approx(best.fr) == pytest.approx(demo.info["fr_final"])


def test_accepted_destinations_are_interchangeable_with_the_planned_one():
    """Every accepted destination d' of a planned move (v, d) keeps an equally good plan: a d' no
    later move uses replaces d in the rest of the plan; a d' that a later move (w, d') of a VM with
    the same cores targets is exchanged with it (v -> d', w -> d). Either plan, sequenced from the
    same state, ends at the demonstration's FR."""
    env = VMReschedulingEnv(size="S", workload="high", mnl=12)
    checked = {"replaced": 0, "exchanged": 0}
    for seed in range(4):
        demo = CPSatExpert(time_limit=60, deterministic_time=1.0).demonstrate(env, seed)
        seq = [(demo.actions[i], demo.actions[i + 1]) for i in range(0, len(demo.actions) - 1, 2)]
        for j, (v, d) in enumerate(seq):
            later = {dd: vv for vv, dd in seq[j + 1:]}
            for d2 in [x for x in demo.targets[2 * j + 1] if x != d]:
                env.reset(seed=seed)
                for vv, dd in seq[:j]:
                    env.cluster.migrate(vv, dd)
                if d2 in later:
                    w = later[d2]
                    assert env.cluster.vm_ncpu[w] == env.cluster.vm_ncpu[v]
                    plan = [(v, d2)] + [(vv, d if vv == w else dd) for vv, dd in seq[j + 1:]]
                    kind = "exchanged"
                else:
                    plan = [(vv, d2 if dd == d else dd) for vv, dd in seq[j:]]
                    kind = "replaced"
                order, dropped = sequence_moves(env.cluster, plan, env.mnl - j)
                assert dropped == 0, (seed, j, d2)
                for vv, dd in order:
                    env.cluster.migrate(vv, dd)
                assert env.cluster.fragment_rate() == pytest.approx(demo.info["fr_final"]), (seed, j, d2, kind)
                checked[kind] += 1
    assert checked["replaced"] >= 5 and checked["exchanged"] >= 5, checked


def test_accepted_vms_on_other_nodes_keep_an_equally_good_plan():
    """A VM accepted in phase 0 that is neither in the plan nor identical to a planned VM on the same
    slot can take the place of a planned VM with its cores (same destination): the plan sequenced
    from that state ends at the demonstration's FR. The plans come from a deterministic CP-SAT
    limit, so every machine checks the same cases (a short one: its plans leave such VMs)."""
    env = VMReschedulingEnv(size="S", workload="high", mnl=12)
    checked = 0
    for seed in range(6):
        demo = CPSatExpert(time_limit=60, scope="all", deterministic_time=0.3).demonstrate(env, seed)
        seq = [(demo.actions[i], demo.actions[i + 1]) for i in range(0, len(demo.actions) - 1, 2)]
        for j in range(len(seq)):
            env.reset(seed=seed)
            for vv, dd in seq[:j]:
                env.cluster.migrate(vv, dd)
            c = env.cluster
            own = c.own_slots()
            planned = {vv for vv, _ in seq[j:]}
            kinds = {(c.vm_shape[vv], own[vv]) for vv in planned}
            for w in demo.targets[2 * j]:
                if w in planned or (c.vm_shape[w], own[w]) in kinds:
                    continue
                reached = []
                for i, (vv, dd) in enumerate(seq[j:]):
                    if c.vm_ncpu[vv] == c.vm_ncpu[w] and c.vm_span[vv] == c.vm_span[w]:
                        sim = c.copy()
                        plan = seq[j:j + i] + [(w, dd)] + seq[j + i + 1:]
                        order, dropped = sequence_moves(sim, plan, env.mnl - j)
                        for vv2, dd2 in order:
                            sim.migrate(vv2, dd2)
                        reached.append(dropped == 0 and sim.fragment_rate() == pytest.approx(demo.info["fr_final"]))
                assert any(reached), (seed, j, w)
                checked += 1
    assert checked >= 5, checked


def test_demonstrations_refuse_inconsistent_records_and_other_env_kwargs():
    with pytest.raises(ValueError, match="step 0 action 3 is not among its accepted actions"):
        Demonstration(0, [3], [[1, 2]])
    with pytest.raises(ValueError, match="2 actions but 1 target sets"):
        Demonstration(0, [1, 2], [[1]])
    demo = CPSatExpert(time_limit=2).demonstrate(VMReschedulingEnv(**TINY), 0)
    assert Demonstration.from_json(demo.to_json()) == demo
    with pytest.raises(ValueError, match="other env kwargs"):
        replay(VMReschedulingEnv(**{**TINY, "mnl": 1}), demo)


def test_collected_demonstrations_are_cached_and_keyed_by_spec(tmp_path, monkeypatch):
    cache = tmp_path / "demos.jsonl"
    first = collect_demonstrations(ENV, TINY, "cpsat", {"time_limit": 2}, [0, 1], cache=cache, progress=False)

    def refuse(self, env, seed):
        raise AssertionError("the cache should have answered")

    monkeypatch.setattr(CPSatExpert, "demonstrate", refuse)
    assert collect_demonstrations(ENV, TINY, "cpsat", {"time_limit": 2}, [1, 0], cache=cache,
                                  progress=False) == first[::-1]
    with pytest.raises(AssertionError, match="cache should have answered"):   # other kwargs: not reused
        collect_demonstrations(ENV, {**TINY, "mnl": 3}, "cpsat", {"time_limit": 2}, [0], cache=cache, progress=False)
    with pytest.raises(ValueError, match="'oracle' is not an expert of rlsys/VMRescheduling-v0; known: cpsat"):
        collect_demonstrations(ENV, TINY, "oracle", {}, [5], progress=False)


def test_another_seeds_cache_is_read_not_remade_and_its_part_written_line_skipped(tmp_path, monkeypatch):
    """train.seeds=[0,1,2]: seed 1 reads seed 0's stage-0 demonstrations (they do not depend on the
    training seed) into its own cache; a line seed 0 is still writing is not taken."""
    seed0, seed1 = tmp_path / "seed_0" / "demonstrations.jsonl", tmp_path / "seed_1" / "demonstrations.jsonl"
    seed0.parent.mkdir(), seed1.parent.mkdir()
    first = collect_demonstrations(ENV, TINY, "cpsat", {"time_limit": 2}, [0, 1], cache=seed0, progress=False)
    whole = seed0.read_text()
    seed0.write_text(whole + whole.splitlines()[0][:40])       # seed 0 mid-append
    made = []
    real = CPSatExpert.demonstrate
    monkeypatch.setattr(CPSatExpert, "demonstrate", lambda self, env, seed: made.append(seed) or real(self, env, seed))
    got = collect_demonstrations(ENV, TINY, "cpsat", {"time_limit": 2}, [1, 0, 2], cache=seed1, progress=False,
                                 sources=[seed0])
    assert made == [2] and got[:2] == first[::-1]
    assert len(seed1.read_text().splitlines()) == 3 and seed0.read_text().endswith(whole.splitlines()[0][:40])
    made.clear()                                                # seed 1's own cache now answers alone
    assert collect_demonstrations(ENV, TINY, "cpsat", {"time_limit": 2}, [0, 1, 2], cache=seed1,
                                  progress=False) == [got[1], got[0], got[2]] and made == []


def test_dagger_demonstrations_start_where_the_learner_left_off():
    env = VMReschedulingEnv(**TINY)
    demo = CPSatExpert(time_limit=2).demonstrate(VMReschedulingEnv(**TINY), 0)
    prefix = demo.actions[:2]                     # one migration played by "the learner"
    dag = CPSatExpert(time_limit=2).demonstrate(env, 0, prefix=prefix)
    assert dag.prefix == 2 and dag.actions[:2] == prefix
    obs, masks, accepted, returns = replay(VMReschedulingEnv(**TINY), dag)
    env.reset(seed=0)
    for a in prefix:
        env.step(a)
    # samples start at the expert's first step; its return-to-go is the FR it removes from there
    assert len(obs) == len(dag.actions) - 2
    assert returns[0] == pytest.approx(env.cluster.fragment_rate() - dag.info["fr_final"])
    with pytest.raises(ValueError, match="stops in phase 1"):
        CPSatExpert(time_limit=2).demonstrate(env, 0, prefix=demo.actions[:1])


class _FirstLegal:
    """A stand-in learner for DAgger: always the first legal action."""

    def predict(self, obs, deterministic=True, action_masks=None):
        return int(np.argmax(action_masks)), None


def test_dagger_cut_points_can_be_kept_to_the_late_part_of_the_learner_episode():
    from rlsys_agents.imitation import learner_prefixes

    kw = {**TINY, "mnl": 8, "allow_stop": False}      # 8 migrations: cut points after 1..7 of them
    seeds = list(range(40))
    anywhere = learner_prefixes(_FirstLegal(), ENV, kw, seeds)
    late = learner_prefixes(_FirstLegal(), ENV, kw, seeds, cut_from=0.5)
    assert set(anywhere) == set(late) == set(seeds)
    migrations = lambda prefixes: {len(p) // 2 for p in prefixes.values()}  # noqa: E731  (two steps each)
    assert migrations(anywhere) == {1, 2, 3, 4, 5, 6, 7}
    assert migrations(late) == {4, 5, 6, 7}
    for s in seeds:                                   # the same learner actions, cut later
        assert late[s] == anywhere[s][:len(late[s])] or anywhere[s] == late[s][:len(anywhere[s])]
    with pytest.raises(ValueError, match="cut_from"):
        learner_prefixes(_FirstLegal(), ENV, kw, seeds, cut_from=1.0)


def test_behaviour_cloning_fits_the_expert_on_a_tiny_cluster():
    from rlsys_agents.config import load_config
    from rlsys_agents.training import build_model, make_vec_env

    kw = {**TINY, "allow_stop": False}
    demos = collect_demonstrations(ENV, kw, "cpsat", {"time_limit": 2}, list(range(6)), progress=False)
    cfg = load_config(ROOT / "configs" / "vm_gnn_ppo.yaml", ["env.n_envs=1", "env.kwargs=" + json.dumps(kw)])
    model = build_model(cfg, make_vec_env(cfg, 0), 0)
    hist = behaviour_clone(model.policy, ENV, kw, demos, epochs=40, batch_size=16, learning_rate=3e-3,
                           log=lambda *_: None)
    assert hist[-1]["nll"] < 0.5 * hist[0]["nll"]
    # (the greedy steps after the plan break ties by index, which the policy cannot always see)
    assert hist[-1]["accuracy"] > max(0.8, hist[0]["accuracy"]) and hist[-1]["value_mse"] < hist[0]["value_mse"]


def test_train_py_pretrains_checkpoints_and_resumes_an_interrupted_pretraining(tmp_path, capsys):
    from sb3_contrib import MaskablePPO

    args = ["--config", str(ROOT / "configs" / "vm_gnn_ppo.yaml"), f"train.run_dir={tmp_path}", "experiment=bc",
            "env.kwargs={size: tiny, workload: low, mnl: 4, allow_stop: false, observation: graph}",
            "env.n_envs=1", "train.total_timesteps=0", "pretrain.expert=cpsat", "pretrain.episodes=3",
            "pretrain.epochs=2", "pretrain.expert_kwargs={time_limit: 2}", "pretrain.dagger_rounds=1",
            "pretrain.dagger_episodes=2", "pretrain.dagger_epochs=1", "eval.episodes=2", "eval.freq=0"]
    main(args)
    run = tmp_path / "bc" / "seed_0"
    assert (run / "checkpoints" / "model_0_steps.zip").is_file()
    assert len((run / "demonstrations.jsonl").read_text().splitlines()) == 3
    dagger = [json.loads(line) for line in (run / "dagger_1.jsonl").read_text().splitlines()]
    assert {d["seed"] for d in dagger} <= {20003, 20004} and all(d["prefix"] >= 2 for d in dagger)
    assert json.loads((run / "pretrain_state.json").read_text())["stage"] == 1
    res = json.loads((run / "results.json").read_text())
    assert set(res["summary"]) == {"policy", "greedy"} and res["timesteps"] == 0
    from test_train import scalars

    assert scalars(run)["pretrain/nll"] == [1, 2, 3]
    # a finished pretraining gets a second DAgger round on --resume; the first round's is reused
    capsys.readouterr()
    main(["--resume", str(run), "pretrain.dagger_rounds=2"])
    out = capsys.readouterr().out
    assert "resuming pretraining after stage 1 epoch 1" in out and out.count("pretrain epoch 1/1") == 1
    assert "expert cpsat: 2 demonstrations to make (0 cached" in out      # round 2's only
    assert json.loads((run / "pretrain_state.json").read_text())["stage"] == 2
    assert {json.loads(line)["seed"] for line in (run / "dagger_2.jsonl").read_text().splitlines()} <= {20005, 20006}
    assert "dagger_rounds: 2" in (run / "config.yaml").read_text()
    with pytest.raises(SystemExit, match="can raise pretrain.dagger_rounds .* not lower it: the run has 2, got 1"):
        main(["--resume", str(run), "pretrain.dagger_rounds=1"])
    # killed after pretraining epoch 2 of 3, before DAgger: resume does epoch 3, then the DAgger epochs
    (run / "pretrain_state.json").write_text(json.dumps({"stage": 0, "epoch": 2}))
    (run / "checkpoints" / "model_0_steps.zip").unlink()
    cfg = run / "config.yaml"
    cfg.write_text(cfg.read_text().replace("epochs: 2", "epochs: 3"))
    capsys.readouterr()
    # ... and RL then starts with other PPO settings than the run was built with (a fine-tuning)
    main(["--resume", str(run), "train.total_timesteps=16", "algo.kwargs.learning_rate=0.00002",
          "algo.kwargs.n_steps=16", "algo.kwargs.batch_size=8"])
    out = capsys.readouterr().out
    assert "resuming pretraining after stage 0 epoch 2" in out and "pretrain epoch 3/3" in out
    assert "epoch 1/3" not in out and out.count("pretrain epoch 1/1") == 2
    assert "expert cpsat:" not in out            # demonstrations (and DAgger's) came from the caches
    assert json.loads((run / "pretrain_state.json").read_text())["stage"] == 2
    tuned = MaskablePPO.load(run / "final_model.zip")
    assert tuned.num_timesteps >= 16 and (tuned.learning_rate, tuned.n_steps, tuned.batch_size) == (2e-5, 16, 8)
    with pytest.raises(SystemExit, match="can change algo.kwargs only before RL starts"):
        main(["--resume", str(run), "algo.kwargs.learning_rate=0.001"])
    with pytest.raises(SystemExit, match="pretrain.epochs cannot be overridden"):
        main(["--resume", str(run), "pretrain.epochs=5"])
    with pytest.raises(SystemExit, match="RL has started .* can no longer be extended"):
        main(["--resume", str(run), "pretrain.dagger_rounds=3"])


def test_pretraining_keeps_the_best_validated_epoch(tmp_path, capsys):
    import re

    from sb3_contrib import MaskablePPO

    args = ["--config", str(ROOT / "configs" / "vm_gnn_ppo.yaml"), f"train.run_dir={tmp_path}", "experiment=sel",
            "env.kwargs={size: S, workload: high, mnl: 6, allow_stop: false, observation: graph}",
            "env.n_envs=1", "train.total_timesteps=0", "pretrain.expert=cpsat", "pretrain.episodes=3",
            "pretrain.epochs=4", "pretrain.expert_kwargs={time_limit: 1}", "pretrain.select_episodes=3",
            "pretrain.learning_rate=0.01", "eval.episodes=1", "eval.freq=0"]
    main(args)
    out = capsys.readouterr().out
    run = tmp_path / "sel" / "seed_0"
    scores = [float(x) for x in re.findall(r"validation after stage 0 epoch \d: mean return (-?[\d.]+)", out)]
    state = json.loads((run / "pretrain_state.json").read_text())
    assert len(scores) == 4 and state["best"]["score"] == pytest.approx(max(scores), abs=1e-4)
    assert state["best"]["epoch"] == 1 + int(np.argmax(scores))
    final = MaskablePPO.load(run / "checkpoints" / "model_0_steps.zip").policy.state_dict()
    best = MaskablePPO.load(run / "pretrain_best.zip").policy.state_dict()
    assert all(torch.equal(final[k], best[k]) for k in final)
    if state["best"]["epoch"] != 4:
        assert "going on from the best validated epoch" in out


@pytest.mark.parametrize("override, message", [
    ("pretrain.expert=oracle", "'oracle' is not an expert"),
    ("pretrain.expert=cpsat pretrain.expert_kwargs={speed: 2}", "pretrain.expert_kwargs"),
    ('pretrain.expert=cpsat pretrain.expert_kwargs={"scope":"frag"}', "pretrain.expert_kwargs .*scope must be one of"),
    ("train.total_timesteps=0", "train.total_timesteps must be >= 1"),
    ("pretrain.expert=cpsat pretrain.epochs=0", "pretrain.epochs must be >= 1"),
    ("pretrain.expert=cpsat pretrain.dagger_cut_from=1.0", r"pretrain.dagger_cut_from must be in \[0, 1\)"),
])
def test_pretrain_config_errors_name_the_field(override, message, tmp_path):
    with pytest.raises(SystemExit, match=message):
        main(["--config", str(ROOT / "configs" / "vm_gnn_ppo.yaml"), f"train.run_dir={tmp_path}",
              "env.kwargs.size=tiny"] + override.split())


def test_the_demonstrations_summary_fits_any_environment():
    """VM experts record FR and solver time, others their own metrics: the summary averages what
    every episode has, and writes no zeros for keys an environment does not have."""
    from types import SimpleNamespace

    from rlsys_agents.training import demonstrations_summary

    vm = [SimpleNamespace(info={"fr_initial": 0.6, "fr_final": 0.2, "solver_s": 1.0}),
          SimpleNamespace(info={"fr_initial": 0.4, "fr_final": 0.1, "solver_s": 3.0, "note": "x"})]
    assert demonstrations_summary(vm) == pytest.approx({"episodes": 2, "fr_final": 0.15, "fr_initial": 0.5,
                                                        "solver_s": 2.0})
    other = [SimpleNamespace(info={"total_value": 10, "allocated": True}), SimpleNamespace(info={"total_value": 20})]
    assert demonstrations_summary(other) == {"episodes": 2, "total_value": 15.0}
    assert demonstrations_summary([]) == {"episodes": 0}


def test_cloning_loss_of_a_multidiscrete_action_is_per_component():
    """For MultiDiscrete([3, 3]) logits the loss is the sum over components of -log pi(accepted):
    a component that is already sure does not excuse the other (one softmax over the six
    concatenated logits would give almost no loss here); masked values take no probability."""
    from gymnasium import spaces

    from rlsys_agents.imitation import accepted_nll, action_components

    assert action_components(spaces.MultiDiscrete([3, 3])) == [3, 3]
    assert action_components(spaces.Discrete(4)) == [4]
    with pytest.raises(ValueError, match="Discrete or MultiDiscrete"):
        action_components(spaces.Box(0, 1, (2,)))
    logits = torch.tensor([[10.0, 0.0, 0.0, 0.0, 0.0, 0.0]])
    masks = torch.tensor([[True, True, True, True, True, False]])
    accepted = torch.tensor([[True, False, False, False, True, False]])
    nll, hit = accepted_nll(logits, masks, accepted, [3, 3])
    first = -torch.log_softmax(logits[0, :3], 0)[0]
    assert nll.item() == pytest.approx(first.item() + np.log(2), abs=1e-5)   # second: 1 of 2 legal values
    assert hit.item() == 0.0           # argmax of the second component (a tie) is value 0, not accepted
    nll_all, hit_all = accepted_nll(logits, masks, masks, [3, 3])
    assert nll_all.item() == pytest.approx(0.0, abs=1e-6) and hit_all.item() == 1.0


def test_play_prefix_reaches_the_expert_start_state_or_names_where_the_episode_ended():
    """The experts' shared DAgger step: reset with the seed, play the learner's actions, refuse a
    prefix after which nothing is left to plan."""
    from rlsys_envs.core import play_prefix

    class Countdown:           # an episode of 3 steps; the observation counts the actions played
        def reset(self, seed=None):
            self.seed, self.t = seed, 0
            return self.t, {"seed": seed}

        def step(self, a):
            self.t += 1
            return self.t, 0.0, self.t >= 3, False, {"last": a}

    env = Countdown()
    assert play_prefix(env, 7, [], "Expert") == (0, {"seed": 7})
    assert play_prefix(env, 7, ["1", "0"], "Expert") == (2, {"last": 0}) and env.seed == 7
    with pytest.raises(ValueError, match="Expert: the prefix of seed 7 ends the episode at step 3"):
        play_prefix(env, 7, [0, 1, 0], "Expert")
