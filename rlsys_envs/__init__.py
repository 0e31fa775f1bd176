"""rlsys environments: ``import rlsys_envs`` registers every ``rlsys/...`` ID with Gymnasium."""
from .registry import ENVIRONMENTS, baselines, env_ids, experts, get_entry, register_all

register_all()

__all__ = ["ENVIRONMENTS", "baselines", "env_ids", "experts", "get_entry", "register_all"]
