"""The storage simulator's dynamics are pinned: fixed-seed episodes under random legal play (the
placement view with every migration partner kind, the migration view, the parallel env with both
agents random) must reproduce the digests recorded from the code before the step path was
optimised (trajectory-weighted sums of rewards, actions, observations and masks, and the metrics),
re-recorded once for the migration timing and reward of 2026-12-01 (the episodes without
migrations kept their digests). A change to the dynamics fails here; an intended one re-records
EXPECTED (and says so in the CHANGELOG)."""
import numpy as np
import pytest

from rlsys_envs.core import RandomMaskedPolicy
from rlsys_envs.storage import HybridStorageEnv, HybridStorageMigrationEnv, HybridStorageParallelEnv

CASES = {
    "hm_none": ("placement", dict(instance="zipf_oltp", episode_requests=600)),
    "hm_hps": ("placement", dict(instance="scan_hot", episode_requests=600, migration="hps", migration_interval=50)),
    "hml_hotcold_gc": ("placement", dict(instance="mixed_sizes", config="H&M&L", episode_requests=600,
                                         migration="hot_cold", migration_interval=40, flash_gc=True)),
    "hnml_closed_belady": ("placement", dict(instance="phase_shift", config="H&N&M&L", episode_requests=500,
                                             arrival="closed", eviction="belady", migration="oracle",
                                             migration_interval=30)),
    "hl_sibyl_noqueue": ("placement", dict(instance="log_append", config="H&L", episode_requests=500,
                                           reward="sibyl", queueing=False, migration="random", migration_interval=25)),
    "mig_cde": ("migration", dict(instance="hot_cold_split", episode_requests=800, placement="cde",
                                  migration_interval=40)),
    "mig_lru_hml": ("migration", dict(instance="read_after_write", config="H&M&L", episode_requests=800,
                                      placement="lru", migration_interval=40, fast_capacity=0.05)),
    "par_random": ("parallel", dict(instance="bursty_zipf", config="H&M&L", episode_requests=500,
                                    migration_interval=20)),
}
METRICS = ("mean_latency_us", "p99_latency_us", "iops", "evictions", "migrations", "placement_moves",
           "background_io_ms", "mean_wait_us", "fast_access_share")


def digest(kind, kw, seed):
    if kind == "parallel":
        env = HybridStorageParallelEnv(**kw)
        obs, infos = env.reset(seed=seed)
        pols = {a: RandomMaskedPolicy() for a in env.possible_agents}
        for i, p in enumerate(pols.values()):
            p.reset(env, seed + 100 + i)
    else:
        env = (HybridStorageEnv if kind == "placement" else HybridStorageMigrationEnv)(**kw)
        pol = RandomMaskedPolicy()
        obs, info = env.reset(seed=seed)
        pol.reset(env, seed + 100)
    n, ret, wret, wact, wobs, wmask = 0, 0.0, 0.0, 0, 0.0, 0
    while True:
        n += 1
        if kind == "parallel":
            acts = {a: pols[a].act(env, obs[a], infos[a]) for a in env.agents}
            obs, rew, term, trunc, infos = env.step(acts)
            a = acts["placement"] + 7 * acts["migration"]
            r = rew["placement"] + 3 * rew["migration"]
            o = sum(float(np.asarray(v, np.float64).sum()) for ag in obs for v in obs[ag].values())
            mk = sum(int(np.asarray(infos[ag]["action_mask"]).sum()) for ag in infos)
            term, trunc, info = term["placement"], trunc["placement"], infos["placement"]
        else:
            a = pol.act(env, obs, info)
            obs, r, term, trunc, info = env.step(a)
            o = sum(float(np.asarray(v, np.float64).sum()) for v in obs.values())
            mk = int(np.asarray(info["action_mask"]).sum())
        ret, wret, wact = ret + r, wret + n * r, wact + n * int(a)
        wobs, wmask = wobs + n * o, wmask + n * mk
        if term or trunc:
            break
    return {"steps": n, "return": ret, "weighted_return": wret, "weighted_actions": wact,
            "weighted_obs": wobs, "weighted_mask": wmask,
            "metrics": {k: float(info["metrics"][k]) for k in METRICS}}


EXPECTED = {'hl_sibyl_noqueue/11': {'metrics': {'background_io_ms': 4835.652892952393,
                                     'evictions': 273.0,
                                     'fast_access_share': 0.4858548585485855,
                                     'iops': 62.34610759073848,
                                     'mean_latency_us': 4109.329970285732,
                                     'mean_wait_us': 1.7756335068952467e-11,
                                     'migrations': 71.0,
                                     'p99_latency_us': 12699.009523809887,
                                     'placement_moves': 413.0},
                         'return': 1742.100063835379,
                         'steps': 500,
                         'weighted_actions': 62137,
                         'weighted_mask': 250500,
                         'weighted_obs': 634889.419484844,
                         'weighted_return': 399184.25870273146},
 'hl_sibyl_noqueue/3': {'metrics': {'background_io_ms': 4911.588076190489,
                                    'evictions': 280.0,
                                    'fast_access_share': 0.5106117353308365,
                                    'iops': 57.170712051187756,
                                    'mean_latency_us': 4283.864874666691,
                                    'mean_wait_us': 2.5300266770500456e-11,
                                    'migrations': 61.0,
                                    'p99_latency_us': 12699.009523809887,
                                    'placement_moves': 415.0},
                        'return': 1836.3266216843717,
                        'steps': 500,
                        'weighted_actions': 61670,
                        'weighted_mask': 250500,
                        'weighted_obs': 629421.2141543797,
                        'weighted_return': 421034.6301613892},
 'hm_hps/11': {'metrics': {'background_io_ms': 21.050841142857106,
                           'evictions': 179.0,
                           'fast_access_share': 0.2743682310469314,
                           'iops': 49.61478558998686,
                           'mean_latency_us': 83.72685540458185,
                           'mean_wait_us': 1.0080412549219795,
                           'migrations': 43.0,
                           'p99_latency_us': 126.38400000007823,
                           'placement_moves': 427.0},
               'return': -425.03818568726155,
               'steps': 600,
               'weighted_actions': 91296,
               'weighted_mask': 360600,
               'weighted_obs': 818462.8524916708,
               'weighted_return': -129097.25204761015},
 'hm_hps/3': {'metrics': {'background_io_ms': 20.139509006802694,
                          'evictions': 169.0,
                          'fast_access_share': 0.30085261875761266,
                          'iops': 46.57080272579967,
                          'mean_latency_us': 81.80242575960517,
                          'mean_wait_us': 1.131644444412436,
                          'migrations': 43.0,
                          'p99_latency_us': 126.38400000007823,
                          'placement_moves': 414.0},
              'return': -415.2688460789464,
              'steps': 600,
              'weighted_actions': 93566,
              'weighted_mask': 360600,
              'weighted_obs': 819030.2276786715,
              'weighted_return': -124888.0026825443},
 'hm_none/11': {'metrics': {'background_io_ms': 23.659190204081575,
                            'evictions': 270.0,
                            'fast_access_share': 0.24228028503562946,
                            'iops': 61.430475806476494,
                            'mean_latency_us': 89.10396970794605,
                            'mean_wait_us': 1.8953073950208754,
                            'migrations': 0.0,
                            'p99_latency_us': 126.38400000007823,
                            'placement_moves': 423.0},
                'return': -452.3350296531685,
                'steps': 600,
                'weighted_actions': 91296,
                'weighted_mask': 360600,
                'weighted_obs': 806246.2768302802,
                'weighted_return': -136985.43269587003},
 'hm_none/3': {'metrics': {'background_io_ms': 23.121333768707437,
                           'evictions': 256.0,
                           'fast_access_share': 0.23754345307068367,
                           'iops': 57.77494956604695,
                           'mean_latency_us': 87.34373955241797,
                           'mean_wait_us': 2.158691026340869,
                           'migrations': 0.0,
                           'p99_latency_us': 126.38400000007823,
                           'placement_moves': 426.0},
               'return': -443.39924640796727,
               'steps': 600,
               'weighted_actions': 93566,
               'weighted_mask': 360600,
               'weighted_obs': 816914.9689941432,
               'weighted_return': -134281.0560181986},
 'hml_hotcold_gc/11': {'metrics': {'background_io_ms': 6370.251125006796,
                                   'evictions': 783.0,
                                   'fast_access_share': 0.14507042253521127,
                                   'iops': 30.214581784274994,
                                   'mean_latency_us': 67263.38445459025,
                                   'mean_wait_us': 58861.159690266686,
                                   'migrations': 56.0,
                                   'p99_latency_us': 762403.3395012987,
                                   'placement_moves': 1377.0},
                       'return': -3182.9343046590257,
                       'steps': 600,
                       'weighted_actions': 182733,
                       'weighted_mask': 540900,
                       'weighted_obs': 1123370.9280586152,
                       'weighted_return': -1256838.1191126523},
 'hml_hotcold_gc/3': {'metrics': {'background_io_ms': 6884.633621986387,
                                  'evictions': 869.0,
                                  'fast_access_share': 0.13656195462478185,
                                  'iops': 30.016597709801413,
                                  'mean_latency_us': 62075.45792649382,
                                  'mean_wait_us': 53925.94501028525,
                                  'migrations': 56.0,
                                  'p99_latency_us': 442200.62359375204,
                                  'placement_moves': 1492.0},
                      'return': -2937.439234046328,
                      'steps': 600,
                      'weighted_actions': 182569,
                      'weighted_mask': 540900,
                      'weighted_obs': 1124642.100928045,
                      'weighted_return': -1305972.682201705},
 'hnml_closed_belady/11': {'metrics': {'background_io_ms': 926.0718949115624,
                                       'evictions': 178.0,
                                       'fast_access_share': 0.20031055900621117,
                                       'iops': 111.81292926525077,
                                       'mean_latency_us': 8943.509543764185,
                                       'mean_wait_us': 1773.765663129265,
                                       'migrations': 35.0,
                                       'p99_latency_us': 38184.32534857203,
                                       'placement_moves': 476.0},
                           'return': -352.67582258554506,
                           'steps': 500,
                           'weighted_actions': 187316,
                           'weighted_mask': 501000,
                           'weighted_obs': 945011.5587188686,
                           'weighted_return': -97816.67008528723},
 'hnml_closed_belady/3': {'metrics': {'background_io_ms': 796.5771886802708,
                                      'evictions': 150.0,
                                      'fast_access_share': 0.18654434250764526,
                                      'iops': 117.08517449001303,
                                      'mean_latency_us': 8540.790961414987,
                                      'mean_wait_us': 1520.9285506394774,
                                      'migrations': 35.0,
                                      'p99_latency_us': 38018.78104,
                                      'placement_moves': 503.0},
                          'return': -336.79513205734895,
                          'steps': 500,
                          'weighted_actions': 186279,
                          'weighted_mask': 501000,
                          'weighted_obs': 945729.6788030822,
                          'weighted_return': -91174.77917608364},
 'mig_cde/11': {'metrics': {'background_io_ms': 31.219263564625702,
                            'evictions': 309.0,
                            'fast_access_share': 0.39450441609421,
                            'iops': 48.51837036626743,
                            'mean_latency_us': 77.53049775290667,
                            'mean_wait_us': 2.957021834539326,
                            'migrations': 73.0,
                            'p99_latency_us': 142.76800000015646,
                            'placement_moves': 369.0},
                'return': -3.6038084923965528,
                'steps': 76,
                'weighted_actions': 20192,
                'weighted_mask': 38686,
                'weighted_obs': 237955.96213635616,
                'weighted_return': -149.55805243445695},
 'mig_cde/3': {'metrics': {'background_io_ms': 25.207279346938684,
                           'evictions': 264.0,
                           'fast_access_share': 0.39779559118236474,
                           'iops': 49.08803843739666,
                           'mean_latency_us': 77.99338489105102,
                           'mean_wait_us': 2.9829663876496624,
                           'migrations': 50.0,
                           'p99_latency_us': 142.76800000015646,
                           'placement_moves': 332.0},
               'return': -8.108569107892244,
               'steps': 59,
               'weighted_actions': 10788,
               'weighted_mask': 24871,
               'weighted_obs': 145738.9737739265,
               'weighted_return': -364.88560985515096},
 'mig_lru_hml/11': {'metrics': {'background_io_ms': 4495.040255999961,
                                'evictions': 956.0,
                                'fast_access_share': 0.7179190751445087,
                                'iops': 60.55894717516581,
                                'mean_latency_us': 3698.870563568822,
                                'mean_wait_us': 1898.5349883307347,
                                'migrations': 74.0,
                                'p99_latency_us': 58716.946358305046,
                                'placement_moves': 627.0},
                    'return': -24.44329799311572,
                    'steps': 76,
                    'weighted_actions': 20769,
                    'weighted_mask': 40196,
                    'weighted_obs': 245815.6353333583,
                    'weighted_return': -1447.3200428718071},
 'mig_lru_hml/3': {'metrics': {'background_io_ms': 4416.091292625808,
                               'evictions': 952.0,
                               'fast_access_share': 0.6976217440543602,
                               'iops': 61.47734424439626,
                               'mean_latency_us': 4498.736019816855,
                               'mean_wait_us': 2507.479033150193,
                               'migrations': 50.0,
                               'p99_latency_us': 75277.7507317076,
                               'placement_moves': 634.0},
                   'return': -15.911873540228001,
                   'steps': 59,
                   'weighted_actions': 11131,
                   'weighted_mask': 24358,
                   'weighted_obs': 145095.64363800688,
                   'weighted_return': -564.049622959246},
 'par_random/11': {'metrics': {'background_io_ms': 2460.951349442176,
                               'evictions': 276.0,
                               'fast_access_share': 0.21151079136690648,
                               'iops': 32.51855780686024,
                               'mean_latency_us': 438413.01447292883,
                               'mean_wait_us': 430657.1392667611,
                               'migrations': 83.0,
                               'p99_latency_us': 2509352.3119507064,
                               'placement_moves': 474.0},
                   'return': -32161.672124151293,
                   'steps': 500,
                   'weighted_actions': 1353171,
                   'weighted_mask': 814832,
                   'weighted_obs': 8750782.923839666,
                   'weighted_return': -12743241.867617885},
 'par_random/3': {'metrics': {'background_io_ms': 2590.0855153197263,
                              'evictions': 282.0,
                              'fast_access_share': 0.213986013986014,
                              'iops': 30.579072920367384,
                              'mean_latency_us': 141764.87338044908,
                              'mean_wait_us': 133957.95694870313,
                              'migrations': 83.0,
                              'p99_latency_us': 784654.9244556455,
                              'placement_moves': 498.0},
                  'return': -11404.951814399235,
                  'steps': 500,
                  'weighted_actions': 1248530,
                  'weighted_mask': 792679,
                  'weighted_obs': 8771826.016186979,
                  'weighted_return': -2445286.004018542}}


@pytest.mark.parametrize("key", sorted(EXPECTED))
def test_fixed_seed_episodes_reproduce_the_recorded_dynamics(key):
    name, seed = key.split("/")
    kind, kw = CASES[name]
    got = digest(kind, kw, int(seed))
    want = EXPECTED[key]
    for field in ("steps", "weighted_actions", "weighted_mask"):
        assert got[field] == want[field], field
    for field in ("return", "weighted_return", "weighted_obs"):
        assert got[field] == pytest.approx(want[field], rel=1e-9, abs=1e-9), field
    for k, v in want["metrics"].items():
        assert got["metrics"][k] == pytest.approx(v, rel=1e-9, abs=1e-9), k

