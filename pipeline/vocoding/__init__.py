"""The vocoder stage's library: its data, checkpoints and training loop."""
