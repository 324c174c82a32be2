"""Experiment 026, the band transformer (``python -m akira_nb bandformer``): 7 bands with their
own learning rates and a cross-band wormhole against a parameter-matched GPT and a GPT of its
width, every arm at its own tuned LR, on the band-model library :mod:`akira_nb.bandformer`.

``presets`` (``PRESETS``, ``Study``, ``study``), ``claims`` (``SEED_CLAIMS``, the claim
functions, ``kit_summary``), ``experiment`` (``run_experiment``), ``tables``, ``ablation``,
``aq_analysis``, ``sweep``, ``plots``, ``widgets``, ``cli``.
"""
