"""Experiment 000 (Action Quanta): cross-model neuron correspondence on MLP activations.

Modules (the analysis ones are pure tensor math on activation matrices ``[n_tokens, n_neurons]``):

- ``activations``: MLP neuron activations (``blocks.{l}.mlp.hook_post``) from a TransformerLens
  ``TransformerBridge`` or any ``HookedRootModule``, BOS and pad positions excluded.
- ``correlation``: ``StreamingCorrelation`` (Pearson over tokens from float64 running sums, memory
  independent of the token count, resumable), index-matched correlation, Haar-rotation baselines
  and excess correlation (the seed's basic form and Gurnee et al.'s form).
- ``cka``: linear, debiased linear, minibatch and RBF CKA, and a layer x layer CKA matrix.
- ``transport``: one B neuron per A neuron by exact OT (POT ``ot.emd``), log-domain Sinkhorn or
  the Hungarian method (SciPy), cost ``1 - |corr|``.
- ``procrustes``: orthogonal Procrustes fitted on training tokens, scored on held-out tokens, with
  a token-shuffle null.
- ``thresholds``: statistical / percentile / fixed rules and the permutation (token-shuffle) null
  count printed beside every AQ count.
- ``aq``: the pipelines (basic, aligned, structural / semantic / universal) and verdicts.
"""
