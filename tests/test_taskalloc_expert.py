"""Task-allocation behaviour cloning: the CP-SAT expert's demonstrations replay to the CP-SAT
baseline's episode, their accepted sets follow the plan, and cloning them with the attention
policy's per-component loss fits the expert (rlsys_agents.imitation, MultiDiscrete actions)."""
import numpy as np
import pytest
import torch

from rlsys_agents.imitation import behaviour_clone, replay
from rlsys_agents.policies import AllocationPolicy
from rlsys_envs.core import Demonstration, play_episode
from rlsys_envs.taskalloc.baselines import BASELINES
from rlsys_envs.taskalloc.env import TaskAllocationEnv
from rlsys_envs.taskalloc.expert import EXPERTS, CPSatExpert, GAExpert, PlanExpert

torch.set_num_threads(1)
ID = "rlsys/TaskAllocation-v0"
KW = {"scenario": "electric", "n_entities": 8, "n_tasks": 8, "n_slots": 3}


def test_demonstration_replays_to_the_cpsat_episode_and_accepts_the_plan():
    env = TaskAllocationEnv(**KW)
    demo = Demonstration.from_json(CPSatExpert().demonstrate(env, 5).to_json())
    cpsat = play_episode(env, BASELINES["cpsat"](), 5).metrics["total_net_value"]
    assert demo.info["total_net_value"] == pytest.approx(cpsat)
    observations, masks, accepted, returns = replay(env, demo)
    assert returns[0] == pytest.approx(demo.info["total_net_value"])
    E, K = env.max_entities, env.max_slots
    n_first = E * (K + 1)
    saw_free_choice = False
    for obs, mask, acc, a in zip(observations, masks, accepted, demo.actions):
        assert not (acc & ~mask).any()
        assert acc[env._offsets + np.asarray(a)].all()                 # the played action is accepted
        per_entity = acc[:n_first].reshape(E, K + 1).sum(1)
        assert (per_entity >= 1).all() and acc[n_first:].any()         # every component has an accepted value
        if obs["stage"][0]:
            # plan entities: one accepted slot; the others: every legal value
            legal = mask[:n_first].reshape(E, K + 1).sum(1)
            assert np.all((per_entity == 1) | (per_entity == legal))
            saw_free_choice |= bool(np.any((per_entity == legal) & (legal > 1)))
        else:
            assert not acc[n_first:][-1] or acc[n_first:].sum() == 1   # END only when the task has no plan
    assert saw_free_choice


@pytest.mark.parametrize("scenario", ["electric", "rbf"])
def test_ga_demonstration_replays_to_the_ga_episode(scenario):
    kw = {**KW, "scenario": scenario}
    env = TaskAllocationEnv(**kw)
    expert = EXPERTS["ga"](population=16, generations=10)
    demo = expert.demonstrate(env, 3)
    ga = play_episode(env, BASELINES["ga"](population=16, generations=10), 3).metrics["total_net_value"]
    assert demo.info["total_net_value"] == pytest.approx(ga)
    assert demo.info["statuses"] == {}                 # the GA has no solver statuses
    _obs, masks, accepted, returns = replay(env, demo)
    assert returns[0] == pytest.approx(ga)
    assert all(acc.any() and not (acc & ~mask).any() for mask, acc in zip(masks, accepted))


def test_plan_expert_refuses_what_is_not_a_plan_baseline_and_bad_kwargs():
    with pytest.raises(ValueError, match="plan baseline.*'random'"):
        PlanExpert("random")
    with pytest.raises(ValueError, match="population"):
        GAExpert(population=1)
    with pytest.raises(TypeError):
        GAExpert(time_limit=1.0)


@pytest.mark.parametrize("kw", [KW, {"scenario": "rbf", "n_entities": 30, "n_tasks": 6, "n_slots": 3}])
def test_sequential_demonstration_replays_to_the_baseline_and_accepts_its_plan_entities(kw):
    """Sequential mode: the actions are picks, each accepted set the current task's plan entities
    that still contribute (END only for a task without a plan), and the episode is the baseline's."""
    env = TaskAllocationEnv(**kw, mode="sequential")
    demo = Demonstration.from_json(GAExpert(population=16, generations=10).demonstrate(env, 2).to_json())
    ga = play_episode(env, BASELINES["ga"](population=16, generations=10), 2).metrics["total_net_value"]
    assert demo.info["total_net_value"] == pytest.approx(ga)
    _obs, masks, accepted, returns = replay(env, demo)
    assert returns[0] == pytest.approx(ga)
    E = env.max_entities
    several = 0
    for mask, acc, a in zip(masks, accepted, demo.actions):
        assert acc[a] and not (acc & ~mask).any()
        assert not acc[E] or acc.sum() == 1                          # END only when nothing is accepted
        several += int(acc.sum() > 1)
    assert several > 0                                               # a choice among plan entities


def test_imitation_terms_are_the_log_probability_of_an_accepted_value_per_component():
    env = TaskAllocationEnv(**KW)
    demo = CPSatExpert().demonstrate(env, 1)
    observations, masks, _accepted, _ = replay(env, demo)
    torch.manual_seed(0)
    policy = AllocationPolicy(env.observation_space, env.action_space, lambda _: 3e-4,
                              features_extractor_kwargs={"hidden": 32, "layers": 1, "heads": 2, "ff": 64})
    obs = {k: torch.as_tensor(np.stack([o[k] for o in observations[:6]])) for k in observations[0]}
    mask = torch.as_tensor(np.stack(masks[:6]))
    actions = torch.as_tensor(np.stack(demo.actions[:6]))
    only = torch.zeros_like(mask)                 # accepted = the action itself: the plain log-likelihood
    for b in range(6):
        only[b, torch.as_tensor(env._offsets) + actions[b]] = True
    nll, _hit, values = policy.imitation_terms(obs, mask, only)
    _v, log_prob, _e = policy.evaluate_actions(obs, actions, action_masks=mask)
    torch.testing.assert_close(nll, -log_prob, rtol=1e-5, atol=1e-5)
    everything, _h, _ = policy.imitation_terms(obs, mask, mask)       # every legal value accepted: nothing to learn
    torch.testing.assert_close(everything, torch.zeros(6), rtol=0, atol=1e-4)
    assert values.shape == (6, 1)


def test_behaviour_cloning_of_cpsat_fits_the_expert():
    from sb3_contrib import MaskablePPO

    from rlsys_agents.evaluation import make_env

    env = TaskAllocationEnv(**KW)
    demos = [CPSatExpert().demonstrate(env, s) for s in range(6)]
    model = MaskablePPO(AllocationPolicy, make_env(ID, KW), seed=0, device="cpu",
                        policy_kwargs={"features_extractor_kwargs": {"hidden": 32, "layers": 1, "heads": 2, "ff": 64}})
    history = behaviour_clone(model.policy, ID, KW, demos, epochs=8, batch_size=32, learning_rate=3e-3,
                              log=lambda _: None)
    assert history[-1]["nll"] < 0.85 * history[0]["nll"]
    assert history[-1]["accuracy"] > history[0]["accuracy"]
