"""Running a sweep: the trial loop, Ray Train/Tune, MLflow tracking, checkpoints and artifacts."""
