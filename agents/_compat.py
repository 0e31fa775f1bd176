"""An old import name of this package, for what was saved under it (pickled checkpoints).

SB3 checkpoints name their policy and extractor classes by import path
(``<package>.policies.PointerPolicy``), so a checkpoint saved while the package had another import
name refers to modules of that name. :func:`alias` makes ``<old>`` and ``<old>.<module>`` import
this package's own modules (the same module objects, never second copies) as long as no other
package of the old name is importable: a different package that really has that name (a PyPI
package, say) keeps it, and the aliases are not used.

``agents/__init__.py`` calls it when the package is imported under a name other than ``agents``.
Only ``importlib`` is imported here, so ``import rlsys_agents`` stays light.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
from pathlib import Path


class AliasFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Meta-path finder and loader of ``old[.sub]`` -> the already importable ``new[.sub]``."""

    def __init__(self, old: str, new: str, folder: str | Path):
        self.old, self.new, self.folder = old, new, Path(folder).resolve()
        self._specs: dict = {}

    def _old_name_is_ours(self) -> bool:
        """The old top-level name is free on ``sys.path``, or it is this very folder (a checkout
        where the folder is importable under both names)."""
        spec = importlib.machinery.PathFinder.find_spec(self.old)
        if spec is None:
            return True
        places = list(spec.submodule_search_locations or []) or [spec.origin]
        return any(p and Path(p).resolve() in (self.folder, self.folder / "__init__.py") for p in places)

    def find_spec(self, fullname, path=None, target=None):
        if fullname != self.old and not fullname.startswith(self.old + "."):
            return None
        if not self._old_name_is_ours():
            return None
        return importlib.util.spec_from_loader(fullname, self, is_package=fullname == self.old)

    def create_module(self, spec):
        module = importlib.import_module(self.new + spec.name[len(self.old):])
        self._specs[spec.name] = module.__spec__
        return module

    def exec_module(self, module):
        # the import system has set __spec__ to the alias's; the module keeps its own
        module.__spec__ = self._specs.pop(module.__spec__.name)


def alias(old: str, new: str, folder: str | Path) -> AliasFinder | None:
    """Import ``old[.sub]`` as the package ``new`` (whose folder is ``folder``) from now on, unless
    another package named ``old`` is importable. Returns the finder (None if ``old == new``)."""
    if old == new:
        return None
    for finder in sys.meta_path:
        if isinstance(finder, AliasFinder) and (finder.old, finder.new) == (old, new):
            return finder
    finder = AliasFinder(old, new, folder)
    sys.meta_path.insert(0, finder)
    return finder
