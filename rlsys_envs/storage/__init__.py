"""Hybrid storage data placement and migration (Sibyl, Harmonia): ``rlsys/HybridStorageParallel-v0``
(two agents), ``rlsys/HybridStorage-v0`` (placement) and ``rlsys/HybridStorageMigration-v0``."""
from .env import HybridStorageEnv, HybridStorageMigrationEnv, HybridStorageParallelEnv
from .generator import HELD_OUT, SHAPES, TRAIN_SHAPES, BlockTrace, load_msr_csv, load_sibyl_csv, load_trace
from .model import CONFIGS, PROFILES

__all__ = ["HybridStorageEnv", "HybridStorageMigrationEnv", "HybridStorageParallelEnv", "HELD_OUT", "SHAPES",
           "TRAIN_SHAPES", "BlockTrace", "load_msr_csv", "load_sibyl_csv", "load_trace", "CONFIGS", "PROFILES"]
