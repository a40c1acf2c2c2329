"""LightningModules that train or fine-tune the zoo's reward models."""

from zoo.train.contrastive import ContrastiveRewardTraining, Export

__all__ = ["ContrastiveRewardTraining", "Export"]
