"""VM rescheduling (VMR2L, EuroSys 2025): NUMA-aware migrations that reduce CPU fragments."""
from .generator import SIZES, WORKLOADS, GeneratedClusters, LoadReport, generate_cluster, load_vmr2l_json
from .model import Cluster, cluster_from_lists

__all__ = ["SIZES", "WORKLOADS", "GeneratedClusters", "LoadReport", "generate_cluster", "load_vmr2l_json", "Cluster",
           "cluster_from_lists"]
