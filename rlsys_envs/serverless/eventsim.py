"""The request-level reference simulator of the serverless environment (``simulator="event"``).

Every request is an object on :class:`rlsys_envs.core.EventClock` that queues in a pod's proxy, is
processor-shared on the CPU (exactly), sleeps, and completes or fails. See
:mod:`rlsys_envs.serverless.model` for the semantics both simulators share.
"""
from __future__ import annotations

from collections import deque

import numpy as np

from rlsys_envs.core import EventClock

from .model import DRAINING, FREE, READY, STARTING, IntervalStats, SimulatorBase, per_request_rate


class _Pod:
    __slots__ = ("queue", "cpu", "sleeping", "last", "cpu_event")

    def __init__(self):
        self.queue: deque[int] = deque()
        self.cpu: dict[int, float] = {}     # request -> remaining CPU seconds
        self.sleeping: set[int] = set()
        self.last = 0.0
        self.cpu_event: int | None = None


class EventSimulator(SimulatorBase):
    """Request-level reference model on :class:`core.EventClock` (exact processor sharing)."""

    def _reset_requests(self) -> None:
        self.clock = EventClock()
        self.pods = [_Pod() for _ in range(self.n_slots)]
        self.req_t0: list[float] = []
        self.req_tadm: list[float] = []
        self.req_sleep: list[float] = []
        self.req_mem: list[float] = []
        self.activator: deque[int] = deque()
        self._cpu_work: dict[int, float] = {}
        self._n_buckets = 0
        self._conc = 0
        self._last_int = 0.0
        self._cpu_int = 0.0
        self._cpu_cap_int = 0.0
        self._mem_int = 0.0
        self._mem_cap_int = 0.0
        self._ready_int = 0.0
        self._pod_s_int = 0.0
        self._mem_inflight = 0.0
        self.clock.schedule(self.kpa_cfg.bucket, "bucket")
        for _ in range(self.workload.clients):
            self.clock.schedule(0.0, "issue")
        self._arrivals_until = 0.0

    def _pod_load(self) -> np.ndarray:
        return np.array([len(p.queue) + len(p.cpu) + len(p.sleeping) for p in self.pods], float)

    def in_system(self) -> float:
        return float(sum(len(p.queue) + len(p.cpu) + len(p.sleeping) for p in self.pods) + len(self.activator))

    def snapshot(self) -> dict[str, float]:
        ready, pending = self.pod_counts()
        return dict(ready=ready, pending=pending,
                    in_flight=float(sum(len(p.cpu) + len(p.sleeping) for p in self.pods)),
                    queued=float(sum(len(p.queue) for p in self.pods) + len(self.activator)))

    # ---- integrals of concurrency, cpu, memory, pods (piecewise constant between events)
    def _integrate(self, now: float) -> None:
        dt = now - self._last_int
        if dt <= 0:
            return
        c = self.cluster
        serving = ((self.state == READY) | (self.state == DRAINING)) & (self.down_until <= self._last_int + 1e-12)
        n_serv = int(serving.sum())
        self._bucket_acc += self._conc * dt
        if len(self.kpas) > 1:      # the old revisions' autoscalers see their own pods' requests
            for s in np.flatnonzero((self.pod_rev != self.serving_rev) & (self.state != FREE)):
                p = self.pods[s]
                self._slot_acc[s] += (len(p.queue) + len(p.cpu) + len(p.sleeping)) * dt
        self.total["in_system_s"] += self._conc * dt
        self._pod_s_int += int((self.state != FREE).sum()) * dt
        self._ready_int += int(((self.state == READY) & (self.down_until <= self._last_int + 1e-12)).sum()) * dt
        used = 0.0
        for s in np.flatnonzero(serving):
            pod = self.pods[s]
            used += min(len(pod.cpu), c.pod_cpu)
        self._cpu_int += used * dt
        self._cpu_cap_int += n_serv * c.pod_cpu * dt
        self._mem_int += (n_serv * c.pod_base_mem_mb + self._mem_inflight) * dt
        self._mem_cap_int += n_serv * c.pod_mem_mb * dt
        self._last_int = now

    def _on_pod_drained_check(self) -> None:
        for s in np.flatnonzero(self.state == DRAINING):
            p = self.pods[s]
            if not p.queue and not p.cpu and not p.sleeping:
                self._release_pod(int(s))

    def _place_pod(self):
        s = super()._place_pod()
        if s is not None:
            self.clock.schedule(self.ready_at[s], "ready", s)
        return s

    def _release_pod(self, s: int) -> None:
        pod = self.pods[s]
        if pod.cpu_event is not None:
            self.clock.cancel(pod.cpu_event)
        self.pods[s] = _Pod()
        super()._release_pod(s)

    # ---- requests
    def _new_request(self) -> int:
        p = self.workload.profile_at(self.now)
        j1, j2 = np.exp(p.work_cv * self.rng.standard_normal(2)) if p.work_cv > 0 else (1.0, 1.0)
        rid = len(self.req_t0)
        self.req_t0.append(self.now)
        self.req_tadm.append(self.now)
        self.req_sleep.append(p.sleep_s * j2)
        self.req_mem.append(p.mem_mb)
        self._cpu_work[rid] = p.cpu_s * j1
        self.total["arrived"] += 1
        self._st.arrived += 1
        self._conc += 1
        return rid

    def _dispatch(self, rid: int, held: bool = False) -> bool:
        """Route a request: to the activator while no pod is routable; through the activator
        (only to a pod with a free slot, else held) while it is in the path; else straight to the
        least-loaded pod, whose full queue-proxy queue answers 503. False if the activator holds it."""
        r = np.flatnonzero(self.ready_mask())
        if len(r) == 0:
            if not held and not self._hold(rid):
                return True
            if not self._latest_has_pods():
                self._scale_to(max(1, self.desired))
            return False
        best, best_load = -1, None
        for s in r:
            p = self.pods[s]
            load = len(p.queue) + len(p.cpu) + len(p.sleeping)
            if best_load is None or load < best_load:
                best, best_load = int(s), load
        lim = self.pod_limit[best]
        if self.act_in_path and lim > 0:
            if best_load >= lim:
                if not held and not self._hold(rid):
                    return True
                return False
        elif lim > 0 and len(self.pods[best].queue) >= self.cluster.queue_depth_factor * lim:
            self._cpu_work.pop(rid, None)
            self._fail(rid)
            return True
        self.pods[best].queue.append(rid)
        self._admit(best)
        return True

    def _hold(self, rid: int) -> bool:
        """The activator takes request ``rid``; False (and the request fails, 503) when its queue
        is full (``activator_queue_depth``)."""
        if len(self.activator) >= self.cluster.activator_queue_depth:
            self._cpu_work.pop(rid, None)
            self._fail(rid)
            self.activator_503 += 1
            return False
        self.activator.append(rid)
        return True

    def _ps_update(self, s: int) -> None:
        """Bring the remaining CPU work of pod ``s`` up to now."""
        pod = self.pods[s]
        el = self.now - pod.last
        if el > 0 and pod.cpu:
            rate = float(per_request_rate(len(pod.cpu), self.cluster.pod_cpu, self.cluster.contention))
            dec = rate * el
            for k in pod.cpu:
                pod.cpu[k] -= dec
        pod.last = self.now

    def _ps_schedule(self, s: int) -> None:
        pod = self.pods[s]
        if pod.cpu_event is not None:
            self.clock.cancel(pod.cpu_event)
            pod.cpu_event = None
        if pod.cpu and self.down_until[s] <= self.now + 1e-12:
            rate = float(per_request_rate(len(pod.cpu), self.cluster.pod_cpu, self.cluster.contention))
            k = min(pod.cpu, key=pod.cpu.get)
            pod.cpu_event = self.clock.schedule(self.now + max(pod.cpu[k], 0.0) / rate, "cpu", (s, k))

    def _admit(self, s: int) -> None:
        if self.state[s] == FREE or self.down_until[s] > self.now + 1e-12:
            return
        pod = self.pods[s]
        if not pod.queue:
            return
        self._ps_update(s)
        cap = self.cluster.mem_cap(self.workload.profile_at(self.now))
        changed = False
        lim = self.pod_limit[s]
        timeout = self.cluster.request_timeout
        while pod.queue and (lim <= 0 or len(pod.cpu) + len(pod.sleeping) < lim):
            rid = pod.queue.popleft()
            if self.now - self.req_t0[rid] > timeout:     # its deadline passed in the queue: 503
                self._cpu_work.pop(rid, None)
                self._fail(rid)
                continue
            if len(pod.cpu) + len(pod.sleeping) + 1 > cap:
                self._oom(s, rid)
                return
            self.req_tadm[rid] = self.now
            self._mem_inflight += self.req_mem[rid]
            w = self._cpu_work.pop(rid)
            if w > 0:
                pod.cpu[rid] = w
                changed = True
            else:
                self._start_sleep(s, rid)
        if changed:
            self._ps_schedule(s)

    def _oom(self, s: int, rid: int) -> None:
        pod = self.pods[s]
        in_flight = list(pod.cpu) + list(pod.sleeping)
        queued = [rid] + list(pod.queue)      # the queue-proxy forwards to a dead container: 502
        pod.queue.clear()
        for v in in_flight:
            self._mem_inflight -= self.req_mem[v]
            self._fail(v)
        for v in queued:
            self._cpu_work.pop(v, None)
            self._fail(v)
        if pod.cpu_event is not None:
            self.clock.cancel(pod.cpu_event)
            pod.cpu_event = None
        pod.cpu.clear()
        pod.sleeping = set()      # pending sleep events see the request is gone
        self._crash(s)
        self.clock.schedule(self.down_until[s], "up", s)

    def _fail(self, rid: int) -> None:
        self._conc -= 1
        self.total["failed"] += 1
        self._st.failed += 1
        if self.workload.clients > 0:
            self.clock.schedule(self.now + self.cluster.error_latency, "issue")

    def _start_sleep(self, s: int, rid: int) -> None:
        pod = self.pods[s]
        pod.sleeping.add(rid)
        self.clock.schedule(self.now + self.req_sleep[rid], "wake", (s, rid))

    def _complete(self, s: int, rid: int) -> None:
        self._conc -= 1
        self._mem_inflight -= self.req_mem[rid]
        self.total["completed"] += 1
        self._st.completed += 1
        lat = self.now - self.req_t0[rid]
        self._lat_buf.append(lat)
        self.total["latency_s"] += lat
        if self.workload.clients > 0:
            self.clock.schedule(self.now, "issue")
        self._admit(s)
        if self.activator and self.act_in_path:
            self._flush_activator()
        if self.state[s] == DRAINING:
            self._on_pod_drained_check()

    def advance(self, duration: float) -> IntervalStats:
        st = IntervalStats(duration=duration)
        self._st = st
        self.started = True
        self._lat_buf: list[float] = []
        end = self.now + duration
        c0 = self.total["cold_starts"]
        ints0 = (self._pod_s_int, self._ready_int, self._cpu_int, self._cpu_cap_int, self._mem_int, self._mem_cap_int)
        if self.workload.process is not None:
            for t in self.workload.process.arrivals(self.now, end):
                self.clock.schedule(float(t), "arrival")
        while self.clock.peek_time() < end:
            ev = self.clock.pop()
            self._integrate(ev.time)
            self.now = ev.time
            k = ev.kind
            if k in ("issue", "arrival"):
                self._dispatch(self._new_request())
            elif k == "cpu":
                s, rid = ev.payload
                self.pods[s].cpu_event = None
                self._ps_update(s)
                pod = self.pods[s]
                if rid in pod.cpu:
                    del pod.cpu[rid]
                    # others finishing at the same instant
                    for other in [o for o, rem in pod.cpu.items() if rem <= 1e-12]:
                        del pod.cpu[other]
                        if self.req_sleep[other] > 0:
                            self._start_sleep(s, other)
                        else:
                            self._complete(s, other)
                    self._ps_schedule(s)
                    if self.req_sleep[rid] > 0:
                        self._start_sleep(s, rid)
                    else:
                        self._complete(s, rid)
                else:
                    self._ps_schedule(s)
            elif k == "wake":
                s, rid = ev.payload
                pod = self.pods[s]
                if rid in pod.sleeping:
                    pod.sleeping.discard(rid)
                    self._complete(s, rid)
            elif k == "ready":
                s = ev.payload
                if self.state[s] == STARTING and abs(self.ready_at[s] - self.now) < 1e-9:
                    self.state[s] = READY
                    self._check_switch()
                    self._flush_activator()
            elif k == "up":
                s = ev.payload
                if self.state[s] != FREE and self.down_until[s] <= self.now + 1e-12:
                    self.pods[s].last = self.now
                    self._admit(s)
                    if self.state[s] == READY:
                        self._flush_activator()
                    self._on_pod_drained_check()
            elif k == "bucket":
                self._record_buckets()
                self._n_buckets += 1
                self.clock.schedule(self.now + self.kpa_cfg.bucket, "bucket")
                if self._n_buckets % int(round(self.kpa_cfg.tick / self.kpa_cfg.bucket)) == 0:
                    self._kpa_tick()
                    self._flush_activator()
        self._integrate(end)
        self.now = end
        if self._lat_buf:
            st.hist.add(np.array(self._lat_buf))
        st.cold_starts = self.total["cold_starts"] - c0
        d = [a - b for a, b in zip((self._pod_s_int, self._ready_int, self._cpu_int, self._cpu_cap_int,
                                     self._mem_int, self._mem_cap_int), ints0)]
        st.pod_seconds = d[0]
        st.ready_mean = d[1] / duration if duration > 0 else 0.0
        st.cpu_util = min(1.0, d[2] / d[3]) if d[3] > 0 else 0.0
        st.mem_util = min(1.0, d[4] / d[5]) if d[5] > 0 else 0.0
        self.total["pod_seconds"] += st.pod_seconds
        self.hist_total.merge(st.hist)
        return st

    def _flush_activator(self) -> None:
        """Send the activator's requests on, oldest first, while pods take them (those that
        waited past the request timeout fail)."""
        timeout = self.cluster.request_timeout
        while self.activator and self.ready_mask().any():
            rid = self.activator[0]
            if self.now - self.req_t0[rid] > timeout:
                self.activator.popleft()
                self._cpu_work.pop(rid, None)
                self._fail(rid)
                continue
            if not self._dispatch(rid, held=True):
                break
            self.activator.popleft()
