"""Driving metrics and evaluation rollouts."""

from zoo.evaluation.metrics import SUMMARY_METRICS, episode_metrics, summarize
from zoo.evaluation.rollout import EVAL_SEED_OFFSET, EvaluationResult, evaluate

__all__ = ["EVAL_SEED_OFFSET", "EvaluationResult", "SUMMARY_METRICS", "episode_metrics", "evaluate", "summarize"]
