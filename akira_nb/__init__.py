"""akira_nb: the notebook-first research kit for the AKIRA spectral-band experiments.

Sub-packages, one per experiment (``grokking``, ``spatiotemporal``), share ``runtime`` (device,
seeding, size presets) and ``runs`` (run folders, atomic results, checkpoints, resume).
"""

__version__ = "0.1.0"
