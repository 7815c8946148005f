"""Trainer fixtures: none shared yet; the trainer's tests build their data with ``helpers``."""
