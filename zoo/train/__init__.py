"""LightningModules that train or fine-tune the zoo's reward models and risk describer."""

from zoo.train.contrastive import ContrastiveRewardTraining, Export
from zoo.train.describer import RiskDescriberTraining

__all__ = ["ContrastiveRewardTraining", "Export", "RiskDescriberTraining"]
