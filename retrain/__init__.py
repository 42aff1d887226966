"""Closed loop: training data from feedback, LoRA training, model registry, evaluation and swap."""
