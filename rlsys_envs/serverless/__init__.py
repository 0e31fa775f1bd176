"""Serverless concurrency autoscaling (Knative KPA; Schuler, Jamil, Kühl 2021): ``rlsys/ServerlessAutoscaling-v0``
and several functions on one cluster, ``rlsys/ServerlessMultiFunction-v0``."""
from .env import LIMITS, ServerlessAutoscalingEnv
from .multi import ServerlessMultiFunctionEnv

__all__ = ["ServerlessAutoscalingEnv", "ServerlessMultiFunctionEnv", "LIMITS"]
