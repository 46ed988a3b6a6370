"""hydra/launcher=stack: Hydra finds launchers only in the hydra_plugins namespace, so this
thin class lives here; the work is vbench's (commands/stack.py). Imports nothing heavy: Hydra
imports every plugin module at start-up."""

from hydra.plugins.launcher import Launcher


class StackLauncher(Launcher):
    """A sweep's jobs that differ only in trainer.seed train as one stacked model."""

    def __init__(self, **params) -> None:
        self.params = params
        self.config = self.hydra_context = self.task_function = None

    def setup(self, *, hydra_context, task_function, config) -> None:
        self.hydra_context, self.task_function, self.config = hydra_context, task_function, config

    def launch(self, job_overrides, initial_job_idx):
        from vbench.commands.stack import launch

        return launch(self, job_overrides, initial_job_idx)
