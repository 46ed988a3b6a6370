"""hydra/sweeper=optuna for vbench, on Optuna >= 4: a shim. Hydra instantiates plugins only from
classes defined in the hydra_plugins namespace, so the class lives here; what it does is
vbench.commands.optuna_sweeper, and its keys are vbench.core.schema.OptunaSweeper."""

from dataclasses import dataclass, field
from typing import Any

from hydra.core.config_store import ConfigStore
from hydra.plugins.sweeper import Sweeper

# hydra-optuna-sweeper (Optuna < 3) stores the same names, hydra/sweeper/optuna and
# hydra/sweeper/sampler/*: its entries are stored first, so that vbench's below replace them
# whatever order Hydra scans the plugins in (the sweeper prints which one runs).
try:
    import hydra_plugins.hydra_optuna_sweeper.config  # noqa: F401
except ImportError:
    pass

from vbench.core.schema import SAMPLERS, OptunaSweeper


@dataclass
class OptunaSweeperConf(OptunaSweeper):
    defaults: list[Any] = field(default_factory=lambda: [{"sampler": "tpe"}])


_store = ConfigStore.instance()
_store.store(group="hydra/sweeper", name="optuna", node=OptunaSweeperConf, provider="vbench")
for _name, _node in SAMPLERS.items():
    _store.store(group="hydra/sweeper/sampler", name=_name, node=_node, provider="vbench")


class VBenchOptunaSweeper(Sweeper):
    def __init__(self, **node: Any) -> None:  # the node is read, typed, from the config
        self._search = None

    def setup(self, *, hydra_context, task_function, config) -> None:
        from vbench.commands.optuna_sweeper import Search

        self._search = Search(hydra_context, task_function, config)

    def sweep(self, arguments: list[str]) -> Any:
        return self._search.sweep(arguments)
