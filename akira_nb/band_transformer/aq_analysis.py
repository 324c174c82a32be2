"""The AQ analysis of experiment 026: each architecture's two ``aq_seeds`` models compared by
:func:`akira_nb.alignment.aq.run_aq` (its streams checkpointed per settings), and the summary
the predictions read from it: AQ % per input type beside chance (per band for a band model),
the universal overlap as a share of the structural AQ, and the spectral centroids of the AQ
neurons per band.
"""

from __future__ import annotations

import time

import numpy as np

from akira_nb.band_transformer.presets import AQ_RUNTIME, Study
from akira_nb.bandformer import train

MAIN_METHOD = "procrustes"  # the seed design's AQ method (held-out here)


def _with_tokenizer(model, tokenizer):
    """The alignment package reads a kit model's tokenizer from ``model.tokenizer``."""
    model.tokenizer = tokenizer
    return model


def aq_by_band(method, slices) -> list[dict]:
    """Per band (``slices`` of the scored model's neurons): the AQ count above the method's main
    threshold, the chance count (null scores above the same threshold, mean over replicates,
    the largest of the method's nulls) and both as % of the band's neurons."""
    c = method.main
    out = []
    for i, sl in enumerate(slices):
        n = sl.stop - sl.start
        count = int((method.scores[sl] > c.threshold).sum())
        chance = max(
            float((np.atleast_2d(v)[:, sl] > c.threshold).sum(1).mean())
            for v in method.nulls.values()
        )
        out.append(
            dict(
                band=i,
                neurons=n,
                count=count,
                chance=chance,
                pct=100 * count / n,
                chance_pct=100 * chance / n,
                above_pct=100 * max(count - chance, 0.0) / n,
            )
        )
    return out


def aq_summary(result, model, method: str = MAIN_METHOD) -> dict:
    """What the predictions read from one architecture's :class:`~akira_nb.alignment.aq.AQResult`
    (``model``: one of its two models, for the band slices): per input type the main method's AQ
    % (raw, chance, above chance) averaged over the layer pairs, per band for a band model; the
    universal overlap as a share of the structural AQ beside the paired null's chance share; the
    spectral centroid of the AQ neurons per band."""
    from akira_nb.alignment.aq import METHOD_MODEL

    cfg = model.cfg
    slices = cfg.mlp_band_slices if hasattr(cfg, "mlp_band_slices") else None
    out = {"method": method, "rule": None, "by_kind": {}, "universal": None, "spectral": None}
    for kind, by in result.pairs.items():
        ms = [pr.methods[method] for pr in by.values() if method in pr.methods]
        if not ms:
            continue
        out["rule"] = ms[0].main.rule_text
        raw = float(np.mean([100 * m.main.fraction for m in ms]))
        chance = float(np.mean([100 * m.main_chance / len(m.scores) for m in ms]))
        entry = {
            "pct": raw,
            "chance_pct": chance,
            "above_pct": result.method_pct(kind, method, above_null=True),
            "per_layer": {pr.key: pr.methods[method].main.count for pr in by.values()},
            "neurons": len(ms[0].scores),
        }
        if slices is not None:
            per = [aq_by_band(m, slices) for m in ms]
            entry["bands"] = [
                {
                    k: (float(np.mean([p[i][k] for p in per])) if k != "band" else i)
                    for k in per[0][i]
                }
                for i in range(len(slices))
            ]
        out["by_kind"][kind] = entry
    uni = result.universal.get(method, {})
    if uni:
        n_struct = sum(u["n_a"] for u in uni.values())
        obs = sum(u["observed"] for u in uni.values())
        chance = sum(u["chance"] for u in uni.values())
        out["universal"] = {
            "observed": obs,
            "structural": n_struct,
            "semantic": sum(u["n_b"] for u in uni.values()),
            "share": 100 * obs / n_struct if n_struct else None,
            "chance": chance,
            "chance_share": 100 * chance / n_struct if n_struct else None,
            "p_values": {k: u["p_value"] for k, u in uni.items()},
            "n_null": min(u["n_null"] for u in uni.values()),
        }
    spec = result.spectral.get(method, {})
    if spec:
        per_band = None
        if slices is not None:
            cents: list[list[float]] = [[] for _ in slices]
            for s in spec.values():
                centroid = s["profile"]["centroid"]
                idx = np.asarray(s["aq_indices"], dtype=int)
                for i, sl in enumerate(slices):
                    sel = idx[(idx >= sl.start) & (idx < sl.stop)]
                    cents[i] += centroid[sel].tolist()
            per_band = cents
        out["spectral"] = {
            "model": METHOD_MODEL[method],
            "input_type": next(iter(spec.values()))["input_type"],
            "aq_centroids_by_band": per_band,
            "all_centroid_median": float(
                np.median(np.concatenate([s["profile"]["centroid"] for s in spec.values()]))
            ),
            "verdicts": {k: s["verdict"] for k, s in spec.items()},
        }
    return out


def aq_texts_of(plan: Study) -> list[str] | None:
    """The documents of the AQ analysis's text inputs (:func:`akira_nb.alignment.aq.load_texts`
    of its text corpus), loaded before the run folder exists, so a corpus that cannot load
    fails before any training rather than after all of it; None when the analysis has no text
    inputs (or no ``aq_seeds``)."""
    if not plan.aq_arms:
        return None
    from akira_nb.alignment import aq

    cfg = plan.aq_config(plan.aq_arms[0])
    if "text" not in cfg.input_types:
        return None
    return aq.load_texts(aq.text_corpus_of(cfg), cfg.seed)


def run_aq_analysis(
    plan: Study, models: dict, tokenizer, run=None, resume=False, log=print, texts=None
):
    """The AQ comparison of each architecture's two ``aq_seeds`` models
    (:func:`akira_nb.alignment.aq.run_aq`; its streams checkpoint under
    ``aq/<arm>-<settings digest>/``, so a resume with other AQ settings, which :data:`MAY_CHANGE`
    allows, computes them afresh beside the earlier ones instead of being refused by their
    checkpoints). ``models[(arm, seed)]``: the trained modules. ``texts``: the text inputs'
    documents (:func:`aq_texts_of`; None: loaded here). Returns ``{arm: {"result",
    "summary"}}``."""
    import hashlib
    import json

    from akira_nb.alignment import aq
    from akira_nb.runs import Run, to_jsonable

    out = {}
    for arm in plan.aq_arms:
        a, b = (models[(arm, s)] for s in plan.aq_seeds)
        cfg = plan.aq_config(arm)
        sub = None
        if run is not None:
            keep = {k: v for k, v in cfg.to_dict().items() if k not in AQ_RUNTIME}
            text = json.dumps(to_jsonable(keep), sort_keys=True)
            folder = run.path / "aq" / f"{arm}-{hashlib.sha256(text.encode()).hexdigest()[:8]}"
            folder.mkdir(parents=True, exist_ok=True)
            sub = Run(folder)
        start = time.perf_counter()
        result = aq.run_aq(
            cfg,
            _with_tokenizer(a, tokenizer),
            _with_tokenizer(b, tokenizer),
            run=sub,
            resume=resume,
            texts=texts,
        )
        summary = aq_summary(result, a)
        summary["seconds"] = time.perf_counter() - start
        # the activations kept for CKA, Procrustes and the spectra (t4: 2 input types x 2
        # layers x 2 models x 256 x 64 x 2048 floats, 1.1 GB) are not read after run_aq
        result.samples.clear()
        train.trim_heap()
        out[arm] = {"result": result, "summary": summary}
        log(aq_line(arm, summary))
    return out


def aq_line(arm: str, s: dict) -> str:
    """One line per architecture: AQ % per input type beside chance, and the universal share."""
    parts = [
        f"{kind} {e['pct']:.1f}% (chance {e['chance_pct']:.1f}%, above chance "
        f"{e['above_pct']:.1f}%)"
        for kind, e in s["by_kind"].items()
    ]
    u = s["universal"]
    if u and u["share"] is not None:
        parts.append(
            f"universal {u['observed']}/{u['structural']} = {u['share']:.1f}% of the structural "
            f"AQ (chance {u['chance_share']:.1f}%)"
        )
    return f"AQ {arm} ({s['method']}, {s['rule']}): " + "; ".join(parts)
