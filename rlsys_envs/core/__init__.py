"""The shared resource model of rlsys (see ARCHITECTURE.md): pools, clock, workloads, graphs, entity
tables, instance generators, the environment base classes and the episode runner."""
from .base import EnvContract, EnvState, InvalidActionError, RlsysEnv
from .demonstration import Demonstration, play_prefix
from .entities import entity_spaces, entity_tables, pack_entities
from .events import Event, EventClock
from .graph import GLOBAL_ACTION, GRAPH_KEYS, NO_NODE, graph_keys, graph_prefixes, graph_spaces, pack_graph
from .instances import FileInstance, FixedInstance, InstanceGenerator, SeededDraw, draw_instance, instance_source
from .policy import (BestOfK, Episode, PlannedPolicy, Policy, RandomMaskedPolicy, best_of_k, episode_key, play_episode,
                     play_on, simulate)
from .occupancy import TimeAddressMap
from .resources import CapacityError, Placement, ResourcePool
from .spaces import MaskedDiscrete, MaskedMultiDiscrete, multi_discrete_legal, split_mask
from .validation import check_bool, check_choice, check_episode_window, check_float, check_int
from .workloads import (ArrivalProcess, DiurnalProcess, MMPPProcess, OnOffProcess, PoissonProcess,
                        TraceReplay, load_azure_functions_trace)

__all__ = [
    "EnvContract", "EnvState", "InvalidActionError", "RlsysEnv", "Demonstration", "play_prefix",
    "entity_spaces", "entity_tables",
    "pack_entities", "Event", "EventClock", "GLOBAL_ACTION", "GRAPH_KEYS", "NO_NODE", "graph_keys", "graph_prefixes",
    "graph_spaces", "pack_graph", "FileInstance", "FixedInstance", "InstanceGenerator", "draw_instance",
    "instance_source", "SeededDraw", "BestOfK", "Episode", "PlannedPolicy", "Policy", "RandomMaskedPolicy", "best_of_k",
    "episode_key", "play_episode", "play_on", "simulate", "CapacityError", "Placement", "ResourcePool",
    "MaskedDiscrete", "MaskedMultiDiscrete", "multi_discrete_legal", "split_mask",
    "TimeAddressMap", "check_bool", "check_choice", "check_episode_window", "check_float", "check_int",
    "ArrivalProcess", "DiurnalProcess",
    "MMPPProcess", "OnOffProcess", "PoissonProcess", "TraceReplay", "load_azure_functions_trace",
]
