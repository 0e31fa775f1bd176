"""A discrete-event clock: a heap of timestamped events with deterministic tie-breaking.

Used by the environments with time (serverless request arrivals and pod starts, job-shop
operation ends and machine shutdowns, storage I/O). Events at equal times pop in the order they
were scheduled, so a simulation is reproducible bit for bit. Cancelled events are dropped lazily.
"""
from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any


@dataclass(order=True)
class Event:
    time: float
    seq: int
    kind: str = field(compare=False)
    payload: Any = field(compare=False, default=None)


class EventClock:
    """Min-heap of :class:`Event` with a current time that never goes backwards."""

    def __init__(self, start: float = 0.0):
        self.now = start
        self._heap: list[Event] = []
        self._seq = 0
        self._cancelled: set[int] = set()

    def schedule(self, time: float, kind: str, payload: Any = None) -> int:
        """Add an event at absolute ``time`` (not before ``now``); returns its id for ``cancel``."""
        if time < self.now:
            raise ValueError(f"cannot schedule event {kind!r} at {time} before the current time {self.now}")
        seq = self._seq
        self._seq += 1
        heapq.heappush(self._heap, Event(time, seq, kind, payload))
        return seq

    def cancel(self, event_id: int) -> None:
        self._cancelled.add(event_id)

    def _drop_cancelled(self) -> None:
        while self._heap and self._heap[0].seq in self._cancelled:
            self._cancelled.discard(heapq.heappop(self._heap).seq)

    def peek_time(self) -> float:
        """Time of the next pending event, or ``inf`` when none is pending."""
        self._drop_cancelled()
        return self._heap[0].time if self._heap else float("inf")

    def pop(self) -> Event:
        """Remove and return the next event, advancing ``now`` to its time."""
        self._drop_cancelled()
        if not self._heap:
            raise IndexError("no pending events")
        ev = heapq.heappop(self._heap)
        self.now = ev.time
        return ev

    def pop_until(self, time: float) -> list[Event]:
        """Pop every event with ``event.time <= time`` in order, then set ``now = time``."""
        if not self._heap:                  # nothing scheduled: only the time moves
            if time > self.now:
                self.now = time
            return []
        out = []
        while self.peek_time() <= time:
            out.append(self.pop())
        self.now = max(self.now, time)
        return out

    def __len__(self) -> int:
        return sum(1 for e in self._heap if e.seq not in self._cancelled)
