"""LightningModules that train or fine-tune the zoo's models (reward models, the BEV detector, the risk describer)."""

from zoo.train.contrastive import ContrastiveRewardTraining, Export
from zoo.train.describer import RiskDescriberTraining
from zoo.train.detector import DetectorTraining

__all__ = ["ContrastiveRewardTraining", "DetectorTraining", "Export", "RiskDescriberTraining"]
