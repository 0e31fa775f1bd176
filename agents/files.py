"""Atomic file writes for the training side; the implementation lives in :mod:`rlsys_envs.core.files`
(environments write files too: the storage trace generator), imported here under the name the
training code and its users have always used."""
from rlsys_envs.core.files import atomic_path, remove_stale_temporaries, write_atomic

__all__ = ["atomic_path", "remove_stale_temporaries", "write_atomic"]
