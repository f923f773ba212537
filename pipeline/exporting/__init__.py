"""`hamgara export`: a trained voice as ONNX graphs plus voice.json, for pipeline/runtime."""
