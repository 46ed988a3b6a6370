"""What the jobs of a command line need that can be checked without training, checked before
the first job starts: torchvision loading beside torch, the weights files of pretrained models
and model.weights, the datasets' files, the trackers' packages. A sweep lists everything
missing once, in one message, instead of failing job after job (or its last arms after the
first ones trained)."""

from ..core.errors import VBenchError
from ..core.schema import Library, Root, Sklearn


def needs_torchvision(cfg: Root) -> bool:
    """Whether a run of `cfg` imports torchvision: its models and weights, a downloader, the
    auto-augment ops. timm imports it too."""
    model = cfg.model
    return ((isinstance(model, Library) and model.arch in ("torchvision", "timm"))
            or (isinstance(model, Sklearn) and model.backbone is not None)
            or cfg.dataset.auto_augment != "none"
            or (hasattr(cfg.dataset, "download") and cfg.dataset.download))


def check_torchvision(cfgs: list[Root]) -> None:
    if any(needs_torchvision(cfg) for cfg in cfgs):
        from ..core.install import check_torchvision as check

        check()


def check_jobs(cfgs: list[Root]) -> None:
    """Raise one VBenchError listing, once each, everything the jobs `cfgs` miss."""
    check_torchvision(cfgs)  # alone: without it, the weights cannot even be looked for
    from ..data import check_files
    from ..loggers import check_packages
    from ..models.weights import check_weights

    missing: list[str] = []
    for cfg in cfgs:
        for check, section in ((check_weights, cfg.model), (check_files, cfg.dataset),
                               (check_packages, cfg.logger)):
            try:
                check(section)
            except VBenchError as e:
                if str(e) not in missing:
                    missing.append(str(e))
    if len(missing) == 1:
        raise VBenchError(missing[0])
    if missing:
        raise VBenchError(f"the sweep's jobs miss {len(missing)} things; nothing was run: "
                          + " ".join(f"({i}) {what}" for i, what in enumerate(missing, 1)))
