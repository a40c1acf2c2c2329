"""Benchmark: several processes logging to one MLflow SQLite store at once (``zoo benchmark --workers N``).

Each writer process creates its run in a fresh store, then calls ``log_batch`` (a handful of metrics, as a
training step's logging does) as fast as it can, with a ``search_runs`` every 20 calls (the parent's look-up),
and ends its run. All writers start at the same instant. Reported per number of writers: errors (``database is
locked`` among them), the slowest ``log_batch`` (MLflow's SQLite sessions wait up to 20 s for the lock:
``PRAGMA busy_timeout = 20000``) and the calls/s of all writers together. A ``zoo fit`` child logs far less
often than these writers (every 10 optimizer steps), so this is the worst case of the grid.

Usage::

    python benchmarks/mlflow_sqlite_writers.py                    # 4, 8, 16 writers x 150 calls, ~3 min on 2 cores
    python benchmarks/mlflow_sqlite_writers.py --quick --out /tmp/mw.json   # 2 writers x 10 calls (a test runs it)

Results go to ``--out`` (default ``benchmarks/results/mlflow_sqlite_writers.json``, which docs/scaling.md quotes).
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

from common import BenchmarkParser, git_state, load_average, versions, write_json

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def write(uri: str, experiment_id: str, calls: int, metrics: int, start_at: float) -> dict:
    """One writer: wait for the common start, log ``calls`` batches, end the run; its errors and latencies."""
    import mlflow
    from mlflow.entities import Metric

    client = mlflow.MlflowClient(uri)
    time.sleep(max(0.0, start_at - time.time()))
    errors: list[str] = []
    latencies = []
    run_id = client.create_run(experiment_id).info.run_id
    for step in range(calls):
        begin = time.perf_counter()
        try:
            now = int(time.time() * 1000)
            client.log_batch(run_id, metrics=[Metric(f"m{k}", float(step), now, step) for k in range(metrics)])
            if step % 20 == 0:
                client.search_runs([experiment_id], max_results=100)
        except Exception as err:  # noqa: BLE001  counted: the point of the benchmark
            errors.append(f"{type(err).__name__}: {str(err).splitlines()[0][:120]}")
        latencies.append(time.perf_counter() - begin)
    client.set_terminated(run_id)
    return {"errors": errors, "max_call_s": max(latencies), "busy_s": sum(latencies)}


def measure(writers: int, calls: int, metrics: int) -> dict:
    import mlflow

    with tempfile.TemporaryDirectory() as folder:
        uri = f"sqlite:///{Path(folder) / 'mlflow.db'}"
        experiment_id = mlflow.MlflowClient(uri).create_experiment("writers")  # tables and experiment first
        start_at = time.time() + 5 + writers  # every writer has imported mlflow by then
        with ProcessPoolExecutor(writers, mp_context=get_context("spawn")) as pool:
            futures = [pool.submit(write, uri, experiment_id, calls, metrics, start_at) for _ in range(writers)]
            results = [f.result() for f in futures]
        wall_s = time.time() - start_at
        logged = mlflow.MlflowClient(uri).search_runs([experiment_id])
    errors = [e for r in results for e in r["errors"]]
    return {"writers": writers, "calls_per_writer": calls, "metrics_per_call": metrics, "errors": len(errors),
            "locked_errors": sum("database is locked" in e for e in errors), "error_examples": errors[:3],
            "runs_finished": sum(r.info.status == "FINISHED" for r in logged),
            "max_call_s": round(max(r["max_call_s"] for r in results), 3), "wall_s": round(wall_s, 1),
            "calls_per_s": round(writers * calls / wall_s, 1)}


def main() -> None:
    parser = BenchmarkParser("mlflow_sqlite_writers", __doc__, quick={"writers": [2], "calls": 10})
    parser.add_argument("--writers", type=int, nargs="+", default=[4, 8, 16])
    parser.add_argument("--calls", type=int, default=150, help="log_batch calls per writer")
    parser.add_argument("--metrics", type=int, default=5, help="metrics per log_batch call")
    args = parser.parse_args()
    result = {"benchmark": "mlflow_sqlite_writers",
              "command": "python benchmarks/mlflow_sqlite_writers.py" + (" --quick" if args.quick else ""),
              "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"), "git": git_state(),
              "versions": versions("mlflow", "sqlalchemy"), "cpu_count": os.cpu_count(),
              "load_start": load_average(), "args": vars(args), "runs": []}
    for writers in args.writers:
        run = measure(writers, args.calls, args.metrics)
        print(run)
        result["runs"].append(run)
    result["load_end"] = load_average()
    write_json(args.out, result)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
