"""The per-epoch cost of RandAugment, TrivialAugmentWide and random erasing on CIFAR-size
batches: vbench's batched, per-image ops on the uint8 batch already on the device (the train
split resident, a seeded permutation, augment, normalize: `Split.batches`) against the usual
way, torchvision's transforms.v2 on a DataLoader (one call per image in worker processes,
uint8 CHW tensors in, the batch collated and normalized). Data path only: the model's cost is
the same either way.

    PYTHONPATH=src python benchmarks/augment.py [--images 50000] [--batch 256] [--workers 2]
                                                [--threads 1] [--device cpu|cuda] [--repeat 2]

On the CPU, vbench's side runs on `--threads` torch threads (1 by default: on a shared,
loaded machine OpenMP's threads wait on each other) and torchvision's on `--workers` worker
processes, each single-threaded as DataLoader makes them.

Prints one line per policy: seconds per epoch of each path and their ratio (the best of
`--repeat`, interleaved: a loaded machine), then the machine's load average.
"""

import argparse
import os
import time

import torch

from vbench.data.augment import build_augment
from vbench.data.registry import Split

MEAN, STD = (0.49, 0.48, 0.45), (0.25, 0.24, 0.26)
# name -> (vbench's dataset keys, torchvision's per-image transforms)
POLICIES = {
    "none": ({}, lambda v2: []),
    "randaugment (2 ops, m9)": ({"policy": "randaugment"}, lambda v2: [v2.RandAugment()]),
    "trivialaugment": ({"policy": "trivialaugment"}, lambda v2: [v2.TrivialAugmentWide()]),
    "random erasing p=0.25": ({"erasing": 0.25}, lambda v2: [v2.RandomErasing(0.25)]),
    "flip_crop + trivialaugment + erasing 0.1": (
        {"kind": "flip_crop", "policy": "trivialaugment", "erasing": 0.1},
        lambda v2: [v2.RandomHorizontalFlip(), v2.RandomCrop(32, padding=4),
                    v2.TrivialAugmentWide(), v2.RandomErasing(0.1)]),
}


class Images(torch.utils.data.Dataset):
    """uint8 CHW images through a torchvision transform, as a DataLoader pipeline holds them
    (RandomErasing, as in torchvision's reference recipe, after the float conversion)."""

    def __init__(self, x, y, transform):
        self.x, self.y, self.transform = x, y, transform

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        return self.transform(self.x[i]), self.y[i]


def torchvision_epoch(x, y, transforms, batch: int, workers: int, device) -> None:
    from torchvision.transforms import v2

    erasing = [t for t in transforms if isinstance(t, v2.RandomErasing)]
    pipeline = v2.Compose([*(t for t in transforms if t not in erasing),
                           v2.ToDtype(torch.float32, scale=True), v2.Normalize(MEAN, STD),
                           *erasing])
    loader = torch.utils.data.DataLoader(Images(x, y, pipeline), batch_size=batch,
                                         shuffle=True, num_workers=workers,
                                         pin_memory=device.type == "cuda",
                                         persistent_workers=False)
    for images, labels in loader:
        images.to(device, non_blocking=True)
    if device.type == "cuda":
        torch.cuda.synchronize()


def vbench_epoch(split: Split, options: dict, batch: int, device) -> None:
    augment = build_augment(options.get("kind", "none"), options.get("policy", "none"),
                            erasing=options.get("erasing", 0.0), mean=MEAN, std=STD)
    generator = torch.Generator(device=device).manual_seed(0)
    for images, labels in split.batches(batch, generator, augment, drop_single=True):
        pass
    if device.type == "cuda":
        torch.cuda.synchronize()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=50000)
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--workers", type=int, default=min(2, os.cpu_count() or 1))
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--only", help="run the policies whose name contains this")
    args = parser.parse_args()
    from torchvision.transforms import v2

    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    g = torch.Generator().manual_seed(0)
    coarse = torch.rand(args.images, 3, 8, 8, generator=g)  # smooth, photo-like pixels
    x = (torch.nn.functional.interpolate(coarse, size=32, mode="bilinear") * 255).to(torch.uint8)
    y = torch.randint(0, 10, (args.images,), generator=g)
    split = Split(x.to(device), y.to(device), torch.tensor(MEAN, device=device),
                  torch.tensor(STD, device=device))
    print(f"{args.images} images 3x32x32, batch {args.batch}, device {device}, "
          f"{torch.get_num_threads()} torch threads, DataLoader workers {args.workers}")
    for name, (options, transforms) in POLICIES.items():
        if args.only and args.only not in name:
            continue
        times = {"vbench": [], "torchvision": []}
        for _ in range(args.repeat):
            start = time.perf_counter()
            vbench_epoch(split, options, args.batch, device)
            times["vbench"].append(time.perf_counter() - start)
            start = time.perf_counter()
            torchvision_epoch(x, y, transforms(v2), args.batch, args.workers, device)
            times["torchvision"].append(time.perf_counter() - start)
        ours, theirs = min(times["vbench"]), min(times["torchvision"])
        print(f"{name:<42} vbench on-device {ours:7.2f} s/epoch   torchvision v2 + DataLoader "
              f"{theirs:7.2f} s/epoch   ratio {ours / theirs:.2f}", flush=True)
    print("load average (1, 5, 15 min): " + ", ".join(f"{v:.2f}" for v in os.getloadavg()))


if __name__ == "__main__":
    main()
