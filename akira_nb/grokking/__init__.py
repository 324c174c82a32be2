"""Grokking on a+b mod p: data, models, training and Fourier progress measures."""
