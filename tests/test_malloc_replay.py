"""Fixed-seed episodes of the memory mapping game replay exactly as recorded: the actions, the
rewards, the final placement and every observation and mask, bit for bit.

The fingerprints were recorded before the step, mask and observation were optimised (so those
optimisations change no dynamics and no public observation). A failure names what differs. To
re-record after an intended change of the dynamics: ``python tests/test_malloc_replay.py``.
"""
import hashlib

import numpy as np
import pytest

from rlsys_envs.core import RandomMaskedPolicy
from rlsys_envs.malloc.baselines import BASELINES
from rlsys_envs.malloc.env import MemoryMappingEnv

ALLOCATE = {"instance": "small", "objective": "allocate", "order": "size", "capacity_fraction": 1.25}
CASES = {
    "medium-random": ({"instance": "medium"}, "random", 0),
    "medium-random-1": ({"instance": "medium", "max_candidates": 4}, "random", 1),
    "medium-density": ({"instance": "medium", "order": "density"}, "greedy_density", 2),
    "large-xla": ({"instance": "large"}, "xla_like", 0),
    "small-start": ({"instance": "small", "order": "start", "capacity_fraction": 0.6}, "random", 3),
    "allocate-first-fit": (ALLOCATE, "first_fit", 4),
    "allocate-random": (ALLOCATE, "random", 5),
    "choice-allocate-random": ({**ALLOCATE, "buffer_choice": True, "max_candidates": 4}, "random", 6),
    "choice-allocate-xla": ({**ALLOCATE, "buffer_choice": True, "max_candidates": 4}, "xla_like", 7),
    "choice-map-random": ({"instance": "small", "buffer_choice": True}, "random", 8),
    # too little room: the episodes end early as failures
    "tight-allocate-random": ({**ALLOCATE, "capacity_fraction": 0.9}, "random", 9),
    "tight-choice-random": ({**ALLOCATE, "capacity_fraction": 0.9, "buffer_choice": True}, "random", 10),
}

# recorded with ``python tests/test_malloc_replay.py`` (sha256 prefixes; steps and return for reading)
RECORDED = {
    'allocate-first-fit': {
        'steps': 55, 'return': '1.0000000000000002', 'actions': '360d579dbd14759b',
        'rewards': 'f4d842c3dd872d86', 'placement': 'e696baec5f83a3b0', 'observations': '411980f626ead6b3',
        'metrics': '0e0f2aa5f9e9568a',
    },
    'allocate-random': {
        'steps': 55, 'return': '1.0000000000000002', 'actions': '91f4fd157675b6bf',
        'rewards': 'f4d842c3dd872d86', 'placement': 'bf6288fc4a696a67', 'observations': '345f7bdabb2d4e40',
        'metrics': 'a69ba8704220b00f',
    },
    'choice-allocate-random': {
        'steps': 49, 'return': '1.0000000000000007', 'actions': '126c8b4d9624c189',
        'rewards': '64bbd97ff27ef4a6', 'placement': '21ebfd48d65035e8', 'observations': '6ce97bd56924892f',
        'metrics': '883481142e54175a',
    },
    'choice-allocate-xla': {
        'steps': 55, 'return': '1.0000000000000002', 'actions': '9b3c5fb41197fc21',
        'rewards': 'f4d842c3dd872d86', 'placement': 'a1904c74ffb866f0', 'observations': '4f8a41148d95d1e6',
        'metrics': '9cda5f246edb5cec',
    },
    'choice-map-random': {
        'steps': 55, 'return': '0.10015980318507547', 'actions': 'c3de69db2fcdbaa0',
        'rewards': '6b09b90487ad4cf8', 'placement': '50908440eb4a4483', 'observations': 'aaf0de37da1c7055',
        'metrics': '998e9c39c77d8c4a',
    },
    'large-xla': {
        'steps': 2053, 'return': '0.25250729921120724', 'actions': '50d57c69cc9c09d3',
        'rewards': '35ff401c0d1ec44f', 'placement': '7883739c4262b629', 'observations': '730d2a241a13f132',
        'metrics': '8403a54b5fdda03a',
    },
    'medium-density': {
        'steps': 325, 'return': '0.3527440356453089', 'actions': '45839c20bacc852b',
        'rewards': 'a2d61eaf0cd5884f', 'placement': '9532991905994def', 'observations': 'c34c507f96d2ef83',
        'metrics': '8e8803ad18d03359',
    },
    'medium-random': {
        'steps': 325, 'return': '0.15074927435804827', 'actions': 'ff58934693c5c02e',
        'rewards': 'f5617e819075f7b0', 'placement': '24d044fb89b744eb', 'observations': '9f51ae016a5521ce',
        'metrics': '06ec53d15f800e43',
    },
    'medium-random-1': {
        'steps': 301, 'return': '0.02446216347168404', 'actions': '9be4ecb5e17fb848',
        'rewards': '80320430076175a0', 'placement': '913fadc9d1abbd69', 'observations': 'f81aa5cd8994a890',
        'metrics': '470ffc44158ec7dc',
    },
    'small-start': {
        'steps': 55, 'return': '0.5202461269599589', 'actions': '96296afcb000faa1',
        'rewards': '298fb179f5ea4f0c', 'placement': '21a0e479151cb593', 'observations': 'b7147b22969c1de9',
        'metrics': '3671b45c222ada51',
    },
    'tight-allocate-random': {
        'steps': 15, 'return': '0.2857142857142857', 'actions': '9650c01b11c93efe',
        'rewards': '0ebff2e616a55e44', 'placement': '046e278dec4b950e', 'observations': '2f94f0c956e9626c',
        'metrics': '7b19cdcbcd6bbfbe',
    },
    'tight-choice-random': {
        'steps': 52, 'return': '0.9272727272727275', 'actions': '9e3318571829cafb',
        'rewards': 'dd4ce6785be4d1d1', 'placement': '0f6e1ef8d5399920', 'observations': '2cf3c2d54307284a',
        'metrics': 'c107560b6c741771',
    },
}


def _digest(*arrays) -> str:
    h = hashlib.sha256()
    for a in arrays:
        h.update(np.ascontiguousarray(a).tobytes())
    return h.hexdigest()[:16]


def fingerprint(kwargs: dict, policy_name: str, seed: int) -> dict:
    """Play one episode step by step and hash what it produced."""
    env = MemoryMappingEnv(**kwargs)
    policy = RandomMaskedPolicy() if policy_name == "random" else BASELINES[policy_name]()
    obs, info = env.reset(seed=seed)
    policy.reset(env, seed)
    observed = hashlib.sha256()
    actions, rewards = [], []

    def see(obs, info):
        for key in sorted(obs):
            observed.update(key.encode())
            observed.update(np.ascontiguousarray(obs[key]).tobytes())
        observed.update(np.asarray(info["action_mask"]).tobytes())
        observed.update(np.asarray(env.action_masks()).tobytes())

    see(obs, info)
    while True:
        action = policy.act(env, obs, info)
        obs, reward, terminated, truncated, info = env.step(action)
        actions.append(action)
        rewards.append(reward)
        see(obs, info)
        if terminated or truncated:
            break
    metrics = info["metrics"]
    return {"steps": len(actions), "return": repr(sum(rewards)),
            "actions": _digest(np.asarray(actions, np.int64)), "rewards": _digest(np.asarray(rewards, np.float64)),
            "placement": _digest(env.placement()), "observations": observed.hexdigest()[:16],
            "metrics": _digest(np.asarray([metrics[k] for k in sorted(metrics)], np.float64))}


@pytest.mark.parametrize("case", sorted(CASES))
def test_fixed_seed_episode_replays_as_recorded(case):
    got = fingerprint(*CASES[case])
    want = RECORDED[case]
    differs = [k for k in want if got[k] != want[k]]
    assert not differs, f"{case}: {', '.join(differs)} differ from the recording ({got} vs {want})"


if __name__ == "__main__":
    print("RECORDED = {")
    for name in sorted(CASES):
        print(f"    {name!r}: {fingerprint(*CASES[name])!r},")
    print("}")
