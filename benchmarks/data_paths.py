"""The cost curve of the data paths: epoch time, images/s and peak memory against dataset size,
for the in-memory path (decoded once into a uint8 tensor), the streaming path (decoded per
batch in DataLoader workers) and two torchrun processes (in memory, half the batch each).

Writes an ImageFolder of N 64x64 PNGs per size (10 classes, random noise: decoding cost is
what matters), then runs real `vbench` processes (MLP, 2 epochs, CPU, no plots) and reads
epoch 2's time from history.csv (epoch 1 includes warm-up). Peak RSS is the largest process's
(the ranks' or the workers', whichever is larger), from getrusage of the children.

    PYTHONPATH=src python benchmarks/data_paths.py [--sizes 1000,4000,16000] [--workers 2]
"""

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
from PIL import Image

WRAPPER = ("import resource, subprocess, sys; rc = subprocess.run(sys.argv[1:]).returncode; "
           "print('MAXRSS', resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss); "
           "sys.exit(rc)")


def write_images(root: Path, n: int, size: int = 64, classes: int = 10) -> None:
    rng = np.random.default_rng(0)
    for i in range(n):
        folder = root / "train" / f"c{i % classes}"
        folder.mkdir(parents=True, exist_ok=True)
        pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{i}.png")


def measure(root: Path, out: Path, mode: str, workers: int) -> dict:
    overrides = ["dataset=imagefolder", f"dataset.root={root}", "dataset.image_size=64",
                 "model=mlp", "trainer.epochs=2", "trainer.device=cpu", "trainer.precision=32",
                 "trainer.batch_size=128", "eval.plots=[]", f"hydra.run.dir={out}",
                 f"dataset.num_workers={workers}",
                 f"dataset.in_memory={'false' if mode == 'streaming' else 'true'}"]
    command = [sys.executable, "-m", "vbench", *overrides]
    if mode == "2 processes":
        command = [sys.executable, "-m", "torch.distributed.run", "--standalone",
                   "--nproc_per_node=2", "-m", "vbench", *overrides[:-4], "trainer.batch_size=64",
                   *overrides[-4:]]
    done = subprocess.run([sys.executable, "-c", WRAPPER, *command], check=False,
                          capture_output=True,
                          text=True, env={**os.environ, "OMP_NUM_THREADS": "1"})
    if done.returncode:
        raise SystemExit(f"{mode} failed:\n{done.stderr[-3000:]}")
    rss_kb = int(done.stdout.rsplit("MAXRSS", 1)[1].split()[0])
    epoch_s = float(list(csv.DictReader((out / "history.csv").open()))[-1]["epoch_s"])
    train = json.loads((out / "metrics.json").read_text())["sizes"]["train"]
    return {"epoch_s": epoch_s, "images_per_s": train / epoch_s, "peak_rss_mb": rss_kb / 1024}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,4000,16000")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    print(f"{'images':>7} {'path':<12} {'epoch s':>8} {'images/s':>9} {'peak RSS MB':>12}")
    with tempfile.TemporaryDirectory() as tmp:
        for n in [int(s) for s in args.sizes.split(",")]:
            root = Path(tmp) / f"images{n}"
            write_images(root, n)
            for mode in ("in memory", "streaming", "2 processes"):
                out = Path(tmp) / f"run{n}-{mode.replace(' ', '_')}"
                r = measure(root, out, mode, args.workers)
                print(f"{n:>7} {mode:<12} {r['epoch_s']:>8.2f} {r['images_per_s']:>9.0f} "
                      f"{r['peak_rss_mb']:>12.0f}", flush=True)


if __name__ == "__main__":
    main()
