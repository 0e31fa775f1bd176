"""Multi-entity task allocation, two-stage (Gong, Yang, Lyu & Li 2024): pre-assign, then allocate."""
from .generator import SCENARIOS, ScenarioGenerator, TaskAllocInstance, almighty_instance
from .model import TaskAllocModel

__all__ = ["SCENARIOS", "ScenarioGenerator", "TaskAllocInstance", "almighty_instance", "TaskAllocModel"]
