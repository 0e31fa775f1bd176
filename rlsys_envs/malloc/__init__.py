"""The memory mapping game (mallocGame, Wang et al. 2023) and MiniMalloc's static allocation problem."""
from .generator import InstanceFormatError, LayeredPrograms, generate_program, load_csv
from .model import AcceleratorProfile, MemoryState, Program

__all__ = ["InstanceFormatError", "LayeredPrograms", "generate_program", "load_csv", "AcceleratorProfile",
           "MemoryState", "Program"]
