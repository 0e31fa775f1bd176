"""Exhaustive search over an environment's legal actions, the reference that exact solvers and
search policies are tested against on tiny instances."""
import numpy as np


def best_return(env) -> float:
    """The best return over every legal action sequence from the env's current state, found with
    its snapshots (``get_state`` / ``set_state``); the env is left in the state it was in."""
    best = -np.inf

    def search(total):
        nonlocal best
        state = env.get_state()
        for a in np.flatnonzero(env.action_masks()):
            env.set_state(state)
            _, r, term, _, _ = env.step(int(a))
            if term:
                best = max(best, total + r)
            else:
                search(total + r)
        env.set_state(state)

    search(0.0)
    return best
