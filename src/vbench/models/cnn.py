"""Seed 003's small CNN generalized to any depth, width, kernel and input shape.

The same builder gives seed 002's SimpleCNN (model=simple_cnn) and seed 004's ConvNet
(model=convnet): they differ only in depth, widths, kernel size, FC width and dropout."""

from collections import OrderedDict

from torch import nn

from .layers import activation
from .registry import InputSpec, register_model


@register_model("cnn")
def build_cnn(cfg, spec: InputSpec) -> nn.Module:
    blocks: list[nn.Module] = []
    channels, size = spec.in_channels, spec.image_size
    for i in range(cfg.depth):
        width = cfg.width * 2**i
        blocks += [nn.Conv2d(channels, width, cfg.kernel_size, padding=cfg.kernel_size // 2)]
        if cfg.batchnorm:
            blocks.append(nn.BatchNorm2d(width))
        blocks.append(activation(cfg.activation))
        if size >= 2:  # deep stacks on 8x8 digits stop pooling at 1x1 instead of failing
            blocks.append(nn.MaxPool2d(2))
            size //= 2
        channels = width
    head = [nn.Flatten(), nn.Linear(channels * size * size, cfg.fc_width), activation(cfg.activation)]
    if cfg.dropout > 0:
        head.append(nn.Dropout(cfg.dropout))
    head.append(nn.Linear(cfg.fc_width, spec.num_classes))
    return nn.Sequential(OrderedDict(features=nn.Sequential(*blocks), classifier=nn.Sequential(*head)))
