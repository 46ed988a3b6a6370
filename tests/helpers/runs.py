"""Run directories: the keys a run's metrics.json holds, hand-made runs for the reports, and
what a drawn figure must be."""

import json
from pathlib import Path

METRIC_KEYS = {"status", "dataset", "model", "device", "seed", "params", "epochs_run",
               "best_epoch", "train_time_s", "best", "final", "per_class_accuracy",
               "inference_ms_per_image", "versions"}


def fake_run(run_dir: Path, overrides: list[str], test_acc: float | None = None,
             status: str = "completed", params: int = 1000) -> None:
    """A run directory as vbench leaves it: a finished run, a failed one, or (test_acc None)
    a job killed before it wrote metrics.json."""
    (run_dir / ".hydra").mkdir(parents=True)
    (run_dir / ".hydra/overrides.yaml").write_text("".join(f"- {o}\n" for o in overrides))
    if status == "failed":
        (run_dir / "metrics.json").write_text(json.dumps({
            "status": "failed", "error": "VBenchError: boom", "dataset": "digits",
            "model": "mlp", "seed": 0}))
    if test_acc is None:
        return
    split = {"loss": 0.5, "accuracy": test_acc, "macro_f1": test_acc - 0.01,
             "weighted_f1": test_acc}
    metrics = {"status": status, "dataset": "digits", "model": "mlp", "seed": 0,
               "params": {"total": params, "trainable": params // 2}, "epochs_run": 3,
               "best_epoch": 2, "train_time_s": 1.5, "inference_ms_per_image": 0.01,
               "best": {"val": {**split, "accuracy": test_acc + 0.02}, "test": split},
               "final": {"val": split, "test": {**split, "accuracy": test_acc - 0.05}}}
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    (run_dir / "history.csv").write_text(
        "epoch,train_loss,train_acc,val_loss,val_acc,lr,epoch_s\n"
        f"1,1.0,0.5,1.1,0.4,0.001,0.1\n2,0.5,0.8,0.6,{test_acc + 0.02},0.001,0.1\n"
        f"3,0.4,0.9,0.6,{test_acc},0.001,0.1\n")


def png_ok(path: Path) -> bool:
    """A real, non-trivial PNG file."""
    data = path.read_bytes()
    return data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
