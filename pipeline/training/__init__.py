"""The training loop and its parts: the step, the dataset and sampler, the schedule, monitors, data parallelism."""
