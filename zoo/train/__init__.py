"""LightningModules that train or fine-tune the zoo's models (reward models, the BEV detector)."""

from zoo.train.contrastive import ContrastiveRewardTraining, Export
from zoo.train.detector import DetectorTraining

__all__ = ["ContrastiveRewardTraining", "DetectorTraining", "Export"]
