"""hydra/sweeper=optuna for vbench, on Optuna >= 4: a shim. Hydra instantiates plugins only from
classes defined in the hydra_plugins namespace, so the class lives here, with its ConfigStore
entries; the search itself is vbench.commands.optuna_sweeper and its keys are
vbench.core.schema.OptunaSweeper."""

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.plugins.sweeper import Sweeper

from vbench.core.schema import SAMPLERS, OptunaSweeper


@dataclass
class OptunaSweeperConf(OptunaSweeper):
    defaults: list[Any] = field(default_factory=lambda: [{"sampler": "tpe"}])


def store() -> None:
    """hydra/sweeper/optuna and hydra/sweeper/sampler/<name>. hydra-optuna-sweeper stores the
    same names; Hydra's plugin scan runs both in the order of the plugins' folders, so vbench
    stores its entries again after the scan (commands/cli.py) and the sweeper prints which one
    runs."""
    config_store = ConfigStore.instance()
    config_store.store(group="hydra/sweeper", name="optuna", node=OptunaSweeperConf,
                       provider="vbench")
    for name, node in SAMPLERS.items():
        config_store.store(group="hydra/sweeper/sampler", name=name, node=node, provider="vbench")


store()


class VBenchOptunaSweeper(Sweeper):
    def __init__(self, **node: Any) -> None:  # the node is read, typed, from the config
        self._search = None

    def setup(self, *, hydra_context, task_function, config) -> None:
        from vbench.commands.optuna_sweeper import Search

        self._search = Search(hydra_context, task_function, config)

    def sweep(self, arguments: list[str]) -> Any:
        return self._search.sweep(arguments)
