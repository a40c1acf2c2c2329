"""MLflow "models from code" entry point of registered zoo models (do not import: MLflow runs this file).

:func:`zoo.hub.mlflow_registry.register_model` logs this file as the pyfunc model's code, so that no
pickle is written: loading runs it, and :class:`ZooPyfuncModel` rebuilds the zoo model from the folder
logged as the ``zoo_model`` artifact.

Example:
    >>> model = mlflow.pyfunc.load_model("models:/clip-bev@champion")  # doctest: +SKIP
    >>> model.predict(images)  # uint8 [N, H, W, 3] -> float32 rewards [N]  # doctest: +SKIP
"""

from __future__ import annotations

import mlflow
from mlflow.pyfunc import PythonModel

from zoo.hub.cards import read_card
from zoo.hub.loaders import build_from_folder, predict_actions, predict_rewards
from zoo.hub.mlflow_registry import ARTIFACT_KEY


class ZooPyfuncModel(PythonModel):
    """A registered zoo model: rewards of images (reward models) or actions of observations (policies).

    The logged model carries an explicit tensor signature, which MLflow enforces; ``predict`` has no type
    hints, and MLflow is told not to look for them (it would warn once per process otherwise).
    """

    _skip_type_hint_validation = True

    def load_context(self, context) -> None:
        folder = context.artifacts[ARTIFACT_KEY]
        self.kind = read_card(folder)["kind"]
        self.model = build_from_folder(folder)

    def predict(self, context, model_input, params=None):
        if self.kind == "policy":
            return predict_actions(self.model, model_input)
        return predict_rewards(self.model, model_input)


mlflow.models.set_model(ZooPyfuncModel())
