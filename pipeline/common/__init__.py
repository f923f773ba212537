"""Shared plumbing of every stage: atomic writes, devices and workers, figures, the stage entry wrapper."""
