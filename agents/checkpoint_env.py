"""The environment a checkpoint was trained on, saved inside its zip.

Every model that ``train.py`` saves carries an entry ``rlsys_env.json`` beside SB3's own
entries (SB3's loader reads only ``data`` and the ``.pth`` files, so the zip loads as before)::

    {"env_id": "rlsys/VMRescheduling-v0",
     "env_kwargs": {...},            # the training environment's constructor kwargs
     "eval_env_kwargs": {...},       # the run's evaluation kwargs (a dict, or a list: one per episode)
     "observation_layout": {"x": {"shape": [...], "dtype": "float32"}, ...},
     "action_layout": {"type": "Discrete", "n": 26},
     "algo": "maskable_ppo", "policy": "gnn", "experiment": "vm_gnn_bc"}

:func:`rlsys_agents.evaluation.load_policy` and ``rlsys evaluate`` use it: without env kwargs a
checkpoint runs on the environment it was trained on, and a target environment whose spaces do
not fit is refused naming what differs. ``python -m rlsys_agents.checkpoint_env ZIP`` prints the entry;
``python -m rlsys_agents.checkpoint_env ZIP --env-id ID --env-kwargs JSON`` writes it into a zip saved
without one (it checks that the spaces of that environment fit the saved model first).
"""
from __future__ import annotations

import argparse
import json
import sys
import zipfile
from pathlib import Path

ENTRY = "rlsys_env.json"


def space_layout(space) -> dict:
    """A JSON description of a Gymnasium space: type, and shape and dtype (Box), n (Discrete), ..."""
    from gymnasium import spaces

    if isinstance(space, spaces.Dict):
        return {"type": "Dict", "spaces": {k: space_layout(s) for k, s in space.spaces.items()}}
    # the Gymnasium base type: a subclass (e.g. a Discrete whose sample() honours a mask) fits its base
    kind = next((c.__name__ for c in (spaces.Discrete, spaces.MultiDiscrete, spaces.MultiBinary, spaces.Box)
                 if isinstance(space, c)), type(space).__name__)
    out: dict = {"type": kind}
    if isinstance(space, spaces.Discrete):
        out["n"] = int(space.n)
    elif isinstance(space, spaces.MultiDiscrete):
        out["nvec"] = [int(v) for v in space.nvec.reshape(-1)]
    if getattr(space, "shape", None) is not None:
        out["shape"] = [int(d) for d in space.shape]
    if getattr(space, "dtype", None) is not None:
        out["dtype"] = str(space.dtype)
    return out


def env_metadata(env_id: str, env_kwargs: dict, observation_space, action_space, eval_env_kwargs=None,
                 **extra) -> dict:
    out = {"env_id": env_id, "env_kwargs": _jsonable(dict(env_kwargs or {}))}
    if eval_env_kwargs is not None and eval_env_kwargs != env_kwargs:
        out["eval_env_kwargs"] = _jsonable(eval_env_kwargs)
    out["observation_layout"] = space_layout(observation_space)
    out["action_layout"] = space_layout(action_space)
    out.update({k: v for k, v in extra.items() if v is not None})
    return out


def _jsonable(value):
    return json.loads(json.dumps(value, default=str))


def read_env_metadata(path: str | Path) -> dict | None:
    """The ``rlsys_env.json`` entry of a checkpoint zip, or None if it has none."""
    try:
        with zipfile.ZipFile(path) as zf:
            if ENTRY not in zf.namelist():
                return None
            return json.loads(zf.read(ENTRY).decode())
    except (zipfile.BadZipFile, OSError, ValueError):
        return None


def add_env_metadata(zip_path: str | Path, meta: dict) -> None:
    """Write ``meta`` as the ``rlsys_env.json`` entry of ``zip_path`` in place (no temporary file:
    call it on a file that is not the final one, e.g. inside :func:`rlsys_agents.files.atomic_path`)."""
    zip_path = Path(zip_path)
    with zipfile.ZipFile(zip_path) as zf:
        has = ENTRY in zf.namelist()
    if not has:
        with zipfile.ZipFile(zip_path, "a", compression=zipfile.ZIP_DEFLATED) as zf:
            zf.writestr(ENTRY, json.dumps(meta, indent=1))
        return
    import io

    buf = io.BytesIO()
    with zipfile.ZipFile(zip_path) as src, zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            if info.filename != ENTRY:
                dst.writestr(info, src.read(info.filename))
        dst.writestr(ENTRY, json.dumps(meta, indent=1))
    zip_path.write_bytes(buf.getvalue())


def write_env_metadata(zip_path: str | Path, meta: dict) -> None:
    """Set the ``rlsys_env.json`` entry of an existing checkpoint, atomically."""
    from .files import atomic_path

    zip_path = Path(zip_path)
    with atomic_path(zip_path) as tmp:
        tmp.write_bytes(zip_path.read_bytes())
        add_env_metadata(tmp, meta)


def _describe(layout: dict) -> str:
    if layout.get("type") == "Discrete":
        return f"Discrete({layout['n']})"
    if layout.get("type") == "MultiDiscrete":
        return f"MultiDiscrete({layout['nvec']})"
    return f"{layout.get('type')}(shape={tuple(layout.get('shape', ()))}, {layout.get('dtype')})"


def space_mismatches(expected: dict, got: dict, where: str = "observation", size_agnostic: bool = False) -> list[str]:
    """What differs between two :func:`space_layout` descriptions (empty: they fit).

    ``size_agnostic`` (a pointer policy, which runs on any padding): only the keys, types, dtypes
    and numbers of dimensions must agree, not the sizes."""
    if expected.get("type") == "Dict" or got.get("type") == "Dict":
        if expected.get("type") != got.get("type"):
            return [f"{where}: {_describe(expected)} expected, the env gives {_describe(got)}"]
        a, b = expected["spaces"], got["spaces"]
        out = []
        if set(a) != set(b):
            missing, extra = sorted(set(a) - set(b)), sorted(set(b) - set(a))
            out.append(f"{where} keys differ" + (f"; missing in the env: {', '.join(missing)}" if missing else "")
                       + (f"; not known to the checkpoint: {', '.join(extra)}" if extra else ""))
        for k in sorted(set(a) & set(b)):
            out += space_mismatches(a[k], b[k], f"{where} {k!r}", size_agnostic)
        return out
    if size_agnostic:
        same = (expected.get("type") == got.get("type") and expected.get("dtype") == got.get("dtype")
                and len(expected.get("shape", ())) == len(got.get("shape", ())))
    else:
        same = all(expected.get(k) == got.get(k) for k in ("type", "n", "nvec", "shape"))
    return [] if same else [f"{where}: {_describe(expected)} expected, the env gives {_describe(got)}"]


def check_env_fits(name: str, model, env, meta: dict | None, size_agnostic: bool = False) -> None:
    """Refuse (``ValueError``) a target env whose observation or action space does not fit the
    checkpoint ``name``; the message names what differs and the env the checkpoint was trained on."""
    if size_agnostic and meta is not None:
        obs_expected, act_expected = meta["observation_layout"], meta["action_layout"]
    else:
        obs_expected, act_expected = space_layout(model.observation_space), space_layout(model.action_space)
    problems = (space_mismatches(obs_expected, space_layout(env.observation_space), "observation", size_agnostic)
                + space_mismatches(act_expected, space_layout(env.action_space), "action", size_agnostic))
    if not problems:
        return
    trained = (f"it was trained on {meta['env_id']} with env kwargs {json.dumps(meta['env_kwargs'])}"
               if meta else "it carries no environment record (saved before rlsys_env.json)")
    raise ValueError(f"checkpoint {name!r} does not fit the target environment: " + "; ".join(problems[:6])
                     + (f" (and {len(problems) - 6} more)" if len(problems) > 6 else "")
                     + f". {trained}; evaluate it without env kwargs to use those, or with kwargs that give "
                       f"the same spaces (`rlsys evaluate --env-kwargs` lays its kwargs over those recorded)")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m rlsys_agents.checkpoint_env",
                                description="show, or write, the environment record of a checkpoint zip")
    p.add_argument("zip")
    p.add_argument("--env-id", default=None, help="write the record: the environment ID it was trained on")
    p.add_argument("--env-kwargs", default="{}", help="JSON object: the training env kwargs")
    p.add_argument("--eval-env-kwargs", default=None, help="JSON object or list: the evaluation env kwargs")
    p.add_argument("--extra", default="{}", help="JSON object of further fields (algo, experiment, ...)")
    args = p.parse_args(argv)
    if args.env_id is None:
        meta = read_env_metadata(args.zip)
        if meta is None:
            raise SystemExit(f"{args.zip}: no {ENTRY} entry")
        print(json.dumps(meta, indent=1))
        return 0
    from .evaluation import load_sb3, make_env

    kwargs = json.loads(args.env_kwargs)
    env = make_env(args.env_id, kwargs)
    try:
        model, algo = load_sb3(args.zip, env=env)
        size_agnostic = getattr(type(model.policy), "size_agnostic", False)
        check_env_fits(args.zip, model, env, None, size_agnostic)
        ev = json.loads(args.eval_env_kwargs) if args.eval_env_kwargs else None
        meta = env_metadata(args.env_id, kwargs, env.observation_space, env.action_space, ev,
                            **{"algo": algo, **json.loads(args.extra)})
    finally:
        env.close()
    write_env_metadata(args.zip, meta)
    print(f"{args.zip}: wrote {ENTRY} ({args.env_id}, {len(kwargs)} env kwargs)")
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
