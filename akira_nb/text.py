"""Text for the kit's language-model experiments: corpora, tokenizers, packed and seeded splits.

- Corpora (``CORPORA``): ``offline``, the docstrings of a fixed list of Python standard-library
  modules read with ``ast`` (no download; the same on every install of one CPython release; see
  :func:`offline_corpus`), and ``wikitext-2`` / ``wikitext-103`` through Hugging Face
  ``datasets`` (the Hub on Colab; offline they raise :class:`CorpusUnavailableError`).
- Tokenizers (``TOKENIZERS``): ``byte`` (:class:`ByteTokenizer`, 256 bytes + ``<|endoftext|>``),
  ``gpt2`` (the Hub's BPE) and the offline stand-ins ``gpt2-standin`` / ``pythia-standin``
  (:class:`StandinTokenizer`: the real vocabulary sizes and special ids, bytes as ids).
- Splits: :func:`make_splits` packs each split into ``[n_blocks, seq_len]`` blocks, EOS after
  every document; the offline corpus is split by document (seeded), wikitext by its own splits.

torch, transformers and datasets are imported inside the functions that need them.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np

from akira_nb.offline_corpus import (
    STDLIB_MODULES,
    STDLIB_PACKAGES,
    fingerprint,
    offline_corpus,
    offline_corpus_info,
)
from akira_nb.runtime import check_choice, check_int, check_real, require_hub

if TYPE_CHECKING:
    import torch

EOT = "<|endoftext|>"
CORPORA = ("offline", "wikitext-2", "wikitext-103")
TOKENIZERS = ("byte", "gpt2", "gpt2-standin", "pythia-standin")
SPLITS = ("train", "val", "test")
WIKITEXT = {
    "wikitext-2": ("Salesforce/wikitext", "wikitext-2-raw-v1"),
    "wikitext-103": ("Salesforce/wikitext", "wikitext-103-raw-v1"),
}
_HF_SPLIT = {"train": "train", "val": "validation", "test": "test"}


class CorpusUnavailableError(ValueError):
    """A corpus or tokenizer that needs the Hugging Face Hub could not be loaded here.

    A ``ValueError`` so that the CLI prints it as one ``error:`` line: the remedy is a different
    choice (``corpus='offline'``, ``tokenizer='byte'``) or a machine with internet."""


# ----------------------------------------------------------------------------- tokenizers


def _as_ids(ids, what: str = "ids") -> np.ndarray:
    """A 1-D int64 array from a list, a numpy array or a (CPU or GPU) torch tensor of ids."""
    if hasattr(ids, "detach"):  # torch tensor
        ids = ids.detach().cpu().numpy()
    arr = np.asarray(ids)
    if arr.size == 0:
        return np.zeros(0, dtype=np.int64)
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(
            f"{what} must be a 1-D sequence of integers; got dtype {arr.dtype}, shape {arr.shape}"
        )
    return arr.astype(np.int64, copy=False)


def _check_ids(ids, vocab_size: int) -> np.ndarray:
    arr = _as_ids(ids)
    bad = (arr < 0) | (arr >= vocab_size)
    if bad.any():
        raise ValueError(
            f"ids contain {int(arr[bad][0])}, outside the vocabulary [0, {vocab_size - 1}]"
        )
    return arr


class ByteTokenizer:
    """UTF-8 bytes as ids 0-255 plus ``<|endoftext|>`` = 256 as BOS, EOS and pad (GPT-2's
    convention). ``encode``/``decode`` round-trip every ``str``; the attribute names follow
    Hugging Face tokenizers (``bos_token_id``, ``pad_token_id``, ``len(tok)``), so code written
    for one works with the other."""

    name = "byte"
    eot_token = EOT
    eot_id = 256
    bos_token_id = eos_token_id = pad_token_id = eot_id
    vocab_size = 257

    def __len__(self) -> int:
        return self.vocab_size

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        """The UTF-8 bytes of ``text`` (``add_special_tokens`` is accepted for API parity with
        Hugging Face and adds nothing, like the GPT-2 tokenizer)."""
        if not isinstance(text, str):
            raise ValueError(f"text must be a str; got {type(text).__name__}")
        return list(text.encode("utf-8"))

    def encode_array(self, text: str) -> np.ndarray:
        """``encode`` as an int64 array (fast path for long texts)."""
        if not isinstance(text, str):
            raise ValueError(f"text must be a str; got {type(text).__name__}")
        return np.frombuffer(text.encode("utf-8"), dtype=np.uint8).astype(np.int64)

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        """Bytes back to text (invalid UTF-8 from a model's samples becomes U+FFFD); the
        special id becomes ``<|endoftext|>`` unless ``skip_special_tokens``."""
        arr = _check_ids(ids, self.vocab_size)
        out, start = [], 0
        for pos in np.flatnonzero(arr == self.eot_id).tolist() + [len(arr)]:
            out.append(bytes(arr[start:pos].astype(np.uint8)).decode("utf-8", errors="replace"))
            if pos < len(arr) and not skip_special_tokens:
                out.append(EOT)
            start = pos + 1
        return "".join(out)

    def to_hf(self):
        """The same tokenizer as a Hugging Face ``PreTrainedTokenizerFast`` (same ids)."""
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers
        from transformers import PreTrainedTokenizerFast
        from transformers.convert_slow_tokenizer import bytes_to_unicode

        byte_char = bytes_to_unicode()  # GPT-2's printable stand-in for each byte
        vocab = {byte_char[b]: b for b in range(256)}
        vocab[EOT] = self.eot_id
        tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
        tok.decoder = decoders.ByteLevel()
        tok.add_special_tokens([EOT])
        return PreTrainedTokenizerFast(
            tokenizer_object=tok,
            bos_token=EOT,
            eos_token=EOT,
            pad_token=EOT,
            model_max_length=1_000_000,
            split_special_tokens=True,  # text never encodes to the special id, as in encode()
        )

    def save_pretrained(self, folder: str | Path) -> Path:
        """Save the Hugging Face form into ``folder`` (``AutoTokenizer.from_pretrained`` loads
        it back)."""
        self.to_hf().save_pretrained(str(folder))
        return Path(folder)

    def __repr__(self) -> str:
        return "ByteTokenizer(vocab_size=257, eot_id=256)"


class StandinTokenizer(ByteTokenizer):
    """A byte tokenizer inside a vocabulary of ``vocab_size`` ids with the special id at
    ``eot_id``: the offline stand-in of a Hub tokenizer of that size (see the module docstring).
    Byte ``b`` is id ``b`` when ``eot_id >= 256``, else ``eot_id + 1 + b``; the other ids are
    never produced."""

    def __init__(self, name: str, vocab_size: int, eot_id: int):
        check_int("vocab_size", vocab_size, low=257)
        check_int("eot_id", eot_id, low=0, high=vocab_size - 1)
        self.name = name
        self.vocab_size = int(vocab_size)
        self.eot_id = self.bos_token_id = self.eos_token_id = self.pad_token_id = int(eot_id)
        self.offset = 0 if eot_id >= 256 else eot_id + 1

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return [b + self.offset for b in super().encode(text)]

    def encode_array(self, text: str) -> np.ndarray:
        return super().encode_array(text) + self.offset

    def decode(self, ids, skip_special_tokens: bool = False) -> str:
        arr = _check_ids(ids, self.vocab_size)
        out, start = [], 0
        for pos in np.flatnonzero(arr == self.eot_id).tolist() + [len(arr)]:
            part = arr[start:pos] - self.offset
            part = part[(part >= 0) & (part < 256)]  # ids no byte maps to are dropped
            out.append(bytes(part.astype(np.uint8)).decode("utf-8", errors="replace"))
            if pos < len(arr) and not skip_special_tokens:
                out.append(EOT)
            start = pos + 1
        return "".join(out)

    def to_hf(self):
        """The Hugging Face form: the same ids, unused ids as ``<|unused_k|>`` entries."""
        from tokenizers import Tokenizer, decoders, models, pre_tokenizers
        from transformers import PreTrainedTokenizerFast
        from transformers.convert_slow_tokenizer import bytes_to_unicode

        byte_char = bytes_to_unicode()
        vocab = {f"<|unused_{i}|>": i for i in range(self.vocab_size)}
        for b in range(256):
            del vocab[f"<|unused_{b + self.offset}|>"]
            vocab[byte_char[b]] = b + self.offset
        del vocab[f"<|unused_{self.eot_id}|>"]
        vocab[EOT] = self.eot_id
        tok = Tokenizer(models.BPE(vocab=vocab, merges=[]))
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
        tok.decoder = decoders.ByteLevel()
        tok.add_special_tokens([EOT])
        return PreTrainedTokenizerFast(
            tokenizer_object=tok,
            bos_token=EOT,
            eos_token=EOT,
            pad_token=EOT,
            model_max_length=1_000_000,
            split_special_tokens=True,
        )

    def __repr__(self) -> str:
        return (
            f"StandinTokenizer({self.name!r}, vocab_size={self.vocab_size}, eot_id={self.eot_id})"
        )


STANDIN_TOKENIZERS = {"gpt2-standin": (50257, 50256), "pythia-standin": (50277, 0)}


def gpt2_tokenizer():
    """The GPT-2 BPE tokenizer from the Hub (or the local HF cache); on failure a
    :class:`CorpusUnavailableError` saying what to do instead."""
    require_hub("the GPT-2 tokenizer")  # one line at once when the Hub cannot be reached
    try:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained("gpt2")
    except Exception as exc:  # OSError offline, HTTP errors, ...
        raise CorpusUnavailableError(
            f"could not load the GPT-2 tokenizer from the Hugging Face Hub "
            f"({type(exc).__name__}: {' '.join(str(exc).split())[:300]}); this machine may be "
            "offline: use tokenizer='byte' (or run on Colab)"
        ) from exc


def get_tokenizer(name: str):
    """``'byte'`` -> :class:`ByteTokenizer`; ``'gpt2'`` -> the Hugging Face GPT-2 tokenizer;
    ``'gpt2-standin'`` / ``'pythia-standin'`` -> their offline :class:`StandinTokenizer`."""
    check_choice("tokenizer", name, TOKENIZERS)
    if name in STANDIN_TOKENIZERS:
        return StandinTokenizer(name, *STANDIN_TOKENIZERS[name])
    return ByteTokenizer() if name == "byte" else gpt2_tokenizer()


def encode_each(docs: Sequence[str], tokenizer, max_tokens: int | None = None) -> list[np.ndarray]:
    """Token ids of each document (int64 arrays), no special ids added. With ``max_tokens``,
    encoding stops once that many ids are reached (whole batches of documents), so capping a
    large corpus does not tokenize all of it."""
    out: list[np.ndarray] = []
    total, step = 0, 1000
    for start in range(0, len(docs), step):
        batch = list(docs[start : start + step])
        if isinstance(tokenizer, ByteTokenizer):  # StandinTokenizer too
            enc = [tokenizer.encode_array(d) for d in batch]
        else:  # a fast tokenizer encodes a batch in parallel
            ids = tokenizer(batch, add_special_tokens=False)["input_ids"]
            enc = [np.asarray(x, dtype=np.int64) for x in ids]
        out.extend(enc)
        total += sum(len(e) for e in enc)
        if max_tokens is not None and total >= max_tokens:
            break
    return out


def _join(parts: list[np.ndarray], eos_id: int | None) -> np.ndarray:
    if eos_id is not None:
        sep = np.array([eos_id], dtype=np.int64)
        parts = [x for p in parts for x in (p, sep)]
    return np.concatenate(parts) if parts else np.zeros(0, dtype=np.int64)


def encode_documents(docs: Sequence[str], tokenizer, eos: bool = True) -> np.ndarray:
    """Token ids of the documents concatenated, each followed by the tokenizer's EOS id when
    ``eos`` (an int64 array)."""
    return _join(encode_each(docs, tokenizer), tokenizer.eos_token_id if eos else None)


# ----------------------------------------------------------------------------- Hub corpora


def is_wikitext_title(line: str) -> bool:
    """A wikitext article heading, ``" = Title = "`` (one ``=`` each side); section headings
    (``" = = Section = = "``, deeper ones likewise) are not."""
    t = line.strip()
    return len(t) > 4 and t.startswith("= ") and t.endswith(" =") and not t.startswith("= =")


def wikitext_articles(lines: Sequence[str]) -> list[str]:
    """Wikitext's lines joined into articles: a new article starts at each ``" = Title = "``
    line (:func:`is_wikitext_title`) and runs to the next one, its section headings inside; the
    lines before the first title form an article of their own. Lines keep their newline, so
    ``"".join(articles) == "".join(lines)``; blank lines are dropped and empty articles too."""
    articles: list[list[str]] = []
    for line in lines:
        if not line.strip():
            continue
        if is_wikitext_title(line) or not articles:
            articles.append([])
        articles[-1].append(line)
    return ["".join(a) for a in articles]


def load_documents(corpus: str, split: str = "train") -> list[str]:
    """The documents of ``corpus`` for ``split`` ('train', 'val', 'test').

    ``offline`` has no official splits: it returns the whole corpus for every ``split`` (use
    :func:`make_splits`). Wikitext returns the **articles** of the official split
    (:func:`wikitext_articles`: its lines joined from one ``" = Title = "`` heading to the
    next), so that a separator goes between articles, not after every line: a packed row then
    holds running text, and a model's context does not restart every ~100 tokens."""
    check_choice("corpus", corpus, CORPORA)
    check_choice("split", split, SPLITS)
    if corpus == "offline":
        return offline_corpus()
    path, name = WIKITEXT[corpus]
    require_hub(f"corpus={corpus!r}")  # one line at once when the Hub cannot be reached
    try:
        import datasets
    except ImportError as exc:
        raise CorpusUnavailableError(
            f"corpus={corpus!r} needs the 'datasets' package (pip install datasets); "
            "or use corpus='offline'"
        ) from exc
    try:
        data = datasets.load_dataset(path, name, split=_HF_SPLIT[split])
    except Exception as exc:  # ConnectionError offline, HTTP errors, ...
        raise CorpusUnavailableError(
            f"could not load corpus={corpus!r} ({path}, {name}, split {_HF_SPLIT[split]!r}) "
            f"from the Hugging Face Hub ({type(exc).__name__}: "
            f"{' '.join(str(exc).split())[:300]}); this machine may be offline: use "
            "corpus='offline' (or run on Colab)"
        ) from exc
    return wikitext_articles(data["text"])


# ----------------------------------------------------------------------------- packed splits


def pack(ids, seq_len: int) -> torch.Tensor:
    """Cut a 1-D sequence of token ids into non-overlapping rows of ``seq_len``: a long tensor
    ``[len(ids) // seq_len, seq_len]``; the remainder is dropped. Raises ``ValueError`` when
    not even one row fits."""
    import torch

    check_int("seq_len", seq_len, low=1)
    arr = _as_ids(ids)
    n = arr.size // seq_len
    if n == 0:
        raise ValueError(f"only {arr.size} tokens: fewer than seq_len={seq_len}, no block fits")
    return torch.from_numpy(arr[: n * seq_len].astype(np.int64).reshape(n, seq_len).copy())


@dataclass
class TextConfig:
    """Which corpus, tokenizer, block length and split to build (see :func:`make_splits`).

    ``max_train_tokens`` caps the train split (wikitext-103 has ~120M GPT-2 tokens); None keeps
    all. ``val_frac``/``test_frac`` apply to the offline corpus only (wikitext has its own)."""

    corpus: str = "offline"
    tokenizer: str = "byte"
    seq_len: int = 64
    val_frac: float = 0.05
    test_frac: float = 0.05
    seed: int = 0
    max_train_tokens: int | None = None

    def __post_init__(self):
        self.validate()

    def validate(self) -> TextConfig:
        check_choice("corpus", self.corpus, CORPORA)
        check_choice("tokenizer", self.tokenizer, TOKENIZERS)
        check_int("seq_len", self.seq_len, low=2)
        check_real("val_frac", self.val_frac, 0.0, 0.5, low_open=True)
        check_real("test_frac", self.test_frac, 0.0, 0.5, low_open=True)
        if self.val_frac + self.test_frac >= 0.9:
            raise ValueError(
                f"val_frac + test_frac = {self.val_frac + self.test_frac} leaves too little "
                "for training; keep the sum below 0.9"
            )
        check_int("seed", self.seed, low=0)
        if self.max_train_tokens is not None:
            check_int("max_train_tokens", self.max_train_tokens, low=self.seq_len)
        return self

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TokenSplits:
    """Packed blocks of token ids: ``train``, ``val``, ``test`` long tensors ``[n, seq_len]``."""

    train: torch.Tensor
    val: torch.Tensor
    test: torch.Tensor
    vocab_size: int
    eos_id: int
    config: dict
    info: dict = field(default_factory=dict)

    def __getitem__(self, split: str) -> torch.Tensor:
        check_choice("split", split, SPLITS)
        return getattr(self, split)

    @property
    def seq_len(self) -> int:
        return int(self.train.shape[1])

    def summary(self) -> dict:
        """Sizes per split and what identifies the corpus (for results.json)."""
        return {
            **self.info,
            "vocab_size": self.vocab_size,
            "seq_len": self.seq_len,
            "blocks": {s: int(self[s].shape[0]) for s in SPLITS},
            "tokens": {s: int(self[s].numel()) for s in SPLITS},
        }


def split_documents(
    docs: Sequence[str], tokenizer, val_frac: float, test_frac: float, seed: int
) -> dict[str, np.ndarray]:
    """Seeded document-level split: token ids (each document followed by EOS) per split.

    The documents are permuted with ``numpy.random.default_rng(seed)``; the first take about
    ``test_frac`` of the tokens, the next ``val_frac``, the rest train. No document is split."""
    check_real("val_frac", val_frac, 0.0, 0.5, low_open=True)
    check_real("test_frac", test_frac, 0.0, 0.5, low_open=True)
    check_int("seed", seed, low=0)
    if len(docs) < 3:
        raise ValueError(f"docs has {len(docs)} documents; a 3-way split needs at least 3")
    order = np.random.default_rng(seed).permutation(len(docs))
    encoded = encode_each(docs, tokenizer)
    encoded = [encoded[i] for i in order]
    lengths = np.array([len(e) + 1 for e in encoded])  # + the EOS after each document
    starts = np.cumsum(lengths) - lengths
    total = lengths.sum()
    # a document belongs to the first split whose token budget its start lies in
    cut_test = max(1, int(np.searchsorted(starts, test_frac * total)))
    cut_val = max(cut_test + 1, int(np.searchsorted(starts, (test_frac + val_frac) * total)))
    if cut_val >= len(docs):
        raise ValueError(
            f"val_frac={val_frac}, test_frac={test_frac} leave no documents for training"
        )
    eos = tokenizer.eos_token_id
    return {
        "test": _join(encoded[:cut_test], eos),
        "val": _join(encoded[cut_test:cut_val], eos),
        "train": _join(encoded[cut_val:], eos),
    }


def make_splits(cfg: TextConfig | None = None, **overrides: Any) -> TokenSplits:
    """Tokenize ``cfg.corpus`` with ``cfg.tokenizer`` and pack train / val / test blocks of
    ``cfg.seq_len`` ids (see the module docstring for how each corpus is split)."""

    base = {} if cfg is None else cfg.to_dict()
    cfg = TextConfig(**{**base, **overrides})
    tok = get_tokenizer(cfg.tokenizer)
    if cfg.corpus == "offline":
        ids = split_documents(offline_corpus(), tok, cfg.val_frac, cfg.test_frac, cfg.seed)
        info = offline_corpus_info()
    else:
        ids = {
            s: _join(
                encode_each(
                    load_documents(cfg.corpus, s),
                    tok,
                    cfg.max_train_tokens if s == "train" else None,
                ),
                tok.eos_token_id,
            )
            for s in SPLITS
        }
        path, name = WIKITEXT[cfg.corpus]
        info = {"corpus": cfg.corpus, "source": f"Hugging Face datasets {path} / {name}"}
    if cfg.max_train_tokens is not None:
        ids["train"] = ids["train"][: cfg.max_train_tokens]
    blocks = {}
    for split in SPLITS:
        try:
            blocks[split] = pack(ids[split], cfg.seq_len)
        except ValueError as exc:
            raise ValueError(f"split {split!r} of corpus={cfg.corpus!r}: {exc}") from exc
    info = {**info, "tokenizer": cfg.tokenizer}
    return TokenSplits(
        train=blocks["train"],
        val=blocks["val"],
        test=blocks["test"],
        vocab_size=len(tok),
        eos_id=int(tok.eos_token_id),
        config=cfg.to_dict(),
        info=info,
    )


def unigram_entropy(blocks: torch.Tensor, vocab_size: int) -> float:
    """Entropy (nats per token) of the token frequencies in ``blocks``: the loss of the best
    model that ignores context, the baseline a trained language model must beat (uniform:
    ``log(vocab_size)``)."""
    import torch

    counts = torch.bincount(blocks.reshape(-1), minlength=vocab_size).double()
    p = counts[counts > 0] / counts.sum()
    return float(-(p * p.log()).sum())


def unigram_cross_entropy(train: torch.Tensor, other: torch.Tensor, vocab_size: int) -> float:
    """Cross-entropy (nats per token) of ``other`` under the add-one-smoothed unigram
    distribution of ``train``: the held-out loss of the best context-free model."""
    import torch

    counts = torch.bincount(train.reshape(-1), minlength=vocab_size).double() + 1.0
    logp = (counts / counts.sum()).log()
    return float(-logp[other.reshape(-1)].mean())


__all__ = [
    "CORPORA",
    "EOT",
    "SPLITS",
    "STDLIB_MODULES",
    "STDLIB_PACKAGES",
    "TOKENIZERS",
    "ByteTokenizer",
    "CorpusUnavailableError",
    "TextConfig",
    "TokenSplits",
    "encode_documents",
    "encode_each",
    "fingerprint",
    "get_tokenizer",
    "gpt2_tokenizer",
    "is_wikitext_title",
    "load_documents",
    "make_splits",
    "offline_corpus",
    "offline_corpus_info",
    "pack",
    "split_documents",
    "unigram_cross_entropy",
    "unigram_entropy",
    "wikitext_articles",
]
