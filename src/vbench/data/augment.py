"""Training-batch augmentation on the device, vectorized over the whole batch.

The same transforms as the seeds' torchvision pipelines (seed 004): RandomHorizontalFlip +
RandomCrop(padding=4) for CIFAR/SVHN, RandomRotation(10) for digits; but applied to a batch of
normalized tensors already on the training device, with random numbers from the run's batch
generator, so a run is reproducible and no time goes to per-sample PIL work.

They run on the raw batch as it is drawn, before normalization (Split.batches): flips and
crops on the uint8 images themselves, rotation in float on the [0, 255] scale. Pixels that
enter the image from outside (crop padding, rotated-in corners) are black, 0, as with
torchvision, where padding happens before Normalize.
"""

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..core.errors import choices_error
from ..core.schema import AUGMENTS

PAD = 4  # pixels of padding for the random crop, as RandomCrop(32, padding=4)
MAX_DEGREES = 10.0  # rotation range, as RandomRotation(10)


@dataclass
class Augment:
    """A callable `(x, generator) -> x` for one raw training batch (uint8 or pixel-scale
    float, black = 0); the result is normalized afterwards."""

    kind: str

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if self.kind == "flip_crop":
            return random_crop(random_flip(x, generator), PAD, generator)
        if self.kind == "rotate":
            return random_rotate(x, MAX_DEGREES, generator)
        if self.kind == "none":
            return x
        raise choices_error("dataset.augment", self.kind, AUGMENTS)


def build_augment(kind: str) -> Augment | None:
    """None for `none`, so the training loop does no work at all."""
    if kind not in AUGMENTS:
        raise choices_error("dataset.augment", kind, AUGMENTS)
    if kind == "none":
        return None
    return Augment(kind)


def _uniform(n: int, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(n, generator=generator, device=generator.device)


def random_flip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror each image left-right with probability 1/2."""
    flip = (_uniform(len(x), generator) < 0.5).view(-1, 1, 1, 1)
    return torch.where(flip, x.flip(3), x)


def random_crop(x: torch.Tensor, pad: int, generator: torch.Generator) -> torch.Tensor:
    """Pad by `pad` black pixels, then cut each image back to its size at a random offset."""
    n, c, h, w = x.shape
    padded = x.new_zeros(n, c, h + 2 * pad, w + 2 * pad)
    padded[:, :, pad:pad + h, pad:pad + w] = x
    # One offset per image in [0, 2 * pad], inclusive, as RandomCrop draws them.
    top = (_uniform(n, generator) * (2 * pad + 1)).long().view(n, 1, 1)
    left = (_uniform(n, generator) * (2 * pad + 1)).long().view(n, 1, 1)
    rows = top + torch.arange(h, device=x.device).view(1, h, 1)
    cols = left + torch.arange(w, device=x.device).view(1, 1, w)
    batch = torch.arange(n, device=x.device).view(n, 1, 1)
    # Advanced indexing gathers (n, h, w, c) windows in one op; move channels back.
    return padded.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2).contiguous()


def random_rotate(x: torch.Tensor, max_degrees: float,
                  generator: torch.Generator) -> torch.Tensor:
    """Rotate each image about its centre by an angle uniform in [-max_degrees, max_degrees];
    float out (grid_sample interpolates), corners black."""
    x = x.float()
    angle = (_uniform(len(x), generator) * 2 - 1) * math.radians(max_degrees)
    cos, sin, zero = angle.cos(), angle.sin(), torch.zeros_like(angle)
    theta = torch.stack([torch.stack([cos, -sin, zero], 1),
                         torch.stack([sin, cos, zero], 1)], 1).to(x.dtype)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, align_corners=False)  # zeros outside: black
