"""Experiments 026 and 013: the band transformer (7 bands with their own learning rates and a
cross-band wormhole) against a parameter-matched GPT.

- ``model``: ``BandConfig`` + ``BandTransformer`` (band and reference layouts), ``GPTConfig`` +
  ``BaselineTransformer`` (``matched_to``), ``model_summary``, ``next_token_loss``;
- ``optim``: per-band AdamW parameter groups, LR ablations, schedules, weight-change monitor;
- ``selftest``: the seed's model test as a report.
"""
