"""Shipped experiment configs and checkpoints, found by name wherever the package is installed.

* Configs: the repository's ``configs/`` folder. The package reaches it through ``agents/configs``
  (a symbolic link to ``../configs``), and the wheel ships its files as package data
  ``agents/configs/*.yaml`` and ``agents/configs/sweeps/*.yaml``: one set of files, used by a source
  checkout, an editable install and a wheel alike. A config's name is its file name without
  ``.yaml`` (``default``, ``jobshop_gnn_ppo``); a sweep's is ``smoke`` or ``sweeps/smoke``.
* Checkpoints: ``agents/checkpoints/*.zip`` with their notes (``*.md``); a checkpoint's name is its
  file name without ``.zip`` (``jobshop_gnn_ppo``).

A value that is an existing file is always taken as a path, so a file of your own beside the
working directory wins over a shipped one of the same name. Only ``yaml`` is imported here (for
:func:`configs_by_env`), so ``rlsys list`` stays fast.
"""
from __future__ import annotations

from pathlib import Path

_HERE = Path(__file__).resolve().parent


def configs_dir() -> Path:
    """The folder of the shipped configs (``agents/configs`` in a wheel, ``configs/`` in a checkout)."""
    linked = _HERE / "configs"
    checkout = _HERE.parent / "configs"
    if not linked.is_dir() and (_HERE.parent / "pyproject.toml").is_file() and checkout.is_dir():
        return checkout        # a checkout without symbolic links (git core.symlinks=false)
    return linked


def checkpoints_dir() -> Path:
    """The folder of the shipped checkpoints and their notes."""
    return _HERE / "checkpoints"


def config_names() -> list[str]:
    """Names of the shipped experiment configs (``--config NAME``)."""
    return sorted(p.stem for p in configs_dir().glob("*.yaml"))


def sweep_names() -> list[str]:
    """Names of the shipped sweep files (``--sweep NAME``)."""
    return sorted(p.stem for p in (configs_dir() / "sweeps").glob("*.yaml"))


def checkpoint_names() -> list[str]:
    """Names of the shipped checkpoints (``--policy NAME``)."""
    return sorted(p.stem for p in checkpoints_dir().glob("*.zip"))


def _shipped(value: str | Path, folder: Path, suffix: str, prefixes: tuple[str, ...]) -> Path | None:
    path = Path(value)
    if path.is_absolute():
        return None
    name = path.as_posix()
    for prefix in prefixes:                 # the repository paths the docs use, e.g. configs/default.yaml
        if name.startswith(prefix):
            name = name[len(prefix):]
            break
    if name.endswith(suffix):
        name = name[:-len(suffix)]
    if not name or "/" in name or name.startswith("."):
        return None
    candidate = folder / (name + suffix)
    return candidate if candidate.is_file() else None


def resolve_config(value: str | Path) -> Path:
    """``value`` if it is a file, else the shipped config it names (``default``, ``default.yaml`` or
    ``configs/default.yaml``); a :class:`rlsys_agents.config.ConfigError` naming the shipped ones if neither."""
    path = Path(value)
    if path.is_file():
        return path
    found = _shipped(value, configs_dir(), ".yaml", ("agents/configs/", "configs/"))
    if found is None:
        from .config import ConfigError

        raise ConfigError(f"config file {str(value)!r} not found, and no shipped config has that name "
                          f"(shipped configs: {', '.join(config_names())})")
    return found


def resolve_sweep(value: str | Path) -> Path:
    """As :func:`resolve_config`, for sweep files (``smoke``, ``sweeps/smoke``, ``configs/sweeps/smoke.yaml``)."""
    path = Path(value)
    if path.is_file():
        return path
    return _shipped(value, configs_dir() / "sweeps", ".yaml",
                    ("agents/configs/sweeps/", "configs/sweeps/", "sweeps/")) or path


def resolve_checkpoint(value: str | Path) -> Path:
    """``value`` if it is a file (or ``value + ".zip"`` is), else the shipped checkpoint it names
    (``jobshop_gnn_ppo``, ``jobshop_gnn_ppo.zip`` or ``agents/checkpoints/jobshop_gnn_ppo.zip``),
    else ``Path(value)`` unchanged (the caller reports it missing)."""
    path = Path(value)
    if path.is_file():
        return path
    if path.suffix != ".zip" and Path(f"{value}.zip").is_file():
        return Path(f"{value}.zip")
    return _shipped(value, checkpoints_dir(), ".zip", ("agents/checkpoints/",)) or path


def is_checkpoint(value: str | Path) -> bool:
    """Whether ``value`` names a checkpoint file or a shipped checkpoint."""
    path = resolve_checkpoint(value)
    return path.is_file() and (path.suffix == ".zip" or Path(value).is_file())


def configs_by_env() -> dict[str, list[str]]:
    """``{env ID: [names of the shipped configs that train on it]}``."""
    import yaml

    from .config import EnvConfig

    out: dict[str, list[str]] = {}
    for path in sorted(configs_dir().glob("*.yaml")):
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError:
            continue
        env = data.get("env") if isinstance(data, dict) else None
        env_id = (env or {}).get("id", EnvConfig.id) if isinstance(env or {}, dict) else None
        if isinstance(env_id, str):
            out.setdefault(env_id, []).append(path.stem)
    return out
