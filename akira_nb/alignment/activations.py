"""MLP neuron activations for cross-model comparison.

The post-nonlinearity MLP activations ``blocks.{l}.mlp.hook_post`` (``[batch, pos, d_mlp]``) of a
TransformerLens 4 ``TransformerBridge`` (a Hub model or a local Hugging Face folder, read with
``run_with_cache(..., stop_at_layer=deepest + 1)``) or of any kit ``HookedRootModule`` with those
hook names (read with temporary hooks that stop the forward pass after the deepest layer).
Everything runs under ``torch.no_grad()`` in ``eval()`` mode, in batches. Inputs are
:class:`TokenInputs` (ids ``[N, T]`` and a boolean ``mask``: True = counted); the rows of the
counted positions come back in (sequence, position) order. Excluded: the BOS position, right
padding and every special id of the tokenizer (so document separators of packed text), plus any
``exclude_ids``. Two models see the same positions because they get the same ``TokenInputs``;
:func:`check_same_tokenizer` refuses a pair whose tokenizers differ, and :func:`check_layers`
names a model's layers when one is missing. A kit model whose hook fires on fewer positions
than it reads is taken to report the last ones.
"""

from __future__ import annotations

import contextlib
import numbers
from dataclasses import dataclass, field
from typing import Any, Iterable, Iterator, Sequence

import torch

from akira_nb.runtime import check_bool, check_int

MLP_HOOK = "blocks.{layer}.mlp.hook_post"


def mlp_hook(layer: int) -> str:
    """The hook name of layer ``layer``'s MLP neurons: ``blocks.{layer}.mlp.hook_post``."""
    return MLP_HOOK.format(layer=layer)


# ----------------------------------------------------------------------------- model facts


def is_bridge(model) -> bool:
    """True for a TransformerLens ``TransformerBridge``."""
    from transformer_lens import TransformerBridge

    return isinstance(model, TransformerBridge)


def _check_model(model) -> None:
    from transformer_lens import HookedRootModule

    if not (is_bridge(model) or isinstance(model, HookedRootModule)):
        raise ValueError(
            f"model must be a TransformerBridge or a HookedRootModule; got {type(model).__name__}"
        )


def model_name(model) -> str:
    """A readable name: the Hub id or local folder of a bridge; class and config of a kit
    model (``GrokkingModel(p=113, mixer='standard')``)."""
    if is_bridge(model):
        return str(getattr(model.cfg, "model_name", None) or type(model).__name__)
    name = getattr(model, "name", None)
    if isinstance(name, str) and name:
        return name
    cfg = getattr(model, "cfg", None)
    keys = [k for k in ("p", "mixer", "n_layers", "d_model") if hasattr(cfg, k)]
    args = ", ".join(f"{k}={getattr(cfg, k)!r}" for k in keys)
    return f"{type(model).__name__}({args})"


def n_layers(model) -> int:
    """Number of blocks that have an MLP hook ``blocks.{l}.mlp.hook_post``."""
    _check_model(model)
    if is_bridge(model):
        return int(model.cfg.n_layers)
    layers = {int(name.split(".")[1]) for name in model.hook_dict if _is_mlp_hook(name)}
    if not layers:
        raise ValueError(f"{model_name(model)} has no hook named blocks.<l>.mlp.hook_post")
    if layers != set(range(len(layers))):
        raise ValueError(f"{model_name(model)} has MLP hooks on layers {sorted(layers)} only")
    return len(layers)


def _is_mlp_hook(name: str) -> bool:
    parts = name.split(".")
    return (
        len(parts) == 4
        and parts[0] == "blocks"
        and parts[1].isdigit()
        and parts[2:]
        == [
            "mlp",
            "hook_post",
        ]
    )


def d_mlp(model) -> int:
    """Number of MLP neurons per layer (``cfg.d_mlp``)."""
    _check_model(model)
    value = getattr(getattr(model, "cfg", None), "d_mlp", None)
    if not isinstance(value, int) or value < 1:
        raise ValueError(f"{model_name(model)} does not state its d_mlp (cfg.d_mlp)")
    return value


def tokenizer_of(model):
    """The model's tokenizer (a bridge's Hugging Face tokenizer), or None for kit models."""
    return getattr(model, "tokenizer", None)


def vocab_size(model) -> int:
    """The number of token ids the model accepts as input: the tokenizer's length for a bridge
    (not the embedding size, which Pythia pads from 50277 to 50304 with untrained rows), else
    ``cfg.d_vocab`` or the rows of ``W_E``."""
    _check_model(model)
    tok = tokenizer_of(model)
    if tok is not None:
        return len(tok)
    cfg = getattr(model, "cfg", None)
    d_vocab = getattr(cfg, "d_vocab", None)
    if isinstance(d_vocab, int) and d_vocab > 0:
        return d_vocab
    w_e = getattr(model, "W_E", None)
    if isinstance(w_e, torch.Tensor):
        return int(w_e.shape[0])
    raise ValueError(f"cannot tell the vocabulary size of {model_name(model)}")


def special_ids(tokenizer) -> list[int]:
    """The tokenizer's BOS, EOS and pad ids (without None and duplicates), sorted."""
    if tokenizer is None:
        return []
    ids = {getattr(tokenizer, f"{k}_token_id", None) for k in ("bos", "eos", "pad")}
    return sorted(int(i) for i in ids if i is not None)


def check_layers(model, layers: int | Iterable[int]) -> list[int]:
    """Validate layer indices against the model; returns them as a list of ints in the given
    order. A ``ValueError`` names the model and its layers when one does not exist."""
    if isinstance(layers, (bool, str)) or not isinstance(layers, (numbers.Integral, Iterable)):
        raise ValueError(f"layers={layers!r} must be an int or a list of ints")
    layers = [layers] if isinstance(layers, numbers.Integral) else list(layers)
    if not layers:
        raise ValueError("layers=[] must name at least one layer")
    n = n_layers(model)
    out = []
    for i, layer in enumerate(layers):
        check_int(f"layers[{i}]", layer)
        if not 0 <= layer < n:
            raise ValueError(
                f"layer {layer} does not exist in {model_name(model)}: it has {n} layers "
                f"(0-{n - 1})"
            )
        out.append(int(layer))
    if len(set(out)) != len(out):
        raise ValueError(f"layers={out} repeats a layer")
    return out


def check_same_tokenizer(model_a, model_b) -> None:
    """Refuse (``ValueError``) a pair of models whose token ids mean different things.

    Bridges: the tokenizers' vocabularies (token -> id) and special ids must be equal. Kit
    models without tokenizer: the vocabulary sizes must be equal. A bridge and a kit model never
    share a tokenizer."""
    tok_a, tok_b = tokenizer_of(model_a), tokenizer_of(model_b)
    names = f"{model_name(model_a)} and {model_name(model_b)}"
    if (tok_a is None) != (tok_b is None):
        raise ValueError(f"{names} do not share a tokenizer (one has none)")
    if tok_a is None:
        va, vb = vocab_size(model_a), vocab_size(model_b)
        if va != vb:
            raise ValueError(f"{names} have different vocabularies ({va} vs {vb} ids)")
        return
    if tok_a is tok_b:
        return
    if len(tok_a) != len(tok_b):
        raise ValueError(
            f"{names} have different tokenizers ({len(tok_a)} vs {len(tok_b)} tokens), so the "
            "same ids would be different text; compare models that share a tokenizer"
        )
    if tok_a.get_vocab() != tok_b.get_vocab():
        raise ValueError(f"{names} have different tokenizers (same size, different vocabularies)")
    if special_ids(tok_a) != special_ids(tok_b):
        raise ValueError(
            f"{names} have different special ids ({special_ids(tok_a)} vs {special_ids(tok_b)})"
        )


# ----------------------------------------------------------------------------- inputs


@dataclass
class TokenInputs:
    """Token ids ``[N, T]`` (long) and the ``mask`` ``[N, T]`` (bool, True = counted) that every
    model of a comparison receives. ``kind`` is 'random' or 'text'; ``info`` records how the
    inputs were made (seed, vocabulary, what was excluded)."""

    tokens: torch.Tensor
    mask: torch.Tensor
    kind: str
    info: dict = field(default_factory=dict)

    def __post_init__(self):
        _check_tokens(self.tokens, self.mask)

    @property
    def n_sequences(self) -> int:
        return int(self.tokens.shape[0])

    @property
    def seq_len(self) -> int:
        return int(self.tokens.shape[1])

    @property
    def n_valid(self) -> int:
        """Number of counted positions: the rows each layer's activation matrix will have."""
        return int(self.mask.sum())


def _check_tokens(tokens, mask=None) -> None:
    if not isinstance(tokens, torch.Tensor) or tokens.ndim != 2:
        shape = tuple(tokens.shape) if isinstance(tokens, torch.Tensor) else type(tokens).__name__
        raise ValueError(f"tokens must be a 2-D tensor [n_sequences, seq_len]; got {shape}")
    if tokens.dtype not in (torch.int64, torch.int32) or tokens.numel() == 0:
        raise ValueError(f"tokens must be a non-empty integer tensor; got {tokens.dtype}")
    if mask is not None:
        if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
            raise ValueError("mask must be a bool tensor (True = position counted)")
        if mask.shape != tokens.shape:
            raise ValueError(
                f"mask has shape {tuple(mask.shape)}; it must match tokens {tuple(tokens.shape)}"
            )


def random_tokens(
    vocab_size: int,
    n: int,
    seq_len: int,
    seed: int = 0,
    low: int = 0,
    high: int | None = None,
    exclude_ids: Sequence[int] = (),
    bos_id: int | None = None,
) -> TokenInputs:
    """The structural test's inputs: ``n`` sequences of ``seq_len`` ids drawn uniformly (torch
    generator seeded with ``seed``) from ``[low, high)`` (default the whole vocabulary) minus
    ``exclude_ids`` (pass the tokenizer's :func:`special_ids`). The seed used ``low=1000,
    high=vocab_size - 1000`` and no BOS. With ``bos_id``, position 0 holds BOS and is masked."""
    check_int("vocab_size", vocab_size, low=2)
    check_int("n", n, low=1)
    check_int("seq_len", seq_len, low=1)
    check_int("seed", seed, low=0)
    high = vocab_size if high is None else check_int("high", high, low=1, high=vocab_size)
    check_int("low", low, low=0, high=high - 1)
    excluded = {check_int("exclude_ids[]", i, low=0) for i in exclude_ids}
    if bos_id is not None:
        excluded.add(check_int("bos_id", bos_id, low=0, high=vocab_size - 1))
    allowed = torch.arange(low, high, dtype=torch.long)
    if excluded:
        allowed = allowed[~torch.isin(allowed, torch.tensor(sorted(excluded)))]
    if allowed.numel() == 0:
        raise ValueError(f"no ids left in [{low}, {high}) after excluding {sorted(excluded)}")
    gen = torch.Generator().manual_seed(seed)
    tokens = allowed[torch.randint(allowed.numel(), (n, seq_len), generator=gen)]
    mask = torch.ones(n, seq_len, dtype=torch.bool)
    if bos_id is not None:
        if seq_len < 2:
            raise ValueError(f"seq_len={seq_len} leaves no position after BOS; use >= 2")
        tokens[:, 0] = bos_id
        mask[:, 0] = False
    info = {
        "kind": "random",
        "seed": seed,
        "vocab_size": vocab_size,
        "low": low,
        "high": high,
        "n_allowed_ids": int(allowed.numel()),
        "excluded_ids": sorted(excluded),
        "bos": bos_id is not None,
    }
    return TokenInputs(tokens, mask, "random", info)


def text_tokens(
    texts: Sequence[str],
    tokenizer,
    n: int,
    seq_len: int,
    pack: bool = True,
    prepend_bos: bool = True,
    exclude_ids: Sequence[int] = (),
) -> TokenInputs:
    """The semantic test's inputs from ``texts`` with ``tokenizer`` (a Hugging Face tokenizer or
    :class:`akira_nb.text.ByteTokenizer`).

    - ``pack=True``: the texts are encoded and concatenated, each followed by EOS, and cut into
      ``n`` rows of ``seq_len - 1`` ids, each row led by BOS (Gurnee et al.'s layout: every
      position is real text except BOS and the document separators, both masked).
    - ``pack=False`` (the seed's layout): one text per row, truncated to ``seq_len - 1`` ids
      after BOS and right-padded with the pad id; pads and BOS masked. Texts that encode to
      nothing are skipped; texts are never repeated to reach ``n`` (a ``ValueError`` says how
      many rows there are).

    Without ``prepend_bos`` rows hold ``seq_len`` text ids and only pads / special ids are
    masked. ``info`` records the counts of excluded positions."""
    from akira_nb.text import encode_documents, encode_each

    if isinstance(texts, str) or not isinstance(texts, Sequence):
        raise ValueError("texts must be a list of strings")
    check_int("n", n, low=1)
    check_int("seq_len", seq_len, low=2)
    check_bool("pack", pack)
    check_bool("prepend_bos", prepend_bos)
    specials = special_ids(tokenizer)
    bos = tokenizer.bos_token_id if tokenizer.bos_token_id is not None else None
    if prepend_bos and bos is None:
        raise ValueError(f"{type(tokenizer).__name__} has no BOS id; use prepend_bos=False")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    width = seq_len - 1 if prepend_bos else seq_len
    excluded = set(specials) | {check_int("exclude_ids[]", i, low=0) for i in exclude_ids}
    if pack:
        ids = torch.from_numpy(encode_documents(list(texts), tokenizer))
        if ids.numel() < n * width:
            raise ValueError(
                f"the texts give {ids.numel()} tokens: {ids.numel() // width} rows of "
                f"{width}, fewer than n={n}; pass more text or a smaller n"
            )
        body = ids[: n * width].reshape(n, width)
        valid = torch.ones_like(body, dtype=torch.bool)
    else:
        encoded = [e for e in encode_each(list(texts), tokenizer) if len(e)]
        if len(encoded) < n:
            raise ValueError(
                f"{len(encoded)} non-empty texts, fewer than n={n} rows (texts are not repeated)"
            )
        body = torch.full((n, width), pad if pad is not None else 0, dtype=torch.long)
        valid = torch.zeros(n, width, dtype=torch.bool)
        for i, e in enumerate(encoded[:n]):  # one row per text: a loop over rows, not tokens
            k = min(len(e), width)
            body[i, :k] = torch.from_numpy(e[:k])
            valid[i, :k] = True
    n_pad = int((~valid).sum())
    is_special = torch.isin(body, torch.tensor(sorted(excluded), dtype=torch.long))
    n_special = int((is_special & valid).sum())
    valid &= ~is_special
    if prepend_bos:
        body = torch.cat([torch.full((n, 1), bos, dtype=torch.long), body], dim=1)
        valid = torch.cat([torch.zeros(n, 1, dtype=torch.bool), valid], dim=1)
    info = {
        "kind": "text",
        "layout": "packed" if pack else "one text per row, right-padded",
        "n_texts": len(texts),
        "bos": prepend_bos,
        "excluded_ids": sorted(excluded),
        "excluded_positions": {"bos": n if prepend_bos else 0, "pad": n_pad, "special": n_special},
    }
    return TokenInputs(body, valid, "text", info)


# ----------------------------------------------------------------------------- activations


class _StopForward(Exception):
    """Raised by the hook of the deepest requested layer to end a kit model's forward pass."""


@contextlib.contextmanager
def _eval_mode(model):
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def _model_device(model) -> torch.device:
    for p in model.parameters():
        return p.device
    return torch.device("cpu")


def _forward(model, tokens: torch.Tensor, layers: list[int]) -> dict[int, torch.Tensor]:
    """``{layer: [B, P, d_mlp]}`` for one batch, stopping after the deepest layer."""
    names = {layer: mlp_hook(layer) for layer in layers}
    deepest = max(layers)
    if is_bridge(model):
        stop = deepest + 1 if deepest + 1 < model.cfg.n_layers else None
        _, cache = model.run_with_cache(
            tokens, names_filter=list(names.values()), stop_at_layer=stop, return_cache_object=False
        )
        return {layer: cache[name] for layer, name in names.items()}
    store: dict[int, torch.Tensor] = {}

    def make_hook(layer):
        def hook(tensor, hook):
            store[layer] = tensor.detach()
            if layer == deepest:
                raise _StopForward

        return hook

    with model.hooks(fwd_hooks=[(name, make_hook(layer)) for layer, name in names.items()]):
        try:
            model(tokens)
        except _StopForward:
            pass
    missing = [layer for layer in layers if layer not in store]
    if missing:
        raise RuntimeError(f"{model_name(model)}: hooks of layers {missing} did not fire")
    return store


def _select(acts: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Rows of the valid positions: ``[B, P, d]`` -> ``[n_valid, d]``."""
    if acts.ndim == 2:  # [B, d]: one position per sequence
        acts = acts[:, None]
    if mask is None:
        return acts.reshape(-1, acts.shape[-1])
    p = acts.shape[1]
    if p > mask.shape[1]:
        raise RuntimeError(f"the hook reports {p} positions for inputs of {mask.shape[1]}")
    return acts[mask[:, mask.shape[1] - p :].to(acts.device)]


def _resolve(model, tokens, mask, layers, batch_size):
    _check_model(model)
    if isinstance(tokens, TokenInputs):
        if mask is not None:
            raise ValueError("pass either TokenInputs or tokens with a mask, not both")
        tokens, mask = tokens.tokens, tokens.mask
    _check_tokens(tokens, mask)
    layers = check_layers(model, layers)
    check_int("batch_size", batch_size, low=1)
    n_ctx = getattr(getattr(model, "cfg", None), "n_ctx", None)
    if isinstance(n_ctx, int) and n_ctx > 0 and tokens.shape[1] > n_ctx:
        raise ValueError(
            f"tokens have {tokens.shape[1]} positions; {model_name(model)} reads at most "
            f"n_ctx={n_ctx}"
        )
    vocab = vocab_size(model)
    lo, hi = int(tokens.min()), int(tokens.max())
    if lo < 0 or hi >= vocab:
        raise ValueError(
            f"tokens hold ids in [{lo}, {hi}], outside the {vocab} ids of {model_name(model)}"
        )
    return tokens, mask, layers


def iter_activations(
    model,
    tokens: TokenInputs | torch.Tensor,
    layers: int | Iterable[int],
    batch_size: int = 16,
    mask: torch.Tensor | None = None,
    dtype: torch.dtype | None = torch.float32,
    device: str | torch.device | None = None,
) -> Iterator[dict[int, torch.Tensor]]:
    """Yield ``{layer: [n_valid_in_batch, d_mlp]}`` for each batch of ``batch_size`` sequences.

    ``tokens`` is a :class:`TokenInputs` or an id tensor ``[N, T]`` with an optional ``mask``
    (None: every position). Rows are the valid positions in (sequence, position) order; a batch
    without valid positions yields empty ``[0, d_mlp]`` tensors without running the model, so
    two models iterated side by side stay in step. ``dtype`` (None: the model's) and ``device``
    (None: the model's) of the yielded tensors."""
    tokens, mask, layers = _resolve(model, tokens, mask, layers, batch_size)
    width = d_mlp(model)
    model_device = _model_device(model)
    out_device = model_device if device is None else torch.device(device)
    empty_dtype = dtype or next(iter(model.parameters()), torch.zeros(0)).dtype
    # no_grad and eval mode hold around each forward only: a generator that yields inside them
    # would leave gradients off and the model in eval mode in the caller's code between batches
    for start in range(0, tokens.shape[0], batch_size):
        batch = tokens[start : start + batch_size]
        bmask = None if mask is None else mask[start : start + batch_size]
        if bmask is not None and not bmask.any():
            empty = torch.zeros(0, width, dtype=empty_dtype, device=out_device)
            yield {layer: empty for layer in layers}
            continue
        with torch.no_grad(), _eval_mode(model):
            acts = _forward(model, batch.to(model_device), layers)
            out = {
                layer: _select(acts[layer], bmask).to(device=out_device, dtype=dtype)
                for layer in layers
            }
        yield out


def collect_activations(
    model,
    tokens: TokenInputs | torch.Tensor,
    layers: int | Iterable[int],
    batch_size: int = 16,
    mask: torch.Tensor | None = None,
    dtype: torch.dtype | None = torch.float32,
    device: str | torch.device | None = None,
) -> dict[int, torch.Tensor]:
    """All of :func:`iter_activations` concatenated: ``{layer: [n_valid, d_mlp]}`` (for runs
    small enough to hold; stream larger ones)."""
    parts: dict[int, list[torch.Tensor]] = {}
    for batch in iter_activations(model, tokens, layers, batch_size, mask, dtype, device):
        for layer, acts in batch.items():
            parts.setdefault(layer, []).append(acts)
    return {layer: torch.cat(chunks) for layer, chunks in parts.items()}


def iter_paired_activations(
    model_a,
    model_b,
    tokens: TokenInputs | torch.Tensor,
    layers_a: int | Iterable[int],
    layers_b: int | Iterable[int],
    batch_size: int = 16,
    mask: torch.Tensor | None = None,
    dtype: torch.dtype | None = torch.float32,
    device: str | torch.device | None = None,
) -> Iterator[tuple[dict[int, torch.Tensor], dict[int, torch.Tensor]]]:
    """Yield ``(acts_a, acts_b)`` per batch: both models on the same sequences and the same
    valid positions (row ``i`` of A's and of B's matrices is the same token). Refuses models
    whose tokenizers differ (:func:`check_same_tokenizer`)."""
    check_same_tokenizer(model_a, model_b)
    it_a = iter_activations(model_a, tokens, layers_a, batch_size, mask, dtype, device)
    it_b = iter_activations(model_b, tokens, layers_b, batch_size, mask, dtype, device)
    yield from zip(it_a, it_b)


def sequence_activations(
    model,
    tokens: TokenInputs | torch.Tensor,
    layers: int | Iterable[int],
    batch_size: int = 16,
    dtype: torch.dtype | None = torch.float32,
    device: str | torch.device | None = None,
) -> dict[int, torch.Tensor]:
    """``{layer: [N, P, d_mlp]}`` with the position axis kept (no mask applied): for analyses
    along the sequence, such as per-neuron spectra. Hold only what fits."""
    mask = None
    if isinstance(tokens, TokenInputs):
        tokens = tokens.tokens
    tokens, mask, layers = _resolve(model, tokens, mask, layers, batch_size)
    model_device = _model_device(model)
    out_device = model_device if device is None else torch.device(device)
    parts: dict[int, list[torch.Tensor]] = {layer: [] for layer in layers}
    with torch.no_grad(), _eval_mode(model):
        for start in range(0, tokens.shape[0], batch_size):
            acts = _forward(model, tokens[start : start + batch_size].to(model_device), layers)
            for layer in layers:
                a = acts[layer] if acts[layer].ndim == 3 else acts[layer][:, None]
                parts[layer].append(a.to(device=out_device, dtype=dtype))
    return {layer: torch.cat(chunks) for layer, chunks in parts.items()}


def describe(model) -> dict[str, Any]:
    """Name, layers, neurons, vocabulary and device of a model (for results.json)."""
    return {
        "name": model_name(model),
        "kind": "TransformerBridge" if is_bridge(model) else type(model).__name__,
        "n_layers": n_layers(model),
        "d_mlp": d_mlp(model),
        "vocab_size": vocab_size(model),
        "device": str(_model_device(model)),
    }


__all__ = [
    "MLP_HOOK",
    "TokenInputs",
    "check_layers",
    "check_same_tokenizer",
    "collect_activations",
    "d_mlp",
    "describe",
    "is_bridge",
    "iter_activations",
    "iter_paired_activations",
    "mlp_hook",
    "model_name",
    "n_layers",
    "random_tokens",
    "sequence_activations",
    "special_ids",
    "text_tokens",
    "tokenizer_of",
    "vocab_size",
]
