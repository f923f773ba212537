"""The features store and what fills it: the split, the aligner's training and the durations it gives, boundary scoring."""
