"""Background retrain jobs: the runner, the trainer it launches, the lock and the records."""
