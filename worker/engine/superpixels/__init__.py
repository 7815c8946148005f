"""Superpixels: SLIC, ours (``native_slic``: NumPy twin, compiled C, CUDA) or scikit-image's."""
