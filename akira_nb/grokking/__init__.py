"""The grokking experiment: standard attention vs FFT wave mixing on a + b mod p (presets,
claims, the runner, plots, explorers, cli), on the ``modular_arithmetic`` library."""
