"""The band analyses of experiment 026: each band's ablation (the validation-loss increase when
its slice of every sublayer output is zeroed), recorded at every checkpoint as a training saves
it (:class:`AblationRun`), the maturity step of each band's ablation curve, and the per-band
statistics (RMS, spectral centroid, low-frequency share) of the trained models.
"""

from __future__ import annotations

import numpy as np

from akira_nb.band_transformer.claims import MATURITY
from akira_nb.bandformer import train


def _eval_loss(model, blocks, batch_size: int, fwd_hooks=()) -> float:
    """Mean next-token loss of ``model`` over ``blocks`` with ``fwd_hooks`` attached: the
    training's evaluation (``train.mean_loss``: its autocast, logits in chunks)."""
    device = next(model.parameters()).device
    with model.hooks(fwd_hooks=list(fwd_hooks)):
        return train.mean_loss(model, blocks, batch_size, device)


def band_ablation(model, blocks, batch_size: int = 16) -> dict:
    """Per band, the validation-loss increase when the band's computation is removed: its slice
    of every sublayer output (attention, wormhole, MLP; the padded band layout) zeroed in every
    block, so the band's residual stream keeps only its embedding. Returns ``{"loss": clean
    loss, "increase": [per band], "loss_ablated": [per band]}``. Eval mode, under the
    training's autocast; one pass per band."""
    import torch

    cfg = model.cfg
    was_training = model.training
    model.eval()
    names = [
        f"blocks.{layer}.{hook}"
        for layer in range(cfg.n_layers)
        for hook in ("hook_attn_out", "hook_wormhole_out", "hook_mlp_out")
        if f"blocks.{layer}.{hook}" in model.hook_dict
    ]
    try:
        clean = _eval_loss(model, blocks, batch_size)
        ablated = []
        for band in range(cfg.n_bands):
            keep = torch.ones(cfg.n_bands, 1, device=next(model.parameters()).device)
            keep[band] = 0.0

            def zero(tensor, hook, keep=keep):
                return tensor * keep.to(tensor.dtype)

            ablated.append(_eval_loss(model, blocks, batch_size, [(n, zero) for n in names]))
    finally:
        model.train(was_training)
    return {
        "loss": clean,
        "loss_ablated": ablated,
        "increase": [a - clean for a in ablated],
    }


def band_statistics(model, blocks, layer: int = -1) -> dict:
    """Per band of a band-layout model, its state after block ``layer`` on ``blocks``
    (``hook_band_out``): mean, std and RMS over tokens and dims, and its spectral content along
    the sequence (:func:`akira_nb.alignment.aq.spectral_profile` per dim: the median spectral
    centroid with the DC bin excluded, in cycles per token, and the mean share of the non-DC
    power in the lowest 3 of 7 frequency bands). Position 0 is dropped (the first position has no
    context)."""
    from akira_nb.alignment.aq import spectral_profile

    device = next(model.parameters()).device
    acts = model.band_activations(blocks.to(device), layer)
    out = {"band_dims": list(model.cfg.band_dims), "mean": [], "std": [], "rms": []}
    out.update(centroid=[], low_share=[], power=[])
    for x in acts:
        x = x[:, 1:].double().cpu()
        out["mean"].append(float(x.mean()))
        out["std"].append(float(x.std()))
        out["rms"].append(float(x.pow(2).mean().sqrt()))
        prof = spectral_profile(x, n_bands=7)
        out["centroid"].append(float(np.median(prof["centroid"])))
        out["low_share"].append(float(prof["band_share"][:3].sum(0).mean()))
        out["power"].append((prof["power"].mean(1) / max(prof["power"].mean(1).sum(), 1e-30)))
    out["freqs"] = prof["freqs"].tolist()
    out["power"] = [p.tolist() for p in out["power"]]
    return out


def stats_lines(stats: dict) -> list[str]:
    """One line per band-layout arm of :func:`band_statistics`: each band's RMS, spectral
    centroid (cycles per token, DC excluded) and low-frequency share."""
    lines = []
    for arm, s in stats.items():
        parts = [
            f"b{i} rms {r:.3g} centroid {c:.3f} low {lo:.2f}"
            for i, (r, c, lo) in enumerate(zip(s["rms"], s["centroid"], s["low_share"]))
        ]
        lines.append(f"{arm}: " + " | ".join(parts))
    return lines


def maturity_step(steps, values, fraction: float = MATURITY) -> int | None:
    """The first step at which ``values`` reach ``fraction`` of their final value and stay
    there (a band's ablation loss rising as it learns its function); None when the final value
    is not positive or nothing is logged."""
    v = np.asarray(values, dtype=float)
    if v.size == 0 or not np.isfinite(v).all() or v[-1] <= 0:
        return None
    below = np.nonzero(v < fraction * v[-1])[0]
    i = 0 if below.size == 0 else int(below[-1]) + 1
    return int(steps[min(i, v.size - 1)])


def maturation_of(ab: dict) -> dict:
    """Each band's maturity step (:func:`maturity_step`) from its ablation curve (``budget``:
    the training's, when the curve records it)."""
    inc = np.asarray(ab["increase"], dtype=float)  # [checkpoints, bands]
    return {
        "steps": list(ab["steps"]),
        "budget": ab.get("budget"),
        "maturity": [maturity_step(ab["steps"], inc[:, i]) for i in range(inc.shape[1])],
        "final_increase": inc[-1].tolist(),
    }


class AblationRun:
    """The run folder as ``train`` sees it, recording the band ablation (:func:`band_ablation`)
    of every checkpoint as it is saved: ``train`` calls ``save_checkpoint`` every
    ``checkpoint_every`` steps and at the end, and this wrapper evaluates the saved weights on a
    scratch copy of the model (eval mode, the fixed ablation blocks), so the per-band ablation
    curve needs no extra checkpoint kept on disk. The records go to ``arms/<tag>_ablation.json``
    after each save (``tag``: the training's); a resumed arm reloads them. Everything else is
    the wrapped :class:`akira_nb.runs.Run`."""

    def __init__(self, run, cfg, tag: str, blocks, resume: bool = False):
        self._run, self.cfg, self.tag, self.blocks = run, cfg, tag, blocks
        self.record = run.file(f"arms/{tag}_ablation.json")
        self.steps: dict[int, dict] = {}
        self._model = None
        if resume and self.record.is_file():
            from akira_nb.runs import read_json

            saved = read_json(self.record)
            self.steps = {int(e["step"]): e for e in saved["checkpoints"]}

    def __getattr__(self, name):
        return getattr(self._run, name)

    def save_checkpoint(self, state: dict, step: int, tag: str = "", keep: int = 2):
        path = self._run.save_checkpoint(state, step, tag=tag, keep=keep)
        self.add(int(step), state["model"])
        return path

    def add(self, step: int, state_dict) -> None:
        """Record the ablation of the weights ``state_dict`` at ``step``."""
        from akira_nb.runs import atomic_write_json

        if self._model is None:
            self._model, _ = train.build_model(self.cfg)
        device = next(iter(state_dict.values())).device
        self._model.to(device).load_state_dict(state_dict)
        ab = band_ablation(self._model, self.blocks, self.cfg.batch_size)
        self.steps = {k: v for k, v in self.steps.items() if k < step}
        self.steps[step] = {"step": step, **ab}
        atomic_write_json(self.record, {"tag": self.tag, "checkpoints": self.curve()})

    def curve(self) -> list[dict]:
        return [self.steps[k] for k in sorted(self.steps)]

    def result(self, final_model) -> dict:
        """``{"steps", "loss", "increase" [checkpoints][bands]}``; the final model is ablated
        here when no record reached the last step (e.g. an arm finished by an older run)."""
        last = int(self.cfg.total_steps)
        if last not in self.steps:
            self.add(last, final_model.state_dict())
        self._model = None  # the scratch copy (the arm's size) is not needed any more
        curve = self.curve()
        return {
            "steps": [e["step"] for e in curve],
            "loss": [e["loss"] for e in curve],
            "increase": [e["increase"] for e in curve],
        }
