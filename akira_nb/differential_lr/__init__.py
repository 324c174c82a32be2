"""Experiment 013: differential learning rates. Does the band LR hierarchy (slow low bands, fast
high bands, up to 3000x apart) learn faster, generalise better and train more stably than a
uniform LR, and do the bands move at their prescribed rates?

- ``experiment``: presets, ``study()``, ``run_study()`` (arms x seeds through
  ``akira_nb.bandformer.train``, resumable), H1-H4 with their rules, the seed's template,
  ``kit_summary``;
- ``evaluate``: steps to target, last-window variance, spikes, weight-change factors, paired
  tests and verdicts;
- ``plots``, ``widgets`` (an explorer over saved results), ``cli``.
"""
