"""Streaming both models over the inputs into running correlation statistics of every layer pair,
real and token-shuffled (:class:`PairStream`), checkpointed in the run folder and resumable
(:func:`stream_models`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

from akira_nb.alignment import activations as act
from akira_nb.alignment.aq_config import pair_key
from akira_nb.alignment.aq_inputs import tokens_fingerprint
from akira_nb.alignment.correlation import SharedMarginalsCorrelation, StreamingCorrelation
from akira_nb.alignment.thresholds import ShuffledStream
from akira_nb.runtime import check_bool, check_int, get_device

if TYPE_CHECKING:
    from akira_nb.alignment.aq_config import AQConfig

STREAM_MAY_CHANGE = ("checkpoint_every", "device")


class PairStream:
    """Running correlation statistics of every layer pair, real and token-shuffled.

    ``update(acts_a, acts_b)`` takes one batch as dicts ``{layer: [n_tokens, width]}`` (the same
    token rows in both). The null of pair ``(la, lb)`` sees B's rows permuted within each batch
    (:class:`~.thresholds.ShuffledStream`, seeded by ``seed`` and the batch number, so a resumed
    stream draws the permutations an uninterrupted one would have); it keeps only its own
    cross-product and shares every other sum with the real accumulator
    (:class:`~.correlation.SharedMarginalsCorrelation`: the permutation leaves them unchanged).
    ``all_b_layers``: also one accumulator of A's layers against all these layers of B
    concatenated (``all_b``), for Gurnee et al.'s max over every layer of B
    (:func:`gurnee_all_layers`; no null: the rotation baseline is its chance correction).
    ``stream_cka``: the real accumulators also keep A's second moment, for linear CKA over
    every streamed token (:func:`~.cka.linear_cka_from_stats`).
    """

    def __init__(
        self,
        pairs,
        d_a: int,
        d_b: int,
        device=None,
        seed: int = 0,
        all_b_layers=None,
        stream_cka: bool = False,
    ):
        self.pairs = [(int(la), int(lb)) for la, lb in pairs]
        if not self.pairs:
            raise ValueError("pairs=[] must name at least one layer pair")
        self.d_a, self.d_b = check_int("d_a", d_a, low=1), check_int("d_b", d_b, low=1)
        self.device = get_device(device)
        self.seed = check_int("seed", seed, low=0)
        self.stream_cka = check_bool("stream_cka", stream_cka)
        self.stats = {
            p: StreamingCorrelation(d_a, d_b, self.device, track_a_cov=self.stream_cka)
            for p in self.pairs
        }
        self.null = {p: SharedMarginalsCorrelation(self.stats[p]) for p in self.pairs}
        self._shuffle = {p: ShuffledStream(self.null[p], self.seed) for p in self.pairs}
        self.all_b_layers, self.all_b = None, None
        if all_b_layers is not None:
            self.all_b_layers = [check_int("all_b_layers[]", v, low=0) for v in all_b_layers]
            if not self.all_b_layers:
                raise ValueError("all_b_layers=[] must name at least one layer of B")
            self.all_b = StreamingCorrelation(
                {la: d_a for la in self.layers_a},
                {lb: d_b for lb in self.all_b_layers},
                self.device,
            )
        self.n_batches = 0

    @property
    def layers_a(self) -> list[int]:
        return sorted({la for la, _ in self.pairs})

    @property
    def layers_b(self) -> list[int]:
        return sorted({lb for _, lb in self.pairs})

    @property
    def layers_b_needed(self) -> list[int]:
        """B's layers every batch must bring: the paired ones and ``all_b_layers``."""
        return sorted(set(self.layers_b) | set(self.all_b_layers or []))

    @property
    def n_tokens(self) -> int:
        return self.stats[self.pairs[0]].n

    @property
    def nbytes(self) -> int:
        """Bytes of every accumulator (what a checkpoint holds): per pair, the real one's
        ``cross`` and ``B^T B`` and the null's ``cross`` (``8 * (2 d_a d_b + d_b^2)``: 336 MB at
        gpt2 x gpt2-medium, about 1.0 GB for the seed's 3 pairs)."""
        pairs = sum(self.stats[p].nbytes + self.null[p].nbytes for p in self.pairs)
        return pairs + (self.all_b.nbytes if self.all_b is not None else 0)

    def update(self, acts_a, acts_b) -> PairStream:
        for p in self.pairs:
            xa, xb = acts_a[p[0]], acts_b[p[1]]
            self.stats[p].update(xa, xb)
            self._shuffle[p].update(xa, xb)
        if self.all_b is not None:
            self.all_b.update(
                {la: acts_a[la] for la in self.layers_a},
                {lb: acts_b[lb] for lb in self.all_b_layers},
            )
        self.n_batches += 1
        return self

    def state_dict(self, copy: bool = True) -> dict:
        """Every accumulator's state (``copy=False``: see
        :meth:`~.correlation.StreamingCorrelation.state_dict`)."""
        return {
            "pairs": [list(p) for p in self.pairs],
            "d_a": self.d_a,
            "d_b": self.d_b,
            "seed": self.seed,
            "n_batches": self.n_batches,
            "stats": {pair_key(*p): self.stats[p].state_dict(copy) for p in self.pairs},
            "null": {pair_key(*p): self.null[p].state_dict(copy) for p in self.pairs},
            "all_b_layers": self.all_b_layers,
            "all_b": self.all_b.state_dict(copy) if self.all_b is not None else None,
        }

    def load_state_dict(self, state: dict) -> None:
        pairs = [tuple(p) for p in state["pairs"]]
        if pairs != self.pairs or (state["d_a"], state["d_b"]) != (self.d_a, self.d_b):
            raise ValueError(
                f"saved stream has pairs {pairs} and widths {state['d_a']} x {state['d_b']}; "
                f"this one {self.pairs} and {self.d_a} x {self.d_b}"
            )
        saved = state.get("all_b_layers")
        if saved != self.all_b_layers:
            raise ValueError(f"saved stream has all_b_layers={saved}, this one {self.all_b_layers}")
        if self.all_b is not None:
            self.all_b.load_state_dict(state["all_b"])
        for p in self.pairs:
            self.stats[p].load_state_dict(state["stats"][pair_key(*p)])
            self.null[p].load_state_dict(state["null"][pair_key(*p)])
            self.null[p]._in_step()  # the null and its real accumulator saw the same batches
        self.n_batches = int(state["n_batches"])


def stream_config(
    cfg: AQConfig, inputs: act.TokenInputs, pairs, d_a: int, d_b: int, all_b_layers=None
) -> dict:
    """What a stream's checkpoint stores under ``"config"`` (checked on resume)."""
    return {
        "all_b_layers": None if all_b_layers is None else list(all_b_layers),
        "stream_cka": cfg.stream_cka,
        "model_a": cfg.model_a,
        "model_b": cfg.model_b,
        "pairs": [list(p) for p in pairs],
        "d_a": d_a,
        "d_b": d_b,
        "kind": inputs.kind,
        "n_sequences": inputs.n_sequences,
        "seq_len": inputs.seq_len,
        "batch_size": cfg.batch_size,
        "seed": cfg.seed,
        "tokens": tokens_fingerprint(inputs),
        "checkpoint_every": cfg.checkpoint_every,
        "device": str(cfg.device),
        "offline": cfg.offline,
    }


def stream_models(
    model_a,
    model_b,
    inputs: act.TokenInputs,
    pairs,
    cfg: AQConfig,
    run=None,
    resume: bool = False,
    progress: bool = False,
    max_batches: int | None = None,
    all_b_layers=None,
) -> PairStream:
    """Stream both models over ``inputs`` in batches of ``cfg.batch_size`` sequences into a
    :class:`PairStream`. With ``run``: the state is saved as the checkpoint
    ``checkpoints/stream_<kind>/`` every ``cfg.checkpoint_every`` batches and when the stream
    ends; ``resume=True`` continues from the newest one (refused, naming the fields, when it was
    made with other models, layers, tokens or batch size). ``max_batches``: stop after that many
    batches in all (a time-boxed run; a later resume continues). ``all_b_layers``: see
    :class:`PairStream`."""
    d_a, d_b = act.d_mlp(model_a), act.d_mlp(model_b)
    device = get_device(cfg.device)
    stream = PairStream(pairs, d_a, d_b, device, cfg.seed, all_b_layers, cfg.stream_cka)
    config = stream_config(cfg, inputs, stream.pairs, d_a, d_b, all_b_layers)
    tag = f"stream_{inputs.kind}"
    bs = cfg.batch_size
    total = math.ceil(inputs.n_sequences / bs)
    if run is not None and resume:
        state = run.latest_checkpoint(tag, config=config, may_change=STREAM_MAY_CHANGE)
        if state is not None:
            stream.load_state_dict(state["stream"])
    stop = total if max_batches is None else min(total, check_int("max_batches", max_batches, 0))

    def save():
        if run is not None:
            # written at once: no copy of the accumulators (1 GB at t4)
            state = {"config": config, "stream": stream.state_dict(copy=False), "total": total}
            run.save_checkpoint(state, stream.n_batches, tag=tag, keep=1)

    start = stream.n_batches
    if start < stop:
        rest = act.TokenInputs(
            inputs.tokens[start * bs : stop * bs],
            inputs.mask[start * bs : stop * bs],
            inputs.kind,
            inputs.info,
        )
        pairs_iter = act.iter_paired_activations(
            model_a, model_b, rest, stream.layers_a, stream.layers_b_needed, bs, device=device
        )
        bar = None
        if progress:
            from tqdm.auto import tqdm

            bar = tqdm(total=stop, initial=start, desc=f"stream {inputs.kind}", leave=False)
        for xa, xb in pairs_iter:
            stream.update(xa, xb)
            if bar is not None:
                bar.update(1)
            every = cfg.checkpoint_every
            if every and stream.n_batches % every == 0 and stream.n_batches < total:
                save()
        if bar is not None:
            bar.close()
        if stream.n_batches == total or max_batches is not None:
            save()
    return stream


__all__ = [
    "PairStream",
    "STREAM_MAY_CHANGE",
    "stream_config",
    "stream_models",
]
