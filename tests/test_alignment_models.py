"""akira_nb.alignment.models: named models and pairs, the tiny offline pair (trains, beats the
unigram baseline, is cached, boots through TransformerBridge like a Hub model), load_model."""

import os
import subprocess
import sys

import pytest
import torch

from akira_nb.alignment import models
from akira_nb.alignment.activations import is_bridge
from akira_nb.text import ByteTokenizer

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The same settings in test_alignment_activations.py: both modules then share one trained pair
# through the session's cache folder (the pair trains once per test session).
TEST_TINY = models.TinyConfig()  # the tiny preset's pair (tests/conftest.py tiny_lm)


@pytest.fixture(scope="session")
def tiny(tiny_lm):
    return tiny_lm  # tests/conftest.py: trained once per test run


def test_tiny_pair_trains_and_beats_the_unigram_baseline(tiny):
    folders, _ = tiny
    assert len(folders) == 2
    for seed, folder in zip(TEST_TINY.seeds, folders):
        rec = models.tiny_record(folder)
        assert rec["seed"] == seed and rec["config"] == TEST_TINY.to_dict()
        # held-out loss (nats per byte): far below uniform, clearly below the best context-free
        # model, and far below the untrained model's
        assert rec["uniform_loss"] == pytest.approx(5.549, abs=1e-3)
        assert rec["initial_val_loss"] > 5.0
        assert rec["val_loss"] < rec["unigram_val_loss"] - 0.15, rec
        assert rec["val_loss"] < rec["initial_val_loss"] - 2.0
        hist = rec["history"]["loss"]
        assert hist[-1] < hist[0] - 2.0
        assert rec["train_seconds"] < 60
        assert rec["corpus"]["sha256"] and rec["corpus"]["tokenizer"] == "byte"


def test_tiny_folders_hold_a_hugging_face_model_and_tokenizer(tiny):
    for folder in tiny[0]:
        names = {p.name for p in folder.iterdir()}
        assert {"config.json", "model.safetensors", "tokenizer.json", models.RECORD} <= names
    assert tiny[0][0].parent.name == TEST_TINY.key(
        models.tiny_record(tiny[0][0])["corpus"]["sha256"]
    )


def test_tiny_pair_is_reused_not_retrained(tiny):
    folders, root = tiny
    stamp = [(f / models.RECORD).stat().st_mtime_ns for f in folders]
    again = models.tiny_pair(TEST_TINY, root=root)
    assert again == folders
    assert [(f / models.RECORD).stat().st_mtime_ns for f in folders] == stamp


def test_tiny_models_differ_by_seed(tiny):
    from safetensors.torch import load_file

    wa, wb = (load_file(str(f / "model.safetensors")) for f in tiny[0])
    key = "transformer.h.0.mlp.c_fc.weight"
    assert wa[key].shape == wb[key].shape == (64, 256)
    assert not torch.allclose(wa[key], wb[key])


def test_tiny_model_boots_through_transformer_bridge_with_hf_numerics(tiny):
    from transformers import GPT2LMHeadModel

    folder = tiny[0][0]
    bridge = models.load_model(folder, "cpu")
    assert is_bridge(bridge) and not bridge.training
    assert bridge.cfg.n_layers == 2 and bridge.cfg.d_mlp == 256 and bridge.cfg.d_model == 64
    hf = GPT2LMHeadModel.from_pretrained(str(folder)).eval()
    ids = torch.tensor([ByteTokenizer().encode("def f(x):\n    return x + 1")])
    with torch.no_grad():
        assert torch.allclose(bridge(ids), hf(ids).logits, atol=1e-5)
    tok = bridge.tokenizer
    assert len(tok) == 257 and tok.bos_token_id == tok.pad_token_id == 256
    assert tok.encode("héllo", add_special_tokens=False) == ByteTokenizer().encode("héllo")


def test_load_model_tiny_name_uses_the_cache(tiny, monkeypatch):
    folders, root = tiny
    monkeypatch.setenv("AKIRA_CACHE_DIR", str(root))
    bridge = models.load_model("tiny:1", "cpu", tiny_config=TEST_TINY)
    assert bridge.cfg.model_name == str(folders[1])
    a, b = models.load_pair("tiny", "cpu", tiny_config=TEST_TINY)
    assert (a.cfg.model_name, b.cfg.model_name) == tuple(map(str, folders))


def test_load_model_refuses_bad_local_paths(tmp_path):
    with pytest.raises(ValueError, match="does not exist"):
        models.load_model(tmp_path / "nope", "cpu")
    with pytest.raises(ValueError, match="no config.json"):
        models.load_model(tmp_path, "cpu")
    with pytest.raises(ValueError, match="tiny:<seed>"):
        models.load_model("tiny:x", "cpu")
    with pytest.raises(ValueError, match="device"):
        models.load_model("gpt2", "gpu")


def test_offline_boot_of_a_local_folder_and_a_clear_error_for_a_hub_id(tiny, tmp_path):
    code = f"""
from akira_nb.alignment import models
bridge = models.load_model({str(tiny[0][0])!r}, "cpu")
print("BOOTED", bridge.cfg.n_layers)
try:
    models.load_model("EleutherAI/pythia-70m", "cpu")
except models.ModelUnavailableError as exc:
    assert isinstance(exc, ValueError)
    print("REFUSED", exc)
"""
    env = {**os.environ, "PYTHONPATH": REPO, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path)}
    res = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=180
    )
    assert "BOOTED 2" in res.stdout, res.stderr[-2000:]
    refused = [ln for ln in res.stdout.splitlines() if ln.startswith("REFUSED")]
    assert refused and "pythia-70m" in refused[0] and "tiny" in refused[0], res.stdout


def test_named_models_match_transformer_lens_aliases():
    from transformer_lens.tools.model_registry.registry_io import resolve_model_alias

    for short, hub in models.ALIASES.items():
        assert resolve_model_alias(short) == hub, short
    assert models.resolve_name("gpt2") == "gpt2"
    assert models.resolve_name("pythia-70m") == "EleutherAI/pythia-70m"
    for pair in models.PAIRS.values():
        if pair.kind != "tiny":
            assert pair.model_a in models.MODELS and pair.model_b in models.MODELS, pair.key


def test_model_facts_and_pairs():
    assert models.model_spec("pythia-70m").n_layers == 6
    assert (
        models.model_spec("gpt2").d_mlp == 3072 and models.model_spec("gpt2-medium").d_mlp == 4096
    )
    assert models.model_spec("gpt2-medium").n_layers == 24
    assert models.model_spec("pythia-160m").d_mlp == 3072
    assert models.model_spec("/some/folder") is None
    for pair in models.SEED_PAIRS.values():  # a seed pair shares a tokenizer family
        a, b = pair.specs()
        assert a.family == b.family
    for pair in models.KNOWN_ANSWER_PAIRS.values():  # same architecture, another seed
        a, b = pair.specs()
        assert (a.n_layers, a.d_mlp, a.family) == (b.n_layers, b.d_mlp, b.family)
        assert a.name != b.name
    assert "EleutherAI/pythia-160m-seed3" in models.MODELS
    assert "stanford-crfm/expanse-gpt2-small-x777" in models.MODELS
    assert [row["vram_gb"] for row in models.GPU_MEMORY_TABLE] == [16, 40, 8]
    assert models.weights_gb("gpt2") == pytest.approx(0.498, abs=0.01)
    with pytest.raises(ValueError, match="pair"):
        models.get_pair("gpt2/llama")


def test_layers_of_a_named_model_are_checked_without_loading():
    assert models.check_layers_for("gpt2", [3, 5, 7]) == [3, 5, 7]
    with pytest.raises(
        ValueError, match=r"layer 7 does not exist in EleutherAI/pythia-70m.*6 layers \(0-5\)"
    ):
        models.check_layers_for("pythia-70m", [3, 5, 7])


@pytest.mark.parametrize(
    "field,value",
    [
        ("n_layers", 0),
        ("d_model", 65),  # not divisible by 4 heads
        ("n_ctx", 1),
        ("lr", 0.0),
        ("lr", float("inf")),
        ("warmup", 500),
        ("seeds", (0, 0)),
        ("seeds", ()),
        ("steps", 10.0),
        ("cpu_threads", 0),
    ],
)
def test_tiny_config_validation(field, value):
    with pytest.raises(ValueError, match=field if field != "d_model" else "n_heads"):
        models.TinyConfig(**{field: value}).validate()


def test_cache_key_follows_the_weights_not_the_threads():
    base = models.TinyConfig()
    assert base.key("abc") == models.TinyConfig(cpu_threads=2).key("abc")
    assert base.key("abc") != models.TinyConfig(steps=201).key("abc")
    assert base.key("abc") != base.key("abd")  # another corpus


def test_cache_root(monkeypatch, tmp_path):
    monkeypatch.setenv("AKIRA_CACHE_DIR", str(tmp_path))
    assert models.cache_root() == tmp_path
    monkeypatch.delenv("AKIRA_CACHE_DIR")
    assert models.cache_root().parts[-2:] == (".cache", "akira_nb")
    assert models.cache_root(tmp_path / "x") == tmp_path / "x"
