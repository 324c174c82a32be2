"""akira_nb: the notebook-first research kit for the AKIRA spectral-band experiments.

Experiment packages (``python -m akira_nb <sub-command>``, see ``__main__.py``), each with
``presets``, ``claims``, ``experiment``, ``plots``, ``widgets`` and ``cli`` modules:

- ``grokking`` (sub-command ``grokking``): standard attention vs FFT "wave" mixing on a + b mod p,
  on the ``modular_arithmetic`` library.
- ``spatiotemporal`` (``spatiotemporal``): experiment 033, spectral band attention for
  next-frame prediction.
- ``action_quanta`` (``action_quanta``): experiment 000, Action Quanta, neuron correspondence
  across models, on the ``alignment`` library.
- ``band_transformer`` (``bandformer``): experiment 026, the band transformer against matched
  GPTs, on the ``bandformer`` library.
- ``differential_lr`` (``differential_lr``): experiment 013, differential learning rates, on the
  ``bandformer`` library.

Libraries: ``alignment`` (activations, correlation, CKA, optimal transport, Procrustes, nulls,
the AQ pipeline), ``bandformer`` (the band transformer, the matched GPT, per-band optimiser,
the trainer) and ``modular_arithmetic`` (a + b mod p: data, the standard and wave-mixer models,
the trainer, Fourier analysis; also 000's known answer).

Shared modules: ``runtime`` (sizes, device, seeding, validators), ``runs`` (run folders,
atomic results, checkpoints, resume), ``claims`` (the claims vocabulary: ``Claim``, the one
``verdict``, the kit summary), ``spectral`` (FFT band splits), ``text`` (corpora, tokenizers,
splits), ``offline_corpus`` (the no-download corpus, cached per machine), ``standins``
(offline stand-ins for downloads), ``lr_sweep`` (the LR sweep rule), ``explorers`` (what every
``widgets.py`` shares).

Nothing is imported here, so ``import akira_nb`` stays light (no torch); import a sub-package or
module by name.
"""

__version__ = "0.1.0"

__all__ = [
    # experiment packages
    "grokking",
    "spatiotemporal",
    "action_quanta",
    "band_transformer",
    "differential_lr",
    # libraries
    "alignment",
    "bandformer",
    "modular_arithmetic",
    # shared modules
    "runtime",
    "runs",
    "spectral",
    "text",
    "offline_corpus",
    "standins",
    "lr_sweep",
    "explorers",
    "claims",
]
