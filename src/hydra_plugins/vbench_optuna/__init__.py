"""vbench's Hydra plugin: hydra/sweeper=optuna (optuna_sweeper.py)."""
