"""Hamgara's DVC stages and the library code they call."""
