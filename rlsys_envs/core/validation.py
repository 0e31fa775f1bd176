"""Constructor-argument validation shared by every environment.

Every environment validates its keyword arguments in ``__init__`` with these helpers so that a
bad value fails at construction with a ``ValueError`` that names the field, the value received
and what is allowed, instead of surfacing later as an obscure numpy error or, worse, being
silently clipped.
"""
from __future__ import annotations

import dataclasses
from numbers import Integral, Real
from typing import Any, Iterable, Mapping, TypeVar

T = TypeVar("T")


def check_int(field: str, value: Any, low: int | None = None, high: int | None = None) -> int:
    """Return ``value`` as ``int`` if it is an integer in ``[low, high]``, else raise ``ValueError``."""
    if isinstance(value, bool) or not isinstance(value, Integral):
        raise ValueError(f"{field} must be an integer, got {value!r} ({type(value).__name__})")
    _check_bounds(field, value, low, high)
    return int(value)


def check_float(field: str, value: Any, low: float | None = None, high: float | None = None,
                low_inclusive: bool = True, high_inclusive: bool = True) -> float:
    """Return ``value`` as ``float`` if it is a finite real number within the bounds, else raise."""
    if isinstance(value, bool) or not isinstance(value, Real):
        raise ValueError(f"{field} must be a number, got {value!r} ({type(value).__name__})")
    value = float(value)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"{field} must be finite, got {value!r}")
    _check_bounds(field, value, low, high, low_inclusive, high_inclusive)
    return value


def check_episode_window(at_field: str, at: Any, spread_field: str, spread: Any) -> tuple[float, float]:
    """Return ``(at, spread)``, a moment drawn uniformly in ``at +- spread`` of an episode (as a
    fraction of its length), if the whole window lies inside the episode: ``at`` in (0, 1),
    ``spread`` in [0, 0.5) and ``0 < at - spread <= at + spread < 1``; else raise ``ValueError``
    naming ``spread_field``."""
    at = check_float(at_field, at, 0.0, 1.0, low_inclusive=False, high_inclusive=False)
    spread = check_float(spread_field, spread, 0.0, 0.5, high_inclusive=False)
    if not 0.0 < at - spread <= at + spread < 1.0:
        raise ValueError(f"{spread_field}: {at_field} +- {spread_field} must lie in (0, 1); got {at} +- {spread}")
    return at, spread


def check_choice(field: str, value: Any, choices: Iterable[Any]) -> Any:
    """Return ``value`` if it is one of ``choices``, else raise ``ValueError`` listing them."""
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"{field} must be one of {', '.join(map(repr, choices))}; got {value!r}")
    return value


def check_bool(field: str, value: Any) -> bool:
    """Return ``value`` if it is a ``bool`` (numpy bools accepted), else raise ``ValueError``."""
    if not isinstance(value, (bool,)) and type(value).__name__ != "bool_":
        raise ValueError(f"{field} must be true or false, got {value!r}")
    return bool(value)


def _check_bounds(field, value, low, high, low_inclusive=True, high_inclusive=True):
    too_low = low is not None and (value < low if low_inclusive else value <= low)
    too_high = high is not None and (value > high if high_inclusive else value >= high)
    if too_low or too_high:
        lo = "-inf" if low is None else repr(low)
        hi = "inf" if high is None else repr(high)
        lb = "[" if low_inclusive else "("
        hb = "]" if high_inclusive else ")"
        raise ValueError(f"{field} must be in {lb}{lo}, {hi}{hb}, got {value!r}")


def config_of(cls: type[T], value: Any, field: str) -> T:
    """A config dataclass from ``value``: None (the defaults), an instance of ``cls``, or a mapping of
    its fields (unknown keys are named in the error; the dataclass validates its own values)."""
    if value is None:
        return cls()
    if isinstance(value, cls):
        return value
    if isinstance(value, Mapping):
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = [k for k in value if k not in names]
        if unknown:
            raise ValueError(f"{field}: unknown key(s) {', '.join(map(repr, unknown))}; {cls.__name__} has "
                             f"{', '.join(names)}")
        return cls(**value)
    raise ValueError(f"{field} must be a {cls.__name__} or a mapping of its fields, got {value!r}")


def set_checked(obj: Any, name: str, value: Any) -> None:
    """Store a validated (normalised) value on a frozen dataclass from its ``__post_init__``."""
    object.__setattr__(obj, name, value)
