"""Experiment 000 (Action Quanta): cross-model neuron correspondence on MLP activations.

Modules (the analysis ones are pure tensor math on activation matrices ``[n_tokens, n_neurons]``):

- ``activations``: MLP neuron activations (``blocks.{l}.mlp.hook_post``) from a TransformerLens
  ``TransformerBridge`` or any ``HookedRootModule``, BOS and pad positions excluded.
- ``correlation``: ``StreamingCorrelation`` (Pearson over tokens from float64 running sums, memory
  independent of the token count, resumable), index-matched correlation, Haar-rotation baselines
  and excess correlation (the seed's basic form and Gurnee et al.'s form).
- ``cka``: linear, debiased linear, minibatch and RBF CKA, and a layer x layer CKA matrix
  (linear ones in float32 on CUDA, float64 on the CPU: ``correlation.analysis_dtype``).
- ``transport``: one B neuron per A neuron by exact OT (POT ``ot.emd``), log-domain Sinkhorn or
  the Hungarian method (SciPy), cost ``1 - |corr|``.
- ``procrustes``: orthogonal Procrustes fitted on training tokens, scored on held-out tokens, with
  a token-shuffle null (torch on the run's device, the shuffle fits batched).
- ``thresholds``: statistical / percentile / fixed rules and the permutation (token-shuffle) null
  count printed beside every AQ count.
- ``aq``: the pipelines (basic, Gurnee, aligned: CKA + OT + held-out Procrustes; structural /
  semantic / universal with the chance overlap; index or relative-depth layer pairing; resumable
  streams; spectra on the neurons the AQ indices name), the seed's verdicts, the offline
  stand-ins of the Hub models (``AQConfig.offline``) and the per-stage timings (``Stages``).

The experiment (``python -m akira_nb action_quanta``, ``notebooks/000_action_quanta.py``):

- ``experiment``: size presets and plans, the run folder (results.json, figures), the
  reference's numbers beside the measured ones, claims with verdicts, the kit-summary section,
  and the grokking ground truth (matched neurons of two grokked models and their key
  frequencies).
- ``plots``: the seed's figures, CKA heatmap, OT matches, universality, spectra, grokking.
- ``widgets``: the explorer (layer pair, method, threshold rule and value) over a tested callback.
- ``cli``: the command-line flags (no torch import at module level).
"""
