"""bf16 autocast (+ channels_last) against float32 on the CPU, for the seed CNNs and ResNet-18.

    python benchmarks/cpu_bf16.py [--images 2000] [--epochs 3] [--seeds 0 1 2] [--steps 5]

1. Per training step (always): forward + backward + Adam step of each model on a batch of 128
   32x32 RGB images, float32 against bf16 autocast with channels_last; milliseconds per step
   (median of --steps after one warm-up step).
2. Whole vbench runs (only on a CPU with native bf16: AMX / avx512_bf16, where vbench accepts
   trainer.precision=bf16-mixed): CIFAR-10-format pickles of --images learnable images, each
   model for --epochs epochs and each seed, in both precisions; mean epoch seconds and final
   test accuracy, so "faster" and "as accurate" are read off one table.

trainer.precision=auto stays float32 on CPU unless this table shows bf16 faster at the same
accuracy on a CPU that has it. Benchmarks this checkout (src/ and tests/ on sys.path).
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
AT_32PX = {"resnet18": ["model.input_size=null"]}  # its default resizes to 224 px
sys.path[:0] = [str(ROOT / "src"), str(ROOT / "tests")]

import torch
from hydra import compose, initialize_config_module

from vbench.core.device import _cpu_has_bf16
from vbench.models import InputSpec, build_model

MODELS = ("simple_cnn", "convnet", "cnn", "resnet18")
SPEC = InputSpec(3, 32, 10)


def config(*overrides: str):
    with initialize_config_module("vbench.conf", version_base="1.3"):
        return compose("config", overrides=list(overrides))


def step_ms(arch: str, bf16: bool, steps: int) -> float:
    """Median milliseconds of one training step of `arch` on a batch of 128."""
    torch.manual_seed(0)
    model = build_model(config(f"model={arch}", *AT_32PX.get(arch, [])).model, SPEC)
    x, y = torch.randn(128, 3, 32, 32), torch.randint(0, 10, (128,))
    if bf16:
        model, x = model.to(memory_format=torch.channels_last), x.contiguous(
            memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters())
    times = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            loss = torch.nn.functional.cross_entropy(model(x), y)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times[1:])


def whole_runs(args) -> None:
    from helpers.formats import write_cifar10
    from vbench.core.console import console
    from vbench.training.run import run

    console.quiet = True  # the table below is the output

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_cifar10(tmp, per_batch=args.images // 5, test=args.images // 5)
        print(f"\n{'model':<11} {'precision':<22} {'epoch s':>8} {'test acc (mean, per seed)':>28}")
        for arch in args.models:
            for precision, extra in (("32", []), ("bf16-mixed", ["trainer.channels_last=true"])):
                epoch_s, accs = [], []
                for seed in args.seeds:
                    cfg = config("dataset=cifar10", f"dataset.root={tmp}", "dataset.val_size=0.1",
                                 f"model={arch}", *AT_32PX.get(arch, []), "trainer.device=cpu",
                                 f"trainer.precision={precision}", f"trainer.seed={seed}",
                                 f"trainer.epochs={args.epochs}", "eval.plots=[]", *extra)
                    m = run(cfg, tmp / f"{arch}-{precision}-{seed}")
                    epoch_s.append(m["train_time_s"] / m["epochs_run"])
                    accs.append(m["final"]["test"]["accuracy"])
                label = precision + (" + channels_last" if extra else "")
                print(f"{arch:<11} {label:<22} {statistics.mean(epoch_s):>8.2f} "
                      f"{statistics.mean(accs):>8.4f} ({', '.join(f'{a:.3f}' for a in accs)})",
                      flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2000)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    args = parser.parse_args()
    native = _cpu_has_bf16()
    print(f"CPU capability {torch.backends.cpu.get_cpu_capability()}, native bf16 (AMX / "
          f"avx512_bf16): {native}, {torch.get_num_threads()} threads")
    print(f"{'model':<11} {'fp32 ms/step':>13} {'bf16+cl ms/step':>16} {'bf16 / fp32':>12}")
    for arch in args.models:
        fp32, bf16 = step_ms(arch, False, args.steps), step_ms(arch, True, args.steps)
        print(f"{arch:<11} {fp32:>13.1f} {bf16:>16.1f} {bf16 / fp32:>12.2f}", flush=True)
    if native:
        whole_runs(args)
    else:
        print("no native bf16 on this CPU: vbench refuses trainer.precision=bf16-mixed here and "
              "auto stays float32; the whole-run accuracy table needs a CPU with AMX/avx512_bf16")


if __name__ == "__main__":
    main()
