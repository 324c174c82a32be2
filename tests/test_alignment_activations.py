"""akira_nb.alignment.activations: MLP activations from a TransformerBridge (the tiny pair booted
from its local folder, a native bridge) and from a grokking HookedRootModule; BOS / pad positions
excluded; early stop equals a full forward; layers validated per model."""

import pytest
import torch

from akira_nb import text
from akira_nb.alignment import activations as act
from akira_nb.alignment import models
from akira_nb.modular_arithmetic.data import make_dataset
from akira_nb.modular_arithmetic.models import build_model

# The same settings as test_alignment_models.py: one trained pair per test session, shared
# through the session's cache folder.
TEST_TINY = models.TinyConfig()  # the tiny preset's pair (tests/conftest.py tiny_lm)


@pytest.fixture(scope="session")
def tiny(tiny_lm):
    return tiny_lm  # tests/conftest.py: trained once per test run


@pytest.fixture(scope="module")
def bridges(tiny):
    return [models.load_model(folder, "cpu") for folder in tiny[0]]


@pytest.fixture(scope="module")
def six_layers():
    from transformer_lens import TransformerBridge, TransformerBridgeConfig

    cfg = TransformerBridgeConfig(
        d_model=32, d_head=8, n_heads=4, n_layers=6, n_ctx=16, d_vocab=50, d_mlp=64, seed=0
    )
    return TransformerBridge.boot_native(cfg).eval()


@pytest.fixture(scope="module")
def docs():
    return text.offline_corpus()[:400]


def test_random_token_activations_have_one_row_per_token(bridges):
    a = bridges[0]
    inputs = act.random_tokens(act.vocab_size(a), 10, 64, seed=0, exclude_ids=[256])
    out = act.collect_activations(a, inputs, [0, 1], batch_size=4)
    assert set(out) == {0, 1}
    for x in out.values():
        assert x.shape == (640, 256) and x.dtype == torch.float32
        assert torch.isfinite(x).all() and x.std() > 0
    assert act.n_layers(a) == 2 and act.d_mlp(a) == 256 and act.vocab_size(a) == 257


def test_text_rows_exclude_bos_and_padding_exactly(bridges, docs):
    a = bridges[0]
    tok = text.ByteTokenizer()
    inputs = act.text_tokens(docs, a.tokenizer, n=30, seq_len=64, pack=False)
    lengths = [len(tok.encode(d)) for d in docs if d][:30]
    expected = sum(min(n, 63) for n in lengths)  # seq_len - 1 text positions after BOS
    assert inputs.n_valid == expected
    assert inputs.tokens.shape == (30, 64)
    assert not inputs.mask[:, 0].any() and (inputs.tokens[:, 0] == 256).all()
    assert (inputs.tokens[~inputs.mask] == 256).all()  # only BOS and pads are excluded
    counts = inputs.info["excluded_positions"]
    assert counts["bos"] == 30 and counts["bos"] + counts["pad"] == 30 * 64 - expected
    out = act.collect_activations(a, inputs, [1], batch_size=7)
    assert out[1].shape == (expected, 256)
    # the rows are exactly the valid positions of the full activations
    full = act.sequence_activations(a, inputs, [1])[1]
    assert full.shape == (30, 64, 256)
    assert torch.equal(out[1], full[inputs.mask])
    assert tok.decode(inputs.tokens[0, inputs.mask[0]]) == docs[0][:63]


def test_packed_text_excludes_bos_and_document_separators(bridges, docs):
    inputs = act.text_tokens(docs, bridges[0].tokenizer, n=20, seq_len=64, pack=True)
    body = inputs.tokens[:, 1:]
    n_sep = int((body == 256).sum())
    assert n_sep > 0  # short docstrings: several documents per row
    assert inputs.n_valid == 20 * 63 - n_sep
    assert inputs.info["excluded_positions"] == {"bos": 20, "pad": 0, "special": n_sep}
    assert not (inputs.tokens[inputs.mask] == 256).any()


def test_text_inputs_are_never_repeated_to_fill_rows(bridges):
    with pytest.raises(ValueError, match="fewer than n=5"):
        act.text_tokens(["a", "b", ""], bridges[0].tokenizer, n=5, seq_len=8, pack=False)
    with pytest.raises(ValueError, match="fewer than n=100"):
        act.text_tokens(["abc"], bridges[0].tokenizer, n=100, seq_len=8, pack=True)


def test_extra_excluded_ids_such_as_newline(bridges, docs):
    plain = act.text_tokens(docs, bridges[0].tokenizer, n=10, seq_len=64)
    no_nl = act.text_tokens(docs, bridges[0].tokenizer, n=10, seq_len=64, exclude_ids=[10])
    assert torch.equal(plain.tokens, no_nl.tokens)
    n_newlines = int(((plain.tokens == 10) & plain.mask).sum())
    assert n_newlines > 0 and no_nl.n_valid == plain.n_valid - n_newlines


def test_same_model_twice_gives_identical_activations(tiny, bridges):
    inputs = act.random_tokens(257, 6, 32, seed=3, exclude_ids=[256])
    again = models.load_model(tiny[0][0], "cpu")
    x1 = act.collect_activations(bridges[0], inputs, [0, 1])
    x2 = act.collect_activations(bridges[0], inputs, [0, 1])
    x3 = act.collect_activations(again, inputs, [0, 1], batch_size=2)
    for layer in (0, 1):
        assert torch.equal(x1[layer], x2[layer])
        assert torch.allclose(x1[layer], x3[layer], atol=1e-6)


def test_the_two_seeds_give_different_activations(bridges):
    inputs = act.random_tokens(257, 4, 32, seed=3, exclude_ids=[256])
    pairs = list(act.iter_paired_activations(*bridges, inputs, [1], [0, 1], batch_size=2))
    assert len(pairs) == 2
    for xa, xb in pairs:
        assert xa[1].shape == xb[1].shape == xb[0].shape == (64, 256)
        assert not torch.allclose(xa[1], xb[1])


def test_hook_post_is_the_input_of_the_mlp_out_projection(tiny, bridges):
    from transformers import GPT2LMHeadModel

    hf = GPT2LMHeadModel.from_pretrained(str(tiny[0][0])).eval()
    seen = {}

    def grab(module, inputs, output):  # returns None: the output is left alone
        seen["x"] = inputs[0]

    handle = hf.transformer.h[1].mlp.c_proj.register_forward_hook(grab)
    inputs = act.random_tokens(257, 3, 16, seed=1, exclude_ids=[256])
    with torch.no_grad():
        hf(inputs.tokens)
    handle.remove()
    ours = act.collect_activations(bridges[0], inputs, [1])[1]
    assert torch.allclose(ours, seen["x"].reshape(-1, 256), atol=1e-5)


def test_a_pythia_architecture_folder_boots_the_same_way(tmp_path):
    """GPT-NeoX (pythia's architecture), random weights, saved like the tiny pair: the bridge's
    hook_post is the input of dense_4h_to_h and its logits are the HF model's."""
    from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

    torch.manual_seed(0)
    cfg = GPTNeoXConfig(
        num_hidden_layers=3,
        hidden_size=32,
        num_attention_heads=4,
        intermediate_size=128,
        vocab_size=257,
        max_position_embeddings=32,
        bos_token_id=256,
        eos_token_id=256,
    )
    hf = GPTNeoXForCausalLM(cfg).eval()
    hf.save_pretrained(str(tmp_path))
    text.ByteTokenizer().save_pretrained(tmp_path)
    bridge = models.load_model(tmp_path, "cpu")
    assert (act.n_layers(bridge), act.d_mlp(bridge)) == (3, 128)
    seen = {}

    def grab(module, inputs, output):
        seen["x"] = inputs[0]

    handle = hf.gpt_neox.layers[1].mlp.dense_4h_to_h.register_forward_hook(grab)
    inputs = act.random_tokens(257, 2, 16, seed=0, exclude_ids=[256])
    with torch.no_grad():
        logits = hf(inputs.tokens).logits
        assert torch.allclose(bridge(inputs.tokens), logits, atol=1e-5)
    handle.remove()
    ours = act.collect_activations(bridge, inputs, [1])[1]
    assert torch.allclose(ours, seen["x"].reshape(-1, 128), atol=1e-5)
    with pytest.raises(ValueError, match="n_ctx=32"):
        act.collect_activations(bridge, act.random_tokens(257, 1, 33), [0])


def test_stopping_after_the_deepest_layer_equals_a_full_forward(bridges):
    a = bridges[0]
    inputs = act.random_tokens(257, 4, 32, seed=2, exclude_ids=[256])
    calls = []
    handle = a.blocks[1].register_forward_hook(lambda *args: calls.append(1))
    early = act.collect_activations(a, inputs, [0])[0]
    assert calls == []  # block 1 never ran
    _, cache = a.run_with_cache(inputs.tokens, names_filter=["blocks.0.mlp.hook_post"])
    handle.remove()
    assert calls == [1]
    assert torch.equal(early, cache["blocks.0.mlp.hook_post"].reshape(-1, 256))


def test_batch_size_does_not_change_the_activations(bridges):
    inputs = act.random_tokens(257, 7, 32, seed=4, exclude_ids=[256])
    x1 = act.collect_activations(bridges[1], inputs, [0], batch_size=1)[0]
    x7 = act.collect_activations(bridges[1], inputs, [0], batch_size=7)[0]
    assert torch.allclose(x1, x7, atol=1e-5)


def test_a_batch_without_valid_positions_yields_empty_rows(bridges):
    inputs = act.random_tokens(257, 4, 8, seed=0)
    mask = inputs.mask.clone()
    mask[:2] = False
    batches = list(act.iter_activations(bridges[0], inputs.tokens, [1], batch_size=2, mask=mask))
    assert [b[1].shape for b in batches] == [(0, 256), (16, 256)]


def test_grokking_model_activations():
    torch.manual_seed(0)
    model = build_model(13, d_model=32, d_mlp=48)
    data = make_dataset(13, 0.3, seed=0)
    assert act.n_layers(model) == 1 and act.d_mlp(model) == 48 and act.vocab_size(model) == 14
    out = act.collect_activations(model, data.inputs, [0], batch_size=50)
    assert out[0].shape == (169, 48)  # the = position only: one row per input
    _, cache = model.run_with_cache(data.inputs)
    assert torch.allclose(out[0], cache["blocks.0.mlp.hook_post"].reshape(169, 48))
    # the mask's last column selects among the computed (=) positions
    mask = torch.ones(169, 3, dtype=torch.bool)
    mask[::2, 2] = False
    sub = act.collect_activations(model, data.inputs, [0], mask=mask)[0]
    assert torch.equal(sub, out[0][1::2])
    # the forward stopped at the MLP: the unembedding-side hook never fired
    fired = []
    handle = model.blocks[0].hook_mlp_out.register_forward_hook(lambda *args: fired.append(1))
    act.collect_activations(model, data.inputs[:5], [0])
    handle.remove()
    assert fired == []
    with pytest.raises(ValueError, match=r"layer 1 does not exist in GrokkingModel\(p=13"):
        act.collect_activations(model, data.inputs, [1])


def test_model_mode_is_restored():
    model = build_model(13, d_model=32, d_mlp=48).train()
    act.collect_activations(model, make_dataset(13).inputs[:4], [0])
    assert model.training


def test_layer_7_of_a_six_layer_model_names_the_model_and_its_layers(six_layers):
    assert act.n_layers(six_layers) == 6
    with pytest.raises(
        ValueError, match=r"layer 7 does not exist in native: it has 6 layers \(0-5\)"
    ):
        act.check_layers(six_layers, [3, 5, 7])
    inputs = act.random_tokens(50, 2, 16, seed=0)
    with pytest.raises(ValueError, match="layer 7"):
        act.collect_activations(six_layers, inputs, [3, 5, 7])
    out = act.collect_activations(six_layers, inputs, [3, 5])
    assert out[5].shape == (32, 64)
    assert act.check_layers(six_layers, 5) == [5]
    assert act.check_layers(six_layers, torch.tensor([4, 2]).numpy()) == [4, 2]


@pytest.mark.parametrize(
    "layers,match",
    [
        ([], "at least one"),
        ([0, 0], "repeats"),
        ("0", "int or a list"),
        ([1.0], "layers\\[0\\]"),
        ([-1], "layer -1 does not exist"),
    ],
)
def test_bad_layers(six_layers, layers, match):
    with pytest.raises(ValueError, match=match):
        act.check_layers(six_layers, layers)


def test_bad_inputs_are_refused(six_layers):
    good = act.random_tokens(50, 2, 16, seed=0)
    with pytest.raises(ValueError, match="2-D"):
        act.collect_activations(six_layers, good.tokens[0], [0])
    with pytest.raises(ValueError, match="mask has shape"):
        act.collect_activations(six_layers, good.tokens, [0], mask=good.mask[:, :3])
    with pytest.raises(ValueError, match="bool"):
        act.collect_activations(six_layers, good.tokens, [0], mask=good.mask.long())
    with pytest.raises(ValueError, match=r"outside the 50 ids of native"):
        act.collect_activations(six_layers, good.tokens + 45, [0])
    with pytest.raises(ValueError, match="batch_size"):
        act.collect_activations(six_layers, good, [0], batch_size=0)
    with pytest.raises(ValueError, match="not both"):
        act.collect_activations(six_layers, good, [0], mask=good.mask)
    with pytest.raises(ValueError, match="TransformerBridge or a HookedRootModule"):
        act.collect_activations(torch.nn.Linear(2, 2), good, [0])


def test_pairs_with_different_tokenizers_are_refused(bridges, six_layers):
    act.check_same_tokenizer(*bridges)
    with pytest.raises(ValueError, match="do not share a tokenizer"):
        act.check_same_tokenizer(bridges[0], six_layers)
    grok = build_model(13, d_model=32, d_mlp=48)
    with pytest.raises(ValueError, match="different vocabularies \\(50 vs 14 ids\\)"):
        act.check_same_tokenizer(six_layers, grok)
    act.check_same_tokenizer(grok, build_model(13, d_model=32, d_mlp=64))
    with pytest.raises(ValueError, match="share a tokenizer"):
        next(act.iter_paired_activations(bridges[0], six_layers, act.random_tokens(50, 1, 4), 0, 0))


def test_random_tokens_are_seeded_uniform_and_skip_excluded_ids():
    a = act.random_tokens(20, 200, 50, seed=7, exclude_ids=[0, 5])
    assert torch.equal(a.tokens, act.random_tokens(20, 200, 50, seed=7, exclude_ids=[0, 5]).tokens)
    assert not torch.equal(
        a.tokens, act.random_tokens(20, 200, 50, seed=8, exclude_ids=[0, 5]).tokens
    )
    counts = torch.bincount(a.tokens.reshape(-1), minlength=20)
    assert counts[0] == counts[5] == 0
    expected = 10_000 / 18
    assert ((counts[counts > 0] - expected).abs() < 5 * expected**0.5).all()  # 5 sigma
    assert a.mask.all() and a.n_valid == 10_000 and a.kind == "random"
    seedlike = act.random_tokens(50257, 4, 64, seed=42, low=1000, high=50257 - 1000)
    assert int(seedlike.tokens.min()) >= 1000 and int(seedlike.tokens.max()) < 49257
    with_bos = act.random_tokens(20, 3, 5, seed=0, bos_id=19)
    assert (with_bos.tokens[:, 0] == 19).all() and not with_bos.mask[:, 0].any()
    assert with_bos.n_valid == 12 and (with_bos.tokens[:, 1:] != 19).all()


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"vocab_size": 1}, "vocab_size"),
        ({"n": 0}, "n="),
        ({"seq_len": 0}, "seq_len"),
        ({"seed": -1}, "seed"),
        ({"high": 30}, "high"),
        ({"low": 20}, "low"),
        ({"exclude_ids": list(range(20))}, "no ids left"),
        ({"bos_id": 20}, "bos_id"),
    ],
)
def test_random_tokens_validation(kwargs, match):
    args = {"vocab_size": 20, "n": 2, "seq_len": 4, **kwargs}
    with pytest.raises(ValueError, match=match):
        act.random_tokens(**args)


def test_describe(bridges):
    d = act.describe(bridges[0])
    assert d["kind"] == "TransformerBridge" and d["n_layers"] == 2 and d["d_mlp"] == 256
    assert act.mlp_hook(3) == "blocks.3.mlp.hook_post"


def test_an_abandoned_activation_stream_leaves_grad_mode_and_model_mode_alone():
    # the caller's code between batches (and after it stops early) must run with gradients on
    # and the model in its own mode: a generator that yields inside no_grad() leaked both
    model = build_model(13, d_model=32, d_mlp=48).train()
    stream = act.iter_activations(model, make_dataset(13).inputs[:8], [0], batch_size=4)
    next(stream)
    assert torch.is_grad_enabled() and model.training
    del stream
    assert torch.is_grad_enabled() and model.training
