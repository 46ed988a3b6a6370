"""vbench-predict throughput: images/s on N PNG files (default 2000, 32x32 RGB and 28x28 grey
mixed) with a digits CNN run trained here (one smoke epoch). Prints the decode+predict rate of
the in-process pipeline and the whole-process rate of the console script.

    python benchmarks/predict_images.py [N]
"""

import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from hydra import compose, initialize_config_module
from PIL import Image

from vbench.inference.predict import image_files, predict_files
from vbench.training.checkpoint import load_run_model
from vbench.training.run import run


def main(n: int = 2000) -> None:
    root = Path(tempfile.mkdtemp(prefix="vbench-predict-"))
    with initialize_config_module("vbench.conf", version_base="1.3"):
        cfg = compose("config", overrides=["debug=smoke", "model=cnn"])
    run(cfg, root / "run")
    rng = np.random.default_rng(0)
    folder = root / "images"
    folder.mkdir()
    for i in range(n):
        shape = (32, 32, 3) if i % 2 else (28, 28)
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8)).save(folder / f"{i}.png")
    loaded = load_run_model(root / "run")
    paths = image_files([str(folder)])
    start = time.perf_counter()
    rows = list(predict_files(loaded, paths, 3, 256, torch.device("cpu")))
    seconds = time.perf_counter() - start
    assert len(rows) == n and not any(r.error for r in rows)
    print(f"in-process: {n} PNGs in {seconds:.2f}s = {n / seconds:.0f} images/s "
          f"(decode + resize + normalize + model, {torch.get_num_threads()} threads)")
    start = time.perf_counter()
    tool = Path(sys.executable).parent / "vbench-predict"
    subprocess.run([str(tool), str(root / "run"), str(folder)], check=True,
                   stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - start
    print(f"whole process (vbench-predict, start-up included): {seconds:.2f}s = "
          f"{n / seconds:.0f} images/s")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 2000)
