"""Experiment 013: differential learning rates. Does the band LR hierarchy (slow low bands, fast
high bands, up to 3000x apart) learn faster, generalise better and train more stably than a
uniform LR, and do the bands move at their prescribed rates? Every arm at its own tuned LR, at
more than one budget; an arm that does not beat the unigram loss judges nothing.

- ``presets``: the arms, ``PRESETS``, ``Study``, ``study()``;
- ``experiment``: ``run_experiment()`` (tune, train, measure, judge, write) and its tables;
- ``trainings``: each training once, saved as it finishes, reloaded on resume; ``tune()``;
- ``sweep``: the sweep's trainings' tags and table form (the rule: ``akira_nb.lr_sweep``);
- ``claims``: ``SEED_CLAIMS`` (H1-H4), one function per claim, the recommendation, the seed's
  template, ``kit_summary``;
- ``evaluate``: per-run measures, the learning check, paired tests and the seed's thresholds;
- ``plots``, ``widgets`` (an explorer over saved results), ``cli``.
It trains on the band-model library (``akira_nb.bandformer``: model, optim, train).
"""
