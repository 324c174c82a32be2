"""Experiment 013: differential learning rates. Does the band LR hierarchy (slow low bands, fast
high bands, up to 3000x apart) learn faster, generalise better and train more stably than a
uniform LR, and do the bands move at their prescribed rates? Every arm at its own tuned LR, at
more than one budget; an arm that does not beat the unigram loss judges nothing.

- ``experiment``: presets, ``study()``, ``run_study()`` (per arm: an LR sweep at every budget,
  then the other seeds at the tuned LR, through ``akira_nb.bandformer.train``, resumable), the
  tables, ``kit_summary``;
- ``sweep``: the sweep's trainings' tags and table form (the rule: ``akira_nb.lr_sweep``);
- ``claims``: the learning check, H1-H4 with their rules, the recommendation, the seed's
  template;
- ``evaluate``: steps to target, last-window variance, spikes, weight-change factors, paired
  tests and verdicts;
- ``plots``, ``widgets`` (an explorer over saved results), ``cli``.
"""
