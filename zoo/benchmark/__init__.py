"""The paper's benchmark grid (``zoo benchmark``): methods, runner over MLflow, results report."""

from zoo.benchmark.methods import METHODS, Method, method_reward

__all__ = ["METHODS", "Method", "method_reward"]
