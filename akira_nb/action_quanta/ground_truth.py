"""The grokking ground truth of experiment 000: two models trained on a + b mod p with different
seeds, whose MLP neurons have known key frequencies, so whether OT-matched neurons share their
key frequency (against chance) is a correspondence test with a known answer.

The one module of 000 that uses :mod:`akira_nb.grokking` (its data, Fourier analysis and
trainer), always inside functions, so importing this module imports neither torch nor grokking.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

import numpy as np

from akira_nb import runtime
from akira_nb.alignment.choices import MATCH_METHODS


@dataclass
class GrokConfig:
    """The grokking ground truth: two models on a + b mod ``p`` (one per seed), the same
    architecture and data split, trained full-batch
    (:func:`akira_nb.modular_arithmetic.train.train`).
    ``match_method``: OT method matching their MLP neurons; ``threshold``: matched |corr| that
    counts as an AQ; ``explained``: share of a neuron's variance its key frequency must explain
    for the neuron to count as well explained. Checked when built."""

    p: int = 23
    mixer: str = "fnet"
    seeds: tuple = (0, 1)
    n_epochs: int = 600
    train_frac: float = 0.8
    lr: float = 3e-3
    weight_decay: float = 1.0
    d_mlp: int = 512
    match_method: str = "hungarian"
    threshold: float = 0.5
    explained: float = 0.85
    n_null: int = 5
    device: str = "auto"
    cpu_threads: int = 1

    def __post_init__(self):
        seeds = runtime.check_seeds("grok.seeds", self.seeds)
        if len(seeds) != 2:
            raise ValueError(f"grok.seeds={self.seeds!r} must name exactly two seeds")
        self.seeds = tuple(seeds)
        for s in seeds:
            self.train_config(s)  # a TrainConfig checks itself when built
        runtime.check_choice("grok.match_method", self.match_method, MATCH_METHODS)
        runtime.check_real("grok.threshold", self.threshold, 0.0, 1.0)
        runtime.check_real("grok.explained", self.explained, 0.0, 1.0)
        runtime.check_int("grok.n_null", self.n_null, low=1)

    def train_config(self, seed: int):
        from akira_nb.modular_arithmetic.config import TrainConfig

        return TrainConfig(
            p=self.p,
            mixer=self.mixer,
            seed=int(seed),
            data_seed=0,
            n_epochs=self.n_epochs,
            train_frac=self.train_frac,
            lr=self.lr,
            weight_decay=self.weight_decay,
            d_mlp=self.d_mlp,
            eval_every=max(self.n_epochs // 20, 1),
            checkpoint_every=0,
            progress_every=0,
            device=self.device,
            cpu_threads=self.cpu_threads,
        )


def _trained_neurons(g: GrokConfig, run, resume: bool, progress: bool):
    """Train both seeds; ``(trained, acts, freqs, frac)``: each model's training result, its MLP
    activations at ``=`` over all ``p^2`` pairs, each neuron's key frequency and the share of its
    variance that frequency explains."""
    from akira_nb.alignment import activations as act
    from akira_nb.modular_arithmetic.data import make_dataset
    from akira_nb.modular_arithmetic.fourier import neuron_frequencies
    from akira_nb.modular_arithmetic.train import train

    trained = [train(g.train_config(s), run=run, resume=resume, progress=progress) for s in g.seeds]
    data = make_dataset(g.p, g.train_frac, 0)
    acts, freqs, frac = [], [], []
    for res in trained:
        a = act.collect_activations(res.model, data.inputs, [0], batch_size=g.p * g.p, device="cpu")
        a = a[0].double()
        f, e = neuron_frequencies(a, g.p)
        acts.append(a)
        freqs.append(f.numpy())
        frac.append(e.numpy())
    return trained, acts, freqs, frac


def _agreement(g: GrokConfig, m, freqs, frac) -> dict:
    """Key-frequency agreement of the matched pairs ``m``: alive neurons, well-explained ones,
    those above the |corr| threshold, and index-matched pairs (the seed's basic pairing)."""
    from akira_nb.alignment.aq_spectra import frequency_agreement

    fa, fb = freqs
    alive = (fa > 0) & (fb[m.b_idx] > 0)
    well = alive & (frac[0] > g.explained) & (frac[1][m.b_idx] > g.explained)
    high = alive & (m.abs_corr > g.threshold)
    return {
        "alive": frequency_agreement(fa, fb, m.b_idx, alive),
        "well_explained": frequency_agreement(fa, fb, m.b_idx, well),
        "aq": frequency_agreement(fa, fb, m.b_idx, high),
        "index_matched": frequency_agreement(fa, fb, np.arange(len(fa)), (fa > 0) & (fb > 0)),
    }


def run_grokking(g: GrokConfig, run=None, resume: bool = False, progress: bool = False) -> dict:
    """Train the two grokking models and compare their MLP neurons.

    Activations: ``blocks.0.mlp.hook_post`` at ``=`` over all ``p^2`` pairs. Returns the models'
    summaries (grok epoch, test accuracy, key frequencies), the OT matching of A's neurons to
    B's, the key-frequency agreement of matched pairs (alive neurons; well-explained ones; the
    matched |corr| above ``threshold``; index-matched pairs as the seed's method would pair
    them) against chance and against a token-shuffle null, and arrays for the figures."""
    import torch

    from akira_nb.alignment.aq_spectra import frequency_agreement
    from akira_nb.alignment.correlation import correlation_of
    from akira_nb.alignment.thresholds import count_with_null, permute_rows
    from akira_nb.alignment.transport import match_neurons

    start = time.perf_counter()
    trained, acts, freqs, frac = _trained_neurons(g, run, resume, progress)
    m = match_neurons(correlation_of(acts[0], acts[1], device="cpu").corr(), g.match_method)
    gen = torch.Generator().manual_seed(g.seeds[0])
    null_m = [
        match_neurons(acts[0], permute_rows(acts[1], gen), g.match_method) for _ in range(g.n_null)
    ]
    fa, fb = freqs
    null_rates = []
    for nm in null_m:
        mask = (fa > 0) & (fb[nm.b_idx] > 0)
        null_rates.append(frequency_agreement(fa, fb, nm.b_idx, mask)["rate"])
    count = count_with_null(
        m.abs_corr, np.stack([nm.abs_corr for nm in null_m]), "fixed", g.threshold
    )
    models = [
        {
            "seed": s,
            "grok_epoch": r.grok_epoch,
            "grokked": r.grok_epoch is not None,
            "test_acc": r.final["test_acc"],
            "train_acc": r.final["train_acc"],
            "key_freqs": list(r.key_freqs),
            "well_explained_neurons": int((fr > g.explained).sum()),
            "dead_neurons": int((f == 0).sum()),
        }
        for s, r, f, fr in zip(g.seeds, trained, freqs, frac)
    ]
    return {
        "config": asdict(g),
        "models": models,
        "grokked": all(x["grokked"] for x in models),
        "shared_key_freqs": sorted(set(models[0]["key_freqs"]) & set(models[1]["key_freqs"])),
        "matching": m.summary(g.threshold),
        "aq_count": count.to_dict(),
        "aq_line": count.line(),
        "agreement": _agreement(g, m, freqs, frac),
        "null_agreement_rate": float(np.mean(null_rates)),
        "seconds": time.perf_counter() - start,
        "arrays": {
            "abs_corr": m.abs_corr,
            "partner": m.b_idx,
            "freq_a": fa,
            "freq_b": fb,
            "frac_a": frac[0],
            "frac_b": frac[1],
            "null_abs_corr": null_m[0].abs_corr,
        },
    }


def grokking_lines(gk: dict) -> list[str]:
    """Printable lines of :func:`run_grokking`'s result."""
    out = []
    for x in gk["models"]:
        grok = f"grokked at epoch {x['grok_epoch']}" if x["grokked"] else "did NOT grok"
        out.append(
            f"grokking seed {x['seed']}: {grok}, test acc {x['test_acc']:.3f}, key freqs "
            f"{x['key_freqs']}, {x['well_explained_neurons']} well-explained neurons"
        )
    out.append(f"shared key frequencies: {gk['shared_key_freqs'] or 'none'}")
    out.append(f"matched |corr| (OT, {gk['matching']['method']}): {gk['aq_line']}")
    for key, label in (
        ("alive", "OT-matched pairs (alive neurons)"),
        ("well_explained", "OT-matched pairs, both well explained"),
        ("aq", "OT-matched pairs above the |corr| threshold"),
        ("index_matched", "index-matched pairs (the seed's basic pairing)"),
    ):
        a = gk["agreement"][key]
        rate = "-" if a["rate"] is None else f"{a['rate']:.3f}"
        p = "-" if a["p_value"] is None else f"{a['p_value']:.2g}"
        out.append(
            f"same key frequency, {label}: {a['same']}/{a['n']} = {rate} (chance "
            f"{a['chance']:.3f}, binomial p = {p})"
        )
    out.append(f"same key frequency under the token-shuffle null: {gk['null_agreement_rate']:.3f}")
    if not gk["grokked"]:
        out.append("NOTE: a model did not grok, so its key frequencies are not a ground truth")
    return out


__all__ = ["GrokConfig", "grokking_lines", "run_grokking"]
