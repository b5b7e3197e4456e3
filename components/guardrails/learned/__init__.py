"""Learned rails: linear heads on the shared sentence encoder, trained by `make train-guards`."""
