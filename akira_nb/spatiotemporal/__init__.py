"""Experiment 033: spectral band attention (temporal, neighbour, wormhole) for next-frame
prediction on synthetic 2D fields. See ``notebooks/033_spectral_band_attention.py``."""
