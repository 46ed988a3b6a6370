"""MLflow: one run per job; the jobs of a sweep nest under one parent run per sweep directory,
so MLflow's compare view shows the sweep. Uses MlflowClient, not the fluent API's global
"active run": jobs of the basic launcher run one after another in one process.

The parent is found by its tag (the sweep directory's path) under a file lock (beside a SQLite
store, else in the sweep directory), so jobs in other processes (joblib's workers) and a re-run
of the sweep find the same parent.
"""

import contextlib
import os
import time
from pathlib import Path

from ..core.rundir import HISTORY_FILE, METRICS_FILE
from ..core.status import FAILED, INTERRUPTED
from .base import Backend, RunInfo, final_metrics, plots

SWEEP_TAG = "vbench.sweep_dir"
MAX_BATCH = 100  # MLflow takes at most 100 params per log_batch call
STATUS = {FAILED: "FAILED", INTERRUPTED: "KILLED"}


class MlflowBackend(Backend):
    name = "mlflow"

    def __init__(self, options, info: RunInfo):
        # An unreachable server must not hold the run for minutes of retries (MLflow's
        # default); the user's own settings win.
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
        os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "20")
        from mlflow import MlflowClient
        from mlflow.entities import Param

        uri = tracking_uri(options.tracking_uri)
        tags = {"vbench.run_dir": str(info.run_dir)}
        # One job at a time creates the store's tables, the experiment and the sweep's parent:
        # two joblib workers would otherwise both migrate a new SQLite file, or make two parents.
        with _locked(_setup_lock(uri, info)):
            self.client = MlflowClient(tracking_uri=uri)
            self.client.search_experiments(max_results=1)  # creates the tables of a new store
            experiment_id = self._experiment(
                options.experiment or info.default_experiment, uri)
            if info.sweep_dir is not None:
                tags["mlflow.parentRunId"] = self._parent(experiment_id, info.sweep_dir)
                tags["vbench.job_num"] = str(info.job_num)
            self.run_id = self.client.create_run(experiment_id, run_name=info.name,
                                                 tags=tags).info.run_id
        params = [Param(k, _text(v)) for k, v in info.hparams.items()]
        for i in range(0, len(params), MAX_BATCH):
            self.client.log_batch(self.run_id, params=params[i:i + MAX_BATCH])

    def _experiment(self, name: str, uri: str) -> str:
        found = self.client.get_experiment_by_name(name)
        if found is not None:
            return found.experiment_id
        return self.client.create_experiment(name, artifact_location=artifact_location(uri))

    def _parent(self, experiment_id: str, sweep_dir: Path) -> str:
        """The sweep's parent run: found by tag, created by the first job to get there."""
        query = f"tags.`{SWEEP_TAG}` = '{sweep_dir}'"
        found = self.client.search_runs([experiment_id], query, max_results=1)
        if found:
            return found[0].info.run_id
        return self.client.create_run(experiment_id, run_name=f"sweep {sweep_dir.name}",
                                      tags={SWEEP_TAG: str(sweep_dir)}).info.run_id

    def log_epoch(self, row: dict) -> None:
        from mlflow.entities import Metric

        now, step = int(time.time() * 1000), int(row["epoch"])
        self.client.log_batch(self.run_id, metrics=[
            Metric(k, float(v), now, step) for k, v in row.items() if k != "epoch"])

    def finish(self, metrics: dict, run_dir: Path) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        self.client.log_batch(self.run_id, metrics=[
            Metric(k, v, now, 0) for k, v in final_metrics(metrics).items()])
        for path in plots(run_dir):
            self.client.log_artifact(self.run_id, str(path), "plots")
        for name in (METRICS_FILE, HISTORY_FILE):
            if (run_dir / name).is_file():
                self.client.log_artifact(self.run_id, str(run_dir / name))
        self.client.set_terminated(self.run_id, "FINISHED")
        parent = self.client.get_run(self.run_id).data.tags.get("mlflow.parentRunId")
        if parent:  # the parent shows as finished once its last job has
            self.client.set_terminated(parent, "FINISHED")

    def close(self, status: str) -> None:
        self.client.set_terminated(self.run_id, STATUS.get(status, "FAILED"))


def tracking_uri(uri: str) -> str:
    """A relative sqlite path made absolute (from the launch directory), so that jobs in
    other processes or folders write the same database; its folder is created."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return uri
    path = Path(uri.removeprefix(prefix)).expanduser().resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    return prefix + str(path)


def artifact_location(uri: str) -> str | None:
    """A sqlite store keeps its artifacts in mlartifacts/ beside the database file; other
    stores (a server, a file: store) choose for themselves."""
    prefix = "sqlite:///"
    if not uri.startswith(prefix):
        return None
    return (Path(uri.removeprefix(prefix)).parent / "mlartifacts").as_uri()


def _text(value) -> str:
    return str(value)[:6000]  # MLflow's limit on a param value


def _setup_lock(uri: str, info: RunInfo) -> Path | None:
    """A lock file beside a SQLite store, else in the sweep directory; None: a single run on
    a server, nothing to race with."""
    if uri.startswith("sqlite:///"):
        return Path(uri.removeprefix("sqlite:///") + ".lock")
    return info.sweep_dir / ".mlflow.lock" if info.sweep_dir is not None else None


@contextlib.contextmanager
def _locked(path: Path | None):
    """An exclusive lock between processes on one machine (joblib's workers)."""
    if path is None:
        yield
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a") as f:
        try:
            import fcntl
        except ImportError:  # Windows: no lock; jobs of a parallel launcher may race
            yield
            return
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)
