"""One run: train it stage by stage, build its model, evaluate it, write its run dir, keep its
checkpoint and its cached features."""
