"""Experiment 026: the band transformer (7 bands with their own learning rates and a cross-band
wormhole) against a parameter-matched GPT and a GPT of its width, every arm at its own tuned LR
at one or more budgets; its model and trainer also serve experiment 013
(:mod:`akira_nb.differential_lr`).

- ``model``: ``BandConfig`` + ``BandTransformer`` (band and reference layouts), ``GPTConfig`` +
  ``BaselineTransformer`` (``matched_to``, ``equal_width_config``), ``model_summary``,
  ``next_token_loss``;
- ``optim``: per-band AdamW parameter groups, LR presets and ablations, schedules, per-slice LRs
  for a standard model (``SliceScaledAdamW``), the weight-change monitor;
- ``train``: one arm per call (AMP, checkpoints and exact resume, torchrun / DDP), training
  FLOPs per step (``step_flops``);
- ``sweep``: the comparison's rules on plain numbers (the LR sweep and its edge rule, budgets,
  the learning check);
- ``experiment``: the 026 study (every arm's LR sweep at each budget), tables, the seed's
  predictions and the band-vs-GPT verdicts; ``selftest``: the seed's model test as a report.
"""
