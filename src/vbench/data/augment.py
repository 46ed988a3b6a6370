"""Training-batch augmentation on the device, vectorized over the whole batch.

The same transforms as the seeds' torchvision pipelines (seed 004): RandomHorizontalFlip +
RandomCrop(padding=4) for CIFAR/SVHN, RandomRotation(10) for digits; but applied to a batch of
normalized tensors already on the training device, with random numbers from the run's batch
generator, so a run is reproducible and no time goes to per-sample PIL work.

They run on the raw batch as it is drawn, before normalization (Split.batches): flips and
crops on the uint8 images themselves, rotation in float on the [0, 255] scale. Pixels that
enter the image from outside (crop padding, rotated-in corners) are black, 0, as with
torchvision, where padding happens before Normalize.

After the geometry, `dataset.auto_augment` applies RandAugment or TrivialAugmentWide and
`dataset.random_erasing` erases a box, both on the uint8 batch (see `auto_augment`,
`random_erasing` below for why they are written here rather than taken from torchvision).
"""

import functools
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..core.errors import choices_error
from ..core.schema import AUGMENTS, AUTO_AUGMENTS

PAD = 4  # pixels of padding for the random crop, as RandomCrop(32, padding=4)
MAX_DEGREES = 10.0  # rotation range, as RandomRotation(10)


@dataclass
class Augment:
    """A callable `(x, generator) -> x` for one raw training batch (uint8 or pixel-scale
    float, black = 0); the result is normalized afterwards. The geometry (`kind`) first, then
    the auto-augment policy, then random erasing, as torchvision's and timm's training
    pipelines order them (crop and flip, policy, ToTensor/Normalize, RandomErasing)."""

    kind: str = "none"  # dataset.augment
    policy: str = "none"  # dataset.auto_augment
    ops: int = 2  # dataset.randaugment_ops
    magnitude: int = 9  # dataset.randaugment_magnitude
    erasing: float = 0.0  # dataset.random_erasing
    mean: tuple[float, ...] = (0.0,)  # the normalization, for the erasing noise
    std: tuple[float, ...] = (1.0,)

    def __call__(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if self.kind == "flip_crop":
            x = random_crop(random_flip(x, generator), PAD, generator)
        elif self.kind == "rotate":
            x = random_rotate(x, MAX_DEGREES, generator)
        elif self.kind != "none":
            raise choices_error("dataset.augment", self.kind, AUGMENTS)
        if self.policy != "none":
            x = auto_augment(_uint8(x), self.policy, generator, self.ops, self.magnitude)
        if self.erasing > 0:
            x = random_erasing(x, self.erasing, self.mean, self.std, generator)
        return x


def build_augment(kind: str, policy: str = "none", ops: int = 2, magnitude: int = 9,
                  erasing: float = 0.0, mean=None, std=None) -> Augment | None:
    """None when everything is off, so the training loop does no work at all."""
    if kind not in AUGMENTS:
        raise choices_error("dataset.augment", kind, AUGMENTS)
    if policy not in AUTO_AUGMENTS:
        raise choices_error("dataset.auto_augment", policy, AUTO_AUGMENTS)
    if kind == "none" and policy == "none" and not erasing:
        return None
    return Augment(kind, policy, ops, magnitude, erasing,
                   tuple(mean) if mean is not None else (0.0,),
                   tuple(std) if std is not None else (1.0,))


def _uint8(x: torch.Tensor) -> torch.Tensor:
    """The pixel-scale float a rotation leaves, back to uint8 for the uint8 ops."""
    return x if x.dtype == torch.uint8 else x.round().clamp_(0, 255).to(torch.uint8)


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


# -- RandAugment and TrivialAugmentWide, per image, on the device ----------------------------
#
# torchvision's v2.RandAugment / TrivialAugmentWide draw one op and one magnitude per call: on a
# batch tensor that is one choice for the whole batch, so they are meant for a DataLoader's
# per-image calls on the host. Here every image of the batch draws its own ops, magnitudes and
# signs from the run's generator, and the ops are evaluated batched, each with per-image
# parameters (torchvision's functional ops take one scalar per call), then selected per image:
# no per-image Python and no host sync. Ops, magnitude tables and formulas are torchvision's
# (nearest interpolation, black fill), so an image gets what torchvision would give it for the
# same op and magnitude; autocontrast and equalize, which have no parameter, are torchvision's
# own batched kernels. Constant tables are built once per device (a host-to-device copy per
# batch would wait for the device).

OPS = ("Identity", "ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness",
       "Color", "Contrast", "Sharpness", "Posterize", "Solarize", "AutoContrast", "Equalize")
SIGNED = ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Color",
          "Contrast", "Sharpness")
BINS = 31  # torchvision's num_magnitude_bins


def magnitudes(policy: str, height: int, width: int) -> torch.Tensor:
    """(len(OPS), BINS) float: torchvision's magnitude of every op at every bin (0 for the ops
    without one), from RandAugment's or TrivialAugmentWide's augmentation space."""
    wide = policy == "trivialaugment"

    def line(top):
        return torch.linspace(0.0, top, BINS)

    steps = 6 if wide else 4
    table = {
        "ShearX": line(0.99 if wide else 0.3), "ShearY": line(0.99 if wide else 0.3),
        "TranslateX": line(32.0 if wide else 150.0 / 331.0 * width),
        "TranslateY": line(32.0 if wide else 150.0 / 331.0 * height),
        "Rotate": line(135.0 if wide else 30.0),
        **{op: line(0.99 if wide else 0.9) for op in ("Brightness", "Color", "Contrast",
                                                       "Sharpness")},
        "Posterize": (8 - (torch.arange(BINS) / ((BINS - 1) / steps)).round().int()).float(),
        "Solarize": torch.linspace(1.0, 0.0, BINS),
    }
    return torch.stack([table.get(op, torch.zeros(BINS)) for op in OPS])


def auto_augment(x: torch.Tensor, policy: str, generator: torch.Generator, ops: int = 2,
                 magnitude: int = 9) -> torch.Tensor:
    """RandAugment (`ops` rounds, each image its own op and sign per round, magnitude bin
    `magnitude`) or TrivialAugmentWide (one round, each image its own op, bin and sign) over a
    uint8 batch (N, C, H, W); uint8 out, same shape."""
    n, device = len(x), x.device
    table, signed = _tables(policy, *x.shape[-2:], device)
    rounds = ops if policy == "randaugment" else 1
    for _ in range(rounds):
        op = torch.randint(len(OPS), (n,), generator=generator, device=generator.device)
        if policy == "randaugment":
            bin_ = torch.full((n,), magnitude, device=device)
        else:
            bin_ = torch.randint(BINS, (n,), generator=generator, device=generator.device)
        flip = signed[op] & (_uniform(n, generator) <= 0.5)  # torchvision: rand() <= 0.5
        x = apply_ops(x, op, torch.where(flip, -table[op, bin_], table[op, bin_]))
    return x


@functools.lru_cache(maxsize=16)
def _tables(policy: str, height: int, width: int, device: torch.device):
    """The magnitude table and which ops are signed, on `device`."""
    return (magnitudes(policy, height, width).to(device),
            torch.tensor([op in SIGNED for op in OPS], device=device))


@functools.lru_cache(maxsize=16)
def _on(values: tuple, device: torch.device) -> torch.Tensor:
    """A constant (C,) vector on `device`, as (1, C, 1, 1)."""
    return torch.tensor(values, dtype=torch.float32, device=device).view(1, -1, 1, 1)


def apply_ops(x: torch.Tensor, op: torch.Tensor, magnitude: torch.Tensor,
              gather: bool | None = None) -> torch.Tensor:
    """Op `OPS[op[i]]` with `magnitude[i]` on image i of a uint8 batch, one family of ops at a
    time; each family leaves the images that picked none of its ops exactly as they were.

    On an accelerator every family runs over the whole batch and the images keep what they
    picked: no host sync, and the extra work is parallel. On the CPU (`gather`, by default
    there), where a sync costs nothing and work is serial, each family runs only on the images
    that picked it. Both give the same images."""
    def picker(ops):
        def picked(*names):
            mask = torch.zeros_like(ops, dtype=torch.bool)
            for name in names:
                mask |= ops == OPS.index(name)
            return mask
        return picked

    gather = x.device.type == "cpu" if gather is None else gather
    x = x.clone() if gather else x
    for family, names in _FAMILIES:
        if not gather:
            x = family(x, picker(op), magnitude)
            continue
        index = torch.nonzero(picker(op)(*names)).flatten()
        if len(index):
            x[index] = family(x[index], picker(op[index]), magnitude[index])
    return x


def _posterize(x: torch.Tensor, picked, m: torch.Tensor) -> torch.Tensor:
    """Keep the top `m` bits of every pixel (8: all)."""
    bits = torch.where(picked("Posterize"), m, 8.0).long()
    return x & (256 - (1 << (8 - bits))).to(torch.uint8).view(-1, 1, 1, 1)


def _solarize(x: torch.Tensor, picked, m: torch.Tensor) -> torch.Tensor:
    """Invert the pixels at or above 255 * m."""
    threshold = torch.where(picked("Solarize"), 255.0 * m, 256.0).view(-1, 1, 1, 1)
    return torch.where(x >= threshold, 255 - x, x)


def _autocontrast(x: torch.Tensor, picked, m: torch.Tensor) -> torch.Tensor:
    from torchvision.transforms.v2 import functional as TF  # batched, parameter-free kernels

    return torch.where(picked("AutoContrast").view(-1, 1, 1, 1), TF.autocontrast(x), x)


def _equalize(x: torch.Tensor, picked, m: torch.Tensor) -> torch.Tensor:
    from torchvision.transforms.v2 import functional as TF

    return torch.where(picked("Equalize").view(-1, 1, 1, 1), TF.equalize(x), x)


def _geometric(x: torch.Tensor, picked, m: torch.Tensor) -> torch.Tensor:
    """Shears, translations and rotations: one inverse affine matrix per image as torchvision's
    _get_inverse_affine_matrix builds it (shears about the top-left corner, the rest about the
    centre; translations truncated to whole pixels; rotate's angle negated), one grid_sample
    (nearest, black outside) for the whole batch."""
    n, _, h, w = x.shape
    exact = torch.float32 if x.device.type == "mps" else torch.float64  # torchvision: Python floats
    m = m.to(exact)
    zero = torch.zeros_like(m)
    rot = torch.where(picked("Rotate"), -m, zero).deg2rad()
    tx = torch.where(picked("TranslateX"), m.trunc(), zero)
    ty = torch.where(picked("TranslateY"), m.trunc(), zero)
    sx = torch.where(picked("ShearX"), m.atan(), zero)
    sy = torch.where(picked("ShearY"), m.atan(), zero)
    shear = picked("ShearX", "ShearY")
    cx, cy = torch.where(shear, -0.5 * w, zero), torch.where(shear, -0.5 * h, zero)
    a = (rot - sy).cos() / sy.cos()
    b = -(a * sx.tan() + rot.sin())
    c = (rot - sy).sin() / sy.cos()
    d = rot.cos() - c * sx.tan()
    # inverse of [[a, b], [c, d]] (determinant 1), then the translation and the centre
    m0, m1, m3, m4 = d, -b, -c, a
    m2 = cx - m0 * (cx + tx) - m1 * (cy + ty)
    m5 = cy - m3 * (cx + tx) - m4 * (cy + ty)
    theta = torch.stack([m0, m1, m2, m3, m4, m5], 1).view(n, 2, 3).float()
    # torchvision's _affine_grid: pixel-centre coordinates through theta, then normalized
    xs = torch.linspace((1.0 - w) * 0.5, (w - 1.0) * 0.5, w, device=x.device)
    ys = torch.linspace((1.0 - h) * 0.5, (h - 1.0) * 0.5, h, device=x.device)
    base = torch.stack([xs.expand(h, w), ys.view(h, 1).expand(h, w),
                        torch.ones(h, w, device=x.device)], -1).view(1, h * w, 3)
    rescaled = theta.transpose(1, 2)  # (n, 3, 2): x and y columns over half the size
    rescaled = torch.stack([rescaled[..., 0] / (0.5 * w), rescaled[..., 1] / (0.5 * h)], -1)
    grid = (base @ rescaled).view(n, h, w, 2)
    warped = F.grid_sample(x.float(), grid, mode="nearest", padding_mode="zeros",
                           align_corners=False).round_().to(x.dtype)
    moved = picked("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate")
    return torch.where(moved.view(-1, 1, 1, 1), warped, x)


def _grey(x: torch.Tensor) -> torch.Tensor:
    """torchvision's grayscale of uint8 images, floored, as float (N, 1, H, W)."""
    if x.shape[1] == 1:
        return x.float()
    r, g, b = x.float().unbind(1)
    return r.mul(0.2989).add_(g, alpha=0.587).add_(b, alpha=0.114).floor_().unsqueeze(1)


def _blend(x: torch.Tensor, picked, m: torch.Tensor) -> torch.Tensor:
    """Brightness (towards black), Color (towards grey; none on grey images, as PIL) and
    Contrast (towards the mean grey), as torchvision's _blend: x * (1 + m) + other * -m."""
    color = picked("Color") & (x.shape[1] == 3)
    blended = picked("Brightness", "Contrast") | color
    grey = _grey(x)
    other = torch.where(picked("Contrast").view(-1, 1, 1, 1),
                        grey.mean(dim=(1, 2, 3), keepdim=True),
                        torch.where(color.view(-1, 1, 1, 1), grey, 0.0))
    m = torch.where(blended, m, 0.0).view(-1, 1, 1, 1)
    out = _add_scaled(x.float().mul(1.0 + m), other, -m).clamp_(0, 255).to(torch.uint8)
    return torch.where(blended.view(-1, 1, 1, 1), out, x)


def _add_scaled(a: torch.Tensor, b: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """a + alpha * b rounded once to float32, as torchvision's `a.add_(b, alpha=...)` (a fused
    multiply-add) with one alpha per image: exact in float64 for these 8-bit pixel values, so
    images truncate to the same uint8 (float32 on MPS, which has no float64)."""
    wide = torch.float32 if a.device.type == "mps" else torch.float64
    return a.to(wide).add_(b.to(wide) * alpha.to(wide)).float()


def _sharpness(x: torch.Tensor, picked, m: torch.Tensor) -> torch.Tensor:
    """torchvision's adjust_sharpness: the interior blended with a rounded 3x3 smoothing
    (1s around a 5, /13), the border kept. The smoothing is summed in integers (a 3x3 sum plus
    4 times the centre, / 13): it is never within 1/26 of a rounding tie, so it rounds as
    torchvision's float convolution does, at a fraction of a grouped conv's cost on the CPU."""
    h, w = x.shape[-2:]
    if h <= 2 or w <= 2:
        return x
    sharpened = picked("Sharpness")
    out = x.float()
    inner = out[..., 1:-1, 1:-1]
    box = F.avg_pool2d(out, 3, stride=1, divisor_override=1)  # exact: integers below 2^24
    blurred = box.add_(inner, alpha=4.0).div_(13.0).round_()
    inner.copy_(_add_scaled(inner, blurred.sub_(inner), -torch.where(sharpened, m, 0.0)
                            .view(-1, 1, 1, 1)))
    out = out.clamp_(0, 255).to(torch.uint8)
    return torch.where(sharpened.view(-1, 1, 1, 1), out, x)


# The ops grouped by the function that applies them, each over the images that picked one.
_FAMILIES = (
    (_geometric, ("ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate")),
    (_blend, ("Brightness", "Color", "Contrast")),
    (_sharpness, ("Sharpness",)),
    (_posterize, ("Posterize",)),
    (_solarize, ("Solarize",)),
    (_autocontrast, ("AutoContrast",)),
    (_equalize, ("Equalize",)),
)


# -- random erasing ---------------------------------------------------------------------------


def random_erasing(x: torch.Tensor, p: float, mean, std, generator: torch.Generator,
                   scale=(0.02, 1 / 3), ratio=(0.3, 1 / 0.3), attempts: int = 10,
                   gather: bool | None = None) -> torch.Tensor:
    """timm's RandomErasing (mode 'pixel', torchvision's sampling): with probability `p` an image
    gets a box of `scale` of its area and aspect ratio log-uniform in `ratio` (the first of
    `attempts` draws that fits), filled with per-pixel noise that is N(0, 1) once normalized
    (mean + std * z in pixels, rounded and clipped to uint8). Per image, one batched draw;
    torchvision's RandomErasing draws one box per call, and runs after Normalize on the host."""
    n, _, h, w = x.shape
    u = torch.rand(n, attempts, 2, generator=generator, device=generator.device)
    area = h * w * (scale[0] + (scale[1] - scale[0]) * u[..., 0])
    low, high = math.log(ratio[0]), math.log(ratio[1])
    aspect = torch.exp(low + (high - low) * u[..., 1])
    box_h, box_w = (area * aspect).sqrt().round(), (area / aspect).sqrt().round()
    fits = (box_h < h) & (box_w < w)
    first = fits.int().argmax(1, keepdim=True)  # the first attempt that fits
    box_h, box_w = box_h.gather(1, first).view(n), box_w.gather(1, first).view(n)
    erase = (_uniform(n, generator) < p) & fits.any(1)
    top = (_uniform(n, generator) * (h - box_h + 1)).floor()
    left = (_uniform(n, generator) * (w - box_w + 1)).floor()
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    inside = ((rows >= top.view(n, 1, 1)) & (rows < (top + box_h).view(n, 1, 1))
              & (cols >= left.view(n, 1, 1)) & (cols < (left + box_w).view(n, 1, 1))
              & erase.view(n, 1, 1)).unsqueeze(1)
    # On the CPU (`gather`: a sync is free) noise is drawn for the erased images only,
    # elsewhere for all (no sync); either way from the generator: a rerun repeats.
    gather = x.device.type == "cpu" if gather is None else gather
    index = torch.nonzero(erase).flatten() if gather else slice(None)
    noise = torch.randn(x[index].shape, generator=generator, device=generator.device)
    noise = (_on(tuple(mean), x.device) + _on(tuple(std), x.device) * noise) * 255.0
    if x.dtype == torch.uint8:
        noise = noise.round_().clamp_(0, 255)
    x = x.clone()
    x[index] = torch.where(inside[index], noise.to(x.dtype), x[index])
    return x
