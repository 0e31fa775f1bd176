"""Running the OR-Tools CP-SAT exact references the same way in every environment."""
from __future__ import annotations


def run_cpsat(model, time_limit: float, workers: int, seed: int = 0, deterministic_time: float | None = None,
              **parameters):
    """Solve a ``cp_model.CpModel`` under a wall-clock ``time_limit`` (seconds) with ``workers``
    search threads and a fixed ``seed``; returns ``(solver, status, status_name)``.
    ``parameters``: further CP-SAT parameters by name (e.g. ``linearization_level=2``).

    The seed makes a single-worker search reproducible; with several workers, or when the time
    limit cuts the search, CP-SAT's answer can still vary with the machine's load, which is why
    every reference reports its status (OPTIMAL means proven). ``deterministic_time`` adds a limit
    in CP-SAT's deterministic work units (about seconds of one core, the same count on every
    machine): with one worker and a fixed seed the search, and so the answer, is then the same
    wherever it runs, as long as the wall-clock ``time_limit`` (a safety cap) is not reached first.
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
    for name, value in parameters.items():
        setattr(solver.parameters, name, value)
    status = solver.Solve(model)
    return solver, status, solver.StatusName(status)
