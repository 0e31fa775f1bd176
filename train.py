#!/usr/bin/env python
"""Train an rlsys experiment.

    python train.py                                    # the default experiment (configs/default.yaml)
    python train.py --config configs/jobshop_gnn_ppo.yaml train.seeds=[0,1,2]
    python train.py --config jobshop_gnn_ppo           # a shipped config by name (rlsys list shows them)
    python train.py --resume runs/default/seed_0       # continue from the last checkpoint

Runs go to ``runs/<experiment>/seed_<s>/`` (TensorBoard events, ``config.yaml``, ``checkpoints/``,
``final_model.zip``, ``results.md``); ``tensorboard --logdir runs`` shows them. See
:mod:`rlsys_agents.config` for every config key. ``rlsys train ...`` is the same command where the
package is installed (both call :func:`rlsys_agents.training.main`).
"""
import sys

from rlsys_agents.training import main

if __name__ == "__main__":
    sys.exit(main(prog="train.py"))
