"""Mixup and CutMix inside each training batch, per image, on the device.

Each image i is mixed with its partner, the image at the mirrored place in the batch (i and
N-1-i, as timm's Mixup pairs them; the batch order is already a random permutation), with
its own draws from the run's generator: whether it is mixed at all (`prob`), mixup or cutmix
(`switch_prob` when both are on), its weight lambda ~ Beta(alpha, alpha), and for cutmix its
box (torchvision's v2.CutMix box: a centre uniform over the image, sides sqrt(1 - lambda) of
the image's, clipped at the border; lambda is then the share of the image left, as timm's
correct_lam). Both become one per-pixel weight map w: the image is w * x + (1 - w) * partner,
its target lambda * onehot(y) + (1 - lambda) * onehot(partner's y); label smoothing is the
loss's (F.cross_entropy smooths probability targets as timm's mixup_target does).

Written here because neither library mixes per image on the device: timm's Mixup draws from
NumPy's global generator and mixes per element in a Python loop ('elem' mode) or one lambda
per batch; torchvision's v2.MixUp/CutMix draw one lambda per batch from torch's global
generator. Beta samples come from torch's Dirichlet sampler, which takes a generator.
"""

from dataclasses import dataclass

import torch
import torch.nn.functional as F


@dataclass
class Mix:
    """`(x, y, generator) -> (mixed x, target probabilities)` for one normalized batch."""

    num_classes: int
    mixup: float = 0.0  # alpha; 0: off
    cutmix: float = 0.0  # alpha; 0: off
    prob: float = 1.0  # share of the images mixed
    switch_prob: float = 0.5  # with both on: chance of cutmix

    def __call__(self, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator):
        n, _, h, w = x.shape
        g, device = generator, generator.device
        mixed = torch.rand(n, generator=g, device=device) < self.prob
        if self.mixup > 0 and self.cutmix > 0:
            cut = torch.rand(n, generator=g, device=device) < self.switch_prob
        else:
            cut = torch.full((n,), self.cutmix > 0, device=device)
        alpha = torch.where(cut, self.cutmix, self.mixup).float()
        lam = beta(alpha, g)
        y1, y2, x1, x2 = cutmix_boxes(lam, h, w, g)
        box = cut & mixed
        # lambda: the drawn one for mixup, the image's share outside its box for cutmix, 1 unmixed
        area = ((y2 - y1) * (x2 - x1)).float() / (h * w)
        lam = torch.where(box, 1.0 - area, torch.where(mixed, lam, 1.0))
        weight = torch.where(box.view(n, 1, 1, 1),
                             (~inside(y1, y2, x1, x2, h, w)).unsqueeze(1).float(),
                             lam.view(n, 1, 1, 1))
        x = x * weight + x.flip(0) * (1.0 - weight)
        one_hot = F.one_hot(y, self.num_classes).float()
        target = lam.view(n, 1) * one_hot + (1.0 - lam.view(n, 1)) * one_hot.flip(0)
        return x, target


def build_mix(trainer, num_classes: int) -> Mix | None:
    """None unless trainer.mixup or trainer.cutmix is on."""
    if not (trainer.mixup or trainer.cutmix):
        return None
    return Mix(num_classes, trainer.mixup, trainer.cutmix, trainer.mixup_prob,
               trainer.mixup_switch_prob)


def beta(alpha: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """One Beta(alpha_i, alpha_i) sample per entry (alpha 0 gives 1: unmixed), from the
    generator (torch.distributions.Beta samples the same Dirichlet, from the global one)."""
    concentration = alpha.clamp(min=1e-6).unsqueeze(1).expand(-1, 2).contiguous()
    lam = torch._sample_dirichlet(concentration, generator=generator)[:, 0]
    return torch.where(alpha > 0, lam, 1.0)


def cutmix_boxes(lam: torch.Tensor, h: int, w: int, generator: torch.Generator):
    """(top, bottom, left, right) per image, bottom/right exclusive: torchvision's v2.CutMix
    box for each lambda, a centre uniform over the pixels and half-sides int(0.5 * sqrt(1 - lam)
    * side), clipped to the image."""
    n, device = len(lam), generator.device
    cy = torch.randint(h, (n,), generator=generator, device=device)
    cx = torch.randint(w, (n,), generator=generator, device=device)
    r = 0.5 * (1.0 - lam).clamp(min=0).sqrt()
    half_h, half_w = (r * h).long(), (r * w).long()
    return ((cy - half_h).clamp(min=0), (cy + half_h).clamp(max=h),
            (cx - half_w).clamp(min=0), (cx + half_w).clamp(max=w))


def inside(y1, y2, x1, x2, h: int, w: int) -> torch.Tensor:
    """(N, H, W) bool: the pixels of each image's box."""
    rows = torch.arange(h, device=y1.device).view(1, h, 1)
    cols = torch.arange(w, device=y1.device).view(1, 1, w)
    return ((rows >= y1.view(-1, 1, 1)) & (rows < y2.view(-1, 1, 1))
            & (cols >= x1.view(-1, 1, 1)) & (cols < x2.view(-1, 1, 1)))
