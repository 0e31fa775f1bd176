"""The Knative Pod Autoscaler (KPA) decision rule, with Knative's defaults.

Concurrency averaged over 1 s buckets, a stable window (60 s) and a panic window (10 % of it),
panic mode when the panic-window pod count reaches 2x the ready pods (no scale-down while
panicking, panic left a stable window after the last over-threshold tick), scale-up /
scale-down rate limits per 2 s tick, and scale to zero after the stable window of no traffic
plus a grace period. Numpy and plain Python only.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

from rlsys_envs.core.validation import check_bool, check_float, check_int, config_of, set_checked


@dataclass(frozen=True)
class KPAConfig:
    """Knative Pod Autoscaler settings (Knative's defaults)."""

    target_default: float = 100.0       # container-concurrency-target-default (limit 0)
    target_utilisation: float = 0.7     # container-concurrency-target-percentage
    stable_window: float = 60.0         # seconds
    panic_window_fraction: float = 0.1  # panic window = 6 s
    panic_threshold: float = 2.0        # 200 %
    tick: float = 2.0                   # decision period, seconds
    bucket: float = 1.0                 # metric bucket, seconds
    max_scale_up_rate: float = 1000.0
    max_scale_down_rate: float = 2.0
    scale_to_zero_grace: float = 30.0
    enable_scale_to_zero: bool = True
    min_scale: int = 0
    max_scale: int = 0                  # 0 = unbounded

    def __post_init__(self):
        """Validate every field (a ``ValueError`` names it as ``kpa.<field>``)."""
        for name, low, high, low_inclusive in (("target_default", 1.0, 1e4, True),
                                               ("target_utilisation", 0.0, 1.0, False),
                                               ("stable_window", 6.0, 3600.0, True),
                                               ("panic_window_fraction", 0.0, 1.0, False),
                                               ("panic_threshold", 1.1, 10.0, True), ("tick", 0.0, 3600.0, False),
                                               ("bucket", 0.0, 3600.0, False), ("max_scale_up_rate", 1.0, 1e6, False),
                                               ("max_scale_down_rate", 1.0, 1e6, False),
                                               ("scale_to_zero_grace", 0.0, 3600.0, True)):
            set_checked(self, name, check_float(f"kpa.{name}", getattr(self, name), low, high,
                                                low_inclusive=low_inclusive))
        set_checked(self, "enable_scale_to_zero", check_bool("kpa.enable_scale_to_zero", self.enable_scale_to_zero))
        set_checked(self, "min_scale", check_int("kpa.min_scale", self.min_scale, 0, 100_000))
        set_checked(self, "max_scale", check_int("kpa.max_scale", self.max_scale, 0, 100_000))

    @property
    def panic_window(self) -> float:
        return self.stable_window * self.panic_window_fraction

    def target(self, limit: int) -> float:
        """Per-pod concurrency target for a hard limit ``limit`` (0 = no limit)."""
        base = float(limit) if limit > 0 else self.target_default
        return max(0.01, base * self.target_utilisation)


class KPA:
    """The decision rule. Feed one bucket average per ``bucket`` seconds with :meth:`record`;
    call :meth:`decide` every ``tick`` seconds."""

    def __init__(self, cfg: KPAConfig):
        self.cfg = cfg
        self.n_stable = max(1, int(round(cfg.stable_window / cfg.bucket)))
        self.n_panic = max(1, int(round(cfg.panic_window / cfg.bucket)))
        self.reset()

    def reset(self) -> None:
        self.buckets: deque[float] = deque(maxlen=self.n_stable)
        self.panic_since: float | None = None   # time of the last over-threshold tick
        self.max_panic_pods = 0
        self.zero_since: float | None = None
        self.last_stable = 0.0
        self.last_panic = 0.0

    @property
    def panicking(self) -> bool:
        return self.panic_since is not None

    def record(self, concurrency: float) -> None:
        self.buckets.append(float(concurrency))

    def averages(self) -> tuple[float, float]:
        """(stable, panic) window averages of total concurrency over the recorded buckets."""
        if not self.buckets:
            return 0.0, 0.0
        b = list(self.buckets)
        stable = sum(b) / len(b)
        p = b[-self.n_panic:]
        return stable, sum(p) / len(p)

    def decide(self, now: float, ready: int, limit: int) -> int:
        """Desired pod count at time ``now`` given ``ready`` ready pods and the hard limit."""
        cfg = self.cfg
        target = cfg.target(limit)
        stable, panic = self.averages()
        self.last_stable, self.last_panic = stable, panic
        ready_c = max(1, ready)
        max_up = max(math.ceil(cfg.max_scale_up_rate * ready_c), ready + 1)
        max_down = min(math.floor(ready_c / cfg.max_scale_down_rate), max(ready - 1, 0))
        dspc = min(max(math.ceil(stable / target - 1e-9), max_down), max_up)
        dppc = min(max(math.ceil(panic / target - 1e-9), max_down), max_up)
        over = dppc / ready_c >= cfg.panic_threshold
        if over:
            self.panic_since = now
        elif self.panic_since is not None and now - self.panic_since >= cfg.stable_window:
            self.panic_since = None
            self.max_panic_pods = 0
        if self.panic_since is None:
            desired = dspc
        else:
            desired = max(dspc, dppc, self.max_panic_pods, ready)   # no scale-down in panic
            self.max_panic_pods = desired
        # scale to zero: only after the stable window saw no traffic, then a grace period
        if desired == 0:
            if not cfg.enable_scale_to_zero:
                desired = 1
            else:
                if self.zero_since is None:
                    self.zero_since = now
                if now - self.zero_since < cfg.scale_to_zero_grace:
                    desired = 1 if ready > 0 else 0
        else:
            self.zero_since = None
        desired = max(desired, cfg.min_scale)
        if cfg.max_scale > 0:
            desired = min(desired, cfg.max_scale)
        return int(desired)


def kpa_for_interval(kpa, decision_interval: float) -> KPAConfig:
    """The ``kpa=`` argument of an environment (None, a mapping of :class:`KPAConfig` fields or a
    config) as a checked :class:`KPAConfig` whose tick divides ``decision_interval`` (the
    autoscaler must tick a whole number of times per decision); a ``ValueError`` otherwise."""
    kpa = config_of(KPAConfig, kpa, "kpa")
    if abs(decision_interval / kpa.tick - round(decision_interval / kpa.tick)) > 1e-9:
        raise ValueError(f"decision_interval must be a multiple of the {kpa.tick} s autoscaler tick, "
                         f"got {decision_interval}")
    return kpa
