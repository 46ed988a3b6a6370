"""Experiment trackers (the `logger` config group): each chosen backend gets the config as
hyperparameters when training starts, every history.csv row after each epoch, and the
metrics.json numbers and plots at the end.

A tracker is a copy of the results, never their home: the run directory is written first and
a backend that fails (an unreachable server, a full disk) is dropped with a warning, so no run
is ever lost to it. Only a missing package is an error, and it comes before any training.
Each backend's library is imported only when chosen: a run without loggers imports none.
"""

import importlib
from pathlib import Path

from ..core import schema
from ..core.errors import VBenchError
from ..core.status import FAILED
from .base import Backend, RunInfo, warn

# logger option -> (module in this package, class, the pip package it needs)
BACKENDS = {
    "tensorboard": ("tensorboard", "TensorBoardBackend", "tensorboard"),
    "mlflow": ("mlflow", "MlflowBackend", "mlflow"),
    "wandb": ("wandb", "WandbBackend", "wandb"),
}


class Loggers:
    """All the chosen backends behind one set of calls; empty until start()."""

    def __init__(self):
        self._backends: list[Backend] = []

    def start(self, logger: schema.Logger, config: dict, run_dir: Path) -> None:
        """Open every backend chosen in the `logger` section, with the run's whole `config`
        (plain values) as its hyperparameters. A missing package is a VBenchError naming the
        pip extra; any other failure drops that backend with a warning."""
        chosen = {name: options for name, options in schema.values(logger).items()
                  if options is not None}  # the schema declares every backend, null unless chosen
        for name in chosen:
            if name not in BACKENDS:
                raise VBenchError(f"logger={name!r} is not valid; choose none or any of: "
                                  f"{', '.join(BACKENDS)}, e.g. logger=[tensorboard,mlflow]")
        if not chosen:
            return
        info = RunInfo.of(config, Path(run_dir))
        for name, options in chosen.items():
            backend_class = _backend_class(name)
            try:
                self._backends.append(backend_class(options, info))
            except Exception as e:  # noqa: BLE001 - a tracker never costs the run
                warn(name, "could not start", e)

    @property
    def active(self) -> bool:
        """Whether a backend is open (it logs plots/ at finish, so they must be drawn)."""
        return bool(self._backends)

    def log_epoch(self, row: dict) -> None:
        self._each("log_epoch", row)

    def finish(self, metrics: dict, run_dir: Path) -> dict:
        """Log the final numbers and plots and close; returns `metrics` for chaining."""
        self._each("finish", metrics, Path(run_dir))
        self._backends = []
        return metrics

    def close(self, status: str) -> None:
        """End a run that did not finish (status: failed or interrupted)."""
        self._each("close", status)
        self._backends = []

    def _each(self, method: str, *args) -> None:
        for backend in list(self._backends):
            try:
                getattr(backend, method)(*args)
            except Exception as e:  # noqa: BLE001 - a tracker never costs the run
                warn(backend.name, f"failed ({method}) and is off for the rest of this run", e)
                self._backends.remove(backend)
                try:
                    backend.close(FAILED)
                except Exception:  # noqa: BLE001, S110 - already reported above
                    pass


def check_packages(logger: schema.Logger) -> None:
    """Every chosen tracker's package is installed (one line naming the pip extra otherwise),
    found without importing it: what a sweep checks of every job before its first."""
    import importlib.util

    for name, options in schema.values(logger).items():
        package = BACKENDS[name][2]
        if options is not None and importlib.util.find_spec(package) is None:
            raise VBenchError(f"logger={name} needs the {package} package: "
                              f"pip install 'vbench[{name}]'")


def _backend_class(name: str) -> type[Backend]:
    module_name, class_name, package = BACKENDS[name]
    try:
        importlib.import_module(package)
    except ImportError as e:
        raise VBenchError(f"logger={name} needs the {package} package: "
                          f"pip install 'vbench[{name}]' ({e})") from None
    return getattr(importlib.import_module(f".{module_name}", __name__), class_name)
