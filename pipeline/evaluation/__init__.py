"""Scoring and diagnosing a trained model: the synthesizer, MCD, WER, the training history, model checks."""
