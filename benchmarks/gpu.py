"""Training on a GPU against the floor: vbench against a minimal loop doing the same work.

    python benchmarks/gpu.py                       # on a CUDA machine (about 5 minutes on an H200)
    python benchmarks/gpu.py --device cpu --tiny   # the same code paths, small, on a CPU

The work: Fashion-MNIST-shape images (dataset=fake, 1x28x28, 10 classes; 55,000 train / 5,000
val, --tiny 2,000 / 500), batch 128, Adam at 1e-3, the models `mlp` (2x128) and `cnn`. An
epoch is the training pass and the val pass. The minimal loop is the floor of that work: the
uint8 images resident on the device, per step an index, normalize, forward, loss, backward and
optimizer step (the same model, optimizer kernels and precision as vbench), then a val pass
under no_grad. Times are the fastest epoch after the first (warm-up, compilation).

Rows, per model (target in brackets, issue 20):
  float32         vbench trainer.precision=32 / minimal loop, float32          [<= 1.15]
  auto            vbench trainer.precision=auto / vbench float32 (which dtype) [<= 1.0]
  reduce-overhead vbench trainer.compile=reduce-overhead / vbench eager, with
                  what the run chose after measuring (metrics.json compile)    [<= 0.85]
and a sweep row: 10 jobs (mlp, depth 1-5 x seeds 0-1, 3 epochs) with hydra/launcher=fill
run.jobs_per_device=5 against the same sweep one job at a time, whole `vbench -m` processes
[>= 4x faster], with a check that both sweeps give the same numbers (on a CPU the serial
sweep runs with the fill jobs' share of the cores, so that both sum in the same order).
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

import torch

BATCH = 128


def compose(*overrides: str):
    from hydra import compose as hydra_compose
    from hydra import initialize_config_module

    with initialize_config_module("vbench.conf", version_base="1.3"):
        return hydra_compose("config", overrides=list(overrides))


def work(args) -> list[str]:
    """The overrides of the benchmark's data and batch, shared by vbench and the loop."""
    return ["dataset=fake", "dataset.image_size=28", "dataset.in_channels=1",
            f"dataset.train_size={args.train + args.val}", f"dataset.test_size={args.val}",
            f"dataset.val_size={args.val}", "dataset.noise=3", f"trainer.batch_size={BATCH}",
            f"trainer.device={args.device}", "optimizer=adam", "optimizer.lr=1e-3",
            "eval.plots=[]", "eval.background_plots=false"]


def vbench_epoch_s(args, model: str, tmp: Path, *overrides: str) -> tuple[float, dict]:
    """vbench's fastest epoch after the first (history.csv epoch_s: train and val passes),
    and its metrics.json."""
    from vbench.core.console import console
    from vbench.training.run import run

    console.quiet = True  # the table is the output
    run_dir = tmp / f"{model}-{len(list(tmp.iterdir()))}"
    metrics = run(compose(*work(args), f"model={model}", f"trainer.epochs={args.epochs}",
                          *overrides), run_dir)
    header, *rows = (run_dir / "history.csv").read_text().splitlines()
    column = header.split(",").index("epoch_s")
    return min(float(row.split(",")[column]) for row in rows[1:]), metrics


def loop_epoch_s(args, model: str, amp_dtype) -> float:
    """The minimal loop's fastest epoch after the first, on the data vbench trains on."""
    from vbench.core.device import autocast
    from vbench.core.schema import typed
    from vbench.data import load_data
    from vbench.models import InputSpec, build_model
    from vbench.training.optim import build_optimizer

    cfg = typed(compose(*work(args), f"model={model}"))
    device = torch.device(args.device)
    data = load_data(cfg.dataset, device)
    torch.manual_seed(0)
    net = build_model(cfg.model, InputSpec.of(data)).to(device)
    optimizer = build_optimizer(cfg.optimizer, net)  # fused kernels on CUDA, as vbench's
    (x, y), (vx, vy) = (data.train.x, data.train.y), (data.val.x, data.val.y)
    mean, std = (s.view(1, -1, 1, 1).to(device) for s in (data.train.mean, data.train.std))
    times = []
    for _ in range(args.epochs):
        synchronize(device)
        start = time.perf_counter()
        net.train()
        for idx in torch.randperm(len(y), device=device).split(BATCH):
            xb = (x[idx].float() / 255 - mean) / std
            with autocast(device, amp_dtype):
                loss = torch.nn.functional.cross_entropy(net(xb), y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        net.eval()
        with torch.no_grad(), autocast(device, amp_dtype):
            correct = sum((net((vx[i:i + 1024].float() / 255 - mean) / std).argmax(1)
                           == vy[i:i + 1024]).sum() for i in range(0, len(vy), 1024))
        correct.item()
        synchronize(device)
        times.append(time.perf_counter() - start)
    return min(times[1:])


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def dtype_of(metrics: dict):
    return None if metrics["precision"] == "float32" else getattr(torch, metrics["precision"])


def model_rows(args, model: str, tmp: Path) -> list[tuple]:
    fp32, _ = vbench_epoch_s(args, model, tmp, "trainer.precision=32")
    floor = loop_epoch_s(args, model, None)
    auto, auto_metrics = vbench_epoch_s(args, model, tmp, "trainer.precision=auto")
    compiled, compiled_metrics = vbench_epoch_s(args, model, tmp, "trainer.precision=32",
                                                "trainer.compile=reduce-overhead")
    chose = compiled_metrics["compile"]
    return [
        (model, "float32", f"{fp32:.3f} s", f"loop {floor:.3f} s", fp32 / floor, "<= 1.15", ""),
        (model, "auto", f"{auto:.3f} s", f"fp32 {fp32:.3f} s", auto / fp32, "<= 1.0",
         f"{auto_metrics['precision']}: {auto_metrics['precision_reason']}"),
        (model, "reduce-overhead", f"{compiled:.3f} s", f"eager {fp32:.3f} s", compiled / fp32,
         "<= 0.85", (f"trained {chose['trained']} (step {chose['compiled_ms_per_step']} ms "
                     f"compiled, {chose['eager_ms_per_step']} ms eager)")),
    ]


def sweep_row(args, tmp: Path) -> tuple:
    jobs = ["model=mlp", "model.depth=1,2,3,4,5", "trainer.seed=0,1",
            f"trainer.epochs={args.sweep_epochs}"]
    # this checkout's vbench first, and whatever the caller's path holds after it
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))}
    if args.device == "cpu":  # fill gives each job its share of the cores: so does serial here,
        env["OMP_NUM_THREADS"] = str(max(1, os.cpu_count() // args.per_device))  # same sums
    walls, numbers = {}, {}
    for name, launcher in (("serial", []), ("fill", ["hydra/launcher=fill",
                                                     f"run.jobs_per_device={args.per_device}"])):
        out = tmp / f"sweep-{name}"
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "vbench", "-m", *work(args), *jobs,
                        f"hydra.sweep.dir={out}", *launcher], check=True, cwd=tmp,
                       stdout=subprocess.DEVNULL, env=env)
        walls[name] = time.perf_counter() - start
        numbers[name] = [{k: m[k] for k in ("best", "final")} for m in (
            json.loads(p.read_text()) for p in sorted(out.glob("*/metrics.json")))]
    same = _compare(numbers["serial"], numbers["fill"])
    return ("sweep", f"10 jobs, {args.per_device}/device", f"{walls['fill']:.1f} s",
            f"serial {walls['serial']:.1f} s", walls["fill"] / walls["serial"], "<= 0.25",
            f"{walls['serial'] / walls['fill']:.2f}x faster, {same}")


def _compare(serial: list[dict], fill: list[dict]) -> str:
    """Whether the two sweeps' jobs got the same numbers: accuracies and F1 exactly; losses
    to within float32 rounding of a different summation order (on a CPU, fill gives each job
    fewer torch threads, which sum in another order)."""
    def values(jobs, loss: bool):
        return [v for job in jobs for which in ("best", "final") for split in ("val", "test")
                for k, v in sorted(job[which][split].items()) if (k == "loss") == loss]

    if values(serial, False) != values(fill, False):
        return "ACCURACIES DIFFER"
    worst = max(abs(a - b) / abs(a) for a, b in zip(values(serial, True), values(fill, True)))
    return "same numbers" if worst == 0 else f"same accuracies, losses within {worst:.1g}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--models", nargs="+", default=["mlp", "cnn"])
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--tiny", action="store_true", help="2,000 images, 2 epochs, 2 per device")
    parser.add_argument("--no-sweep", action="store_true")
    args = parser.parse_args()
    args.train, args.val, args.sweep_epochs, args.per_device = 55_000, 5_000, 3, 5
    if args.tiny:
        args.train, args.val, args.epochs, args.sweep_epochs, args.per_device = 2000, 500, 2, 1, 2
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("benchmarks/gpu.py: no CUDA device on this machine; nothing measured "
              "(--device cpu --tiny runs the same code paths on the CPU)")
        return
    where = (torch.cuda.get_device_name(args.device) if args.device.startswith("cuda")
             else f"CPU, {torch.get_num_threads()} threads")
    print(f"{where}, torch {torch.__version__}; seconds per epoch ({args.train:,} train + "
          f"{args.val:,} val images, batch {BATCH}), fastest after the first", flush=True)
    header = ("model", "row", "vbench", "baseline", "ratio", "target", "")
    print(" | ".join(header))
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for model in args.models:
            for row in model_rows(args, model, tmp):
                show(row)
        if not args.no_sweep:
            show(sweep_row(args, tmp))


def show(row: tuple) -> None:
    *cells, ratio, target, note = row
    print(" | ".join([*cells, f"{ratio:.2f}x", target, note]), flush=True)


if __name__ == "__main__":
    main()
