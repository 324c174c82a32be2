"""The band transformer's self-test: the equivalent of the seed's
``python code/models/akira_band_transformer.py`` (``python -m akira_nb bandformer --selftest``).

:func:`selftest` builds the model on the CPU, runs a small random batch and returns the report
as text: parameters (with the seed's ~25M claim beside the count), hidden dim, band dims and
LRs, the logits shape, each band's activation shape, every parameter group with its size and LR
(from :func:`akira_nb.bandformer.optim.param_groups` where that module exists, else the
per-band counts of ``parameter_bands()`` with the configured LRs), the matched baseline, and the
seed's closing line.
"""

from __future__ import annotations

import importlib.util
import math

import torch

from akira_nb.bandformer.model import (
    TEST_COMPLETE,
    BandConfig,
    BandTransformer,
    BaselineTransformer,
    model_summary,
)
from akira_nb.runtime import check_int

SEED_CLAIM = "~25M"  # the seed README's "Model parameters" line


def _groups(model: BandTransformer) -> tuple[str, list[tuple[str, int, float, float | None]]]:
    """(source, [(name, n_params, lr, weight_decay or None)])."""
    if importlib.util.find_spec("akira_nb.bandformer.optim") is not None:
        from akira_nb.bandformer.optim import param_groups

        groups = param_groups(model)
        rows = [
            (g["name"], sum(p.numel() for p in g["params"]), g["lr"], g.get("weight_decay"))
            for g in groups
        ]
        return "akira_nb.bandformer.optim.param_groups(model), lr_mode='differential'", rows
    cfg, owner = model.cfg, model.parameter_bands()
    sizes = [0] * cfg.n_bands
    shared = 0
    for name, p in model.named_parameters():
        if owner[name] is None:
            shared += p.numel()
        else:
            sizes[owner[name]] += p.numel()
    rows = [(f"band_{i}", n, lr, None) for i, (n, lr) in enumerate(zip(sizes, cfg.band_lrs))]
    return "model.parameter_bands() with the configured LRs", rows + [
        ("shared", shared, cfg.shared_lr, None)
    ]


def selftest(cfg: BandConfig | None = None, batch: int = 2, seq: int = 16, seed: int = 0) -> str:
    """Build ``BandTransformer(cfg)`` (default: ``BandConfig()``, the 026 model) on the CPU, run
    ``batch`` random sequences of ``seq`` tokens, and return the report (see the module
    docstring). The last line is the seed's ``AKIRA Band Transformer test complete!``."""
    cfg = BandConfig() if cfg is None else cfg
    check_int("batch", batch, low=1)
    check_int("seq", seq, low=2, high=cfg.n_ctx)
    check_int("seed", seed, low=0)
    lines = ["Creating AKIRA Band Transformer..."]
    torch.manual_seed(seed)
    model = BandTransformer(cfg).eval()
    s = model_summary(model)
    lines += [
        f"Model parameters: {s['total']:,} (the seed's README says {SEED_CLAIM})",
        f"  embeddings {s['embedding']:,}, non-embedding {s['non_embedding']:,}, of which in "
        f"bands {sum(s['bands']):,} = {s['band_fraction']:.2%} "
        f"({s['band_fraction_total']:.2%} of all parameters)",
        f"Hidden dim: {cfg.d_model}",
        f"Band dims: {cfg.band_dims}",
        f"Band LRs: {cfg.band_lrs}",
        f"Shared LR: {cfg.shared_lr}",
    ]
    if cfg.layout == "band":
        attn = f"per-band attention, {cfg.heads_per_band} heads of {cfg.d_head}"
    else:
        attn = f"shared full-width attention, {cfg.n_heads} heads (reference layout)"
    worm = (
        f"wormhole on ({len(cfg.band_pairs)} band pairs, d_wormhole {cfg.d_wormhole}, "
        f"gates tanh({cfg.wormhole_gate_init}) at init)"
        if cfg.wormhole
        else "wormhole off"
    )
    tied = "tied" if cfg.tie_embeddings else "untied"
    lines.append(f"Layout: {attn}; {worm}; {cfg.n_layers} layers; {tied} embeddings")
    tokens = torch.randint(
        cfg.vocab_size, (batch, seq), generator=torch.Generator().manual_seed(seed)
    )
    with torch.no_grad():
        logits = model(tokens)
        loss = float(model.loss(tokens))
    lines += [
        f"Input shape: {tuple(tokens.shape)} (random tokens)",
        f"Logits shape: {tuple(logits.shape)}",
        f"Loss at init: {loss:.4f} (ln vocab_size = {math.log(cfg.vocab_size):.4f})",
        f"Band activations (output of block {cfg.n_layers - 1}, hook "
        f"blocks.{cfg.n_layers - 1}.hook_band_out):",
    ]
    for i, act in enumerate(model.band_activations(tokens)):
        lines.append(f"  band {i}: {tuple(act.shape)}")
    lines.append(f"MLP neurons (blocks.l.mlp.hook_post): {cfg.d_mlp} per layer")
    source, rows = _groups(model)
    lines.append(f"Parameter groups ({source}):")
    for name, n, lr, wd in rows:
        decay = "" if wd is None else f"  weight_decay {wd:g}"
        lines.append(f"  {name:<18} {n:>12,} params  lr {lr:g}{decay}")
    lines.append(f"  {'total':<18} {sum(r[1] for r in rows):>12,} params")
    base = BaselineTransformer.matched_config(cfg)
    gap = base.n_params() / s["total"] - 1
    lines.append(
        f"Matched baseline GPT: d_model {base.d_model}, d_mlp {base.d_mlp}, {base.n_heads} heads, "
        f"{base.n_params():,} parameters ({gap:+.3%}), lr {base.lr:g}"
    )
    lines.append(TEST_COMPLETE)
    return "\n".join(lines)


__all__ = ["SEED_CLAIM", "selftest"]
