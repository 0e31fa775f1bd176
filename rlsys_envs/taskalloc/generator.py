"""Task-allocation instances and the seeded scenario generators (after Gong et al. 2024).

An instance (:class:`TaskAllocInstance`) holds a pool of entities (cost, integer capability
vector, position, cost per unit of distance) and a queue of tasks (value, integer requirement
vector, position, optional home entity), plus the dynamics parameters of the scenario (active
slots, refill period, value decay, travel, step cap).

Scenarios (``SCENARIOS``), mirroring the four environments of the paper's code:

==========  =========================================================================================
name        what it draws
==========  =========================================================================================
rbf         grid foraging: 60 entities [cost U(0.1, 0.8), 3 capabilities 1..18] starting at the centre
            of a 7x7 grid; 30 tasks [value U(2, 15), 3 requirements 10..150, a random cell]; 5 slots
            refilled every 5 steps; a task left open for 10 steps loses 1% of its value per step;
            entities walk one cell per step (Manhattan); at most 100 steps
material    logistics: 100 trucks [cost 1..14, 3 capacities summing to 5 x cost, a random point of a
            100 x 100 map]; 30 tasks [value U(20, 150), 3 requirements 5..40, a random point]; cost of
            a truck on a task = its cost + 0.05 x distance; trucks drive 10 units per step in 8
            directions (Chebyshev); 5 slots refilled every 5 steps; at most 150 steps
electric    power dispatch: 20 nodes [capacity 10..50 (one dimension), conveyance coefficient
            U(0.02, 0.05), a random point]; 30 demands at random nodes [requirement 10..80, value
            U(10, 60)]; cost = coefficient x Euclidean distance; a node with an active demand cannot
            supply; no travel; 5 slots refilled every step; at most 100 steps
almighty    the one-step trap: 24 specialists (3 per skill, 8 skills, cost 1) and one entity with all
            8 skills (cost 1); 8 one-skill tasks worth 3 and one all-skill task worth 20; one step.
            Optimum 35, greedy trap 28.
==========  =========================================================================================

Counts may be ranges (``n_entities=(40, 60)``): each episode then draws its own count, and the
environment pads its tables to the maximum.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

METRICS = ("none", "manhattan", "chebyshev", "euclidean")


@dataclass
class TaskAllocInstance:
    """Entities, the task queue and the scenario's dynamics parameters (arrays are numpy)."""

    name: str
    entity_cost: np.ndarray      # [E] float, fixed cost of using the entity on a task
    entity_cap: np.ndarray       # [E, d] int64 capabilities
    entity_pos: np.ndarray       # [E, 2] float start positions
    dist_coef: np.ndarray        # [E] float, cost per unit of Euclidean distance to the task
    task_value: np.ndarray       # [Q] float
    task_req: np.ndarray         # [Q, d] int64 requirements
    task_pos: np.ndarray         # [Q, 2] float
    task_home: np.ndarray        # [Q] int64: entity that cannot serve while the task is active (-1: none)
    n_slots: int = 5             # active task slots
    refill_every: int = 5        # empty slots are refilled when t % refill_every == 0
    max_steps: int = 100         # step cap
    decay_after: int = 0         # a task open this many steps loses value (0: no decay) ...
    decay: float = 1.0           # ... by this factor per further step
    travel: str = "none"         # distance metric of travel time: none / manhattan / chebyshev / euclidean
    speed: float = 1.0           # distance per step
    work_time: int = 1           # steps of work once every entity has arrived
    map_size: float = 1.0        # side of the square map (observation scale, render)
    dims: tuple = ()             # names of the capability dimensions
    optimum: float | None = None  # the known optimal total net value (Almighty), else None
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        self.entity_cost = np.asarray(self.entity_cost, np.float64)
        self.entity_cap = np.asarray(self.entity_cap, np.int64)
        E = self.entity_cost.shape[0]
        if self.entity_cost.ndim != 1 or E < 1:
            raise ValueError(f"instance {self.name!r}: entity_cost must be a non-empty vector")
        if self.entity_cap.ndim != 2 or self.entity_cap.shape[0] != E:
            raise ValueError(f"instance {self.name!r}: entity_cap must be [{E}, d], got {self.entity_cap.shape}")
        d = self.entity_cap.shape[1]
        self.entity_pos = np.asarray(self.entity_pos, np.float64).reshape(E, 2)
        self.dist_coef = np.asarray(self.dist_coef, np.float64).reshape(E)
        self.task_value = np.asarray(self.task_value, np.float64)
        Q = self.task_value.shape[0]
        self.task_req = np.asarray(self.task_req, np.int64)
        if self.task_value.ndim != 1 or Q < 1:
            raise ValueError(f"instance {self.name!r}: task_value must be a non-empty vector")
        if self.task_req.shape != (Q, d):
            raise ValueError(f"instance {self.name!r}: task_req must be [{Q}, {d}], got {self.task_req.shape}")
        self.task_pos = np.asarray(self.task_pos, np.float64).reshape(Q, 2)
        self.task_home = np.asarray(self.task_home, np.int64).reshape(Q)
        for name, arr in (("entity_cost", self.entity_cost), ("dist_coef", self.dist_coef),
                          ("entity_cap", self.entity_cap), ("task_req", self.task_req)):
            if np.any(arr < 0) or not np.all(np.isfinite(arr)):
                raise ValueError(f"instance {self.name!r}: {name} must be finite and non-negative")
        if not np.all(np.isfinite(self.task_value)):
            raise ValueError(f"instance {self.name!r}: task_value must be finite")
        if np.any(self.task_home < -1) or np.any(self.task_home >= E):
            raise ValueError(f"instance {self.name!r}: task_home must be -1 or an entity index < {E}")
        if self.travel not in METRICS:
            raise ValueError(f"instance {self.name!r}: travel must be one of {METRICS}, got {self.travel!r}")
        for name, lo in (("n_slots", 1), ("refill_every", 1), ("max_steps", 1), ("decay_after", 0), ("work_time", 1)):
            if int(getattr(self, name)) < lo:
                raise ValueError(f"instance {self.name!r}: {name} must be >= {lo}, got {getattr(self, name)}")
        if not 0.0 < self.decay <= 1.0:
            raise ValueError(f"instance {self.name!r}: decay must be in (0, 1], got {self.decay}")
        if self.speed <= 0 or self.map_size <= 0:
            raise ValueError(f"instance {self.name!r}: speed and map_size must be positive")
        if not self.dims:
            self.dims = tuple(f"skill_{i}" for i in range(d))
        if len(self.dims) != d:
            raise ValueError(f"instance {self.name!r}: {len(self.dims)} dimension names for {d} dimensions")

    @property
    def n_entities(self) -> int:
        return int(self.entity_cost.shape[0])

    @property
    def n_tasks(self) -> int:
        return int(self.task_value.shape[0])

    @property
    def n_dims(self) -> int:
        return int(self.entity_cap.shape[1])


def _count(rng, value) -> int:
    """An int, or a draw from an inclusive (lo, hi) range."""
    if isinstance(value, tuple):
        return int(rng.integers(value[0], value[1] + 1))
    return int(value)


#: default sizes of each scenario: entities, tasks in the queue, active slots, capability dimensions
SCENARIOS = {
    "rbf": {"n_entities": 60, "n_tasks": 30, "n_slots": 5, "n_dims": 3},
    "material": {"n_entities": 100, "n_tasks": 30, "n_slots": 5, "n_dims": 3},
    "electric": {"n_entities": 20, "n_tasks": 30, "n_slots": 5, "n_dims": 1},
    "almighty": {"n_entities": 25, "n_tasks": 9, "n_slots": 9, "n_dims": 8},
}


class ScenarioGenerator:
    """Seeded generator of one scenario: ``generator(rng) -> TaskAllocInstance``.

    ``n_entities`` / ``n_tasks``: an int or an inclusive ``(lo, hi)`` range drawn per episode;
    ``n_slots``: active slots. ``almighty`` is one fixed instance (its counts cannot change).
    """

    def __init__(self, scenario: str, n_entities=None, n_tasks=None, n_slots: int | None = None):
        if scenario not in SCENARIOS:
            raise ValueError(f"scenario must be one of {', '.join(SCENARIOS)}; got {scenario!r}")
        sizes = SCENARIOS[scenario]
        self.scenario = scenario
        self.n_entities = sizes["n_entities"] if n_entities is None else n_entities
        self.n_tasks = sizes["n_tasks"] if n_tasks is None else n_tasks
        self.n_slots = sizes["n_slots"] if n_slots is None else n_slots

    def __repr__(self) -> str:
        return (f"ScenarioGenerator({self.scenario!r}, n_entities={self.n_entities!r}, n_tasks={self.n_tasks!r}, "
                f"n_slots={self.n_slots})")

    def __call__(self, rng: np.random.Generator) -> TaskAllocInstance:
        return getattr(self, f"_{self.scenario}")(rng, _count(rng, self.n_entities), _count(rng, self.n_tasks))

    def _rbf(self, rng, E, Q):
        centre = np.full((E, 2), 3.0)
        return TaskAllocInstance(
            name="rbf", entity_cost=rng.uniform(0.1, 0.8, E), entity_cap=rng.integers(1, 19, (E, 3)),
            entity_pos=centre, dist_coef=np.zeros(E), task_value=rng.uniform(2.0, 15.0, Q),
            task_req=rng.integers(10, 151, (Q, 3)), task_pos=rng.integers(0, 7, (Q, 2)).astype(float),
            task_home=np.full(Q, -1), n_slots=self.n_slots, refill_every=5, max_steps=100, decay_after=10,
            decay=0.99, travel="manhattan", speed=1.0, map_size=6.0, dims=("skill_a", "skill_b", "skill_c"))

    def _material(self, rng, E, Q):
        cost = rng.integers(1, 15, E)
        # three capacities summing to 5 x cost: a random composition of the total
        cap = np.stack([rng.multinomial(5 * c, rng.dirichlet(np.ones(3))) for c in cost])
        return TaskAllocInstance(
            name="material", entity_cost=cost.astype(float), entity_cap=cap, entity_pos=rng.uniform(0, 100, (E, 2)),
            dist_coef=np.full(E, 0.05), task_value=rng.uniform(20.0, 150.0, Q), task_req=rng.integers(5, 41, (Q, 3)),
            task_pos=rng.uniform(0, 100, (Q, 2)), task_home=np.full(Q, -1), n_slots=self.n_slots, refill_every=5,
            max_steps=150, travel="chebyshev", speed=10.0, map_size=100.0, dims=("type_a", "type_b", "type_c"))

    def _electric(self, rng, E, Q):
        pos = rng.uniform(0, 100, (E, 2))
        home = rng.integers(0, E, Q)
        return TaskAllocInstance(
            name="electric", entity_cost=np.zeros(E), entity_cap=rng.integers(10, 51, (E, 1)), entity_pos=pos,
            dist_coef=rng.uniform(0.02, 0.05, E), task_value=rng.uniform(10.0, 60.0, Q),
            task_req=rng.integers(10, 81, (Q, 1)), task_pos=pos[home], task_home=home, n_slots=self.n_slots,
            refill_every=1, max_steps=100, travel="none", map_size=100.0, dims=("power",))

    def _almighty(self, rng, E, Q):
        if (E, Q) != (25, 9):
            raise ValueError(f"the almighty scenario is one fixed instance of 25 entities and 9 tasks, "
                             f"got n_entities={E}, n_tasks={Q}")
        return almighty_instance()


def almighty_instance() -> TaskAllocInstance:
    """24 specialists (3 per skill) + 1 entity with all 8 skills, all cost 1; 8 one-skill tasks
    worth 3 + one all-skill task worth 20; one step. Optimum 35 (specialists on the small tasks,
    the all-skill entity on the big one); spending the all-skill entity on a small task gives 28."""
    cap = np.zeros((25, 8), np.int64)
    for s in range(8):
        cap[3 * s: 3 * s + 3, s] = 1
    cap[24] = 1
    req = np.vstack([np.eye(8, dtype=np.int64), np.ones((1, 8), np.int64)])
    return TaskAllocInstance(
        name="almighty", entity_cost=np.ones(25), entity_cap=cap, entity_pos=np.zeros((25, 2)),
        dist_coef=np.zeros(25), task_value=np.array([3.0] * 8 + [20.0]), task_req=req,
        task_pos=np.zeros((9, 2)), task_home=np.full(9, -1), n_slots=9, refill_every=1, max_steps=1,
        travel="none", map_size=1.0, optimum=35.0)
