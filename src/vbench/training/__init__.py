"""One run: the fit loop, checkpoints, resume, devices under torchrun, the run directory."""
