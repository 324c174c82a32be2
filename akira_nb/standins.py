"""Local stand-ins of the same shape for everything a run would download (``--offline``).

The t4 and a100 protocols need the Hugging Face Hub: GPT-2 / Pythia weights, the GPT-2
tokenizer, wikitext and TinyStories. ``--offline`` (on every sub-command, and the notebooks'
``OFFLINE`` knob) swaps each download for a stand-in of the same shape, so the real widths,
sequence lengths and vocabularies run on any machine:

- hub text (wikitext-2, wikitext-103, TinyStories) -> the kit's offline corpus
  (:data:`CORPUS`), tokenized by
- a tokenizer of the same vocabulary size (:data:`TOKENIZER`: the GPT-2 and Pythia stand-ins of
  :class:`akira_nb.text.StandinTokenizer`, with the real special id);
- a Hub checkpoint -> randomly initialised weights of the same architecture
  (:func:`model_folder`: the public ``config.json`` values of :data:`ARCHITECTURES`, built with
  ``transformers``, saved once to a local folder with the stand-in tokenizer and booted through
  ``TransformerBridge.boot_transformers`` like the Hub model).

A run on stand-ins says so on its first line (:func:`announce`) and in ``results.json``
(``"standins"``), and every verdict against a seed reads "not comparable": the numbers measure
the code path, the memory and the time, never the models.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from akira_nb import runtime

BANNER = (
    "OFFLINE: running on local stand-ins of the same shape (random weights, the kit's offline "
    "corpus, a tokenizer of the same vocabulary size); shapes, memory and time are real, every "
    "verdict is not comparable"
)
NOT_COMPARABLE = "not comparable (offline stand-ins: random weights and the offline corpus)"

# Hub corpora and the offline corpus that stands in for each.
CORPUS = {"wikitext-2": "offline", "wikitext-103": "offline", "tinystories": "offline"}
# Hub tokenizers and their stand-ins (akira_nb.text.STANDIN_TOKENIZERS).
TOKENIZER = {"gpt2": "gpt2-standin", "pythia": "pythia-standin"}


def _gpt2(n_layer: int, n_embd: int, n_head: int) -> dict:
    return {
        "family": "gpt2",
        "model_type": "gpt2",
        "n_layer": n_layer,
        "n_embd": n_embd,
        "n_head": n_head,
        "n_positions": 1024,
        "vocab_size": 50257,
    }


def _pythia(layers: int, hidden: int, heads: int) -> dict:
    return {
        "family": "pythia",
        "model_type": "gpt_neox",
        "num_hidden_layers": layers,
        "hidden_size": hidden,
        "num_attention_heads": heads,
        "intermediate_size": 4 * hidden,
        "max_position_embeddings": 2048,
        "rotary_pct": 0.25,
        "rotary_emb_base": 10000,
        "use_parallel_residual": True,
        "tie_word_embeddings": False,
        "vocab_size": 50304,
        "bos_token_id": 0,
        "eos_token_id": 0,
    }


# The public config.json values (architecture only) of the Hub models the kit names.
ARCHITECTURES: dict[str, dict] = {
    "gpt2": _gpt2(12, 768, 12),
    "gpt2-medium": _gpt2(24, 1024, 16),
    "gpt2-large": _gpt2(36, 1280, 20),
    "EleutherAI/pythia-70m": _pythia(6, 512, 8),
    "EleutherAI/pythia-160m": _pythia(12, 768, 12),
    "EleutherAI/pythia-410m": _pythia(24, 1024, 16),
}
# Re-trainings with another seed share their base model's architecture.
for _k in (1, 2, 3):
    ARCHITECTURES[f"EleutherAI/pythia-160m-seed{_k}"] = ARCHITECTURES["EleutherAI/pythia-160m"]
for _size, _base in (("small", "gpt2"), ("medium", "gpt2-medium")):
    for _name in {
        "small": (
            "alias-gpt2-small-x21 battlestar-gpt2-small-x49 caprica-gpt2-small-x81 "
            "darkmatter-gpt2-small-x343 expanse-gpt2-small-x777"
        ),
        "medium": (
            "arwen-gpt2-medium-x21 beren-gpt2-medium-x49 celebrimbor-gpt2-medium-x81 "
            "durin-gpt2-medium-x343 eowyn-gpt2-medium-x777"
        ),
    }[_size].split():
        ARCHITECTURES[f"stanford-crfm/{_name}"] = ARCHITECTURES[_base]


def announce(replaced: dict) -> dict:
    """Print :data:`BANNER` and what stands in for what; returns the record for
    ``results.json`` (``{"banner": ..., "replaced": {hub thing: stand-in}}``)."""
    print(BANNER, flush=True)
    for real, standin in replaced.items():
        print(f"  {real} -> {standin}", flush=True)
    return {"banner": BANNER, "replaced": dict(replaced)}


def corpus(name: str) -> str:
    """The corpus to load for ``name`` offline (the offline corpus stands in for hub text)."""
    return CORPUS.get(name, name)


def tokenizer_for(name: str) -> str:
    """The stand-in tokenizer name for a Hub tokenizer name (``gpt2`` -> ``gpt2-standin``);
    other names unchanged."""
    return TOKENIZER.get(name, name)


def check_model(name: str) -> dict:
    """The architecture of a Hub model the kit can stand in for; ``ValueError`` otherwise."""
    if name not in ARCHITECTURES:
        raise ValueError(
            f"model={name!r} has no offline stand-in; choose one of {sorted(ARCHITECTURES)}"
        )
    return ARCHITECTURES[name]


def cache_root(root: str | os.PathLike | None = None) -> Path:
    """Where stand-in folders are kept: ``root``, else ``AKIRA_CACHE_DIR``, else
    ``~/.cache/akira_nb``; stand-ins go in its ``standins/`` folder."""
    return (Path(root).expanduser() if root else runtime.cache_dir()) / "standins"


def folder_path(name: str, root: str | os.PathLike | None = None, seed: int = 0) -> Path:
    """Where :func:`model_folder` keeps the stand-in of ``name`` for ``seed`` (nothing built)."""
    check_model(name)
    return cache_root(root) / f"{name.replace('/', '--')}-seed{seed}"


def model_folder(name: str, root: str | os.PathLike | None = None, seed: int = 0) -> Path:
    """A local Hugging Face folder holding a randomly initialised model of ``name``'s
    architecture (seeded by ``seed``) and the stand-in tokenizer of its family; built on first
    use and kept (``config.json`` is written last, so a half-written folder is rebuilt)."""
    import torch
    import transformers

    from akira_nb.text import get_tokenizer

    arch = dict(check_model(name))
    family = arch.pop("family")
    folder = folder_path(name, root, seed)
    if (folder / "config.json").is_file() and (folder / "tokenizer.json").is_file():
        return folder
    model_type = arch.pop("model_type")
    config = transformers.AutoConfig.for_model(model_type, **arch)
    torch.manual_seed(seed)
    model = transformers.AutoModelForCausalLM.from_config(config)
    folder.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    try:
        get_tokenizer(tokenizer_for(family)).to_hf().save_pretrained(str(tmp))
        model.save_pretrained(str(tmp))
        if folder.exists():
            shutil.rmtree(folder)
        os.replace(tmp, folder)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return folder


__all__ = [
    "ARCHITECTURES",
    "BANNER",
    "CORPUS",
    "NOT_COMPARABLE",
    "TOKENIZER",
    "announce",
    "cache_root",
    "check_model",
    "corpus",
    "folder_path",
    "model_folder",
    "tokenizer_for",
]
