"""The alignment library: cross-model neuron correspondence on MLP activations.

Analysis modules (tensor math on activation matrices ``[n_tokens, n_neurons]``): ``activations``
(MLP neuron activations from a TransformerBridge or any HookedRootModule), ``correlation``
(streaming Pearson correlation), ``excess`` (excess over Haar-rotated baselines), ``cka``,
``transport`` (OT / Hungarian matching), ``procrustes`` (held-out orthogonal Procrustes),
``thresholds`` (threshold rules and permutation nulls) and ``models`` (the seed's model pairs,
the tiny offline pair). The AQ pipeline on top of them: ``aq`` (:func:`~.aq.run_aq`, re-exporting
its parts) with ``aq_config``, ``aq_inputs``, ``aq_stream``, ``aq_methods``, ``aq_chance``,
``aq_spectra``, ``stages`` (per-stage timings) and ``choices`` (named choices, torch-free).
Experiments 000 (:mod:`akira_nb.action_quanta`) and 026 use it.
"""
