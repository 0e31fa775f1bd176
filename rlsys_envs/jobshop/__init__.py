"""Job-shop dispatching (classic JSSP and the ISBJSSP: blocking, swaps, machine shutdowns)."""
from .generator import InstanceFormatError, generate, load_benchmark, load_standard, load_taillard, resolve_instance
from .model import JobShopInstance, JobShopModel

__all__ = ["InstanceFormatError", "generate", "load_benchmark", "load_standard", "load_taillard", "resolve_instance",
           "JobShopInstance", "JobShopModel"]
