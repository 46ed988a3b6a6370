"""Seed 001's FlexibleMLP: the same hidden width repeated `depth` times, or explicit `widths`."""

from torch import nn

from .layers import activation
from .registry import InputSpec, register_model


@register_model("mlp")
def build_mlp(cfg, spec: InputSpec) -> nn.Module:
    layers: list[nn.Module] = [nn.Flatten()]
    features = spec.in_channels * spec.image_size**2
    # `widths` spells out tapering networks (seed 001's 784-128-64-10); else depth x width.
    widths = list(cfg.widths) if cfg.widths else [cfg.width] * cfg.depth
    for width in widths:
        layers.append(nn.Linear(features, width))
        if cfg.batchnorm:
            layers.append(nn.BatchNorm1d(width))
        layers.append(activation(cfg.activation))
        if cfg.dropout > 0:
            layers.append(nn.Dropout(cfg.dropout))
        features = width
    layers.append(nn.Linear(features, spec.num_classes))
    return nn.Sequential(*layers)
