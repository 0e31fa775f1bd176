"""rlsys environments: ``import rlsys_envs`` registers every ``rlsys/...`` ID with Gymnasium."""
from .registry import (ENVIRONMENTS, EnvEntry, baselines, entries, env_ids, experts, get_entry, make_parallel,
                       register, register_all)

register_all()

__all__ = ["ENVIRONMENTS", "EnvEntry", "baselines", "entries", "env_ids", "experts", "get_entry", "make_parallel",
           "register", "register_all"]
