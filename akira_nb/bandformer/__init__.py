"""The band-model library that experiments 026 (:mod:`akira_nb.band_transformer`) and 013
(:mod:`akira_nb.differential_lr`) stand on.

- ``config``: the arm tables, ``BandConfig`` (+ ``PRESETS``), ``GPTConfig``, ``TrainConfig``
  (torch-free);
- ``model``: ``BandBlock`` + ``BandTransformer``, ``BaselineTransformer`` (``matched_to``,
  ``equal_width_config``); ``layout`` (band groups, ``BandLayout``, ``BandLinear``,
  ``BandLayerNorm``), ``layers`` (attention, wormhole, MLPs), ``lm`` (embeddings, losses,
  ``model_summary``);
- ``optim``: per-band AdamW groups, LR presets, the schedule, per-slice LRs
  (``SliceScaledAdamW``); ``monitor``: the weight-change monitor;
- ``train``: one arm per call (AMP, checkpoints and exact resume, torchrun / DDP), with
  ``data``, ``steps`` and ``ddp``; ``selftest``: the seed's model test as a report.
"""
