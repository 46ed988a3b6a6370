"""Training throughput on a GPU: vbench (data resident on the GPU, batches sliced there) against
the seeds' idiom (a torchvision-style Dataset decoding each uint8 image with ToTensor +
Normalize, a DataLoader with workers and pinned memory, batches copied from the host).

    python benchmarks/gpu.py [--models resnet18 simple_cnn convnet cnn] [--epochs 2]
    python benchmarks/gpu.py --device cpu --tiny     # the same code paths, small, on a CPU

CIFAR-10-size fake data (50,000 train / 10,000 test 3x32x32 images, 10 classes; --tiny: 1,000
/ 200), batch 128, Adam. Each model runs in float32, bf16 autocast, bf16 + channels_last and
bf16 + channels_last + torch.compile (--no-compile skips the last). Printed: images/s of the
last epoch (training plus vbench's validation pass; the idiom evaluates nothing), so run at
least 2 epochs on a GPU to leave warm-up and compilation out. Exits with a message when
the device is not there.
"""

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
AT_32PX = {"resnet18": ["model.input_size=null"]}  # its default resizes to 224 px
sys.path.insert(0, str(ROOT / "src"))

import torch  # noqa: E402

VARIANTS = {  # name: (bf16 autocast, channels_last, torch.compile)
    "fp32": (False, False, False),
    "bf16": (True, False, False),
    "bf16+cl": (True, True, False),
    "bf16+cl+compile": (True, True, True),
}


def fake_cifar(train: int, test: int):
    from hydra import compose, initialize_config_module

    from vbench.data.fake import make_fake

    with initialize_config_module("vbench.conf", version_base="1.3"):
        cfg = compose("config", overrides=["dataset=fake", f"dataset.train_size={train}",
                                           f"dataset.test_size={test}"])
    return make_fake(cfg.dataset)


def vbench_images_per_s(arch, variant, args, tmp: Path) -> float:
    from hydra import compose, initialize_config_module

    from vbench.core.console import console
    from vbench.training.run import run

    console.quiet = True  # the table below is the output

    bf16, channels_last, compiled = VARIANTS[variant]
    with initialize_config_module("vbench.conf", version_base="1.3"):
        cfg = compose("config", overrides=[
            "dataset=fake", f"dataset.train_size={args.train}", f"dataset.test_size={args.test}",
            f"model={arch}", *AT_32PX.get(arch, []), f"trainer.device={args.device}",
            f"trainer.precision={'bf16-mixed' if bf16 else '32'}", "trainer.batch_size=128",
            f"trainer.channels_last={str(channels_last).lower()}",
            f"trainer.compile={str(compiled).lower()}", f"trainer.epochs={args.epochs}",
            "eval.plots=[]"])
    metrics = run(cfg, tmp / f"{arch}-{variant}")
    last_epoch_s = _last_epoch_s(tmp / f"{arch}-{variant}" / "history.csv")
    return metrics["sizes"]["train"] / last_epoch_s


def _last_epoch_s(history: Path) -> float:
    header, *rows = history.read_text().splitlines()
    return float(rows[-1].split(",")[header.split(",").index("epoch_s")])


class IdiomDataset(torch.utils.data.Dataset):
    """What torchvision.datasets.CIFAR10 does per item: a PIL image, then the transform."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor):
        from torchvision import transforms

        self.images, self.labels = x.permute(0, 2, 3, 1).numpy(), y.tolist()
        self.transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize(
            (0.4914, 0.4822, 0.4465), (0.247, 0.243, 0.261))])

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        from PIL import Image

        return self.transform(Image.fromarray(self.images[i])), self.labels[i]


def idiom_images_per_s(arch, variant, args, raw) -> float:
    from hydra import compose, initialize_config_module

    from vbench.models import InputSpec, build_model

    bf16, channels_last, compiled = VARIANTS[variant]
    device = torch.device(args.device)
    with initialize_config_module("vbench.conf", version_base="1.3"):
        model_cfg = compose("config", overrides=[f"model={arch}", *AT_32PX.get(arch, [])]).model
    torch.manual_seed(0)
    model = build_model(model_cfg, InputSpec(3, 32, 10)).to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    step_model = torch.compile(model) if compiled else model
    loader = torch.utils.data.DataLoader(
        IdiomDataset(raw.train_x, raw.train_y), batch_size=128, shuffle=True,
        num_workers=args.workers, pin_memory=device.type == "cuda",
        persistent_workers=args.workers > 0)
    for _ in range(args.epochs):
        start = time.perf_counter()
        for x, y in loader:
            x, y = x.to(device, non_blocking=True), y.to(device, non_blocking=True)
            if channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                loss = torch.nn.functional.cross_entropy(step_model(x), y)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        epoch_s = time.perf_counter() - start
    return len(raw.train_y) / epoch_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--models", nargs="+", default=["resnet18", "simple_cnn", "convnet", "cnn"])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--workers", type=int, default=4)
    parser.add_argument("--tiny", action="store_true", help="1,000 images, 1 epoch, fp32 and bf16")
    parser.add_argument("--no-compile", action="store_true")
    args = parser.parse_args()
    args.train, args.test = (1000, 200) if args.tiny else (50_000, 10_000)
    variants = list(VARIANTS)
    if args.tiny:
        args.epochs, args.workers, variants = 1, 0, ["fp32", "bf16+cl"]
    if args.no_compile:
        variants = [v for v in variants if "compile" not in v]
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        print("benchmarks/gpu.py: no CUDA device on this machine; nothing measured "
              "(--device cpu --tiny runs the same code paths on the CPU)")
        return
    if args.device == "cpu":
        from vbench.core.device import _cpu_has_bf16

        if not _cpu_has_bf16():  # vbench refuses emulated bf16 on CPU: compare float32 only
            variants = [v for v in variants if not VARIANTS[v][0]]
    name = torch.cuda.get_device_name(args.device) if args.device.startswith("cuda") else "CPU"
    raw = fake_cifar(args.train, args.test)
    print(f"{name}, {args.train} train images 3x32x32, batch 128, images/s of epoch "
          f"{args.epochs} (vbench: training + validation; idiom: training only)")
    print(f"{'model':<11} {'variant':<16} {'vbench':>9} {'idiom':>9} {'ratio':>6}")
    with tempfile.TemporaryDirectory() as tmp:
        for arch in args.models:
            for variant in variants:
                ours = vbench_images_per_s(arch, variant, args, Path(tmp))
                theirs = idiom_images_per_s(arch, variant, args, raw)
                print(f"{arch:<11} {variant:<16} {ours:>9.0f} {theirs:>9.0f} {ours / theirs:>6.2f}",
                      flush=True)


if __name__ == "__main__":
    main()
