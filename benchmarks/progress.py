"""What the in-epoch progress costs: train_one_epoch on the default run's data and model
(digits, mlp, batch 64) without a callback, with the live bars (a terminal), and with the
line-every-N-seconds reporter (a log), alternating, median of `--repeat` epochs each.

    python benchmarks/progress.py [--repeat 30]
"""

import argparse
import io
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))  # this checkout


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=30)
    args = parser.parse_args()
    import torch
    from hydra import compose, initialize_config_module
    from rich.console import Console

    from vbench.core import console as console_module
    from vbench.core.schema import typed
    from vbench.data import load_data
    from vbench.models import InputSpec, build_model
    from vbench.training.loop import StepRecipe, train_one_epoch
    from vbench.training.optim import build_optimizer

    with initialize_config_module("vbench.conf", version_base="1.3"):
        cfg = typed(compose("config", overrides=["trainer.device=cpu"]))
    data = load_data(cfg.dataset, torch.device("cpu"))
    spec = InputSpec(data.in_channels, data.image_size, data.num_classes, tuple(data.mean),
                     tuple(data.std))
    model = build_model(cfg.model, spec)
    recipe = StepRecipe(build_optimizer(cfg.optimizer, model),
                        torch.amp.GradScaler("cpu", enabled=False), None, None)
    generator = torch.Generator().manual_seed(0)
    batches = data.train.num_batches(cfg.trainer.batch_size, drop_single=True)
    terminal = Console(file=io.StringIO(), force_terminal=True, width=120)
    times = {"no callback": [], "live bars (terminal)": [], "lines every 30 s (log)": []}

    def epoch(callback):
        start = time.perf_counter()
        train_one_epoch(model, data.train, cfg.trainer.batch_size, recipe, generator, callback)
        return time.perf_counter() - start

    epoch(None)  # warm-up
    console_module.console = terminal
    with console_module.epoch_progress(args.repeat, "bench", batches) as live:
        for _ in range(args.repeat):
            times["no callback"].append(epoch(None))
            times["live bars (terminal)"].append(epoch(live.batch))
            report = console_module.EpochReport(batches, 30.0)
            times["lines every 30 s (log)"].append(epoch(report.batch))
        # The callbacks alone, many calls: epochs on a loaded machine vary more than they cost.
        calls = 20_000
        per_call = {}
        for name, callback in (("live bars (terminal)", live.batch),
                               ("lines every 30 s (log)", console_module.EpochReport(
                                   calls, 30.0).batch)):
            start = time.perf_counter()
            for _ in range(calls):
                callback(64)
            per_call[name] = (time.perf_counter() - start) / calls
    base = statistics.median(times["no callback"])
    print(f"default run's epoch: {len(data.train)} images, {batches} batches of "
          f"{cfg.trainer.batch_size}; median of {args.repeat} epochs each")
    for name, values in times.items():
        median = statistics.median(values)
        print(f"  {name:24s} {median * 1000:8.2f} ms/epoch  ({median / base:.3f}x, "
              f"{(median - base) * 1000:+.2f} ms)")
    for name, seconds in per_call.items():
        print(f"  {name}: {seconds * 1e6:.2f} µs a batch = {seconds * batches * 1000:.3f} ms "
              f"an epoch of {batches} batches")


if __name__ == "__main__":
    main()
