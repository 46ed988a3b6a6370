"""Synthetic images of any shape and class count: a fixed smooth pattern per class plus noise.

Learnable (a CNN or an MLP separates the classes) and deterministic for a given split_seed.
"""

import torch
import torch.nn.functional as F

from .registry import RawData, register_dataset
from .source import reads_no_files


@register_dataset("fake")
def make_fake(cfg) -> RawData:
    reads_no_files()
    g = torch.Generator().manual_seed(cfg.split_seed)
    coarse = torch.rand(cfg.num_classes, cfg.in_channels, 4, 4, generator=g)
    patterns = F.interpolate(coarse, size=cfg.image_size, mode="bilinear", align_corners=False)

    def sample(n: int):
        y = torch.arange(n) % cfg.num_classes
        y = y[torch.randperm(n, generator=g)]
        noise = torch.randn(n, cfg.in_channels, cfg.image_size, cfg.image_size, generator=g)
        x = patterns[y] + cfg.noise * patterns.std() * noise
        return x.clamp_(0, 1).mul_(255).round_().to(torch.uint8), y

    train_x, train_y = sample(cfg.train_size)
    test_x, test_y = sample(cfg.test_size)
    return RawData(train_x, train_y, test_x, test_y,
                   classes=[f"class_{i}" for i in range(cfg.num_classes)])
