"""Padded graph packing and the constructor-validation helpers."""
import numpy as np
import pytest

from rlsys_envs.core import check_choice, check_episode_window, check_float, check_int, graph_spaces, pack_graph


def test_pack_graph_respects_spaces():
    sp = graph_spaces("g", max_nodes=5, node_dim=2, max_edges=4, n_edge_types=2, low=0, high=1)
    packed = pack_graph("g", np.full((3, 2), 0.5), np.array([[0, 1], [1, 2]]), np.array([0, 1]), 5, 4)
    for k, space in sp.items():
        assert space.contains(packed[k]), k
    assert packed["g_edge_index"][:, 2:].tolist() == [[-1, -1], [-1, -1]]
    assert packed["g_node_mask"].tolist() == [1, 1, 1, 0, 0]
    with pytest.raises(ValueError, match="more than max_nodes"):
        pack_graph("g", np.zeros((6, 2)), np.zeros((2, 0)), None, 5, 4)


def test_validation_messages():
    assert check_int("n_jobs", 5, 1, 10) == 5
    with pytest.raises(ValueError, match=r"n_jobs must be in \[1, 10\], got 11"):
        check_int("n_jobs", 11, 1, 10)
    with pytest.raises(ValueError, match="n_jobs must be an integer"):
        check_int("n_jobs", 2.5)
    with pytest.raises(ValueError, match="must be an integer"):
        check_int("flag", True)
    with pytest.raises(ValueError, match=r"p must be in \[0, 1\)"):
        check_float("p", 1.0, 0, 1, high_inclusive=False)
    with pytest.raises(ValueError, match="finite"):
        check_float("p", float("nan"))
    with pytest.raises(ValueError, match="reward must be one of 'lb', 'makespan'; got 'x'"):
        check_choice("reward", "x", ["lb", "makespan"])


def test_episode_window_lies_inside_the_episode():
    assert check_episode_window("switch_at", 0.5, "switch_spread", 0.2) == (0.5, 0.2)
    assert check_episode_window("switch_at", 0.3, "switch_spread", 0.0) == (0.3, 0.0)
    with pytest.raises(ValueError, match=r"switch_spread: switch_at \+- switch_spread must lie in \(0, 1\)"):
        check_episode_window("switch_at", 0.9, "switch_spread", 0.2)
    with pytest.raises(ValueError, match=r"switch_at must be in \(0.0, 1.0\)"):
        check_episode_window("switch_at", 1.0, "switch_spread", 0.0)
    with pytest.raises(ValueError, match="switch_spread must be in"):
        check_episode_window("switch_at", 0.5, "switch_spread", 0.5)
