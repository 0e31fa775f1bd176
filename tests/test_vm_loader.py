"""VM rescheduling: the VMR2L cluster-JSON loader (errors, disagreements, the real snapshots)."""
import json
import warnings
from pathlib import Path

import numpy as np
import pytest

from rlsys_envs.vm import load_vmr2l_json
from rlsys_envs.vm.env import VMReschedulingEnv

DATA = Path(__file__).resolve().parents[2] / "shared" / "data" / "vmr2l"


def host(name, free0=44, free1=44, mem_free0=184388.0, mem_free1=184388.0, status="ACTIVE"):
    return {"node_id": name, "status": status, "node_cpu": 88, "node_mem_mb": 368776.0,
            "numa": [{"node": 0, "total_cpu": 44, "free_cpu": free0, "memory_huge_total_mb": 184388.0,
                      "memory_huge_free_mb": mem_free0},
                     {"node": 1, "total_cpu": 44, "free_cpu": free1, "memory_huge_total_mb": 184388.0,
                      "memory_huge_free_mb": mem_free1}]}


def vm(name, host_id, parts, vtype="xxx.xxx.2xlarge", movable=True):
    return {"instance_id": name, "instance_type": vtype, "host_id": host_id,
            "numa": [{"node": k, "cpu": c, "mem_mb": m} for k, c, m in parts], "allow_migration": movable}


def snapshot(hosts, vms, groups=()):
    return {"cluster_list": [{"cluster_name": "c", "host_info": hosts, "vm_type_info": [], "vm_instance": vms,
                              "other_requirement": {"deployment_set": list(groups)}}],
            "vm_type_list": [{"vm_type": "xxx.xxx.2xlarge", "request_cpu": 8, "request_mem_mb": 16384.0, "numa": 1},
                             {"vm_type": "xxx.xxx.8xlarge", "request_cpu": 32, "request_mem_mb": 65536.0, "numa": 2}],
            "general_requirement": {}}


def write(tmp_path, data, name="snap.json"):
    p = tmp_path / name
    p.write_text(data if isinstance(data, str) else json.dumps(data))
    return p


def consistent():
    return snapshot([host("pm_a", free0=20, free1=28, mem_free0=184388.0 - 16384 - 32768, mem_free1=184388.0 - 32768),
                     host("pm_b")],
                    [vm("vm_1", "pm_a", [(0, 8, 16384.0)]),
                     vm("vm_2", "pm_a", [(0, 16, 32768.0), (1, 16, 32768.0)], vtype="xxx.xxx.8xlarge", movable=False)])


def test_a_consistent_file_loads_without_warnings(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        c, report = load_vmr2l_json(write(tmp_path, consistent()))
    assert (c.n_pms, c.n_vms) == (2, 2)
    assert c.free[:, 0].tolist() == [20, 28, 44, 44]
    assert c.vm_span.tolist() == [1, 2] and c.vm_movable.tolist() == [True, False]
    assert report.free_disagreements == [] and report.type_disagreements == []
    assert c.pm_names == ["pm_a", "pm_b"] and c.vm_names == ["vm_1", "vm_2"]


def test_disagreeing_free_values_are_recomputed_warned_and_recorded(tmp_path):
    data = consistent()
    data["cluster_list"][0]["host_info"][0]["numa"][1]["memory_huge_free_mb"] = 999.0
    with pytest.warns(UserWarning, match="disagree"):
        c, report = load_vmr2l_json(write(tmp_path, data))
    assert report.free_disagreements == [dict(host="pm_a", numa=1, field="memory_huge_free_mb", stated=999.0,
                                              recomputed=184388 - 32768)]
    assert c.free[1, 1] == 184388 - 32768


@pytest.mark.parametrize("mutate, message", [
    (lambda d: d["cluster_list"][0]["vm_instance"][0].update(host_id="pm_zz"), "VM 'vm_1' is on unknown host 'pm_zz'"),
    (lambda d: d["cluster_list"][0]["vm_instance"].append(vm("vm_3", "pm_a", [(0, 40, 1024.0)])),
     "PM 'pm_a' NUMA node 0 is over cpu capacity"),
    (lambda d: d["cluster_list"][0]["vm_instance"].append(vm("vm_3", "pm_b", [(1, 4, 200000.0)])),
     "PM 'pm_b' NUMA node 1 is over mem capacity"),
    (lambda d: d["cluster_list"][0]["vm_instance"][0].pop("numa"), "VM 'vm_1' has no 'numa'"),
    (lambda d: d["cluster_list"][0]["vm_instance"].append(vm("vm_1", "pm_b", [(0, 2, 4096.0)])),
     "'vm_1' appears twice"),
    (lambda d: d["cluster_list"][0]["vm_instance"][0]["numa"][0].update(node=2), "NUMA node 2"),
    (lambda d: d["cluster_list"][0]["host_info"][1].update(numa=[]), "host 'pm_b' field 'numa' must be a list of 2"),
    (lambda d: d.pop("cluster_list"), "the top level has no 'cluster_list'"),
    (lambda d: d["cluster_list"][0]["other_requirement"].update(deployment_set=[["vm_1", "vm_9"]]),
     "unknown VM 'vm_9'"),
])
def test_malformed_or_inconsistent_files_fail_naming_the_vm_or_host(tmp_path, mutate, message):
    data = consistent()
    mutate(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError, match=message.replace("(", r"\(")) as err:
            load_vmr2l_json(write(tmp_path, data))
    assert "snap.json" in str(err.value)   # the file is named too


def test_invalid_json_text_fails_clearly(tmp_path):
    with pytest.raises(ValueError, match="malformed VMR2L JSON"):
        load_vmr2l_json(write(tmp_path, '{"cluster_list": [', "bad.json"))


def test_deployment_sets_become_anti_affinity_groups(tmp_path):
    data = consistent()
    data["cluster_list"][0]["vm_instance"].append(vm("vm_3", "pm_b", [(0, 8, 16384.0)]))
    data["cluster_list"][0]["other_requirement"]["deployment_set"] = [{"vm_list": ["vm_1", "vm_3"]}]
    with pytest.warns(UserWarning, match="pm_b"):  # the file still says pm_b is empty
        c, report = load_vmr2l_json(write(tmp_path, data))
    assert report.n_groups == 1 and c.vm_group.tolist() == [0, -1, 0]
    assert not c.vm_slot_mask(0)[2:].any()  # vm_1 may not join vm_3 on pm_b


def test_env_runs_on_a_user_snapshot(tmp_path):
    env = VMReschedulingEnv(instance=str(write(tmp_path, consistent())), mnl=5)
    obs, info = env.reset(seed=0)
    assert env.max_pms == 2 and env.max_vms == 2 and obs["vm_mask"].tolist() == [1, 1]
    assert info["action_mask"][: 2].tolist() == [True, False]  # vm_2 may not migrate


@pytest.fixture
def real():
    if not DATA.is_dir():
        pytest.skip(f"shared data not found at {DATA}")
    return DATA


WHOLE = {"reset_vm_pm_id_clear2.json": ((236, 43), (1934, 155), 0.977044),
         "reset_vm_pm_id_clear_big2.json": ((352, 824), (504, 4042), 0.600256)}


@pytest.mark.parametrize("name", sorted(WHOLE))
def test_real_snapshots_load_whole_with_the_memory_disagreements_recorded(real, name):
    hosts, vms, fr = WHOLE[name]
    with pytest.warns(UserWarning, match="memory_huge_free_mb"):
        c, report = load_vmr2l_json(real / name)
    assert (c.n_pms, c.n_vms) == (sum(hosts), sum(vms))          # every cluster of the file, pooled
    assert [(r["hosts"], r["vms"]) for r in report.clusters] == list(zip(hosts, vms))
    c.check_invariants()
    # FR from the placements (free cores recomputed from the VMs), by hand here
    free = np.repeat(c.numa_cpu.reshape(-1, 1), 1, 1)[:, 0].copy()
    for v in range(c.n_vms):
        free[c.vm_nodes(v)] -= c.vm_ncpu[v]
    assert round(float((free % 16).sum() / free.sum()), 6) == fr == round(c.fragment_rate(), 6)
    fields = {r["field"] for r in report.free_disagreements}
    assert fields == {"memory_huge_free_mb"}       # cpu free values agree with the placements
    assert all(r["numa"] == 1 for r in report.free_disagreements)
    assert len(report.type_disagreements) > 0      # e.g. 8-core VMs split 4 + 4 over both nodes
    assert "copied NUMA 0's free memory into NUMA 1" in report.note
    # one cluster by index or by name
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        first, _ = load_vmr2l_json(real / name, cluster=0)
        second, _ = load_vmr2l_json(real / name, cluster="cluster2")
    assert (first.n_pms, first.n_vms, second.n_pms, second.n_vms) == (hosts[0], vms[0], hosts[1], vms[1])


def test_env_on_the_first_real_snapshot_improves_with_greedy(real):
    from rlsys_envs.vm.baselines import GreedyPolicy

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        env = VMReschedulingEnv(instance=str(real / "reset_vm_pm_id_clear2.json"), mnl=10)
    obs, info = env.reset(seed=0)
    assert (env.max_pms, env.max_vms) == (279, 2089)
    pol = GreedyPolicy()
    pol.reset(env, 0)
    while True:
        obs, r, term, trunc, info = env.step(pol.act(env, obs, info))
        if term or trunc:
            break
    assert info["metrics"]["fr_final"] < info["metrics"]["fr_initial"]
    assert np.isclose(info["metrics"]["return"], info["metrics"]["fr_reduction"])


def _h(d, i=0):
    return d["cluster_list"][0]["host_info"][i]


def _v(d, i=0):
    return d["cluster_list"][0]["vm_instance"][i]


@pytest.mark.parametrize("mutate, names", [
    (lambda d: _h(d)["numa"][1].update(node=0), ("host 'pm_a'", "NUMA node 0 twice", "'numa'")),
    (lambda d: _v(d).update(allow_migration="false"), ("VM 'vm_1'", "'allow_migration'", "'false'")),
    (lambda d: _h(d)["numa"][0].update(free_cpu="abc"), ("host 'pm_a' NUMA 0", "'free_cpu'", "'abc'")),
    (lambda d: _h(d)["numa"][0].update(free_cpu=None), ("host 'pm_a' NUMA 0", "'free_cpu'", "None")),
    (lambda d: _h(d)["numa"][1].update(free_cpu=float("inf")), ("host 'pm_a' NUMA 1", "'free_cpu'", "inf")),
    (lambda d: _h(d, 1).update(numa="one"), ("host 'pm_b'", "'numa'", "'one'")),
    (lambda d: _v(d).update(numa="one"), ("VM 'vm_1'", "'numa'", "'one'")),
    (lambda d: d["cluster_list"][0].update(host_info=[], vm_instance=[]), ("cluster 'c'", "empty host_info")),
    (lambda d: (d["cluster_list"][0]["vm_instance"].append(vm("vm_3", "pm_b", [(0, 8, 16384.0)])),
                d["cluster_list"][0]["other_requirement"].update(deployment_set=[
                    {"granularity": "host", "data": ["vm_1", "vm_3"]},
                    {"granularity": "rack", "data": ["vm_3", "vm_2"]}])),
     ("VM 'vm_3'", "two deployment sets", "deployment_set[0]", "deployment_set[1]")),
    (lambda d: d["cluster_list"][0]["other_requirement"].update(deployment_set=[
        {"granularity": "host", "data": ["vm_1", "vm_2"]}]),          # both on pm_a already
     ("deployment set 0", "host anti-affinity", "'vm_1'", "'vm_2'", "'pm_a'")),
    (lambda d: d["cluster_list"][0]["other_requirement"].update(deployment_set=[
        {"granularity": "zone", "data": ["vm_1"]}]), ("deployment_set[0]", "'granularity'", "'zone'")),
])
def test_bad_input_is_refused_at_load_naming_file_entity_and_field(tmp_path, mutate, names):
    data = consistent()
    mutate(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        with pytest.raises(ValueError) as err:
            load_vmr2l_json(write(tmp_path, data))
    msg = str(err.value)
    assert "snap.json" in msg
    for part in names:
        assert part in msg, (part, msg)


def test_a_binary_file_is_refused_naming_the_file(tmp_path):
    p = tmp_path / "snap.bin"
    p.write_bytes(bytes(range(256)) * 4)
    with pytest.raises(ValueError, match=r"snap\.bin.*not UTF-8"):
        load_vmr2l_json(p)
    with pytest.raises(ValueError, match="missing.json"):
        load_vmr2l_json(tmp_path / "missing.json")


def two_racks():
    """Four hosts on two racks (pm_a, pm_b on rack 1; pm_c, pm_d on rack 2), three 8-core VMs."""
    hosts = [host(n) for n in ("pm_a", "pm_b", "pm_c", "pm_d")]
    for h, r in zip(hosts, (1, 1, 2, 2)):
        h["rack_id"] = r
    hosts[0]["numa"][0].update(free_cpu=36, memory_huge_free_mb=184388.0 - 16384)
    hosts[2]["numa"][0].update(free_cpu=28, memory_huge_free_mb=184388.0 - 32768)
    vms = [vm("vm_1", "pm_a", [(0, 8, 16384.0)]), vm("vm_2", "pm_c", [(0, 8, 16384.0)]),
           vm("vm_3", "pm_c", [(0, 8, 16384.0)])]
    return snapshot(hosts, vms)


def test_deployment_set_formats(tmp_path):
    """VMR2L's {"granularity", "data"} entries (host / rack anti-affinity), our affinity flag, and
    the bare-list form; each becomes a set with its granularity and kind."""
    data = two_racks()
    data["cluster_list"][0]["other_requirement"]["deployment_set"] = [
        {"granularity": "rack", "data": ["vm_1", "vm_2"]}, {"granularity": "host", "data": ["vm_3"],
                                                            "affinity": True}]
    c, report = load_vmr2l_json(write(tmp_path, data))
    assert report.n_groups == 2 and report.n_racks == 2 and c.pm_rack.tolist() == [0, 0, 1, 1]
    assert c.group_rack.tolist() == [True, False] and c.group_affinity.tolist() == [False, True]
    # vm_1 (rack 1) may not go to rack 2, where vm_2 is; vm_2 may not go to rack 1
    assert not c.vm_slot_mask(0)[4:].any() and c.vm_slot_mask(0)[1:4].all()
    assert not c.vm_slot_mask(1)[:4].any() and c.vm_slot_mask(1)[6:].all()
    # host affinity: vm_3 stays on pm_c (only its other NUMA node)
    assert np.flatnonzero(c.vm_slot_mask(2)).tolist() == [5]
    # rack affinity of vm_2 and vm_3: both stay on rack 2
    data["cluster_list"][0]["other_requirement"]["deployment_set"] = [
        {"granularity": "rack", "data": ["vm_2", "vm_3"], "affinity": True}, ["vm_1"]]
    c, report = load_vmr2l_json(write(tmp_path, data))
    assert c.group_rack.tolist() == [True, False] and c.group_affinity.tolist() == [True, False]
    assert np.flatnonzero(c.vm_slot_mask(1)).tolist() == [5, 6, 7]
    # a rack-affinity set already spread over two racks is refused
    data["cluster_list"][0]["other_requirement"]["deployment_set"] = [
        {"granularity": "rack", "data": ["vm_1", "vm_2"], "affinity": True}]
    with pytest.raises(ValueError, match="rack affinity"):
        load_vmr2l_json(write(tmp_path, data))


def test_rack_anti_affinity_holds_under_random_play(tmp_path):
    """Random legal migrations on a generated S snapshot with rack anti-affinity sets never put two
    members of a set on one rack (and the bookkeeping stays exact)."""
    from rlsys_envs.vm.baselines import LegalRandomPolicy
    from rlsys_envs.core import play_episode

    env = VMReschedulingEnv(size="S", workload="medium", mnl=60, allow_stop=False, n_affinity_groups=6,
                            affinity_granularity="rack", rack_size=4)
    for seed in range(3):
        env.reset(seed=seed)
        c = env.cluster
        assert c.group_rack.all() and len(c.group_members) == 6
        play_episode(env, LegalRandomPolicy(), seed)
        c = env.cluster
        c.check_invariants()
        for members in c.group_members.values():
            racks = c.pm_rack[c.vm_pm[members]]
            assert len(set(racks.tolist())) == len(members)
        assert env.migrations > 0


def test_cpsat_keeps_affinity_and_rack_anti_affinity_sets(tmp_path):
    """The exact model on a loaded snapshot with a rack-affinity set and a rack anti-affinity set:
    its sequenced plan, replayed, breaks neither (``check_invariants`` checks every set)."""
    from rlsys_envs.vm.exact import plan_cpsat

    data = two_racks()
    data["cluster_list"][0]["vm_instance"].append(vm("vm_4", "pm_d", [(1, 4, 8192.0)]))
    data["cluster_list"][0]["host_info"][3]["numa"][1].update(free_cpu=40, memory_huge_free_mb=184388.0 - 8192)
    data["cluster_list"][0]["other_requirement"]["deployment_set"] = [
        {"granularity": "rack", "data": ["vm_2", "vm_3"], "affinity": True},
        {"granularity": "rack", "data": ["vm_1", "vm_4"]}]
    c, _ = load_vmr2l_json(write(tmp_path, data))
    result, seq, dropped = plan_cpsat(c, 4, 5.0, scope="all")
    assert result.status == "OPTIMAL" and dropped == 0
    sim = c.copy()
    for v, s in seq:
        sim.migrate(v, s)
    sim.check_invariants()
    assert sim.fragment_rate() <= c.fragment_rate()
    assert set(sim.pm_rack[sim.vm_pm[[1, 2]]].tolist()) == {1}     # vm_2, vm_3 stay on rack 2
    assert sim.pm_rack[sim.vm_pm[0]] != sim.pm_rack[sim.vm_pm[3]]  # vm_1, vm_4 on different racks
    assert len(seq) > 0                                            # and the plan does move VMs
