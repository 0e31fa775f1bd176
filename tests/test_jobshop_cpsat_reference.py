"""The job-shop CP-SAT reference: deterministic settings, CP-SAT's own makespan and proof status,
and the replay through the env as its own row."""
import numpy as np

from rlsys_agents.evaluation import evaluate, summarise
from rlsys_envs.core.policy import play_episode
from rlsys_envs.jobshop import baselines as jb
from rlsys_envs.jobshop.env import JobShopEnv
from rlsys_envs.jobshop.generator import load_benchmark

ENV = "rlsys/JobShop-v0"
SMALL = {"observation": "flat", "n_jobs": [4, 6], "n_machines": [3, 5], "max_jobs": 6, "max_machines": 6}


def test_cpsat_row_is_cpsats_own_makespan_with_its_proof_status():
    ep = play_episode(JobShopEnv(instance="ft06", rule="nondelay"), jb.BASELINES["cpsat"](), seed=0)
    # CP-SAT proves the optimum 55; the non-delay env can only replay it as 60
    assert ep.metrics["makespan"] == 55 and ep.metrics["gap"] == 0.0
    assert ep.metrics["cpsat_optimal"] == 1.0 and ep.metrics["cpsat_bound"] == 55
    assert ep.metrics["replay_makespan"] == 60 == ep.info["metrics"]["makespan"]
    replay = play_episode(JobShopEnv(instance="ft06", rule="nondelay"), jb.BASELINES["cpsat_replay"](), seed=0)
    assert replay.metrics["makespan"] == 60 and "replay_makespan" not in replay.metrics
    assert abs(replay.metrics["gap"] - 5 / 55) < 1e-12


def test_cpsat_reference_settings_are_deterministic():
    policy = jb.BASELINES["cpsat"]()
    assert policy.workers == 1 and policy.seed == 0 and policy.deterministic_time == 10.0
    inst = load_benchmark("ft10")       # not proved within the limit: the search is cut, deterministically
    runs = [jb.solve_cpsat(inst, time_limit=60, workers=1, seed=0, deterministic_time=0.2) for _ in range(2)]
    assert runs[0]["status"] == runs[1]["status"] and runs[0]["makespan"] == runs[1]["makespan"]
    assert np.array_equal(runs[0]["schedule"], runs[1]["schedule"])
    assert runs[0]["deterministic_s"] < 0.21 and runs[0]["status"] == "FEASIBLE"


def test_train_table_gap_is_to_cpsats_own_makespan():
    res = {name: evaluate(ENV, name, 3, 100, SMALL) for name in ("MWKR", "cpsat", "cpsat_replay")}
    assert res["cpsat"]["replay_makespan"] == res["cpsat_replay"]["makespan"]
    assert all(a <= b for a, b in zip(res["cpsat"]["makespan"], res["cpsat_replay"]["makespan"]))
    summary = summarise(res, "cpsat", ["makespan"])
    own = np.mean([(m - c) / c for m, c in zip(res["MWKR"]["makespan"], res["cpsat"]["makespan"])])
    assert summary["MWKR"]["gap_makespan"] == own and summary["cpsat"]["gap_makespan"] == 0.0
