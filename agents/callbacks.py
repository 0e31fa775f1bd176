"""SB3 callbacks: episode metrics, evaluation against baselines, checkpoints.

TensorBoard tags written here:

* ``rollout_metrics/<metric>`` -- mean of ``info["metrics"]`` over the training episodes that
  ended since the last log dump;
* ``eval/<metric>/policy`` -- the trained policy on the fixed seeded evaluation episodes;
* ``eval/<metric>/<baseline>`` -- each baseline on the same episodes (evaluated once, logged as
  a constant at every evaluation so that the lines overlay the policy's curve in one chart);
* ``eval/gap_<metric>/policy`` -- relative gap of the policy to the reference baseline.

A "Custom Scalars" layout is written as well, so TensorBoard's CUSTOM SCALARS tab shows one chart
per metric with the policy's curve and every baseline's line together.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback


class _EveryFreqSteps:
    """Fires once each time the step count enters a new multiple of ``freq`` (never if ``freq`` is 0).

    Counted in absolute timesteps (not since the last firing), so a resumed run keeps the same
    schedule as an uninterrupted one. ``start`` at training start; ``due`` at every step.
    """

    def __init__(self, freq: int):
        self.freq = int(freq)
        self._bucket: int | None = None

    def start(self, num_timesteps: int) -> None:
        self._bucket = num_timesteps // self.freq if self.freq else None

    def due(self, num_timesteps: int) -> bool:
        if not self.freq or num_timesteps // self.freq == self._bucket:
            return False
        self._bucket = num_timesteps // self.freq
        return True


class EpisodeMetricsCallback(BaseCallback):
    """Averages ``info["metrics"]`` of finished training episodes into ``rollout_metrics/<metric>``."""

    def _on_step(self) -> bool:
        for info in self.locals.get("infos", ()):
            metrics = info.get("metrics") if isinstance(info, dict) else None
            if metrics:
                for k, v in metrics.items():
                    self.logger.record_mean(f"rollout_metrics/{k}", float(v))
        return True


class EvalBaselinesCallback(BaseCallback):
    """Every ``freq`` env steps, evaluate the policy on the seeded episodes and log it beside the baselines.

    ``baseline_results``: ``{baseline: {metric: [values]}}`` computed once (see
    :func:`rlsys_agents.training.baseline_results`).
    """

    def __init__(self, env_id: str, env_kwargs: dict | list, episodes: int, seed: int, freq: int,
                 baseline_results: dict, maskable: bool, deterministic: bool = True, reference: str | None = None,
                 gap_metrics: list | None = None, history_path: str | Path | None = None, verbose: int = 0,
                 on_eval=None):
        super().__init__(verbose)
        #: called as ``on_eval(num_timesteps, {metric: [value per episode]})`` after every evaluation
        self.on_eval = on_eval
        self.env_id, self.env_kwargs, self.episodes, self.seed = env_id, env_kwargs, episodes, seed
        self.freq, self.baseline_results, self.maskable = freq, baseline_results, maskable
        self.deterministic, self.reference, self.gap_metrics = deterministic, reference, list(gap_metrics or [])
        self.history_path = Path(history_path) if history_path else None
        self._envs: dict = {}
        self._schedule = _EveryFreqSteps(freq)
        self.last_results: dict | None = None
        #: steps already logged (TensorBoard and history): a step is logged once, also across a
        #: kill and resume (the history, truncated at the resumed checkpoint, says which)
        self.logged_steps: set[int] = set(read_history_steps(self.history_path)) if self.history_path else set()

    def _on_training_start(self) -> None:
        self.write_layout()
        self._schedule.start(self.num_timesteps)
        if self.num_timesteps == 0 and self.freq:
            self.evaluate_now()

    def write_layout(self) -> None:
        """TensorBoard "Custom Scalars" layout: one chart per metric overlaying policy and baselines."""
        from stable_baselines3.common.logger import TensorBoardOutputFormat

        metrics: list[str] = []
        for res in self.baseline_results.values():
            metrics += [m for m in res if m not in metrics]
        if not metrics:
            return
        charts = {m: ["Multiline", [rf"^eval/{m}/"]] for m in metrics}
        charts.update({f"gap_{m}": ["Multiline", [rf"^eval/gap_{m}/"]] for m in self.gap_metrics})
        for fmt in self.logger.output_formats:
            if isinstance(fmt, TensorBoardOutputFormat):
                fmt.writer.add_custom_scalars({"policy vs baselines (eval episodes)": charts})
                fmt.writer.flush()

    def _on_step(self) -> bool:
        if self._schedule.due(self.num_timesteps) and self.num_timesteps < getattr(self.model, "_total_timesteps", 0):
            # (at the last step the evaluation after training, of the final model, takes this point)
            self.evaluate_now()
        return True

    def evaluate_now(self) -> dict:
        from .evaluation import SB3Policy, evaluate, summarise

        start = time.perf_counter()
        policy = SB3Policy(self.model, self.maskable, self.deterministic)
        res = evaluate(self.env_id, policy, self.episodes, self.seed, self.env_kwargs, env_cache=self._envs)
        self.last_results = res
        if self.on_eval is not None:
            self.on_eval(int(self.num_timesteps), res)
        if int(self.num_timesteps) in self.logged_steps:
            return res          # (a resumed run's final evaluation at a step the killed run logged)
        self.logged_steps.add(int(self.num_timesteps))
        summary = summarise({"policy": res, **self.baseline_results}, self.reference, self.gap_metrics)
        for name, row in summary.items():
            for metric, value in row.items():
                if metric.startswith("gap_") and name == self.reference:
                    continue
                self.logger.record(f"eval/{metric}/{name}", value)
        self.logger.record("time/eval_seconds", time.perf_counter() - start)
        self.logger.dump(self.num_timesteps)
        if self.history_path is not None:
            with open(self.history_path, "a") as fh:
                fh.write(json.dumps({"timesteps": int(self.num_timesteps),
                                     "policy": {k: float(np.mean(v)) for k, v in res.items()}}) + "\n")
        return res

    def _on_training_end(self) -> None:
        self.close()

    def close(self) -> None:
        for env in self._envs.values():
            env.close()
        self._envs = {}


def final_timesteps(model, total_timesteps: int) -> int:
    """The step count at which ``model.learn`` to ``total_timesteps`` actually stops: on-policy
    algorithms collect whole rollouts of ``n_steps x n_envs`` steps, off-policy ones ``train_freq``
    steps of every env, so a run ends at the first such boundary at or past the target (60,000
    steps of 8 x 256-step rollouts end at 61,440)."""
    start = int(model.num_timesteps)
    remaining = int(total_timesteps) - start
    if remaining <= 0:
        return start
    n_envs = int(getattr(model, "n_envs", 1) or 1)
    if hasattr(model, "n_steps") and not hasattr(model, "replay_buffer"):
        chunk = int(model.n_steps) * n_envs
    else:
        freq = getattr(model, "train_freq", None)
        unit = getattr(getattr(freq, "unit", None), "value", "step")
        chunk = int(getattr(freq, "frequency", 1)) * n_envs if unit == "step" else n_envs
    return start + -(-remaining // chunk) * chunk


class ProgressBar(BaseCallback):
    """SB3's progress bar, with the real end of the run as its total (:func:`final_timesteps`)
    instead of the requested ``total_timesteps`` (which showed ``61,440/60,000``)."""

    def __init__(self, total_timesteps: int):
        super().__init__()
        self.total_timesteps = int(total_timesteps)

    def _on_training_start(self) -> None:
        from tqdm.rich import tqdm

        end = final_timesteps(self.model, self.total_timesteps)
        self.pbar = tqdm(total=end - self.model.num_timesteps)

    def _on_step(self) -> bool:
        self.pbar.update(self.training_env.num_envs)
        return True

    def _on_training_end(self) -> None:
        self.pbar.refresh()
        self.pbar.close()


#: model attributes left out of every saved model: the last observation of each training env (SB3
#: saves it by default; on M-size VM clusters that is ~0.65 MB per env). On resume SB3 resets the
#: environments when it is missing.
SAVE_EXCLUDE = ("_last_obs", "_last_original_obs", "_last_episode_starts", "rlsys_env")


def save_model(model, path: str | Path, meta: dict | None = None) -> None:
    """``model.save(path)`` without :data:`SAVE_EXCLUDE` (checkpoints stay small), written to a
    temporary file and renamed over ``path``: a kill leaves the old file or the new one, never a part.

    ``meta`` (default: the model's ``rlsys_env`` attribute, which ``train.py`` sets) is written
    into the zip as its environment record (:mod:`rlsys_agents.checkpoint_env`)."""
    from .checkpoint_env import add_env_metadata
    from .files import atomic_path

    meta = meta if meta is not None else getattr(model, "rlsys_env", None)
    with atomic_path(path) as tmp:
        model.save(tmp, exclude=list(SAVE_EXCLUDE))
        if meta is not None:
            add_env_metadata(tmp, meta)


class CheckpointCallback(BaseCallback):
    """Save ``model_<steps>_steps.zip`` (and the replay buffer of off-policy algorithms) every ``freq`` steps.

    Both are written atomically, the replay buffer first: a checkpoint whose model exists has its buffer.
    """

    def __init__(self, folder: str | Path, freq: int, save_replay_buffer: bool = False, verbose: int = 0):
        super().__init__(verbose)
        self.folder, self.freq, self.save_replay_buffer = Path(folder), int(freq), save_replay_buffer
        self._schedule = _EveryFreqSteps(freq)

    def _on_training_start(self) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        self._schedule.start(self.num_timesteps)

    def _on_step(self) -> bool:
        if self._schedule.due(self.num_timesteps) and self.num_timesteps < getattr(self.model, "_total_timesteps", 0):
            self.save()         # (the last step's checkpoint is saved after training, of the final model)
        return True

    def save(self) -> Path:
        from .files import atomic_path

        path = self.folder / f"model_{self.num_timesteps}_steps.zip"
        if self.save_replay_buffer and getattr(self.model, "replay_buffer", None) is not None:
            with atomic_path(self.folder / f"replay_buffer_{self.num_timesteps}_steps.pkl") as tmp:
                self.model.save_replay_buffer(tmp)
        save_model(self.model, path)
        return path


def checkpoints(folder: str | Path) -> list[tuple[Path, int]]:
    """The checkpoints ``model_<steps>_steps.zip`` in ``folder``, most steps first."""
    out = []
    for p in Path(folder).glob("model_*_steps.zip"):
        try:
            steps = int(p.stem.split("_")[1])
        except (IndexError, ValueError):
            continue
        out.append((p, steps))
    return sorted(out, key=lambda item: -item[1])


def latest_checkpoint(folder: str | Path) -> tuple[Path, int] | None:
    """The checkpoint with the most steps in ``folder`` (``model_<steps>_steps.zip``)."""
    found = checkpoints(folder)
    return found[0] if found else None


def unreadable_reason(path: str | Path) -> str | None:
    """Why the SB3 zip ``path`` cannot be read (not a zip, truncated, a member failing its CRC, no
    ``data`` entry), or None when it reads whole."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as zf:
            bad = zf.testzip()
            if bad is not None:
                return f"member {bad} is corrupt"
            if "data" not in zf.namelist():
                return "no 'data' entry (not a stable-baselines3 model)"
    except (zipfile.BadZipFile, OSError, EOFError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None


def read_history_steps(path: str | Path) -> list[int]:
    """Steps of the complete records of an ``eval_history.jsonl`` (a partly written last line is skipped)."""
    path = Path(path)
    if not path.is_file():
        return []
    steps = []
    for line in path.read_text(errors="replace").splitlines():
        try:
            steps.append(int(json.loads(line)["timesteps"]))
        except (ValueError, KeyError, TypeError):
            continue
    return steps


def truncate_history(path: str | Path, last_step: int | None) -> int:
    """Rewrite ``eval_history.jsonl`` (atomically) with only its complete records up to ``last_step``
    (None: none), dropping what a killed run logged after the checkpoint that is resumed. Returns
    the number of records dropped."""
    from .files import write_atomic

    path = Path(path)
    if not path.is_file():
        return 0
    keep, dropped = [], 0
    for line in path.read_text(errors="replace").splitlines():
        try:
            step = int(json.loads(line)["timesteps"])
        except (ValueError, KeyError, TypeError):
            dropped += bool(line.strip())
            continue
        if last_step is not None and step <= last_step:
            keep.append(line + "\n")
        else:
            dropped += 1
    write_atomic(path, "".join(keep))
    return dropped
