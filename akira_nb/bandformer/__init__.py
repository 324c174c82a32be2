"""Experiment 026: the band transformer (7 bands with their own learning rates and a cross-band
wormhole) against a parameter-matched GPT; its model and trainer also serve experiment 013
(:mod:`akira_nb.differential_lr`).

- ``model``: ``BandConfig`` + ``BandTransformer`` (band and reference layouts), ``GPTConfig`` +
  ``BaselineTransformer`` (``matched_to``), ``model_summary``, ``next_token_loss``;
- ``optim``: per-band AdamW parameter groups, LR presets and ablations, schedules, per-slice LRs
  for a standard model (``SliceScaledAdamW``), the weight-change monitor;
- ``train``: one arm per call (AMP, checkpoints and exact resume, torchrun / DDP);
- ``experiment``: the 026 study, tables, the seed's predictions; ``selftest``: the seed's model
  test as a report.
"""
