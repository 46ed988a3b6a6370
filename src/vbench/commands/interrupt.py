"""How a stopped command ends: SIGTERM (SLURM preemption, `kill`) and Ctrl-C stop a run the
way KeyboardInterrupt does, every unfinished job records `interrupted`, and the command exits
130 with the command line that continues it.

A sweep whose jobs run in worker processes (hydra/launcher=joblib, fill, submitit_local; stack
with run.jobs_per_device) would otherwise leave them training as orphans when its main process
is killed, holding their run directories' locks. `EndWorkersWithSweep`, a Hydra callback, makes the main process pass the
signal on to its workers, wait until each has written its `interrupted` metrics.json and gone,
then print the continue command once and exit 130."""

import os
import shlex
import signal
import sys
import time
from pathlib import Path

from hydra.experimental.callback import Callback

SWEEP_MAIN = "VBENCH_SWEEP_MAIN"  # the pid of a sweep's main process, in its workers' env
WAIT_FOR_WORKERS_S = 300  # a worker still alive after this is stuck: stop waiting for it


def continue_command(pin: str, directory) -> str:
    """The command line that continues an interrupted run or sweep, as the user can paste it:
    theirs with the directory pinned (`pin`: hydra.run.dir or hydra.sweep.dir).
    trainer.resume=auto (the default) continues from last.pt, or starts the run again when it
    was stopped before its first epoch ended."""
    kept = [a for a in sys.argv[1:] if not a.startswith((f"{pin}=", "trainer.resume="))]
    return shlex.join(["vbench", *kept, f"{pin}={directory}"])


def stop_job(signum, frame):
    """A job's handler of SIGTERM and SIGINT: the first signal stops the run as Ctrl-C does;
    later ones are ignored, so that the run can write its `interrupted` metrics.json."""
    for name in (signal.SIGTERM, signal.SIGINT):
        signal.signal(name, signal.SIG_IGN)
    raise KeyboardInterrupt(signal.Signals(signum).name)


def in_worker() -> bool:
    """Whether this process is a worker of a sweep's main process (not the main itself)."""
    main = os.environ.get(SWEEP_MAIN)
    return main is not None and main != str(os.getpid())


def _workers() -> list[int]:
    """The pids of this process's children that run jobs, from /proc (Linux; elsewhere none
    are found). joblib's resource tracker is left out: it ignores SIGTERM by design and ends
    with the main process, so waiting for it would wait out WAIT_FOR_WORKERS_S."""
    me, found = os.getpid(), []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                command = (entry / "cmdline").read_bytes()
            except OSError:
                continue  # gone meanwhile
            if int(fields[1]) == me and fields[0] != "Z" and b"resource_tracker" not in command:
                found.append(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


class EndWorkersWithSweep(Callback):
    """In the main process of a sweep whose launcher runs jobs in worker processes: SIGTERM or
    SIGINT is passed on to every worker (each marks its job interrupted and exits), and once
    they are gone the main prints the continue command and exits 130. Sweeps run in the main
    process (the basic launcher) keep the job's own handling."""

    def on_multirun_start(self, config, **kwargs) -> None:
        target = str(config.hydra.launcher.get("_target_") or "")
        if not target.endswith(("JoblibLauncher", "LocalLauncher", "StackLauncher")):
            return  # serial: the job itself handles the signal; SLURM: sbatch's jobs are not ours
        self.sweep_dir = str(config.hydra.sweep.dir)
        os.environ[SWEEP_MAIN] = str(os.getpid())
        signal.signal(signal.SIGTERM, self._end)
        signal.signal(signal.SIGINT, self._end)

    def _end(self, signum, frame) -> None:
        for name in (signal.SIGTERM, signal.SIGINT):
            signal.signal(name, signal.SIG_IGN)
        workers = _workers()
        for pid in workers:
            try:
                os.kill(pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
        deadline = time.monotonic() + WAIT_FOR_WORKERS_S
        while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.1)
        from ..core.console import err_console

        err_console.print(f"vbench: interrupted ({signal.Signals(signum).name}); continue with: "
                          f"{continue_command('hydra.sweep.dir', self.sweep_dir)}",
                          markup=False, highlight=False, soft_wrap=True)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(130)  # joblib's and Hydra's teardown would wait on the workers just ended
