"""Running the OR-Tools CP-SAT exact references the same way in every environment."""
from __future__ import annotations


def run_cpsat(model, time_limit: float, workers: int, seed: int = 0, **parameters):
    """Solve a ``cp_model.CpModel`` under a wall-clock ``time_limit`` (seconds) with ``workers``
    search threads and a fixed ``seed``; returns ``(solver, status, status_name)``.
    ``parameters``: further CP-SAT parameters by name (e.g. ``linearization_level=2``).

    The seed makes a single-worker search reproducible; with several workers, or when the time
    limit cuts the search, CP-SAT's answer can still vary with the machine's load, which is why
    every reference reports its status (OPTIMAL means proven).
    """
    from ortools.sat.python import cp_model

    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = float(time_limit)
    solver.parameters.num_workers = int(workers)
    solver.parameters.random_seed = int(seed)
    for name, value in parameters.items():
        setattr(solver.parameters, name, value)
    status = solver.Solve(model)
    return solver, status, solver.StatusName(status)
