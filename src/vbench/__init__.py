"""vbench: image-classification studies from Hydra configs."""

import time

__version__ = "0.1.0"
IMPORTED_AT = time.perf_counter()  # the start of the `startup` phase in metrics.json timings
