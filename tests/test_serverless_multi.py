"""Several functions on one shared cluster, and the Azure trace formats."""
import gymnasium as gym
import numpy as np
import pytest

import rlsys_envs
from rlsys_envs.core import play_episode
from rlsys_envs.serverless.generator import (load_azure_2019_functions, load_azure_2021_invocations,
                                             profile_from_durations)
from rlsys_envs.serverless.multi import MultiStaticPolicy, ServerlessMultiFunctionEnv

ID = "rlsys/ServerlessMultiFunction-v0"


def write_2019(path, rows, minutes=20):
    lines = ["HashOwner,HashApp,HashFunction,Trigger," + ",".join(str(i) for i in range(1, minutes + 1))]
    for name, counts in rows.items():
        lines.append(f"o,a,{name},http," + ",".join(str(int(c)) for c in counts))
    path.write_text("\n".join(lines) + "\n")
    return path


def write_2021(path, rows):
    lines = ["app,func,end_timestamp,duration"] + [f"{a},{f},{e},{d}" for a, f, e, d in rows]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_pods_of_all_functions_share_the_nodes_and_wait_pending_when_full():
    env = ServerlessMultiFunctionEnv(n_functions=3, episode_decisions=4, cluster={"n_nodes": 2})
    pol = MultiStaticPolicy(10)
    env.reset(seed=0)
    pol.reset(env, 0)
    for _ in range(4):
        *_, info = env.step(pol.act(env, None, {}))
        pool = env.sim.pool
        assert np.all(pool.usage <= pool.capacity + 1e-9)
        live = sum(int((s.state != 0).sum()) for s in env.sim.sims)
        assert live <= env.max_pods == 6
    assert sum(s.pod_counts()[1] for s in env.sim.sims) > 0            # more wanted than fits
    assert info["metrics"]["pending_pod_seconds"] > 0
    keys = {k for k in info["metrics"] if k.startswith("throughput_")}
    assert keys == {"throughput_0", "throughput_1", "throughput_2"}


def test_per_function_limits_set_each_service_and_beat_one_limit_for_all():
    ep_one = play_episode(ServerlessMultiFunctionEnv(episode_decisions=10), MultiStaticPolicy(10), seed=1)
    ep_per = play_episode(ServerlessMultiFunctionEnv(episode_decisions=10), MultiStaticPolicy([10, 10, 70]), seed=1)
    assert ep_per.metrics["slo_score"] > ep_one.metrics["slo_score"]
    env = ServerlessMultiFunctionEnv(episode_decisions=2, limit_change="instant")
    env.reset(seed=0)
    env.step(env.action_for_limits([10, 50, 310]))
    assert env.limits == [10, 50, 310]


def test_same_seed_same_episode_and_different_seeds_differ():
    def run(seed):
        return play_episode(ServerlessMultiFunctionEnv(episode_decisions=3), MultiStaticPolicy(30), seed=seed).metrics
    assert run(0) == run(0) and run(0)["throughput"] != run(1)["throughput"]


def test_azure_2019_per_function_with_a_start_minute(tmp_path):
    rows = {"fa": [0] * 10 + [600] * 10, "fb": [60] * 20, "fc": [1] * 20}
    path = write_2019(tmp_path / "inv.csv", rows)
    sel = load_azure_2019_functions(path, functions=2, start_minute=10)
    assert list(sel) == ["fa", "fb"] and sel["fa"].tolist() == [600] * 10
    assert load_azure_2019_functions(path, functions=["fc"])["fc"].sum() == 20
    env = ServerlessMultiFunctionEnv(n_functions=2, workload="azure2019", trace_path=str(path), trace_start=10,
                                     trace_scale=1.0, episode_decisions=4, profiles=["sleep", "sleep"])
    env.reset(seed=0)
    for _ in range(4):
        *_, info = env.step(env.action_for_limits([70, 70]))
    assert env.function_names == ["fa", "fb"]
    arr = [s.total["arrived"] / 120.0 for s in env.sim.sims]
    assert arr[0] == pytest.approx(10.0, rel=0.15) and arr[1] == pytest.approx(1.0, rel=0.3)


def test_azure_2021_invocations_drive_arrivals_and_service_times(tmp_path):
    rng = np.random.default_rng(0)
    rows = []
    for k in range(400):
        start = k * 0.25
        d = float(rng.lognormal(np.log(0.4), 0.3))
        rows.append(("app1", "hot", round(start + d, 4), round(d, 4)))
    rows += [("app2", "cold", 5.0 + 10 * k + 2.0, 2.0) for k in range(8)]
    path = write_2021(tmp_path / "inv21.csv", rows)
    inv = load_azure_2021_invocations(path)
    times, durs = inv["app1/hot"]
    assert times[0] == pytest.approx(0.0) and np.all(np.diff(times) >= 0) and durs.mean() == pytest.approx(0.41, 0.1)
    p = profile_from_durations("hot", durs, cpu_fraction=0.25)
    assert (p.cpu_s + p.sleep_s) * p.mean_factor() == pytest.approx(durs.mean(), rel=1e-6)
    assert p.work_cv == pytest.approx(0.3, abs=0.08)
    env = ServerlessMultiFunctionEnv(n_functions=2, workload="azure2021", trace_path=str(path), episode_decisions=3,
                                     decision_interval=30.0, limit_change="instant")
    env.reset(seed=0)
    for _ in range(3):
        *_, info = env.step(env.action_for_limits([50, 50]))
    assert env.function_names == ["app1/hot", "app2/cold"]
    assert env.sim.sims[0].total["arrived"] == 360        # 4 per second over the first 90 s
    assert env.sim.sims[1].total["arrived"] == 8          # at 5, 15, ..., 75 s; the replay wraps after 85 s
    m = info["metrics"]
    assert m["throughput_0"] > 3.5 and m["error_rate_0"] == 0.0


@pytest.mark.parametrize("content,match", [
    ("HashOwner,HashApp,HashFunction\nx,y,z\n", r"inv\.csv:1: expected the columns"),
    ("HashOwner,HashApp,HashFunction,Trigger,1,2\no,a,f,http,1\n", r"inv\.csv:2: expected 6 fields"),
    ("HashOwner,HashApp,HashFunction,Trigger,1,2\no,a,f,http,1,x\n", r"inv\.csv:2: minute 2 is not a number"),
    ("HashOwner,HashApp,HashFunction,Trigger,1,2\no,a,f,http,1,-3\n", r"inv\.csv:2: minute 2 has a negative"),
    ("HashOwner,HashApp,HashFunction,Trigger,1,2\no,a,f,http,1,123456789012345678901\n",
     r"inv\.csv:2: minute 2 is out of range"),
])
def test_malformed_2019_files_name_file_and_line(tmp_path, content, match):
    path = tmp_path / "inv.csv"
    path.write_text(content)
    with pytest.raises(ValueError, match=match):
        load_azure_2019_functions(path)


@pytest.mark.parametrize("content,match", [
    ("app,func,end\n", r"inv21\.csv:1: expected the columns"),
    ("app,func,end_timestamp,duration\na,f,10.0,abc\n", r"inv21\.csv:2: duration is not a number"),
    ("app,func,end_timestamp,duration\na,f,10.0,1.0\na,f,inf,1.0\n", r"inv21\.csv:3: end_timestamp is not finite"),
    ("app,func,end_timestamp,duration\na,f,10.0,-1\n", r"inv21\.csv:2: negative duration"),
])
def test_malformed_2021_files_name_file_and_line(tmp_path, content, match):
    path = tmp_path / "inv21.csv"
    path.write_text(content)
    with pytest.raises(ValueError, match=match):
        load_azure_2021_invocations(path)


def test_non_utf8_trace_names_file_and_line(tmp_path):
    path = tmp_path / "inv21.csv"
    path.write_bytes(b"app,func,end_timestamp,duration\na,f,1.0,0.5\n\xff\xfe,f,2,1\n")
    with pytest.raises(ValueError, match=r"inv21\.csv:3: not UTF-8"):
        load_azure_2021_invocations(path)


def test_trace_arguments_are_checked():
    with pytest.raises(ValueError, match="trace_path"):
        ServerlessMultiFunctionEnv(workload="azure2019")
    with pytest.raises(ValueError, match="profiles"):
        ServerlessMultiFunctionEnv(n_functions=2, profiles=["cpu"])
    with pytest.raises(ValueError, match="rates"):
        ServerlessMultiFunctionEnv(n_functions=2, rates=[1.0, -1.0])


def test_single_service_trace_start(tmp_path):
    path = write_2019(tmp_path / "inv.csv", {"fa": [0] * 10 + [600] * 10})
    env = gym.make("rlsys/ServerlessAutoscaling-v0", workload="trace", trace_path=str(path), trace_start=10,
                   trace_scale=1.0, episode_decisions=2, profile="sleep")
    env.reset(seed=0)
    env.step(1)
    *_, info = env.step(1)
    assert info["metrics"]["arrived"] == pytest.approx(600, rel=0.15)
    with pytest.raises(ValueError, match="trace_start"):
        gym.make("rlsys/ServerlessAutoscaling-v0", workload="trace", trace_path=str(path), trace_start=25)


@pytest.mark.parametrize("action_type", ["absolute", "delta"])
def test_discrete_action_types_set_each_functions_limit(action_type):
    from rlsys_envs.core import InvalidActionError

    env = ServerlessMultiFunctionEnv(action_type=action_type, episode_decisions=3, initial_limit=10)
    env.reset(seed=0)
    if action_type == "absolute":
        assert list(env.action_space.nvec) == [16, 16, 16] and env.action_masks().all()
        env.step(np.array([0, 1, 15]))
        assert env.limits == [10, 30, 310]
    else:
        assert list(env.action_space.nvec) == [3, 3, 3]
        assert list(env.action_masks()) == [False, True, True] * 3    # 10 - 20 is off the grid
        with pytest.raises(InvalidActionError, match="masked out"):
            env.step(np.array([0, 1, 1]))
        env.step(np.array([2, 1, 2]))
        assert env.limits == [30, 10, 30]
    # the baselines plan in limits and convert, whatever the action type
    m = play_episode(env, MultiStaticPolicy([10, 30, 70]), seed=1).metrics
    assert env.limits == [10, 30, 70] and np.isfinite(m["slo_score"])
    for _ in range(20):
        assert env.action_space.contains(env.action_space.sample())
    with pytest.raises(ValueError, match="initial_limit"):
        ServerlessMultiFunctionEnv(action_type=action_type, initial_limit=100)


def test_revisions_change_one_functions_memory_at_a_seeded_time():
    kw = dict(workload="revisions", rates=[20.0, 30.0, 180.0], episode_decisions=10, limit_change="instant")
    env = ServerlessMultiFunctionEnv(**kw)
    times = set()
    for seed in range(4):
        env.reset(seed=seed)
        rt = env.revision_time
        assert 0.3 * 300 <= rt <= 0.7 * 300                    # 0.5 +- 0.2 of the 300 s episode
        times.add(rt)
        wl = env.sim.sims[2].workload
        assert wl.profile.mem_mb == 10.0 and wl.switch_profile.mem_mb == 0.5 and wl.switch_at == rt
        assert wl.profile.cpu_s == wl.switch_profile.cpu_s and wl.profile.sleep_s == wl.switch_profile.sleep_s
        assert env.sim.sims[0].workload.switch_at is None and env.sim.sims[1].workload.switch_at is None
    assert len(times) == 4
    env.reset(seed=0)
    first = env.revision_time
    env.reset(seed=0)
    assert env.revision_time == first
    # without a revision, one of the two versions throughout (both occur)
    env = ServerlessMultiFunctionEnv(**kw, revision_probability=0.0)
    mems = set()
    for seed in range(8):
        env.reset(seed=seed)
        assert env.revision_time is None and env.sim.sims[2].workload.switch_at is None
        mems.add(env.sim.sims[2].workload.profile.mem_mb)
    assert mems == {10.0, 0.5}


def test_after_the_revision_a_higher_limit_pays_and_before_it_oom_kills():
    """The experiment's premise: limit 110 OOM-kills the 10 MB version (> 45 requests per pod)
    and serves the 0.5 MB version better than 30 on the pod-scarce cluster."""
    def score(mem, limit):
        kw = dict(workload="revisions", rates=[20.0, 30.0, 180.0], episode_decisions=8, limit_change="instant",
                  revision_mem_mb=[mem, mem], revision_probability=0.0)
        return play_episode(ServerlessMultiFunctionEnv(**kw), MultiStaticPolicy([30, 30, limit]), seed=3).metrics
    assert score(10.0, 110)["oom_kills"] > 0 and score(10.0, 30)["oom_kills"] == 0
    assert score(10.0, 30)["slo_score"] > score(10.0, 110)["slo_score"]
    assert score(0.5, 110)["slo_score"] > score(0.5, 30)["slo_score"]


def test_revision_oracle_switches_limits_at_the_revision_and_arguments_are_checked():
    from rlsys_envs.serverless.multi import MultiPhasedLimitPolicy

    env = ServerlessMultiFunctionEnv(workload="revisions", episode_decisions=10, limit_change="instant")
    pol = MultiPhasedLimitPolicy([30, 30, 30], [30, 30, 110])
    env.reset(seed=5)
    pol.reset(env, 5)
    seen = []
    for _ in range(10):
        a = pol.act(env, None, {})
        seen.append((env.sim.now, env.limits[2]))        # the limit of the interval from now
        env.step(a)
    rt = env.revision_time
    assert all(lim == (110 if t >= rt else 30) for t, lim in seen) and seen[-1][1] == 110
    for bad, match in ((dict(revision_mem_mb=[1.0]), "revision_mem_mb"), (dict(revision_at=0.9), "revision_spread"),
                       (dict(revision_probability=1.5), "revision_probability"),
                       (dict(revision_function=3), "revision_function")):
        with pytest.raises(ValueError, match=match):
            ServerlessMultiFunctionEnv(workload="revisions", **bad)


def test_action_prior_policy_starts_at_keep_and_checks_its_arguments(tmp_path):
    """The `mlp` preset with `prior_actions` builds ActionPriorPolicy: the untrained policy keeps
    every function's limit with probability e^3 / (e^3 + 2) = 0.91 (instead of 1/3); the prior
    survives save / load; a wrong prior or a non-maskable algorithm is refused."""
    import torch
    from sb3_contrib import MaskablePPO

    from rlsys_agents.algorithms import get_algorithm, policy_spec
    from rlsys_agents.imitation import accepted_nll, action_components, logits_and_values
    from rlsys_agents.policies import ActionPriorPolicy

    env = ServerlessMultiFunctionEnv(workload="revisions", action_type="delta", initial_limit=30, episode_decisions=4)
    algo = get_algorithm("maskable_ppo")
    cls, kw = policy_spec(algo, "mlp", env.observation_space, {"net_arch": [16], "prior_actions": [1, 1, 1]}, {})
    assert cls is ActionPriorPolicy
    model = MaskablePPO(cls, env, policy_kwargs=kw, seed=0, n_steps=8, batch_size=8, device="cpu")
    obs, _ = env.reset(seed=0)
    dist = model.policy.get_distribution(model.policy.obs_to_tensor(obs)[0])
    probs = np.array([d.probs.detach().numpy()[0] for d in dist.distributions])
    np.testing.assert_allclose(probs[:, 1], np.exp(3) / (np.exp(3) + 2), atol=0.01)
    # behaviour cloning per component: keep, keep, up accepted -> -log(0.91) * 2 - log(0.045)
    accepted = torch.zeros(1, 9, dtype=torch.bool)
    accepted[0, [1, 4, 8]] = True
    logits, _ = logits_and_values(model.policy, model.policy.obs_to_tensor(obs)[0])
    nll, hit = accepted_nll(logits, torch.ones(1, 9, dtype=torch.bool), accepted,
                            action_components(model.policy.action_space))
    p = np.exp(3) / (np.exp(3) + 2)
    assert nll.item() == pytest.approx(-2 * np.log(p) - np.log((1 - p) / 2), abs=0.05) and hit.item() == 0.0
    plain, _ = policy_spec(algo, "mlp", env.observation_space, {"net_arch": [16]}, {})
    assert plain == "MultiInputPolicy"
    model.save(tmp_path / "m.zip")
    loaded = MaskablePPO.load(tmp_path / "m.zip", device="cpu")
    assert isinstance(loaded.policy, ActionPriorPolicy) and loaded.policy.prior_actions == [1, 1, 1]
    with pytest.raises(ValueError, match="prior_actions"):
        MaskablePPO(cls, env, policy_kwargs={**kw, "prior_actions": [1, 3]}, n_steps=8, batch_size=8, device="cpu")
    with pytest.raises(ValueError, match="MaskablePPO"):
        policy_spec(get_algorithm("ppo"), "mlp", env.observation_space, {"prior_actions": [1, 1, 1]}, {})


def test_revision_expert_raises_the_revised_function_once_the_revision_shows():
    """The behaviour-cloning expert keeps `before` until the first decision at or after the
    revision (from the second decision in an episode of the revised version throughout), then
    steps to `after` one delta per decision; its targets are the flat per-component indices of
    its actions; it is registered and refuses an env it cannot drive."""
    from rlsys_envs.serverless.multi import MultiRevisionExpert

    assert rlsys_envs.experts(ID)["revision_oracle"] is MultiRevisionExpert
    env = ServerlessMultiFunctionEnv(workload="revisions", rates=[20.0, 30.0, 180.0], initial_limit=30,
                                     limit_change="instant", action_type="delta", episode_decisions=12,
                                     revision_probability=0.5)
    kinds = set()
    for seed in range(6):
        demo = MultiRevisionExpert().demonstrate(env, seed)
        rt, up = env.revision_time, [t for t, a in enumerate(demo.actions) if a != [1, 1, 1]]
        kinds.add((rt is None, env.revision_version))
        if rt is None and env.revision_version == 0:        # the old version throughout: keep
            assert up == [] and env.limits == [30, 30, 30]
            continue
        assert all(demo.actions[t] == [1, 1, 2] for t in up) and env.limits == [30, 30, 110]
        first = 1 if rt is None else int(np.ceil(rt / 30.0))
        assert up == list(range(first, first + 4))
        assert demo.targets[first] == [1, 4, 8] and demo.targets[0] == [1, 4, 7]
    assert kinds == {(True, 0), (True, 1), (False, 0)}
    # absolute actions: the limits at once, the targets in the 16-per-function layout
    env = ServerlessMultiFunctionEnv(workload="revisions", action_type="absolute", initial_limit=30,
                                     episode_decisions=12, revision_probability=1.0)
    demo = MultiRevisionExpert([170, 30, 30], [170, 30, 110]).demonstrate(env, 2)
    first = int(np.ceil(env.revision_time / 30.0))
    assert demo.actions[0] == [8, 1, 1] and demo.actions[first] == [8, 1, 5] and demo.actions[first - 1] == [8, 1, 1]
    assert demo.targets[first] == [8, 17, 37]
    with pytest.raises(ValueError, match="action_type='delta'"):
        MultiRevisionExpert().demonstrate(ServerlessMultiFunctionEnv(workload="revisions"), 0)


def test_shipped_revisions_checkpoint_loads_and_plays_an_episode():
    """agents/checkpoints/serverless_multi_revisions_abs_ppo.zip (configs/serverless_multi_revisions_abs_ppo.yaml)
    loads on its setting and plays: on the old version it keeps the sleep function at 30 (higher
    OOM-kills), on the revised version throughout it raises it after the first interval."""
    from pathlib import Path

    from rlsys_agents.evaluation import load_policy

    path = Path(__file__).resolve().parents[1] / "agents" / "checkpoints" / "serverless_multi_revisions_abs_ppo.zip"
    for mem, expect in ((10.0, lambda lim: lim == 30), (0.5, lambda lim: lim >= 90)):
        kw = dict(workload="revisions", rates=[20.0, 30.0, 180.0], initial_limit=30, limit_change="instant",
                  action_type="absolute", revision_probability=0.0, revision_mem_mb=[mem, mem], episode_decisions=6)
        env = ServerlessMultiFunctionEnv(**kw)
        ep = play_episode(env, load_policy(str(path), ID, kw), seed=4)
        assert ep.steps == 6 and np.isfinite(ep.metrics["slo_score"])
        assert expect(env.limits[2]), (mem, env.limits)
