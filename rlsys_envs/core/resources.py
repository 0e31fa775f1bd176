"""The shared resource model: consumers with demand vectors placed on resources with capacities.

Every rlsys environment tells the same story: consumers (pods, VMs, operations, buffers, files,
tasks) with demand vectors are placed on resources (nodes, NUMA nodes, machines, devices,
entities) with capacity vectors. :class:`ResourcePool` keeps capacity and usage as numpy arrays
of shape ``[n_resources, n_dims]``, answers "where does this demand fit?" for all resources at
once, and refuses, by raising :class:`CapacityError` and leaving its state untouched, any
``place`` or ``move`` that would exceed a capacity. A consumer may span several resources (a
large VM split over both NUMA nodes of a host), each with its own demand row.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Hashable, Sequence

import numpy as np


class CapacityError(ValueError):
    """A placement or move would exceed a resource's capacity (state is left unchanged)."""


@dataclass(frozen=True)
class Placement:
    """Where a consumer lives: the resource indices and one demand row per resource."""

    resources: np.ndarray  # int64 [k]
    demand: np.ndarray     # [k, n_dims]


class ResourcePool:
    """Capacities and usages of ``n`` resources over named dimensions, with checked placements.

    Parameters
    ----------
    capacity:
        Array ``[n_resources, n_dims]`` (integer or float) of capacities.
    dims:
        Names of the dimensions, e.g. ``("cpu", "mem")``.
    """

    def __init__(self, capacity, dims: Sequence[str]):
        capacity = np.array(capacity, copy=True)
        if capacity.ndim != 2:
            raise ValueError(f"capacity must be a 2-D array [n_resources, n_dims], got shape {capacity.shape}")
        if capacity.shape[1] != len(dims):
            raise ValueError(f"capacity has {capacity.shape[1]} dimensions but dims names {len(dims)}: {list(dims)}")
        if np.any(capacity < 0):
            raise ValueError("capacity must be non-negative")
        self.dims = tuple(dims)
        self._integer = np.issubdtype(capacity.dtype, np.integer)
        self.dtype = np.int64 if self._integer else np.float64
        self.capacity = capacity.astype(self.dtype)
        self.capacity.setflags(write=False)
        self.usage = np.zeros_like(self.capacity)
        self._placements: dict[Hashable, Placement] = {}
        self._eps = 0 if self._integer else 1e-9

    # ------------------------------------------------------------------------------ queries
    @property
    def n_resources(self) -> int:
        return self.capacity.shape[0]

    @property
    def free(self) -> np.ndarray:
        """Free capacity ``[n_resources, n_dims]`` (a new array)."""
        return self.capacity - self.usage

    def dim(self, name: str) -> int:
        """Index of a named dimension."""
        try:
            return self.dims.index(name)
        except ValueError:
            raise KeyError(f"unknown dimension {name!r}; dims are {self.dims}") from None

    def fits(self, demand) -> np.ndarray:
        """Boolean mask ``[n_resources]``: where a single demand row fits in the free capacity."""
        demand = np.asarray(demand, dtype=self.dtype)
        return np.all(self.usage + demand <= self.capacity + self._eps, axis=1)

    def placement(self, consumer: Hashable) -> Placement:
        try:
            return self._placements[consumer]
        except KeyError:
            raise KeyError(f"consumer {consumer!r} is not placed in this pool") from None

    def __contains__(self, consumer: Hashable) -> bool:
        return consumer in self._placements

    def consumers(self) -> list[Hashable]:
        return list(self._placements)

    def utilisation(self) -> np.ndarray:
        """Usage over capacity per resource and dimension ``[n, d]`` (0 where capacity is 0)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(self.capacity > 0, self.usage / np.maximum(self.capacity, 1e-300), 0.0)

    def total_utilisation(self) -> np.ndarray:
        """Pool-wide usage over capacity per dimension ``[d]``."""
        cap = self.capacity.sum(axis=0)
        return np.where(cap > 0, self.usage.sum(axis=0) / np.maximum(cap, 1e-300), 0.0)

    def fragments(self, dim: str | int, unit: float) -> np.ndarray:
        """Free capacity of ``dim`` on each resource that cannot hold a whole ``unit`` ([n])."""
        d = self.dim(dim) if isinstance(dim, str) else dim
        return np.mod(self.capacity[:, d] - self.usage[:, d], unit)

    def fragment_rate(self, dim: str | int, unit: float) -> float:
        """Share of the free capacity of ``dim`` that is fragmented (0 when nothing is free)."""
        d = self.dim(dim) if isinstance(dim, str) else dim
        total_free = float((self.capacity[:, d] - self.usage[:, d]).sum())
        return float(self.fragments(d, unit).sum()) / total_free if total_free > 0 else 0.0

    # ---------------------------------------------------------------------------- mutations
    def _normalise(self, resources, demand) -> tuple[np.ndarray, np.ndarray]:
        res = np.atleast_1d(np.asarray(resources, dtype=np.int64))
        dem = np.asarray(demand, dtype=self.dtype)
        if dem.ndim == 1:
            dem = np.broadcast_to(dem, (len(res), len(self.dims)))
        if dem.shape != (len(res), len(self.dims)):
            raise ValueError(f"demand shape {dem.shape} does not match {len(res)} resources x {len(self.dims)} dims")
        if np.any(dem < 0):
            raise ValueError(f"demand must be non-negative, got {dem.tolist()}")
        if np.any(res < 0) or np.any(res >= self.n_resources):
            raise IndexError(f"resource index out of range [0, {self.n_resources}): {res.tolist()}")
        n = len(res)
        if n > 1 and ((res[0] == res[1]) if n == 2 else len(np.unique(res)) != n):  # (np.unique is slow for 2)
            raise ValueError(f"a consumer may use each resource at most once, got {res.tolist()}")
        return res, np.array(dem, copy=True)

    def _check_room(self, consumer, res, dem, usage) -> None:
        over = usage[res] + dem > self.capacity[res] + self._eps
        if np.any(over):
            k, d = np.argwhere(over)[0]
            raise CapacityError(
                f"placing {consumer!r} would exceed {self.dims[d]} capacity of resource {int(res[k])}: "
                f"usage {usage[res[k], d]} + demand {dem[k, d]} > capacity {self.capacity[res[k], d]}")

    def place(self, consumer: Hashable, resources, demand) -> None:
        """Place ``consumer`` with ``demand`` (one row, or one row per resource) on ``resources``."""
        if consumer in self._placements:
            raise ValueError(f"consumer {consumer!r} is already placed on "
                             f"{self._placements[consumer].resources.tolist()}")
        res, dem = self._normalise(resources, demand)
        self._check_room(consumer, res, dem, self.usage)
        np.add.at(self.usage, res, dem)
        self._placements[consumer] = Placement(res, dem)

    def place_many(self, consumers: Sequence[Hashable], resources: Sequence, demands: Sequence) -> None:
        """Place many consumers at once (all or none): ``place(consumers[i], resources[i], demands[i])``.

        Validated as a whole and vectorised, for building large snapshots quickly; raises like
        :meth:`place` (the message names the first over-full resource) and leaves the pool untouched.
        """
        consumers = list(consumers)
        if not (len(consumers) == len(resources) == len(demands)):
            raise ValueError("place_many needs as many resources and demands as consumers")
        if len(set(consumers)) != len(consumers) or any(c in self._placements for c in consumers):
            dup = next(c for i, c in enumerate(consumers) if c in self._placements or c in consumers[:i])
            raise ValueError(f"consumer {dup!r} is already placed or listed twice")
        nd = len(self.dims)
        rows = []
        for c, r, d in zip(consumers, resources, demands):
            r = np.atleast_1d(np.asarray(r, dtype=np.int64))
            d = np.asarray(d, dtype=self.dtype)
            d = np.array(np.broadcast_to(d, (len(r), nd)) if d.ndim == 1 else d, copy=True)
            if d.shape != (len(r), nd):
                raise ValueError(f"demand of {c!r} has shape {d.shape}, expected ({len(r)}, {nd})")
            if len(r) > 1 and len(set(r.tolist())) != len(r):
                raise ValueError(f"a consumer may use each resource at most once, got {r.tolist()} for {c!r}")
            rows.append((r, d))
        if rows:
            all_r = np.concatenate([r for r, _ in rows])
            if np.any(all_r < 0) or np.any(all_r >= self.n_resources):
                raise IndexError(f"resource index out of range [0, {self.n_resources}) in place_many")
            if any(np.any(d < 0) for _, d in rows):
                raise ValueError("demand must be non-negative")
        usage = self.usage.copy()
        if rows:
            all_res = np.concatenate([r for r, _ in rows])
            all_dem = np.concatenate([d for _, d in rows])
            np.add.at(usage, all_res, all_dem)
        over = np.argwhere(usage > self.capacity + self._eps)
        if len(over):
            k, d = over[0]
            on = [c for c, (r, _) in zip(consumers, rows) if k in r]
            raise CapacityError(
                f"placing {', '.join(map(repr, on[:10]))} would exceed {self.dims[d]} capacity of resource {int(k)}: "
                f"usage {usage[k, d]} > capacity {self.capacity[k, d]}")
        self.usage = usage
        for c, (r, d) in zip(consumers, rows):
            self._placements[c] = Placement(r, d)

    def release(self, consumer: Hashable) -> Placement:
        """Remove ``consumer`` and free its demand; returns where it was."""
        p = self.placement(consumer)
        np.subtract.at(self.usage, p.resources, p.demand)
        del self._placements[consumer]
        return p

    def move(self, consumer: Hashable, resources, demand=None) -> Placement:
        """Move ``consumer`` to ``resources`` (with a new demand split if given), atomically.

        The consumer's own usage is freed before the check, so moving between NUMA nodes of one
        host is allowed when the host has room. Returns the old placement.
        """
        old = self.placement(consumer)
        res, dem = self._normalise(resources, old.demand if demand is None else demand)
        same = (np.array_equal(dem.sum(axis=0), old.demand.sum(axis=0)) if self._integer
                else np.allclose(dem.sum(axis=0), old.demand.sum(axis=0)))
        if not same:
            raise ValueError(f"move of {consumer!r} must keep its total demand {old.demand.sum(axis=0).tolist()}")
        # in place (resource indices of a placement are distinct, so fancy-index updates are exact);
        # the old rows are saved bit for bit and restored if the new place has no room
        usage = self.usage
        saved = usage[old.resources].copy()
        usage[old.resources] -= old.demand
        try:
            self._check_room(consumer, res, dem, usage)
        except CapacityError:
            usage[old.resources] = saved
            raise
        usage[res] += dem
        self._placements[consumer] = Placement(res, dem)
        return old

    def copy(self) -> "ResourcePool":
        """An independent copy (for look-ahead and exact solvers)."""
        other = ResourcePool.__new__(ResourcePool)
        other.dims, other._integer, other.dtype, other._eps = self.dims, self._integer, self.dtype, self._eps
        other.capacity = self.capacity
        other.usage = self.usage.copy()
        other._placements = dict(self._placements)
        return other
