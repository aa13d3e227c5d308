"""A search on the scheduler: Optuna's samplers asked for trials as slots free up, told each
run's judgement as it ends, rebuilt from the manifest alone on `--resume`."""
