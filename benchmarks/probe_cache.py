"""Linear probe on a frozen ResNet-18: the feature cache against the seed 004 way.

Seed 004 pushes every batch through the frozen backbone on every epoch; vbench runs the
backbone once and trains the head on cached features. Both runs use the real `run()` on the
same composed config (CIFAR-format 32x32 RGB fake data, 5k images, 10 epochs, input kept at
32 px, random weights: they do not change the timing); `freeze.cache=false` forces the seed's
way. Prints train_time_s (caching included) and the whole run's wall time.

    PYTHONPATH=src python benchmarks/probe_cache.py [--epochs 10] [--device auto]
"""

import argparse
import tempfile
import time
from pathlib import Path

from hydra import compose, initialize_config_module

from vbench.training.run import run


def probe(cached: bool, epochs: int, device: str, out: Path) -> tuple[dict, float]:
    overrides = ["model=resnet18", "model.input_size=null", "freeze=backbone",
                 f"freeze.cache={str(cached).lower()}", "dataset=fake", "dataset.image_size=32",
                 "dataset.in_channels=3", "dataset.train_size=5000", "dataset.test_size=1000",
                 f"trainer.epochs={epochs}", f"trainer.device={device}", "scheduler=none"]
    with initialize_config_module("vbench.conf", version_base="1.3"):
        cfg = compose("config", overrides=overrides)
    start = time.perf_counter()
    metrics = run(cfg, out / ("cached" if cached else "uncached"))
    return metrics, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        results = {cached: probe(cached, args.epochs, args.device, Path(tmp))
                   for cached in (True, False)}
    (cached, cached_wall), (plain, plain_wall) = results[True], results[False]
    print(f"\nResNet-18 linear probe, {cached['sizes']['train']} train images 32x32, "
          f"{args.epochs} epochs, {cached['device']}")
    print(f"{'':28}{'train_time_s':>14}{'run wall s':>12}{'test acc':>10}")
    for label, m, wall in (("cached features (vbench)", cached, cached_wall),
                           ("full forward (seed 004)", plain, plain_wall)):
        print(f"{label:28}{m['train_time_s']:>14.2f}{wall:>12.2f}"
              f"{m['final']['test']['accuracy']:>10.4f}")
    ratio = cached["train_time_s"] / plain["train_time_s"]
    print(f"ratio cached / full forward: {ratio:.3f} of the training time "
          f"(target <= 0.2), {cached_wall / plain_wall:.3f} of the whole run")


if __name__ == "__main__":
    main()
