"""Running the OR-Tools CP-SAT exact references the same way in every environment."""
from __future__ import annotations


def run_cpsat(model, time_limit: float, workers: int, seed: int = 0, deterministic_time: float | None = None):
    """Solve a ``cp_model.CpModel`` under a wall-clock ``time_limit`` (seconds) with ``workers``
    search threads and a fixed ``seed``; returns ``(solver, status, status_name)``.

    The seed makes a single-worker search reproducible; with several workers, or when the time
    limit cuts the search, CP-SAT's answer can still vary with the machine's load, which is why
    every reference reports its status (OPTIMAL means proven).

    ``deterministic_time``: a limit in CP-SAT's deterministic time units (work counted by the
    solver, independent of the machine's speed and load) instead; with one worker the answer is
    then the same on every machine. ``time_limit`` stays a wall-clock safety net.
    """
    from ortools.sat.python import cp_model

    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = float(time_limit)
    solver.parameters.num_workers = int(workers)
    solver.parameters.random_seed = int(seed)
    if deterministic_time is not None:
        if not deterministic_time > 0:
            raise ValueError(f"run_cpsat: deterministic_time must be > 0, got {deterministic_time!r}")
        solver.parameters.max_deterministic_time = float(deterministic_time)
    status = solver.Solve(model)
    return solver, status, solver.StatusName(status)
