"""The exported voice's runtime: onnxruntime, numpy and the text frontend, and no torch, so a
voice runs where torch is not installed (`pip install .[runtime]`); tests/test_runtime.py holds
that importing it loads no torch module."""

from pipeline.runtime.voice import Piece, Plan, Voice, VoiceError

__all__ = ["Piece", "Plan", "Voice", "VoiceError"]
