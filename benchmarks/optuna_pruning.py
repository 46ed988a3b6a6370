"""The README's digits search (`vbench -m hparams_search=digits_optuna`: TPE over lr, width, depth
and dropout, 20 epochs a trial) with `hydra.sweeper.pruner=hyperband` against
`hydra.sweeper.pruner=none`: wall time of the whole `vbench -m` process (start-up, every
trial's files and figures, the summary: what a user waits for) and the best val accuracy.

Both searches draw the same first trials (the preset seeds its sampler; trial k is drawn with
seed + k), so until TPE's 10 random start-up trials are done they train the same configs, and
pruning decides what follows. Noise: the best val accuracy is a proportion of the n_val
validation images, so its binomial standard error is sqrt(p (1 - p) / n_val); the searches
agree "within noise" when their best val accuracies differ by at most two standard errors.

    PYTHONPATH=src python benchmarks/optuna_pruning.py [--trials 40] [--pruner hyperband]
"""

import argparse
import json
import math
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

VBENCH = Path(sys.executable).with_name("vbench")


def search(out: Path, trials: int, pruner: str, extra: list[str]) -> dict:
    start, cpu = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
    subprocess.run([str(VBENCH), "-m", "hparams_search=digits_optuna",
                    f"hydra.sweeper.n_trials={trials}", f"hydra.sweeper.pruner={pruner}",
                    f"hydra.sweep.dir={out}", *extra],
                   env={k: v for k, v in os.environ.items() if k != "VBENCH_PAUSE_AT"},
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    seconds = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_s = after.ru_utime + after.ru_stime - cpu.ru_utime - cpu.ru_stime
    study = yaml.safe_load((out / "optimization_results.yaml").read_text())
    jobs = [json.loads(p.read_text()) for p in out.glob("*/metrics.json")]
    return {"seconds": seconds, "cpu_s": cpu_s, "best": study["best_value"], "states": study["states"],
            "epochs": sum(m["epochs_run"] for m in jobs), "n_val": jobs[0]["sizes"]["val"],
            "train_s": sum(m["train_time_s"] for m in jobs),
            # the work trained, whatever the machine's load: parameters x epochs, summed
            "param_epochs": sum(m["params"]["total"] * m["epochs_run"] for m in jobs) / 1e6}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40)
    parser.add_argument("--pruner", default="hyperband")
    parser.add_argument("extra", nargs="*", help="more overrides for both searches")
    args = parser.parse_args()
    load = os.getloadavg()
    print(f"load average before: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}; "
          f"{os.cpu_count()} CPUs")
    sys.stdout.flush()
    with tempfile.TemporaryDirectory() as tmp:
        base = search(Path(tmp) / "none", args.trials, "none", args.extra)
        pruned = search(Path(tmp) / args.pruner, args.trials, args.pruner, args.extra)
    load = os.getloadavg()
    print(f"load average after: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    p, n = base["best"], base["n_val"]
    se = math.sqrt(p * (1 - p) / n)
    print(f"{'pruner':<12} | {'wall s':>7} | {'CPU s':>7} | {'epochs':>6} | {'train s':>7} | "
          f"{'M param-epochs':>14} | {'best val acc':>12} | states")
    for name, r in (("none", base), (args.pruner, pruned)):
        states = ", ".join(f"{v} {k}" for k, v in r["states"].items())
        print(f"{name:<12} | {r['seconds']:7.1f} | {r['cpu_s']:7.1f} | {r['epochs']:6d} | "
              f"{r['train_s']:7.1f} | {r['param_epochs']:14.1f} | {r['best']:12.4f} | {states}")
    delta = pruned["best"] - base["best"]
    print(f"wall time {args.pruner} / none: {pruned['seconds'] / base['seconds']:.2f}x; CPU time "
          f"{pruned['cpu_s'] / base['cpu_s']:.2f}x; epochs trained "
          f"{pruned['epochs'] / base['epochs']:.2f}x; training time "
          f"{pruned['train_s'] / base['train_s']:.2f}x; parameters x epochs "
          f"{pruned['param_epochs'] / base['param_epochs']:.2f}x")
    print(f"best val accuracy {args.pruner} - none: {delta:+.4f}; binomial standard error of "
          f"the unpruned best on {n} val images: {se:.4f}: "
          f"{'within' if abs(delta) <= 2 * se else 'outside'} noise (2 SE)")
    # What pruning can reach at all: it saves training only. The rest (start-up, each trial's
    # evaluation, figures and files, the summary) is paid by both searches alike.
    outside = {name: r["seconds"] - r["train_s"] for name, r in (("none", base),
                                                                 (args.pruner, pruned))}
    print(f"outside training: none {outside['none']:.1f} s ({outside['none'] / base['seconds']:.0%}"
          f" of its wall time), {args.pruner} {outside[args.pruner]:.1f} s; with no time outside "
          f"training the wall time ratio would be the training time ratio, "
          f"{pruned['train_s'] / base['train_s']:.2f}x")


if __name__ == "__main__":
    main()
