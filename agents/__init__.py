"""Learning side of rlsys: algorithms, feature extractors, callbacks, evaluation, configs.

This package is import-light on purpose: ``import rlsys_agents`` loads neither torch nor
stable-baselines3. Import the submodules you need:

* :mod:`rlsys_agents.config`      -- experiment config dataclasses, YAML loading, ``key=value`` overrides
* :mod:`rlsys_agents.algorithms`  -- algorithm registry (``ppo``, ``maskable_ppo``, ``sac``, ``dqn``,
  ``qrdqn``, ``gnn_ppo``) and policy/extractor presets (``mlp``, ``gnn``, ``pointer``, ``attention``)
* :mod:`rlsys_agents.extractors`  -- torch-geometric GNN extractor (vectorised unpadding), attention
  extractor over entity tables
* :mod:`rlsys_agents.policies`    -- size-agnostic pointer policy for MaskablePPO
* :mod:`rlsys_agents.callbacks`   -- episode metrics to TensorBoard, evaluation vs baselines, checkpoints
* :mod:`rlsys_agents.evaluation`  -- ``evaluate`` on seeded episodes, ``load_policy`` (baseline or checkpoint)
* :mod:`rlsys_agents.training`    -- what ``train.py`` and ``rlsys train`` run
* :mod:`rlsys_agents.shipped`     -- the shipped configs (``configs/``, linked as ``agents/configs``) and
  checkpoints (``agents/checkpoints/``) by name
"""

from pathlib import Path as _Path

from ._compat import alias as _alias

# checkpoints saved while this package was imported as ``agents`` load under any other import name
_alias("agents", __name__, _Path(__file__).parent)

__all__ = ["config", "algorithms", "extractors", "policies", "callbacks", "evaluation", "training", "shipped"]
