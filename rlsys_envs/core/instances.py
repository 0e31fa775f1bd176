"""Instance generators with one interface, so every environment takes its instance the same way.

An *instance* is what an episode is played on: a job-shop instance, a cluster snapshot, a
program's buffers, a block trace, a set of entities and tasks. An **instance generator** is any
callable ``generator(rng) -> instance`` that draws from the numpy generator it is given (always the
environment's ``np_random``, so episodes are reproducible under ``reset(seed=...)``). A fixed
instance and a file are generators too (:class:`FixedInstance`, :class:`FileInstance`), which is
why every environment can take

* ``instance="<name>"``: one of the environment's named generators or benchmark instances;
* ``instance="<path>"``: a file in a format the environment loads;
* ``instance=<generator>``: any callable ``rng -> instance`` (your own generator);
* ``instance=<instance object>``: that instance in every episode;

and ``reset(options={"instance": ...})`` with the same values for one episode.
:func:`instance_source` turns such a value into a generator, or raises a ``ValueError`` that
names the argument and lists what it accepts.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Callable, Mapping, Protocol, runtime_checkable

import numpy as np


@runtime_checkable
class InstanceGenerator(Protocol):
    """``generator(rng) -> instance``: draw one instance from ``rng`` (a ``numpy.random.Generator``)."""

    def __call__(self, rng: np.random.Generator) -> Any: ...


class FixedInstance:
    """The same instance in every episode (a benchmark instance, a given object)."""

    def __init__(self, instance: Any, name: str | None = None):
        self.instance = instance
        self.name = name or getattr(instance, "name", type(instance).__name__)

    def __call__(self, rng: np.random.Generator) -> Any:
        return self.instance

    def __repr__(self) -> str:
        return f"FixedInstance({self.name!r})"


class FileInstance(FixedInstance):
    """An instance loaded once from ``path`` with ``loader(path)`` (errors name the file)."""

    def __init__(self, path: str | os.PathLike, loader: Callable[[Path], Any]):
        self.path = Path(path)
        super().__init__(loader(self.path), name=str(self.path))

    def __repr__(self) -> str:
        return f"FileInstance({str(self.path)!r})"


class SeededDraw(FixedInstance):
    """One draw of ``generator`` with its own seed, the same instance in every episode (a fixed
    generated instance, e.g. to compare with an exact optimum or to train on one instance)."""

    def __init__(self, generator: InstanceGenerator, seed: int):
        self.generator, self.seed = generator, int(seed)
        super().__init__(generator(np.random.default_rng(self.seed)), name=f"{generator!r} seed {self.seed}")

    def __repr__(self) -> str:
        return f"SeededDraw({self.generator!r}, seed={self.seed})"


def is_path_like(value: Any) -> bool:
    """A ``str`` or ``os.PathLike`` that names an existing file."""
    if isinstance(value, os.PathLike) or isinstance(value, str):
        try:
            return Path(value).is_file()
        except (OSError, ValueError):
            return False
    return False


def instance_source(value: Any, *, instance_type: type | tuple[type, ...],
                    named: Mapping[str, Callable[[], InstanceGenerator]] | None = None,
                    load: Callable[[Path], Any] | None = None, field: str = "instance",
                    formats: str = "") -> InstanceGenerator:
    """The instance generator that ``value`` stands for (see the module docstring).

    ``instance_type``: the environment's instance class(es) (a fixed instance); ``named``: name ->
    zero-argument factory of a generator (named presets and benchmark instances); ``load``: the
    file loader (None: the environment reads no files); ``field``: the argument's name in errors;
    ``formats``: a few words on the file formats, for the error message.
    """
    named = named if named is not None else {}
    if isinstance(value, instance_type):
        return FixedInstance(value)
    if isinstance(value, (str, os.PathLike)):
        if isinstance(value, str) and value in named:
            return named[value]()
        if load is not None and is_path_like(value):
            return FileInstance(value, load)
        text = os.fspath(value)
        if load is not None and (os.sep in text or "/" in text or Path(text).suffix):
            raise ValueError(f"{field}: file {text!r} does not exist")
        names = list(named)
        shown = ", ".join(names[:12]) + (", ..." if len(names) > 12 else "")
        files = f", or a path to an existing file ({formats or 'see the docs'})" if load is not None else ""
        raise ValueError(f"{field} must be one of [{shown}]{files}, an instance generator (rng -> instance) "
                         f"or an instance; got {value!r}")
    if isinstance(value, type) or not callable(value):
        kinds = instance_type if isinstance(instance_type, tuple) else (instance_type,)
        raise ValueError(f"{field} must be a name, a path, an instance generator (rng -> instance) or a "
                         f"{' / '.join(k.__name__ for k in kinds)}; got {value!r} ({type(value).__name__})")
    return value


def draw_instance(source: InstanceGenerator, rng: np.random.Generator, instance_type, field: str = "instance"):
    """``source(rng)``, checked to be an instance of ``instance_type`` (a user generator that
    returns something else is named in the error)."""
    inst = source(rng)
    if not isinstance(inst, instance_type):
        kinds = instance_type if isinstance(instance_type, tuple) else (instance_type,)
        raise ValueError(f"{field}: the generator {source!r} returned a {type(inst).__name__}, not a "
                         f"{' / '.join(k.__name__ for k in kinds)}")
    return inst
