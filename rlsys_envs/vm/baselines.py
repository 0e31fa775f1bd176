from rlsys_envs.core import RandomMaskedPolicy
BASELINES = {"random": RandomMaskedPolicy}
