"""Zoo model folders in the MLflow model registry: register, alias, download, rebuild.

A zoo model folder (``zoo.json`` card, ``README.md``, safetensors weights and configs) is logged as an
MLflow **pyfunc** model "from code" (:mod:`zoo.hub.pyfunc`): its artifacts are the folder's
files, nothing is pickled, and ``mlflow.pyfunc.load_model("models:/<name>@<alias>")`` rebuilds the zoo
model from them. :func:`download_model` fetches the folder itself, for the zoo's own loaders.

Example:
    >>> version = register_model("exports/clip-bev", "clip-bev", alias="champion")  # doctest: +SKIP
    >>> folder = download_model("models:/clip-bev@champion")  # doctest: +SKIP
    >>> reward = zoo.create_reward_model(str(folder), head="clg")  # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
import difflib
import hashlib
import json
import os
import re
import shutil
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import zoo
from zoo.errors import ZooError
from zoo.hub.cards import CARD_FILE as CARD
from zoo.hub.cards import path_inside, read_card
from zoo.hub.resolve import check_safetensors
from zoo.tracking.settings import _local_artifact_location, check_tracking_uri, configure_mlflow
from zoo.tracking.settings import tracking_uri as _default_tracking_uri

configure_mlflow()

#: experiment of the runs that carry registered zoo models
EXPERIMENT = "model-registry"
#: the pyfunc model's artifact key for the zoo folder (``context.artifacts[ARTIFACT_KEY]``)
ARTIFACT_KEY = "zoo_model"
#: the "models from code" file MLflow copies into the logged model and runs to rebuild it
PYFUNC_CODE = Path(__file__).with_name("pyfunc.py")
_MODELS_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/]+)|/(?P<version>[^/]+))/?$")
_RUNS_URI = re.compile(r"^runs:/(?P<run_id>[0-9a-f]{32})(?:/(?P<path>.*))?$")


# -- MLflow plumbing --------------------------------------------------------------------------------
@contextlib.contextmanager
def _using(uri: str) -> Iterator[None]:
    """Point MLflow's fluent API (tracking and registry) at ``uri`` for a block, then restore it all."""
    import mlflow  # lazy: mlflow is slow to import
    from mlflow.tracking._model_registry import utils as registry_utils  # lazy: mlflow is slow to import
    from mlflow.tracking._tracking_service import utils as tracking_utils  # lazy: mlflow is slow to import

    env = {k: os.environ.get(k) for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")}
    saved = tracking_utils._tracking_uri, registry_utils._registry_uri
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        yield
    finally:
        tracking_utils._tracking_uri, registry_utils._registry_uri = saved
        for key, value in env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _client(uri: str):
    import mlflow  # lazy: mlflow is slow to import

    check_tracking_uri(uri)
    return mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)


def _missing(err: Exception) -> bool:
    return getattr(err, "error_code", "") == "RESOURCE_DOES_NOT_EXIST" or "not found" in str(err).lower()


def _registered_model(client, name: str, uri: str):
    from mlflow.exceptions import MlflowException  # lazy: mlflow is slow to import

    try:
        return client.get_registered_model(name)
    except MlflowException as err:
        if not _missing(err):
            raise
    names = sorted(m.name for m in client.search_registered_models(max_results=1000))
    close = difflib.get_close_matches(name, names, n=3)
    hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
    listed = ", ".join(names[:20]) + (f" … ({len(names)} in all)" if len(names) > 20 else "") if names else "none"
    raise ZooError(f"no registered model {name!r} in {uri}.{hint} Registered models: {listed}.")


def _versions(client, name: str) -> list[str]:
    escaped = name.replace("'", "\\'")
    return sorted((str(v.version) for v in client.search_model_versions(f"name = '{escaped}'")), key=int)


def resolve_version(uri: str, *, tracking_uri: str | None = None):
    """The :class:`~mlflow.entities.model_registry.ModelVersion` a ``models:/name@alias`` or
    ``models:/name/<version|latest>`` URI names.

    Raises:
        ZooError: malformed URI, unknown model (naming the closest registered names), unknown alias (listing
            the model's aliases), unknown version (listing its versions), unreachable server.
    """
    from mlflow.exceptions import MlflowException  # lazy: mlflow is slow to import

    match = _MODELS_URI.match(uri)
    if not match:
        raise ZooError(f"model URI {uri!r} is not models:/<name>@<alias> or models:/<name>/<version>")
    tracking = tracking_uri or _default_tracking_uri()
    client = _client(tracking)
    name, alias, version = match["name"], match["alias"], match["version"]
    model = _registered_model(client, name, tracking)
    if alias is not None:
        if alias not in model.aliases:
            known = ", ".join(f"@{a} (version {v})" for a, v in sorted(model.aliases.items())) or "none"
            raise ZooError(f"registered model {name!r} has no alias {alias!r}; its aliases: {known}")
        version = str(model.aliases[alias])
    versions = _versions(client, name)
    if version == "latest" and versions:
        version = versions[-1]
    if version not in versions:
        raise ZooError(f"registered model {name!r} has no version {version!r}; its versions: "
                       f"{', '.join(versions) or 'none'}")
    try:
        return client.get_model_version(name, version)
    except MlflowException as err:
        raise ZooError(f"cannot read version {version} of registered model {name!r} in {tracking}: "
                       f"{str(err).splitlines()[0][:200]}") from None


# -- register ---------------------------------------------------------------------------------------
def _required_files(folder: Path, card: dict[str, Any]) -> list[str]:
    if card["kind"] == "policy":
        return ["model.safetensors", "agent.yaml"]
    if card.get("adapter_of"):
        return ["adapter_config.json", "adapter_model.safetensors"]
    return ["config.json"]


def _signature(folder: Path, card: dict[str, Any]):
    import numpy as np  # lazy: numpy is slow to import
    from mlflow.models import ModelSignature  # lazy: mlflow is slow to import
    from mlflow.types import Schema, TensorSpec  # lazy: mlflow is slow to import

    if card["kind"] == "reward":
        return ModelSignature(inputs=Schema([TensorSpec(np.dtype(np.uint8), (-1, -1, -1, -1))]),
                              outputs=Schema([TensorSpec(np.dtype(np.float32), (-1,))]))
    spec = card.get("policy") or {}
    if not {"obs_shape", "obs_dtype", "action_shape", "action_dtype"} <= set(spec):
        raise ZooError(f"{folder / CARD} lacks the policy's observation and action spec "
                       "(save it with zoo.hub.policies.save_policy_folder)")
    return ModelSignature(
        inputs=Schema([TensorSpec(np.dtype(spec["obs_dtype"]), (-1, *spec["obs_shape"]))]),
        outputs=Schema([TensorSpec(np.dtype(spec["action_dtype"]), (-1, *spec["action_shape"]))]))


def _tags(card: dict[str, Any]) -> dict[str, str]:
    tags = {"zoo.name": card["name"], "zoo.kind": card["kind"]}
    if card.get("adapter_of"):
        tags["zoo.adapter_of"] = str(card["adapter_of"])
    if card.get("quantization"):
        tags["zoo.quantization"] = json.dumps(card["quantization"], sort_keys=True)
    return tags


def register_model(folder: str | Path, registered_name: str, alias: str | None = None, *,
                   tracking_uri: str | None = None):
    """Log a zoo model folder as an MLflow pyfunc model and register it as ``registered_name``.

    The run (experiment ``model-registry``) holds the folder's files as the model's artifacts and the
    ``models from code`` loader; no pickle is written. An adapter folder is registered as is: adapters,
    the ``adapter_of`` base reference and the quantization config (tags ``zoo.adapter_of``,
    ``zoo.quantization``), rebuilt on load.

    Args:
        folder: a zoo model folder (``zoo.json``, ``README.md``, weights).
        registered_name: name in the registry.
        alias: alias to point at the new version (``champion`` …).
        tracking_uri: default :func:`zoo.tracking.tracking_uri` (``MLFLOW_TRACKING_URI`` or the local store).

    Returns:
        The new :class:`~mlflow.entities.model_registry.ModelVersion`.

    Example:
        >>> v = register_model("exports/clip-bev", "clip-bev", alias="champion")  # doctest: +SKIP
        >>> mlflow.pyfunc.load_model("models:/clip-bev@champion").predict(images)  # doctest: +SKIP
    """
    import mlflow  # lazy: mlflow is slow to import

    folder = Path(folder).expanduser().resolve()
    if not folder.is_dir():
        raise ZooError(f"model folder {folder} does not exist")
    card = read_card(folder)
    check_safetensors(folder)  # a truncated or corrupted file never reaches the registry
    missing = [f for f in _required_files(folder, card) if not (folder / f).is_file()]
    if missing:
        raise ZooError(f"{folder} is a {card['kind']} card without {', '.join(missing)}")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", registered_name or ""):
        raise ZooError(f"registered model name {registered_name!r} must be letters, digits, '.', '_' or '-'")
    if alias is not None:
        check_alias(alias)  # before the version exists: a refused alias registers nothing
    signature = _signature(folder, card)
    uri = tracking_uri or _default_tracking_uri()
    client = _client(uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    if experiment is not None:
        experiment_id = experiment.experiment_id
    else:
        local = None if uri.startswith(("http://", "https://")) else _local_artifact_location()
        experiment_id = client.create_experiment(EXPERIMENT, artifact_location=local)

    with _using(uri), mlflow.start_run(experiment_id=experiment_id, run_name=f"register-{registered_name}",
                                       tags=_tags(card), nested=mlflow.active_run() is not None):
        with warnings.catch_warnings():  # the signature is given; an input example would only be JSON noise
            warnings.filterwarnings("ignore", message=".*input example was not provided.*")
            info = mlflow.pyfunc.log_model(
                name="model", python_model=str(PYFUNC_CODE), artifacts={ARTIFACT_KEY: str(folder)},
                signature=signature, pip_requirements=[f"drive-zoo=={zoo.__version__}"],
                metadata={"zoo": {k: card[k] for k in ("name", "kind", "summary")}})
        version = mlflow.register_model(info.model_uri, registered_name, tags=_tags(card))
    client.update_model_version(registered_name, version.version, description=card["summary"])
    if alias:
        client.set_registered_model_alias(registered_name, alias, version.version)
    return client.get_model_version(registered_name, version.version)


def check_alias(alias: str) -> None:
    """Refuse an alias MLflow would refuse: other characters than letters, digits, ``_`` and ``-``; ``latest``
    and ``v<number>`` (reserved for versions).

    Example:
        >>> check_alias("champion")
    """
    if not re.fullmatch(r"[A-Za-z0-9_-]{1,255}", alias or "") or re.fullmatch(r"(?i)latest|v\d+", alias):
        raise ZooError(f"alias {alias!r} must be letters, digits, '_' or '-' (up to 255), and not 'latest' or "
                       "v<number> (reserved by MLflow)")


def set_alias(name: str, alias: str, version: str | int, *, tracking_uri: str | None = None) -> None:
    """Point ``alias`` of registered model ``name`` at ``version`` (checked to exist)."""
    uri = tracking_uri or _default_tracking_uri()
    version = resolve_version(f"models:/{name}/{version}", tracking_uri=uri).version
    _client(uri).set_registered_model_alias(name, alias, version)


# -- download ---------------------------------------------------------------------------------------
def _cache_root(uri: str) -> Path:
    base = Path(os.environ.get("ZOO_CACHE", Path.home() / ".cache" / "zoo")).expanduser()
    return base / "mlflow" / hashlib.sha256(uri.encode()).hexdigest()[:12]


def _zoo_folder(root: Path, uri: str) -> Path:
    cards = sorted(root.rglob(CARD), key=lambda p: (len(p.parts), str(p)))
    if not cards:
        raise ZooError(f"{uri} holds no zoo model folder (no {CARD} among its artifacts)")
    return cards[0].parent


def download_model(uri: str, *, tracking_uri: str | None = None) -> Path:
    """Download a registered (or run-logged) zoo model and return its zoo model folder.

    ``models:/name@alias`` and ``models:/name/<version>`` are resolved to a version first; each version
    is downloaded once into ``$ZOO_CACHE/mlflow/<store>/…`` (default ``~/.cache/zoo``). The folder holds
    ``zoo.json`` and the weights, ready for the zoo's own loaders (no pyfunc involved).

    Raises:
        ZooError: unknown model, alias, version or run; unreachable tracking server (naming its URI).

    Example:
        >>> folder = download_model("models:/clip-bev@champion")  # doctest: +SKIP
        >>> zoo.create_reward_model(str(folder), head="clg")  # doctest: +SKIP
    """
    import mlflow  # lazy: mlflow is slow to import
    from mlflow.exceptions import MlflowException  # lazy: mlflow is slow to import

    tracking = tracking_uri or _default_tracking_uri()
    text = str(uri)
    if text.startswith("models:/"):
        version = resolve_version(text, tracking_uri=tracking)
        source = f"models:/{version.name}/{version.version}"
        target = path_inside(path_inside(_cache_root(tracking) / "models", version.name), str(version.version))
    elif _RUNS_URI.match(text):
        match = _RUNS_URI.match(text)
        try:
            _client(tracking).get_run(match["run_id"])
        except MlflowException:
            raise ZooError(f"no MLflow run {match['run_id']!r} in {tracking}") from None
        path = (match["path"] or "").strip("/")
        source = f"runs:/{match['run_id']}/{path}"
        target = path_inside(_cache_root(tracking) / "runs" / match["run_id"], path.replace("/", "__") or "_")
    else:
        raise ZooError(f"model URI {text!r} is not models:/<name>@<alias>, models:/<name>/<version> or "
                       "runs:/<run_id>/<path>")
    if not (target / ".complete").is_file():
        staging = target.with_name(f"{target.name}.tmp{os.getpid()}")
        shutil.rmtree(staging, ignore_errors=True)
        try:
            # MLflow resolves a models:/ URI through the global registry URI whatever registry_uri says
            # (ModelsArtifactRepository._get_model_uri_infos): point it at this store for the download
            with _using(tracking):
                mlflow.artifacts.download_artifacts(artifact_uri=source, dst_path=str(staging),
                                                    tracking_uri=tracking, registry_uri=tracking)
        except MlflowException as err:
            shutil.rmtree(staging, ignore_errors=True)
            raise ZooError(f"cannot download {text} from {tracking}: {str(err).splitlines()[0][:300]}") from None
        (staging / ".complete").touch()
        shutil.rmtree(target, ignore_errors=True)
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            staging.rename(target)
        except OSError:  # another process finished first
            shutil.rmtree(staging, ignore_errors=True)
    return _zoo_folder(target, text)
