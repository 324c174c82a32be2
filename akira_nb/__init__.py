"""akira_nb: the notebook-first research kit for the AKIRA spectral-band experiments.

Experiment packages (``python -m akira_nb <sub-command>``, see ``__main__.py``):

- ``grokking`` (sub-command ``grokking``): standard attention vs FFT "wave" mixing on a + b mod p.
- ``spatiotemporal`` (``spatiotemporal``): experiment 033, spectral band attention for
  next-frame prediction.
- ``alignment`` (``action_quanta``): experiment 000, Action Quanta, neuron correspondence
  across models.
- ``bandformer`` (``bandformer``): experiment 026, the band transformer; its model and trainer
  also serve 013.
- ``differential_lr`` (``differential_lr``): experiment 013, differential learning rates.

Shared modules: ``runtime`` (sizes, device, seeding, validators), ``runs`` (run folders,
atomic results, checkpoints, resume), ``claims`` (the claims vocabulary: ``Claim``, the one
``verdict``, the kit summary), ``spectral`` (FFT band splits), ``text``
(corpora, tokenizers, splits), ``standins`` (offline stand-ins for downloads), ``lr_sweep`` (the
LR sweep rule), ``explorers`` (what every ``widgets.py`` shares).

Nothing is imported here, so ``import akira_nb`` stays light (no torch); import a sub-package or
module by name.
"""

__version__ = "0.1.0"

__all__ = [
    # experiment packages
    "grokking",
    "spatiotemporal",
    "alignment",
    "bandformer",
    "differential_lr",
    # shared modules
    "runtime",
    "runs",
    "spectral",
    "text",
    "standins",
    "lr_sweep",
    "explorers",
    "claims",
]
