"""The wrap-up after training: evaluating the final and the best weights and timing inference.

Before (the old run.py): final on val+test, best on val+test, then a warm-up and a timed pass
over test just for inference_ms_per_image: 6 passes. Now (evaluate.py): the best checkpoint's
test pass is the timed one (the val pass before it warms up), and when the last epoch is the
best one its evaluation is the final one: 4 passes, or 2. Prints both and the ratio, on a
CIFAR-size fake test split with the default CNN, on CPU.

    python benchmarks/wrapup.py
"""

import time

import torch

from vbench.core.schema import CNN, Fake
from vbench.data import load_data
from vbench.evaluation.evaluate import evaluate
from vbench.evaluation.forward import predict
from vbench.models import InputSpec, build_model


def main() -> None:
    # the schema's dataclasses, as a run's config gives them (every other key its default)
    cfg = Fake(name="fake", num_classes=10, image_size=32, in_channels=3, train_size=6000,
               test_size=5000, noise=0.5, val_size=5000)
    data = load_data(cfg, torch.device("cpu"))
    model_cfg = CNN(arch="cnn", name="cnn", depth=2, width=16, kernel_size=3, fc_width=128)
    model = build_model(model_cfg, InputSpec(3, 32, 10, tuple(data.mean), tuple(data.std)))
    bs = 1024

    def old():
        for _ in range(2):  # final, then best: val + test each
            predict(model, data.val, bs, None)
            predict(model, data.test, bs, None)
        predict(model, data.test, bs, None)  # warm-up, then the timed pass
        predict(model, data.test, bs, None)

    def new(best_is_last: bool):
        evaluate(model, data, bs, None)
        if not best_is_last:
            evaluate(model, data, bs, None)

    old()  # warm everything once
    timings = {}
    for name, fn in (("old (6 passes)", old), ("new, best != last (4 passes)",
                                               lambda: new(False)),
                     ("new, best = last (2 passes)", lambda: new(True))):
        start = time.perf_counter()
        fn()
        timings[name] = time.perf_counter() - start
    base = timings["old (6 passes)"]
    for name, seconds in timings.items():
        print(f"{name:32s} {seconds:6.2f}s  {seconds / base:.2f}x")


if __name__ == "__main__":
    main()
