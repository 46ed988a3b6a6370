"""The cost of keeping splits as uint8: one epoch of batches (CIFAR-10 size, 45k 3x32x32,
batch 128) drawn from a float32-resident tensor, as vbench did, against uint8 images
normalized per batch, as it does now; without augmentation and with flip_crop. Data path
only (the model's cost is the same either way); single-threaded by default for stable numbers.

    PYTHONPATH=src python benchmarks/uint8_batches.py [--threads 1] [--repeat 3]
"""

import argparse
import time

import torch

from vbench.data.augment import build_augment, random_crop, random_flip
from vbench.data.registry import Split

N, BATCH = 45000, 128


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    x8 = torch.randint(0, 256, (N, 3, 32, 32), dtype=torch.uint8)
    y = torch.randint(0, 10, (N,))
    mean, std = torch.tensor([0.49, 0.48, 0.45]), torch.tensor([0.25, 0.24, 0.26])
    black = (-mean / std).view(1, -1, 1, 1)
    resident = (x8.float() / 255 - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)
    split = Split(x8, y, mean, std)

    def float32_epoch(augment: bool) -> None:
        g = torch.Generator().manual_seed(0)
        order = torch.randperm(N, generator=g)
        for start in range(0, N, BATCH):
            batch = resident[order[start:start + BATCH]]
            if augment:  # the old path: pad with the normalized black
                batch = random_crop(random_flip(batch - black, g), 4, g) + black

    def uint8_epoch(augment: bool) -> None:
        aug = build_augment("flip_crop") if augment else None
        for _ in split.batches(BATCH, torch.Generator().manual_seed(0), aug):
            pass

    memory = {"float32": resident.element_size() * resident.nelement() / 2**20,
              "uint8": x8.element_size() * x8.nelement() / 2**20}
    print(f"resident train images: float32 {memory['float32']:.0f} MB, "
          f"uint8 {memory['uint8']:.0f} MB")
    for augment in (False, True):
        times = {"float32": [], "uint8": []}
        for _ in range(args.repeat):  # interleaved, best of `repeat`: a loaded machine
            for name, epoch in (("float32", float32_epoch), ("uint8", uint8_epoch)):
                start = time.perf_counter()
                epoch(augment)
                times[name].append(time.perf_counter() - start)
        f32, u8 = min(times["float32"]), min(times["uint8"])
        print(f"{'flip_crop' if augment else 'no augment':<10}  float32-resident {f32:.2f} s  "
              f"uint8 per batch {u8:.2f} s  ratio {u8 / f32:.2f}")


if __name__ == "__main__":
    main()
