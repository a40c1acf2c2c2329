"""Shared fixtures: tiny agents, one-update training, isolated working folders for MLflow stores."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from lightning.pytorch.loggers.logger import DummyLogger  # imports no mlflow: the settings below still hold

# No telemetry, no network, before anything imports mlflow.
os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
os.environ.setdefault("DO_NOT_TRACK", "1")
# Models the tests build (random:<family>-<size>) go to a temp folder, not the user's ~/.cache/zoo.
os.environ["ZOO_CACHE"] = tempfile.mkdtemp(prefix="zoo-test-cache-")

#: the smallest budget an agent trains on: two collector batches of 32 env steps, small networks
TINY: dict[str, Any] = {"hidden_sizes": (32,), "total_frames": 64, "frames_per_batch": 32, "seed": 0}
#: replay settings so that an off-policy agent learns right after its first collected batch
TINY_OFF_POLICY: dict[str, Any] = {"learning_starts": 32, "batch_size": 16, "buffer_size": 256,
                                   "updates_per_batch": 1}
TINY_ON_POLICY: dict[str, Any] = {"epochs": 1, "minibatch_size": 16}

#: one tiny configuration per algorithm / action mode / encoder the tests cover
AGENT_CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "dqn": ("DQN", {"env": {"scenario": "highway-fast"}, **TINY_OFF_POLICY}),
    "sac": ("SAC", {"env": {"scenario": "highway-fast"}, **TINY_OFF_POLICY}),
    "sac-discrete": ("SAC", {"env": {"scenario": "highway-fast", "action": "discrete"}, **TINY_OFF_POLICY}),
    "td3": ("TD3", {"env": {"scenario": "highway-fast"}, **TINY_OFF_POLICY}),
    "ppo-continuous": ("PPO", {"env": {"scenario": "highway-fast", "action": "continuous"},
                               **TINY_ON_POLICY}),
    "ppo-discrete": ("PPO", {"env": {"scenario": "highway-fast", "action": "discrete"}, **TINY_ON_POLICY}),
    "dqn-cnn": ("DQN", {"env": {"scenario": "highway-fast", "bev_size": 64}, "network": "cnn",
                        **TINY_OFF_POLICY}),
}


@pytest.fixture(autouse=True)
def _isolated_cwd(tmp_path, monkeypatch):
    """Every test runs in its own temp folder: MLflow stores, runs/ and checkpoints never land in the repo."""
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    monkeypatch.chdir(tmp_path)
    # what mlflow.set_tracking_uri / set_registry_uri leave behind (Lightning's logger calls the first)
    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(tracking_utils, "_tracking_uri", None)
    monkeypatch.setattr(registry_utils, "_registry_uri", None)


@pytest.fixture(scope="session", autouse=True)
def _fresh_sqlite_stores_from_a_template(tmp_path_factory):
    """MLflow makes a new SQLite store by running its ~60 schema migrations, 5-9 s on 2 cores, and the suite makes
    well over a hundred stores in this process (every fit with the MLflow logger, every registry test). Here MLflow
    migrates one template store once; each new SQLite store in this process gets the template's tables through
    SQLite's backup API instead: the same schema at the same alembic head (MLflow still verifies it), and MLflow then
    adds its default experiment as usual. Stores made by ``zoo`` subprocesses and tracking servers still migrate."""
    import sqlite3

    import mlflow.store.db.utils as db_utils
    import mlflow.store.model_registry.sqlalchemy_store as registry_store

    migrate = db_utils._initialize_tables
    template = tmp_path_factory.mktemp("mlflow-template") / "template.db"

    def initialize(engine) -> None:
        database = engine.url.database
        if engine.dialect.name != "sqlite" or not database or database == ":memory:":
            return migrate(engine)
        if not template.exists():
            made = db_utils.create_sqlalchemy_engine_with_retry(f"sqlite:///{template}")
            migrate(made)
            made.dispose()
        raw = engine.raw_connection()
        try:
            with contextlib.closing(sqlite3.connect(template)) as source:
                source.backup(raw.driver_connection)
        finally:
            raw.close()

    patch = pytest.MonkeyPatch()
    patch.setattr(db_utils, "_initialize_tables", initialize)
    patch.setattr(registry_store, "_initialize_tables", initialize)
    yield
    patch.undo()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_protocol(item, nextitem):
    """The filters ``import zoo`` installs (zoo/_noise.py), again for each test, inside pytest's own warning capture
    (which puts "always show DeprecationWarning" in front of them) and around every fixture the test sets up. The
    third-party warnings users never see (raised inside libraries) are filtered one by one in pyproject.toml."""
    from zoo._noise import silence_known_noise

    silence_known_noise()
    return (yield)


#: IDMVehicle class attributes that highway-env's intersection-v0 overwrites for the whole process
IDM_CLASS_STATE = ("DISTANCE_WANTED", "COMFORT_ACC_MAX", "COMFORT_ACC_MIN")


@pytest.fixture(autouse=True)
def _restore_highway_env_class_state(monkeypatch):
    """Undo intersection-v0's process-wide edits of ``IDMVehicle`` after each test (see test_envs.py), so the
    traffic of one test never depends on which scenarios earlier tests built."""
    from highway_env.vehicle.behavior import IDMVehicle

    for name in IDM_CLASS_STATE:
        monkeypatch.setattr(IDMVehicle, name, getattr(IDMVehicle, name))


@pytest.fixture
def tiny_kwargs() -> dict[str, Any]:
    """Keyword arguments for the smallest useful budget of any agent."""
    return dict(TINY)


@pytest.fixture
def make_agent() -> Callable[..., Any]:
    """``make_agent(case, **overrides)``: a tiny agent of one of :data:`AGENT_CASES`."""
    from zoo.agents import AGENTS
    from zoo.envs import EnvConfig

    def make(case: str, **overrides: Any):
        name, kwargs = AGENT_CASES[case]
        kwargs = {**TINY, **kwargs, **overrides}
        kwargs["env"] = EnvConfig(**kwargs["env"])
        return AGENTS.get(name)(**kwargs)

    return make


@pytest.fixture
def fit_updates() -> Callable[..., Any]:
    """``fit_updates(agent, n=1)``: train ``agent`` for exactly ``n`` ``update()`` calls; return the trainer.

    Lightning counts every optimizer step (SAC has three per update), so the count is capped by
    interrupting after the ``n``-th training step rather than with ``max_steps``.
    """
    import lightning as L

    class StopAfter(L.Callback):
        def __init__(self, n: int) -> None:
            self.n = n
            self.seen = 0

        def on_train_batch_end(self, trainer, *args: Any) -> None:
            self.seen += 1
            if self.seen >= self.n:
                trainer.should_stop = True

    def fit(agent, n: int = 1) -> L.Trainer:
        stop = StopAfter(n)
        trainer = L.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                            enable_model_summary=False, callbacks=[stop])
        trainer.fit(agent)
        assert stop.seen == n, f"the collector yielded {stop.seen} batches, expected {n}"
        return trainer

    return fit


# -- a real MLflow tracking server ------------------------------------------------------------------
MLFLOW = str(Path(sys.executable).parent / "mlflow")  # the console script of this environment


def free_port() -> int:
    """A TCP port nothing listens on (closed again: a server may take it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class MlflowServer:
    """``mlflow server`` on 127.0.0.1 with a SQLite backend and served artifacts under ``root``; ``stop()`` and
    ``start()`` again on the same port and store (a server outage and its return)."""

    root: Path
    port: int
    process: subprocess.Popen | None = None

    @property
    def uri(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 180) -> MlflowServer:
        import requests

        with open(self.root / "server.log", "a") as log:
            self.process = subprocess.Popen(
                [MLFLOW, "server", "--host", "127.0.0.1", "--port", str(self.port), "--workers", "1",
                 "--backend-store-uri", f"sqlite:///{self.root / 'mlflow.db'}",
                 "--artifacts-destination", str(self.root / "artifacts")],
                cwd=self.root, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while True:
            try:
                if requests.get(f"{self.uri}/health", timeout=2).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"mlflow server did not start: {(self.root / 'server.log').read_text()[-2000:]}")
            time.sleep(0.5)

    def stop(self) -> None:
        """Kill the server and its workers (started here in their own session)."""
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        except ProcessLookupError:
            pass
        self.process = None


@pytest.fixture(scope="session")
def mlflow_server(tmp_path_factory) -> Iterator[str]:
    """The URI of a real ``mlflow server`` shared by the session (SQLite backend), torn down at the end."""
    server = MlflowServer(tmp_path_factory.mktemp("mlflow-server"), free_port()).start()
    try:
        yield server.uri
    finally:
        server.stop()


@pytest.fixture
def own_mlflow_server(tmp_path_factory) -> Iterator[MlflowServer]:
    """A real ``mlflow server`` of the test's own, which the test may stop and start again."""
    server = MlflowServer(tmp_path_factory.mktemp("own-mlflow-server"), free_port()).start()
    try:
        yield server
    finally:
        server.stop()


#: the smallest ``zoo fit`` recipe: DQN with the engineered reward, no evaluation, 64 env steps
TINY_RECIPE = """\
seed_everything: 0
torch_threads: 1
trainer:
  logger:
    class_path: zoo.tracking.ZooMLFlowLogger
    init_args:
      experiment_name: tiny
  log_every_n_steps: 1
  enable_progress_bar: false
  enable_model_summary: false
model:
  class_path: zoo.agents.DQN
  init_args:
    env:
      scenario: highway-fast
    hidden_sizes: [32]
    total_frames: 64
    frames_per_batch: 16
    learning_starts: 16
    updates_per_batch: 1
    buffer_size: 256
    batch_size: 16
"""


@contextlib.contextmanager
def tiny_workspace(root: Path) -> Iterator[pytest.MonkeyPatch]:
    """``root`` as the working folder, holding :data:`TINY_RECIPE` as ``tiny.yaml``, with the local MLflow store
    (no ``MLFLOW_TRACKING_URI``): for module-scoped fixtures, which cannot use the per-test isolation."""
    (root / "tiny.yaml").write_text(TINY_RECIPE)
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.delenv("MLFLOW_TRACKING_URI", raising=False)
        yield mp


@pytest.fixture
def tiny_recipe(tmp_path) -> Path:
    """A ``zoo fit`` recipe of a few seconds (see :data:`TINY_RECIPE`), written to the test's folder."""
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_RECIPE)
    return path


class Recorder(DummyLogger):
    """Keeps every metric the agent logs."""

    def __init__(self) -> None:
        super().__init__()
        self.metrics: list[dict[str, float]] = []

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.metrics.append(dict(metrics))


# -- a Ray head for the tests of zoo benchmark --backend ray and collector: ray ------------------------------------
#: the environment of the Ray head and of the processes that use it: no usage statistics, this checkout importable
RAY_ENV = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(Path(__file__).parents[1]), os.environ.get("PYTHONPATH")]))}


def processes() -> Iterator[tuple[int, int, str]]:
    """``(pid, parent pid, command line)`` of every process (Linux ``/proc``)."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):  # ended meanwhile
            continue
        yield int(entry.name), parent, command


@pytest.fixture(scope="module")
def ray_head() -> Iterator[str]:
    """The address of a Ray head on 127.0.0.1 with 2 CPUs, in a temp folder of its own; killed at the end."""
    pytest.importorskip("ray")
    if not Path("/proc").is_dir():
        pytest.skip("the Ray tests find processes through /proc (Linux)")
    temp = Path(tempfile.mkdtemp(prefix="ray", dir="/tmp"))  # short: Ray's socket paths must fit 107 bytes
    port = free_port()
    ray = str(Path(sys.executable).parent / "ray")
    started = subprocess.run([ray, "start", "--head", "--node-ip-address", "127.0.0.1", "--port", str(port),
                              "--num-cpus", "2", "--num-gpus", "0", "--object-store-memory", str(100 * 2**20),
                              "--include-dashboard", "false", "--disable-usage-stats", "--temp-dir", str(temp)],
                             capture_output=True, text=True, env=RAY_ENV, timeout=300)
    try:
        assert started.returncode == 0, started.stdout[-2000:] + started.stderr[-2000:]
        yield f"127.0.0.1:{port}"
    finally:
        for sig in (signal.SIGTERM, signal.SIGKILL):
            ours = _head_processes(temp)
            for pid in ours:
                try:
                    os.kill(pid, sig)
                except ProcessLookupError:
                    pass
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline and _head_processes(temp):
                time.sleep(0.2)
        shutil.rmtree(temp, ignore_errors=True)
        assert not _head_processes(temp), "Ray processes left behind"


def _head_processes(temp: Path) -> set[int]:
    """The Ray head's processes (their command lines name its temp folder) and their descendants (Ray workers
    rename themselves ``ray::…``; their ``zoo fit`` children)."""
    table = list(processes())
    ours = {pid for pid, _, command in table if str(temp) in command}
    while more := {pid for pid, parent, _ in table if parent in ours} - ours:
        ours |= more
    return ours


