"""trainer.compile: a mode is measured against eager on the run's own training step and kept
only when faster; either way metrics.json records both times, and the run trains exactly as it
would have without the measurement."""

import json

import pytest
import torch

from vbench.core.files import load_torch
from vbench.training import compile as compile_module

pytestmark = pytest.mark.slow  # inductor compiles a graph on the CPU: seconds each


def test_the_faster_of_eager_and_compiled_trains(run_vbench):
    metrics, _ = run_vbench("debug=smoke", "trainer.compile=default")
    record = metrics["compile"]
    assert record["mode"] == "default"
    assert record["eager_ms_per_step"] > 0 and record["compiled_ms_per_step"] > 0
    if record["compiled_ms_per_step"] != record["eager_ms_per_step"]:  # rounded to 1 µs
        faster = record["compiled_ms_per_step"] < (1 - compile_module.MARGIN) * record[
            "eager_ms_per_step"]
        assert record["trained"] == ("compiled" if faster else "eager")
    assert metrics["timings"]["compile"] > 0


def test_a_compiled_model_trains_and_saves_plain_weights(run_vbench, monkeypatch):
    monkeypatch.setattr(compile_module, "_step_times", lambda *args: (2.0, 1.0, 1.0))  # compiled wins
    torch._dynamo.reset()
    metrics, run_dir = run_vbench("debug=smoke", "trainer.compile=reduce-overhead",
                                  "trainer.epochs=2")
    assert metrics["compile"]["trained"] == "compiled"
    assert torch._dynamo.utils.counters["stats"]["unique_graphs"] > 0  # the loop ran it
    assert metrics["status"] == "completed" and metrics["best"]["test"]["accuracy"] > 0
    state = load_torch(run_dir / "checkpoints/best.pt")["model"]
    assert not any(k.startswith("_orig_mod") for k in state)  # loads into an uncompiled model


def test_a_mode_slower_than_eager_is_reported_and_changes_nothing(run_vbench, monkeypatch,
                                                                  capsys):
    """The measurement's steps run for real (dropout draws, BatchNorm statistics, gradients),
    then eager is declared faster: the run must train exactly as one without trainer.compile."""
    measure = compile_module._step_times

    def compiled_loses(*args):
        eager_s, _, _ = measure(*args)
        return eager_s, 2 * eager_s, 1.0  # as a quiet machine would measure it

    monkeypatch.setattr(compile_module, "_step_times", compiled_loses)
    shared = ("debug=smoke", "trainer.epochs=2", "model.dropout=0.3", "model.batchnorm=true")
    measured, measured_dir = run_vbench(*shared, "trainer.compile=max-autotune-no-cudagraphs",
                                        name="measured")
    out = capsys.readouterr().out
    plain, plain_dir = run_vbench(*shared, name="plain")
    record = measured["compile"]
    assert record["trained"] == "eager"
    assert record["compiled_ms_per_step"] == pytest.approx(2 * record["eager_ms_per_step"],
                                                           abs=2e-3)
    said = " ".join(out.split())
    assert "trainer.compile=max-autotune-no-cudagraphs: compiled " in said
    assert (f"ms eager after warm-up (kept only when {compile_module.MARGIN:.0%} faster), so this "
            "run trains eager") in said
    assert record["reason"] in said
    assert plain["compile"] is None
    for which in ("best", "final"):
        assert measured[which] == plain[which]
    drop_time = [line.rsplit(",", 1)[0] for line in
                 (measured_dir / "history.csv").read_text().splitlines()]
    assert drop_time == [line.rsplit(",", 1)[0] for line in
                         (plain_dir / "history.csv").read_text().splitlines()]
    assert json.loads((measured_dir / "metrics.json").read_text())["compile"] == record


def test_a_measurement_too_noisy_to_decide_keeps_eager_and_says_so(run_vbench, monkeypatch,
                                                                   capsys):
    """Rounds 40x apart (a preempted core): compiled measured 100x faster decides nothing."""
    monkeypatch.setattr(compile_module, "_step_times", lambda *args: (0.1, 0.001, 40.0))
    metrics, _ = run_vbench("debug=smoke", "trainer.compile=true")
    record = metrics["compile"]
    assert record["trained"] == "eager" and record["eager_ms_per_step"] == 100.0
    assert record["reason"].startswith("the measurement was too noisy to decide (rounds 40.0x")
    assert "too noisy to decide" in " ".join(capsys.readouterr().out.split())


def test_a_resumed_run_keeps_its_choice_and_deterministic_runs_are_not_measured(monkeypatch):
    """No measurement (it would fail here) when last.pt says what the run trained with, or
    under trainer.deterministic: noise must not choose a run's numerics."""
    from vbench.data.registry import Split

    def never(*args):
        raise AssertionError("measured")

    monkeypatch.setattr(compile_module, "_step_times", never)
    model, split = torch.nn.Linear(4, 2), Split(torch.randn(8, 4), torch.zeros(8).long())
    earlier = {"mode": "default", "eager_ms_per_step": 1.0, "compiled_ms_per_step": 2.0,
               "trained": "eager", "reason": "measured"}
    kept, record = compile_module.compile_if_faster(model, "default", split, 4, None, False,
                                                    earlier=earlier)
    assert kept is model and record is earlier
    compiled, record = compile_module.compile_if_faster(model, "reduce-overhead", split, 4, None,
                                                        False, deterministic=True)
    assert compiled is not model and record["trained"] == "compiled"
    assert record["eager_ms_per_step"] is None and "deterministic" in record["reason"]
