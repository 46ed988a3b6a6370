"""Seed 001's ResidualMLP: an input projection, `blocks` residual blocks of constant width."""

from torch import nn

from .layers import activation
from .registry import InputSpec, register_model


class ResidualBlock(nn.Module):
    """Linear -> BN -> act -> Linear -> BN, plus the skip, then act (seed 001)."""

    def __init__(self, width: int, cfg):
        super().__init__()
        norm = (lambda: nn.BatchNorm1d(width)) if cfg.batchnorm else nn.Identity
        self.block = nn.Sequential(nn.Linear(width, width), norm(), activation(cfg.activation),
                                   nn.Linear(width, width), norm())
        self.act = activation(cfg.activation)

    def forward(self, x):
        return self.act(self.block(x) + x)


class ResidualMLP(nn.Module):
    def __init__(self, cfg, spec: InputSpec):
        super().__init__()
        features = spec.in_channels * spec.image_size**2
        norm = nn.BatchNorm1d(cfg.width) if cfg.batchnorm else nn.Identity()
        self.input_proj = nn.Sequential(nn.Flatten(), nn.Linear(features, cfg.width), norm,
                                        activation(cfg.activation))
        blocks: list[nn.Module] = []
        for _ in range(cfg.blocks):
            blocks.append(ResidualBlock(cfg.width, cfg))
            if cfg.dropout > 0:  # seed 001's best model puts dropout between the blocks
                blocks.append(nn.Dropout(cfg.dropout))
        self.blocks = nn.Sequential(*blocks)
        self.head = nn.Linear(cfg.width, spec.num_classes)

    def forward(self, x):
        return self.head(self.blocks(self.input_proj(x)))


@register_model("resmlp")
def build_resmlp(cfg, spec: InputSpec) -> nn.Module:
    return ResidualMLP(cfg, spec)
