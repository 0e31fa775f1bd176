"""GNN unpadding, GNN / attention extractors and the size-agnostic pointer policy."""
import gymnasium as gym
import numpy as np
import pytest
import torch

import rlsys_envs  # noqa: F401
from rlsys_agents.extractors import EntityAttentionExtractor, GraphEncoder, GraphExtractor, unpad_graph_batch
from rlsys_agents.policies import PointerPolicy
from rlsys_envs.core.graph import graph_spaces, pack_graph

torch.set_num_threads(1)


def random_padded_batch(rng, B=5, N=12, E=30, F=4, n_types=2):
    """B random graphs with 0..N nodes and 0..E edges, packed with core.graph.pack_graph."""
    graphs, packed = [], []
    for b in range(B):
        n = 0 if b == 0 else int(rng.integers(1, N + 1))  # graph 0 is empty
        e = int(rng.integers(0, E + 1)) if n > 0 else 0
        x = rng.normal(size=(n, F)).astype(np.float32)
        ei = rng.integers(0, max(n, 1), size=(2, e))
        et = rng.integers(0, n_types, size=e)
        graphs.append((x, ei, et))
        packed.append(pack_graph("g", x, ei, et, N, E))
    batch = {k: torch.as_tensor(np.stack([p[k] for p in packed])) for k in packed[0]}
    # SB3's preprocessing turns every Box into float: the extractor must cope with that
    return graphs, {k: v.float() for k, v in batch.items()}


def test_unpadding_matches_per_sample_reference():
    from torch_geometric.data import Batch, Data

    rng = np.random.default_rng(0)
    graphs, batch = random_padded_batch(rng)
    x, edge_index, edge_type, batch_vec, _ = unpad_graph_batch(batch, "g")
    ref = Batch.from_data_list([Data(x=torch.as_tensor(gx), edge_index=torch.as_tensor(ei, dtype=torch.long),
                                     edge_type=torch.as_tensor(et, dtype=torch.long), num_nodes=len(gx))
                                for gx, ei, et in graphs])
    assert torch.equal(x, ref.x)
    assert torch.equal(edge_index, ref.edge_index)
    assert torch.equal(edge_type, ref.edge_type)
    assert torch.equal(batch_vec, ref.batch)


@pytest.mark.parametrize("conv", ["gin", "gat"])
def test_graph_encoder_batch_equals_one_by_one(conv):
    rng = np.random.default_rng(1)
    _, batch = random_padded_batch(rng, B=6)
    torch.manual_seed(0)
    enc = GraphEncoder("g", node_dim=4, n_edge_types=2, hidden=16, layers=2, conv=conv).eval()
    with torch.no_grad():
        dense, mask, pooled = enc(batch)
        for b in range(6):
            one = {k: v[b:b + 1] for k, v in batch.items()}
            d1, m1, p1 = enc(one)
            assert torch.allclose(d1[0][m1[0]], dense[b][mask[b]], atol=1e-5)
            assert torch.allclose(p1[0], pooled[b], atol=1e-5)
    # padded rows stay zero and an empty graph pools to zeros
    assert torch.all(dense[~mask] == 0)
    assert not mask[0].any() and torch.all(pooled[0] == 0)


def test_typed_gine_layer_equals_the_pyg_call():
    """GraphEncoder applies GINEConv's edge Linear per edge type, not per edge: same result."""
    rng = np.random.default_rng(3)
    _, batch = random_padded_batch(rng, B=4, n_types=3)
    torch.manual_seed(0)
    enc = GraphEncoder("g", node_dim=4, n_edge_types=3, hidden=16, layers=2, conv="gin")
    x, edge_index, edge_type, _, _ = unpad_graph_batch(batch, "g")
    edge_index = torch.cat([edge_index, edge_index.flip(0)], 1)
    edge_type = torch.cat([edge_type, edge_type + 3])
    h = torch.randn(len(x), 16)
    conv = enc.convs[0]
    ours = enc._gine_typed(conv, h, edge_index, edge_type)
    ref = conv(h, edge_index, enc.edge_emb(edge_type))
    assert torch.allclose(ours, ref, atol=1e-5)


def test_graph_extractor_on_jobshop_observation():
    env = gym.make("rlsys/JobShop-v0", max_jobs=10, max_machines=10)
    obs, _ = env.reset(seed=0)
    ext = GraphExtractor(env.observation_space, hidden=16, layers=2)
    t = {k: torch.as_tensor(v[None]).float() for k, v in obs.items()}
    out = ext(t)
    assert out.shape == (1, ext.features_dim) and torch.isfinite(out).all()


def repad(obs: dict, n_actions: int, max_nodes: int, max_edges: int) -> dict:
    """The same graph and actions, padded to larger sizes (extra actions point at no node)."""
    nm = obs["graph_node_mask"].astype(bool)
    em = obs["graph_edge_mask"].astype(bool)
    out = pack_graph("graph", obs["graph_x"][nm], obs["graph_edge_index"][:, em], obs["graph_edge_type"][em],
                     max_nodes, max_edges)
    an = np.full(n_actions, -1, np.int64)
    an[: len(obs["action_node"])] = obs["action_node"]
    out["action_node"] = an
    return out


def test_pointer_policy_logits_do_not_depend_on_padding():
    env = gym.make("rlsys/JobShop-v0", max_jobs=8, max_machines=8, n_jobs=(5, 8), n_machines=(4, 8))
    obs, _ = env.reset(seed=3)
    small = repad(obs, 8, 64, env.unwrapped.max_edges)
    big = repad(obs, 20, 400, 4180)

    def space(n_actions, max_nodes, max_edges):
        sp = graph_spaces("graph", max_nodes, obs["graph_x"].shape[1], max_edges, 2, 0.0, 1.0)
        sp["action_node"] = gym.spaces.Box(-1, max_nodes - 1, (n_actions,), np.int64)
        return gym.spaces.Dict(sp)

    torch.manual_seed(0)
    p_small = PointerPolicy(space(8, 64, env.unwrapped.max_edges), gym.spaces.Discrete(8), lambda _: 1e-3,
                            features_extractor_kwargs=dict(hidden=16, layers=2))
    p_big = PointerPolicy(space(20, 400, 4180), gym.spaces.Discrete(20), lambda _: 1e-3,
                          features_extractor_kwargs=dict(hidden=16, layers=2))
    p_big.load_state_dict(p_small.state_dict())  # same weights: no parameter depends on the sizes
    with torch.no_grad():
        ls = p_small.logits(p_small.obs_to_tensor(small)[0])
        lb = p_big.logits(p_big.obs_to_tensor(big)[0])
    real = obs["action_node"] >= 0
    assert real.sum() >= 2
    assert torch.allclose(ls[0][torch.as_tensor(real)], lb[0, :8][torch.as_tensor(real)], atol=1e-5)
    assert torch.all(lb[0, 8:] < -1e7)  # actions without a node can never be chosen
    # values agree too
    with torch.no_grad():
        assert torch.allclose(p_small.predict_values(p_small.obs_to_tensor(small)[0]),
                              p_big.predict_values(p_big.obs_to_tensor(big)[0]), atol=1e-5)


def test_attention_extractor_respects_entity_masks():
    """A declared table (core.entity_spaces: <name>_features + <name>_mask) is masked; another 2-D
    key is a table without a mask; a mask is found by declaration, not by a similar name."""
    from rlsys_envs.core import entity_spaces

    sp = gym.spaces.Dict({**entity_spaces("pm", 5, 3),
                          "vms": gym.spaces.Box(0, 1, (7, 4), np.float32),
                          "vms_mask": gym.spaces.Box(0, 1, (7,), np.int8),   # not a declared table's mask
                          "time": gym.spaces.Box(0, 1, (1,), np.float32)})
    torch.manual_seed(0)
    ext = EntityAttentionExtractor(sp, hidden=16, layers=1, heads=2, ff=32).eval()
    assert ext.entity_keys == ["pm_features", "vms"] and ext.mask_keys == {"pm_features": "pm_mask"}
    assert ext.global_keys == ["time"]
    obs = {k: torch.as_tensor(s.sample()[None]).float() for k, s in sp.spaces.items()}
    obs["pm_mask"] = torch.tensor([[1, 1, 0, 0, 1]]).float()
    with torch.no_grad():
        out = ext(obs)
        changed = {k: v.clone() for k, v in obs.items()}
        changed["pm_features"][0, 2] += 5.0  # a masked-out PM must not change the features
        out2 = ext(changed)
    assert out.shape == (1, ext.features_dim)
    assert torch.allclose(out, out2, atol=1e-5)


def test_pointer_policy_scores_global_actions_from_the_pooled_graph():
    """action_node -2 (the VM env's stop) gets a finite, state-dependent logit; -1 none."""
    env = gym.make("rlsys/VMRescheduling-v0", size="tiny", mnl=4)
    obs, info = env.reset(seed=0)
    stop = env.unwrapped.stop_action
    assert obs["action_node"][stop] == -2 and info["action_mask"][stop]
    torch.manual_seed(0)
    policy = PointerPolicy(env.observation_space, env.action_space, lambda _: 1e-3,
                           features_extractor_kwargs=dict(hidden=16, layers=2))
    assert policy.has_global_actions
    with torch.no_grad():
        logits = policy.logits(policy.obs_to_tensor(obs)[0])[0]
        stop_logit = policy.global_net(policy.extract_features(policy.obs_to_tensor(obs)[0])[2])[0, 0]
    assert torch.isclose(logits[stop], stop_logit)
    assert logits[stop] > -1e7
    no_node = torch.as_tensor(obs["action_node"] == -1)
    assert torch.all(logits[no_node] < -1e7)
    # job-shop observations have no global action: no extra head, old checkpoints keep loading
    js = gym.make("rlsys/JobShop-v0", max_jobs=6, max_machines=6, n_jobs=(3, 6), n_machines=(3, 6))
    p_js = PointerPolicy(js.observation_space, js.action_space, lambda _: 1e-3,
                         features_extractor_kwargs=dict(hidden=16, layers=2))
    assert not p_js.has_global_actions and not hasattr(p_js, "global_net")
