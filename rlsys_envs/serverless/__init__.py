"""Serverless concurrency autoscaling (Knative KPA; Schuler, Jamil, Kühl 2021): ``rlsys/ServerlessAutoscaling-v0``."""
from .env import LIMITS, ServerlessAutoscalingEnv

__all__ = ["ServerlessAutoscalingEnv", "LIMITS"]
