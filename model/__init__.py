"""Torch modules, the text frontend and the audio transforms; no file I/O."""
