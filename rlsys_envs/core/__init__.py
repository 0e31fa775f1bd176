"""The shared resource model of rlsys (see ARCHITECTURE.md): pools, clock, workloads, graphs, base env."""
from .base import InvalidActionError, RlsysEnv
from .demonstration import Demonstration
from .events import Event, EventClock
from .graph import GRAPH_KEYS, graph_prefixes, graph_spaces, pack_graph
from .policy import Policy, RandomMaskedPolicy, play_episode
from .spaces import MaskedDiscrete
from .resources import CapacityError, Placement, ResourcePool
from .validation import check_bool, check_choice, check_float, check_int
from .workloads import (ArrivalProcess, DiurnalProcess, MMPPProcess, OnOffProcess, PoissonProcess,
                        TraceReplay, load_azure_functions_trace)

__all__ = [
    "Demonstration", "InvalidActionError", "MaskedDiscrete", "RlsysEnv", "Event", "EventClock", "GRAPH_KEYS",
    "graph_prefixes", "graph_spaces", "pack_graph", "Policy", "play_episode", "RandomMaskedPolicy", "CapacityError",
    "Placement", "ResourcePool", "check_bool",
    "check_choice", "check_float", "check_int", "ArrivalProcess", "DiurnalProcess", "MMPPProcess",
    "OnOffProcess", "PoissonProcess", "TraceReplay", "load_azure_functions_trace",
]
