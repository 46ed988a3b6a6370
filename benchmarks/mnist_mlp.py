"""vbench against the seeds' idiom on full-size MNIST-format data, whole process each.

    python benchmarks/mnist_mlp.py [--epochs 1 5] [--device cpu]

Writes 60k/10k random-but-learnable 28x28 images as the four IDX files under a temporary
`MNIST/raw/` (torchvision reads them from there without downloading or checking MD5 sums), then
times, as separate processes, for each epoch count:

- vbench: `vbench dataset=mnist model=mlp ...` (784-128-128-10 MLP, Adam, batch 128), which
  also validates every epoch, writes checkpoints and plots, and evaluates best and final;
- the idiom of seed 001: torchvision.datasets.MNIST + Compose([ToTensor(), Normalize]) +
  DataLoader(batch 128, shuffle) and a plain loop, evaluating on the test loader every epoch.

vbench runs once before the timings so that its decoded-array cache is warm, as on a user's
second run; the cold first run is timed and printed too.
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

SRC = Path(__file__).resolve().parents[1] / "src"  # benchmark this checkout, not an install

IDIOM = '''
import sys
import torch
from torch import nn, optim
from torch.utils.data import DataLoader
from torchvision import datasets, transforms

root, epochs, device = sys.argv[1], int(sys.argv[2]), sys.argv[3]
torch.manual_seed(0)
transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize((0.1307,), (0.3081,))])
train_dataset = datasets.MNIST(root=root, train=True, download=False, transform=transform)
test_dataset = datasets.MNIST(root=root, train=False, download=False, transform=transform)
train_loader = DataLoader(train_dataset, batch_size=128, shuffle=True)
test_loader = DataLoader(test_dataset, batch_size=256, shuffle=False)

model = nn.Sequential(nn.Flatten(), nn.Linear(784, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(),
                      nn.Linear(128, 10)).to(device)
optimizer = optim.Adam(model.parameters(), lr=1e-3)
criterion = nn.CrossEntropyLoss()
for epoch in range(epochs):
    model.train()
    for x, y in train_loader:
        x, y = x.to(device), y.to(device)
        optimizer.zero_grad()
        loss = criterion(model(x), y)
        loss.backward()
        optimizer.step()
    model.eval()
    correct = 0
    with torch.no_grad():
        for x, y in test_loader:
            correct += (model(x.to(device)).argmax(1) == y.to(device)).sum().item()
    print(f"epoch {epoch + 1}: test accuracy {correct / len(test_dataset):.4f}")
'''


def write_mnist(raw: Path, seed: int = 0) -> None:
    """MNIST-sized IDX files: a smooth random pattern per digit plus noise, so models learn."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((10, 7, 7))
    patterns = np.kron(coarse, np.ones((4, 4)))  # (10, 28, 28), blocky but learnable
    raw.mkdir(parents=True, exist_ok=True)
    for prefix, n in (("train", 60_000), ("t10k", 10_000)):
        y = rng.integers(0, 10, n)
        x = np.clip(patterns[y] * 200 + rng.normal(0, 60, (n, 28, 28)), 0, 255)
        _write_idx(raw / f"{prefix}-images-idx3-ubyte", x.astype(np.uint8))
        _write_idx(raw / f"{prefix}-labels-idx1-ubyte", y.astype(np.uint8))


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = bytes([0, 0, 8, array.ndim]) + np.array(array.shape, dtype=">i4").tobytes()
    path.write_bytes(header + array.tobytes())


def timed(command: list[str], cwd: Path) -> float:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(SRC), os.environ.get("PYTHONPATH", "")])}
    start = time.perf_counter()
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if result.returncode != 0:
        sys.exit(f"{' '.join(command)} failed:\n{result.stdout}\n{result.stderr}")
    return elapsed


def vbench_command(root: Path, epochs: int, device: str, run_dir: Path) -> list[str]:
    return [sys.executable, "-m", "vbench", "dataset=mnist", f"dataset.root={root}", "model=mlp",
            "model.batchnorm=false", "model.depth=2", "model.width=128", "optimizer=adam",
            "trainer.batch_size=128", "scheduler=none", f"trainer.epochs={epochs}",
            f"trainer.device={device}", f"hydra.run.dir={run_dir}"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, nargs="+", default=[1, 5])
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_mnist(tmp / "data/MNIST/raw")
        (tmp / "idiom.py").write_text(IDIOM)
        cold = timed(vbench_command(tmp / "data", 1, args.device, tmp / "cold"), tmp)
        print(f"vbench 1 epoch, cold cache (decodes the IDX files): {cold:.1f} s", flush=True)
        print(f"{'epochs':>6}  {'vbench s':>9}  {'idiom s':>8}  {'ratio':>6}")
        for epochs in args.epochs:
            ours = timed(vbench_command(tmp / "data", epochs, args.device, tmp / f"run{epochs}"),
                         tmp)
            idiom = timed([sys.executable, "idiom.py", str(tmp / "data"), str(epochs),
                           args.device], tmp)
            print(f"{epochs:>6}  {ours:>9.1f}  {idiom:>8.1f}  {ours / idiom:>6.2f}", flush=True)
    print(f"(whole processes, {os.cpu_count()} CPU cores, device {args.device})")


if __name__ == "__main__":
    main()
