"""akira_nb.text: the offline corpus is deterministic, the byte tokenizer round-trips (and its
Hugging Face form gives the same ids), blocks are packed and split by document with a seed, and
the Hub corpora fail offline with a clear error."""

import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from akira_nb import offline_corpus as oc
from akira_nb import text
from akira_nb.text import ByteTokenizer, TextConfig

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def splits():
    return text.make_splits(TextConfig(seq_len=64, seed=0))


def _run(code: str, **env) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "PYTHONPATH": REPO, **env}
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=full_env, timeout=120
    )


def test_offline_corpus_is_unique_nonempty_and_complete_here():
    docs = text.offline_corpus()
    info = text.offline_corpus_info()
    assert len(docs) > 3000 and info["n_bytes"] > 500_000
    assert len(set(docs)) == len(docs)
    assert all(d and d == d.strip() for d in docs)
    assert info["missing_modules"] == []  # every listed module exists on this CPython
    assert info["sha256"] == text.fingerprint(docs)
    assert text.offline_corpus() == docs  # cached, and a fresh list each call
    assert text.offline_corpus() is not docs


def test_offline_corpus_is_the_same_in_another_process_with_another_hash_seed(tmp_path):
    code = "from akira_nb import text; print(text.offline_corpus_info()['sha256'])"
    fps = set()
    for seed in ("1", "12345"):  # each builds it from the sources (an empty cache folder)
        cache = tmp_path / seed
        fps.add(_run(code, PYTHONHASHSEED=seed, AKIRA_CACHE_DIR=str(cache)).stdout.strip())
        assert len(list((cache / "offline_corpus").glob("*.json"))) == 1  # and keeps it
    assert fps == {text.offline_corpus_info()["sha256"]}


@pytest.fixture
def small_stdlib(monkeypatch, tmp_path):
    """The offline corpus built from three standard-library files into a private cache folder
    (the process's own corpus is rebuilt or reread afterwards)."""
    files, _ = oc._stdlib_files()
    few = [f for f in files if f.name in ("bisect.py", "heapq.py", "textwrap.py")]
    assert len(few) == 3
    monkeypatch.setattr(oc, "_stdlib_files", lambda: (list(few), []))
    monkeypatch.setenv("AKIRA_CACHE_DIR", str(tmp_path))
    oc._offline_corpus.cache_clear()
    yield tmp_path / "offline_corpus"
    oc._offline_corpus.cache_clear()


def test_the_offline_corpus_is_kept_in_the_cache_and_read_back_unchanged(small_stdlib, monkeypatch):
    built = text.offline_corpus()
    assert built and len(list(small_stdlib.glob("*.json"))) == 1
    oc._offline_corpus.cache_clear()

    def no_build(*args):
        raise AssertionError("rebuilt although the cache holds it")

    with monkeypatch.context() as mp:
        mp.setattr(oc, "_build_offline_corpus", no_build)
        assert text.offline_corpus() == built


def test_a_corrupt_or_unwritable_cache_rebuilds_the_same_corpus(small_stdlib, monkeypatch):
    built = text.offline_corpus()
    (cached,) = small_stdlib.glob("*.json")
    for damage in ('{"documents": ["x"], "missing": [], "sha256": "0"}', '{"documents": [', ""):
        cached.write_text(damage)
        oc._offline_corpus.cache_clear()
        assert text.offline_corpus() == built  # rebuilt from the sources, and kept again
        assert text.fingerprint(oc._read_cached_corpus(cached)[0]) == text.fingerprint(built)
    monkeypatch.setenv("AKIRA_CACHE_DIR", "/proc/no_cache_here")  # cannot be made
    oc._offline_corpus.cache_clear()
    assert text.offline_corpus() == built


def test_the_cache_file_changes_with_its_sources(tmp_path):
    source = tmp_path / "a.py"
    source.write_text('"""doc"""\n')
    first = oc._corpus_cache_file([source], [])
    assert oc._corpus_cache_file([source], []) == first
    os.utime(source, ns=(0, 12_345))  # an edited (or reinstalled) file
    assert oc._corpus_cache_file([source], []) != first
    assert oc._corpus_cache_file([source], ["gone"]) != oc._corpus_cache_file([source], [])


def test_fingerprint_depends_on_content_and_order():
    assert text.fingerprint(["a", "b"]) != text.fingerprint(["b", "a"])
    assert text.fingerprint(["ab"]) != text.fingerprint(["a", "b"])
    assert text.fingerprint(["a", "b"]) == text.fingerprint(("a", "b"))


@pytest.mark.parametrize(
    "s", ["", "hello", "héllo wörld\n\ttabs", "emoji 🙂 and ∑ and 中文", "a<|endoftext|>b"]
)
def test_byte_tokenizer_round_trip(s):
    tok = ByteTokenizer()
    ids = tok.encode(s)
    assert ids == list(s.encode("utf-8"))
    assert all(0 <= i < 256 for i in ids)  # text never encodes to the special id
    assert tok.decode(ids) == s
    assert tok.decode(torch.tensor(ids, dtype=torch.long)) == s
    assert np.array_equal(tok.encode_array(s), np.array(ids, dtype=np.int64))


def test_byte_tokenizer_special_id_and_invalid_bytes():
    tok = ByteTokenizer()
    assert len(tok) == 257 and tok.bos_token_id == tok.eos_token_id == tok.pad_token_id == 256
    ids = tok.encode("ab") + [256] + tok.encode("c")
    assert tok.decode(ids) == "ab<|endoftext|>c"
    assert tok.decode(ids, skip_special_tokens=True) == "abc"
    assert tok.decode([0xC3]) == "\ufffd"  # a cut UTF-8 sequence decodes, marked


@pytest.mark.parametrize("ids", [[257], [-1], [1.5], [[1, 2]]])
def test_byte_tokenizer_rejects_bad_ids(ids):
    with pytest.raises(ValueError, match="ids"):
        ByteTokenizer().decode(ids)


def test_byte_tokenizer_rejects_non_text():
    with pytest.raises(ValueError, match="text"):
        ByteTokenizer().encode(b"bytes")


def test_hf_form_gives_the_same_ids_and_text():
    tok = ByteTokenizer()
    hf = tok.to_hf()
    assert len(hf) == 257
    assert hf.bos_token_id == hf.eos_token_id == hf.pad_token_id == 256
    docs = text.offline_corpus()[:300] + ["héllo 🙂 <|endoftext|> x"]
    for d in docs:
        ids = tok.encode(d)
        assert hf.encode(d, add_special_tokens=False) == ids
        assert hf.decode(ids) == d


def test_pack_shapes_and_remainder():
    blocks = text.pack(list(range(10)), 3)
    assert blocks.dtype == torch.long and blocks.shape == (3, 3)
    assert blocks.reshape(-1).tolist() == list(range(9))
    assert text.pack(np.arange(6), 6).shape == (1, 6)
    assert text.pack(torch.arange(7), 2).shape == (3, 2)


def test_pack_rejects_bad_input():
    with pytest.raises(ValueError, match="seq_len"):
        text.pack([1, 2, 3], 0)
    with pytest.raises(ValueError, match="fewer than seq_len=4"):
        text.pack([1, 2, 3], 4)
    with pytest.raises(ValueError, match="1-D"):
        text.pack([[1, 2], [3, 4]], 2)


def test_make_splits_shapes_and_vocabulary(splits):
    assert splits.seq_len == 64 and splits.vocab_size == 257 and splits.eos_id == 256
    for name in text.SPLITS:
        b = splits[name]
        assert b.dtype == torch.long and b.ndim == 2 and b.shape[1] == 64
        assert 0 <= int(b.min()) and int(b.max()) <= 256
    n = {s: splits[s].shape[0] for s in text.SPLITS}
    assert n["train"] > 10 * n["val"] and n["val"] > 100 and n["test"] > 100
    total = sum(n.values())
    assert n["val"] / total == pytest.approx(0.05, abs=0.01)
    assert (splits.train == 256).any()  # documents are separated by EOS
    summary = splits.summary()
    assert summary["blocks"] == n and summary["sha256"] == text.offline_corpus_info()["sha256"]


def test_make_splits_is_seeded(splits):
    again = text.make_splits(TextConfig(seq_len=64, seed=0))
    for name in text.SPLITS:
        assert torch.equal(again[name], splits[name])
    other = text.make_splits(TextConfig(seq_len=64, seed=1))
    assert not torch.equal(other.test[:50], splits.test[:50])


def test_split_documents_is_disjoint_and_complete():
    docs = [f"<doc {i:04d}>" * (1 + i % 7) for i in range(400)]
    tok = ByteTokenizer()
    parts = text.split_documents(docs, tok, val_frac=0.1, test_frac=0.2, seed=3)
    found = {name: [d for d in tok.decode(ids).split(text.EOT) if d] for name, ids in parts.items()}
    sets = {name: set(v) for name, v in found.items()}
    assert not sets["train"] & sets["val"] and not sets["train"] & sets["test"]
    assert not sets["val"] & sets["test"]
    assert sets["train"] | sets["val"] | sets["test"] == set(docs)
    assert sum(len(v) for v in found.values()) == len(docs)  # every document once
    total = sum(len(v) for v in parts.values())
    assert len(parts["test"]) / total == pytest.approx(0.2, abs=0.02)
    assert len(parts["val"]) / total == pytest.approx(0.1, abs=0.02)
    again = text.split_documents(docs, tok, val_frac=0.1, test_frac=0.2, seed=3)
    assert all(np.array_equal(again[k], parts[k]) for k in parts)


def test_unigram_baselines():
    v = 8
    blocks = torch.arange(v).repeat(10).reshape(10, v)
    assert text.unigram_entropy(blocks, v) == pytest.approx(math.log(v))
    assert text.unigram_cross_entropy(blocks, blocks, v) == pytest.approx(math.log(v))
    skewed = torch.zeros(4, 4, dtype=torch.long)
    assert text.unigram_entropy(skewed, v) == 0.0


@pytest.mark.parametrize(
    "field,value,match",
    [
        ("corpus", "wikitext-7", "corpus"),
        ("tokenizer", "bpe", "tokenizer"),
        ("seq_len", 1, "seq_len"),
        ("seq_len", 64.0, "seq_len"),
        ("val_frac", 0.0, "val_frac"),
        ("test_frac", 0.6, "test_frac"),
        ("val_frac", float("nan"), "val_frac"),
        ("seed", -1, "seed"),
        ("max_train_tokens", 3, "max_train_tokens"),
    ],
)
def test_text_config_validation(field, value, match):
    with pytest.raises(ValueError, match=match):
        TextConfig(**{field: value}).validate()


def test_fractions_leaving_no_training_raise():
    with pytest.raises(ValueError, match="val_frac \\+ test_frac"):
        TextConfig(val_frac=0.45, test_frac=0.45).validate()


def test_make_splits_reports_the_split_that_is_too_small():
    with pytest.raises(ValueError, match="split 'val'.*seq_len"):
        text.make_splits(seq_len=60_000, val_frac=0.01, test_frac=0.3)


def test_load_documents_validates_before_any_download():
    with pytest.raises(ValueError, match="corpus"):
        text.load_documents("wikitext-7")
    with pytest.raises(ValueError, match="split"):
        text.load_documents("wikitext-2", split="dev")
    assert text.load_documents("offline", "test") == text.offline_corpus()
    assert isinstance(text.get_tokenizer("byte"), ByteTokenizer)
    with pytest.raises(ValueError, match="tokenizer"):
        text.get_tokenizer("sentencepiece")


def test_hub_corpus_and_gpt2_tokenizer_fail_offline_with_a_clear_error(tmp_path):
    code = """
from akira_nb import offline_corpus as oc
from akira_nb import text
for call in (lambda: text.load_documents("wikitext-2", "val"),
             lambda: text.get_tokenizer("gpt2"),
             lambda: text.make_splits(corpus="wikitext-103", tokenizer="byte")):
    try:
        call()
    except text.CorpusUnavailableError as exc:
        assert isinstance(exc, ValueError)
        print("OK", exc)
"""
    hf = str(tmp_path / "hf")  # an empty cache: nothing can be found locally
    res = _run(code, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_HOME=hf, HF_DATASETS_CACHE=hf)
    assert res.returncode == 0, res.stderr[-2000:]
    lines = [ln for ln in res.stdout.splitlines() if ln.startswith("OK")]
    assert len(lines) == 3, res.stdout + res.stderr[-2000:]
    assert "wikitext-2" in lines[0] and "corpus='offline'" in lines[0]
    assert "GPT-2 tokenizer" in lines[1] and "tokenizer='byte'" in lines[1]
    assert "wikitext-103" in lines[2]


def test_encode_each_with_a_hugging_face_tokenizer_and_a_token_cap():
    docs = text.offline_corpus()[:1500]
    tok = ByteTokenizer()
    byte_ids = text.encode_each(docs, tok)
    hf_ids = text.encode_each(docs, tok.to_hf())  # the batched Hugging Face path
    assert len(hf_ids) == len(docs)
    assert all(np.array_equal(a, b) for a, b in zip(byte_ids, hf_ids))
    capped = text.encode_each(docs, tok, max_tokens=10)
    assert len(capped) == 1000  # stops after the first batch that reaches the cap
    assert text.make_splits(max_train_tokens=640).train.shape == (10, 64)


# Wikitext's raw layout: " = Title = " starts an article, " = = Section = = " does not; blank
# lines are empty strings, every other line keeps its newline.
WIKI_LINES = [
    "",
    " = Robert Boulter = \n",
    "",
    " Robert Boulter is an English film , television and theatre actor . \n",
    "",
    " = = Career = = \n",
    "",
    " = = = 2000 – 2005 = = = \n",
    " In 2000 Boulter had a guest @-@ starring role . \n",
    " = Du Fu = \n",
    " Du Fu was a prominent Chinese poet of the Tang dynasty . \n",
    " = = Life = = \n",
    " Traditional Chinese literary criticism emphasized the life of the author . \n",
]


def test_wikitext_lines_are_joined_into_articles():
    arts = text.wikitext_articles(WIKI_LINES)
    assert len(arts) == 2
    assert arts[0].startswith(" = Robert Boulter = \n Robert Boulter is")
    assert " = = Career = = \n = = = 2000 – 2005 = = = \n In 2000" in arts[0]
    assert arts[1] == "".join(WIKI_LINES[9:])
    assert "".join(arts) == "".join(WIKI_LINES)  # nothing lost, nothing added
    # lines before the first title form an article of their own; no lines, no articles
    assert text.wikitext_articles([" lead text \n", *WIKI_LINES[1:4]]) == [
        " lead text \n",
        "".join(WIKI_LINES[1:4]),
    ]
    assert text.wikitext_articles(["", "  "]) == []


@pytest.fixture
def fake_wikitext(monkeypatch):
    """datasets.load_dataset replaced by the hand-made lines (datasets cannot download here)."""
    import types

    calls = []

    def load_dataset(path, name, split):
        calls.append((path, name, split))
        return {"text": list(WIKI_LINES)}

    monkeypatch.setitem(sys.modules, "datasets", types.SimpleNamespace(load_dataset=load_dataset))
    return calls


def test_wikitext_documents_are_articles_with_eos_between_them(fake_wikitext):
    docs = text.load_documents("wikitext-2", "train")
    assert docs == text.wikitext_articles(WIKI_LINES)
    assert fake_wikitext == [("Salesforce/wikitext", "wikitext-2-raw-v1", "train")]
    splits = text.make_splits(corpus="wikitext-2", tokenizer="byte", seq_len=16)
    want = text.encode_documents(docs, ByteTokenizer())  # each article followed by EOS
    assert int((want == ByteTokenizer.eot_id).sum()) == 2  # one per article, not one per line
    n = splits.train.numel()
    assert n == len(want) // 16 * 16
    assert torch.equal(splits.train.flatten(), torch.from_numpy(want[:n]))
