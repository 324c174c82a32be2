"""akira_nb.alignment.aq: the AQ pipelines on known answers (a representation against itself,
against a permuted copy with extra neurons, against an independent one, planted copies), the
spectral analysis on the right model's neurons, a resumed stream, layer pairing and the
validation of every knob; and the whole pipeline on the tiny pair and on an untrained model."""

import numpy as np
import pytest
import torch

from akira_nb import runs
from akira_nb.alignment import activations, aq, models

# The same settings as the other alignment tests: one trained pair per test session.
TEST_TINY = models.TinyConfig()  # the tiny preset's pair (tests/conftest.py tiny_lm)


def _cfg(**kw):
    base = dict(
        model_a="A",
        model_b="B",
        layers=(0,),
        num_samples=40,
        seq_length=50,
        batch_size=8,
        device="cpu",
        input_type="random",
        sample_sequences=40,
        spectral_sequences=40,
    )
    base.update(kw)
    return aq.AQConfig(**base).validate()


def _analyse(xa, xb, cfg=None, batch=250, **kw):
    """Stream in-memory activations through PairStream and analyse the single pair."""
    cfg = cfg or _cfg(**kw)
    xa, xb = torch.as_tensor(xa), torch.as_tensor(xb)
    stream = aq.PairStream([(0, 0)], xa.shape[1], xb.shape[1], "cpu", seed=cfg.seed)
    for start in range(0, len(xa), batch):
        stream.update({0: xa[start : start + batch]}, {0: xb[start : start + batch]})
    groups = torch.arange(len(xa)) // 25  # 25-token "sequences" for the Procrustes split
    return aq.analyse_pair(stream.stats[(0, 0)], stream.null[(0, 0)], cfg, xa, xb, groups)


def _features(n, d, seed):
    """Neuron-like activations: GELU of correlated pre-activations."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(n, d, generator=g, dtype=torch.float64)
    mix = torch.eye(d, dtype=torch.float64) + 0.2 * torch.randn(
        d, d, generator=g, dtype=torch.float64
    )
    return torch.nn.functional.gelu(z @ mix)


# ----------------------------------------------------------------------------- known answers


@pytest.mark.parametrize("method", ["emd", "hungarian"])
def test_a_representation_against_itself(method):
    x = _features(2000, 48, 0)
    res = _analyse(x, x, match_method=method)
    assert res.cka["linear"] == pytest.approx(1.0, abs=1e-9)
    assert res.cka["debiased"] == pytest.approx(1.0, abs=1e-9)
    assert res.cka["linear_null"] < 0.2
    assert res.procrustes["test_error"] < 1e-6 and res.procrustes["train_error"] < 1e-6
    assert res.procrustes["null_error"] > 1.0
    ot = res.methods["ot"]
    assert np.array_equal(ot.partner, np.arange(48))  # every neuron matched to itself
    assert np.allclose(ot.scores, 1.0)
    assert np.allclose(res.methods["procrustes"].scores, 1.0)
    assert np.allclose(res.methods["basic"].extra["actual"], 1.0)


@pytest.mark.parametrize("method", ["emd", "hungarian"])
def test_a_permuted_copy_with_extra_neurons_is_recovered_but_not_by_index(method):
    n, d_a, d_b = 2000, 48, 64
    x = _features(n, d_a, 1)
    extra = _features(n, d_b - d_a, 2)
    g = torch.Generator().manual_seed(3)
    pos = torch.randperm(d_b, generator=g)  # A's neuron i sits at column pos[i] of B
    b = torch.empty(n, d_b, dtype=torch.float64)
    b[:, pos[:d_a]] = x
    b[:, pos[d_a:]] = extra
    res = _analyse(x, b, match_method=method)
    ot = res.methods["ot"]
    assert np.array_equal(ot.partner, pos[:d_a].numpy())
    assert np.allclose(ot.scores, 1.0)
    # every matched |corr| is 1: mean + 2 std lies at or above every score and flags nothing,
    # while fixed 0.5 flags every neuron with a real partner and none of the null
    assert ot.main.count == 0 and ot.main.threshold_above_every_score
    half = ot.count("fixed", 0.5)
    assert half.count == d_a and half.null_count == 0
    # index matching compares unrelated neurons: no neuron with a real partner at its index
    actual = res.methods["basic"].extra["actual"]
    same_index = (pos[:d_a] == torch.arange(d_a)).numpy()
    assert np.all(np.abs(actual[~same_index]) < 0.5)
    assert (np.abs(actual) > 0.9).sum() == same_index.sum()
    # CKA is invariant to the permutation's re-labelling only up to the extra neurons
    assert 0.5 < res.cka["linear"] < 1.0
    assert res.procrustes["test_error"] < 0.9


def test_independent_representations_give_low_cka_and_counts_near_the_null():
    x, y = _features(3000, 40, 4), _features(3000, 56, 5)
    res = _analyse(x, y)
    assert res.cka["linear"] < 0.1 and abs(res.cka["debiased"]) < 0.05
    for name in ("ot", "procrustes", "gurnee"):
        m = res.methods[name]
        fixed = m.count("fixed", 0.5)
        assert fixed.count == 0 and fixed.null_count == 0, name
    for name in ("ot", "procrustes"):  # mean + 2 std: the count near the null's, same threshold
        rule = res.methods[name].main
        assert abs(rule.count - rule.null_count) <= 3, (name, rule.line())
    assert res.procrustes["test_error"] > 1.2  # no map beats predicting 0


def test_planted_copies_are_recovered_with_high_precision_and_recall():
    n, d_a, d_b, k = 3000, 64, 80, 16
    a = _features(n, d_a, 6)
    b = _features(n, d_b, 7)
    g = torch.Generator().manual_seed(8)
    src = torch.randperm(d_a, generator=g)[:k]  # A's neurons that have a copy in B
    dst = torch.randperm(d_b, generator=g)[:k]  # where the copies sit in B
    noise = torch.randn(n, k, generator=g, dtype=torch.float64)
    b[:, dst] = a[:, src] + 0.3 * a[:, src].std(0) * noise
    res = _analyse(a, b, threshold_method="fixed", threshold_value=0.5)
    ot = res.methods["ot"]
    found = set(ot.aq_indices.tolist())
    truth = set(src.tolist())
    precision = len(found & truth) / max(len(found), 1)
    recall = len(found & truth) / len(truth)
    assert precision >= 0.95 and recall >= 0.95, (precision, recall)
    assert np.array_equal(ot.partner[src.numpy()], dst.numpy())  # matched to the right copies
    assert ot.main.null_count == 0
    proc = set(res.methods["procrustes"].aq_indices.tolist())  # B's neurons
    assert proc == set(dst.tolist())


def test_interpretation_table_and_basic_nulls():
    assert [aq.interpret(v) for v in (25, 20, 15, 10, 7, 5, 2, 0)] == [
        "very strong",
        "strong",
        "strong",
        "moderate",
        "moderate",
        "weak",
        "weak",
        "weak",
    ]
    x, y = _features(2000, 32, 9), _features(2000, 32, 10)
    basic = _analyse(x, y).methods["basic"]
    assert set(basic.nulls) == {"token-shuffle", "neuron-permutation"}
    assert basic.nulls["neuron-permutation"].shape == (100, 32)
    line = basic.lines()[0]
    assert "fixed 0.3" in line and "neuron-permutation null" in line
    assert [r for r, _ in basic.rules] == ["fixed", "fixed"]
    assert basic.to_dict()["counts"][1]["value"] == 0.5


def _common_factor_pair(n, w, v, seed):
    """A and B unrelated neuron by neuron, but every neuron loads on one latent shared by all
    (loadings ``w`` of A's neurons, ``v`` of B's: per-neuron properties that carry over between
    input types); a fresh draw of tokens per call."""
    g = torch.Generator().manual_seed(seed)
    c = torch.randn(n, 1, generator=g, dtype=torch.float64)
    a = torch.randn(n, len(w), generator=g, dtype=torch.float64) + c * w
    b = torch.randn(n, len(v), generator=g, dtype=torch.float64) + c * v
    return a, b


def test_universal_basic_aq_at_chance_are_not_above_chance_when_neurons_keep_properties():
    """The basic method's counts are at chance in both input types (as in the tiny run), yet a
    neuron's loading on what the two models share carries over: the hypergeometric overlap
    (independent sets) reads p << 0.01, the paired neuron-permutation null reads chance."""
    g = torch.Generator().manual_seed(11)
    d = 96
    w = 1.5 * torch.randn(d, generator=g, dtype=torch.float64)
    v = 1.5 * torch.randn(d, generator=g, dtype=torch.float64)
    cfg = _cfg(n_permutations=200)
    pairs = {}
    for kind, seed in (("random", 12), ("text", 13)):
        pr = _analyse(*_common_factor_pair(3000, w, v, seed), cfg=cfg)
        pr.input_type = kind
        basic = pr.methods["basic"]
        chance = basic.main_chance
        assert abs(basic.main.count - chance) < 0.3 * chance, (basic.main.count, chance)
        pairs[kind] = {pr.key: pr}
    res = aq.AQResult(cfg, [(0, 0)], pairs)
    aq.add_universal(res)
    u = res.universal["basic"]["0-0"]
    assert u["null"] == "neuron-permutation" and u["n_null"] == 200
    assert u["independent_p_value"] < 0.01, u
    assert u["p_value"] > 0.05, u
    assert u["chance"] > u["independent_expected"]
    assert "independence bound" in res.universal_lines()[0]
    # the same permutations of B's neurons in both input types
    assert np.array_equal(
        pairs["random"]["0-0"].methods["basic"].extra["null_perm"],
        pairs["text"]["0-0"].methods["basic"].extra["null_perm"],
    )


def test_verdicts_do_not_read_a_rule_that_flags_nothing_as_weak():
    """A representation against itself: every OT score is 1, so mean + 2 std lies at or above
    every score and flags nothing in the data and the null; the verdict says so, beside the
    fixed-0.5 count, instead of calling it 'weak'."""
    x = _features(2000, 48, 0)
    pr = _analyse(x, x)
    ot = pr.methods["ot"]
    assert ot.main.count == 0 and ot.main.threshold >= ot.scores.max()
    assert ot.main.flags_nothing and ot.main.threshold_above_every_score
    res = aq.AQResult(pr_cfg := _cfg(), [(0, 0)], {"random": {pr.key: pr}})
    assert pr_cfg.threshold_method == "statistical"
    line = next(v for v in res.verdicts() if v.startswith("random / ot"))
    assert "the rule flags nothing here (threshold above every score)" in line, line
    assert "-> weak" not in line
    assert "48 of 48 above fixed 0.5 (chance 0.0: above chance)" in line, line
    assert res.verdict("random", "ot") == aq.FLAGS_NOTHING
    assert res.verdict("random", "basic") != aq.FLAGS_NOTHING
    # a fixed threshold that no score reaches is a property of the data: read against chance
    other = _analyse(x, _features(2000, 48, 1))
    assert other.methods["gurnee"].flags_nothing("fixed", 0.3)
    res = aq.AQResult(pr_cfg, [(0, 0)], {"random": {other.key: other}})
    assert res.verdict("random", "gurnee") == "at chance"  # 0 of 48 beside a null of 0


# ----------------------------------------------------------------------------- spectra


def test_spectral_profile_of_a_pure_tone():
    t = torch.arange(64, dtype=torch.float64)
    tone = torch.cos(2 * torch.pi * 5 * t / 64)  # 5 cycles per 64 tokens
    x = torch.stack([tone, tone + 3.0], dim=1)[None].repeat(4, 1, 1)  # [4, 64, 2]
    prof = aq.spectral_profile(x, n_bands=7)
    assert prof["centroid"] == pytest.approx([5 / 64, 5 / 64])
    assert prof["centroid_dc"][0] == pytest.approx(5 / 64)
    assert prof["centroid_dc"][1] < 5 / 64  # the DC bin pulls the centroid down
    assert prof["band_share"].sum(0) == pytest.approx([1.0, 1.0])
    assert prof["band"].tolist() == [int(5 / 64 // (0.5 / 7))] * 2


def _planted_spectra(seed=0, n=60, t=64, d=40, k=8):
    g = torch.Generator().manual_seed(seed)
    white_a = torch.randn(n, t, d, generator=g, dtype=torch.float64)
    white_b = torch.randn(n, t, d, generator=g, dtype=torch.float64)
    aq_idx = torch.randperm(d, generator=g)[:k]
    smooth = torch.cumsum(torch.randn(n, t, k, generator=g, dtype=torch.float64), dim=1)
    white_a[:, :, aq_idx] = smooth  # only A's AQ neurons are low-frequency
    return {"A": white_a, "B": white_b}, aq_idx


def _method_with(model, d, idx):
    scores = np.zeros(d)
    scores[idx] = 1.0
    return aq.MethodResult(
        "planted", model, scores, {"token-shuffle": np.zeros((1, d))}, [("fixed", 0.5)]
    )


def test_spectra_are_taken_from_the_model_the_aq_indices_name():
    seq, idx = _planted_spectra()
    right = aq.spectral_analysis(seq, _method_with("A", 40, idx))
    assert right["model"] == "A" and right["n_aq"] == 8
    assert right["lower_frequency"] is True
    assert right["centroid"]["p_value"] < 1e-4
    assert right["centroid"]["aq_median"] < right["centroid"]["other_median"]
    assert sum(right["band_counts_aq"]) == 8
    # the reference's mistake: A's indices looked up among B's neurons find nothing
    wrong = aq.spectral_analysis(seq, _method_with("B", 40, idx))
    assert wrong["model"] == "B" and wrong["lower_frequency"] is False
    assert wrong["centroid"]["p_value"] > 0.01
    with pytest.raises(ValueError, match="neurons"):
        aq.spectral_analysis({"A": seq["A"][:, :, :20], "B": seq["B"]}, _method_with("A", 40, idx))
    few = aq.spectral_analysis(seq, _method_with("A", 40, idx[:1]))
    assert few["lower_frequency"] is None and "not enough" in few["verdict"]


# ----------------------------------------------------------------------------- pairing, checks


def test_layer_pairing_by_index_and_by_relative_depth():
    assert aq.pair_layers([3, 5, 7], 12, 24, "index") == [(3, 3), (5, 5), (7, 7)]
    assert aq.pair_layers([0, 3, 11], 12, 24, "depth") == [(0, 0), (3, 6), (11, 23)]
    assert aq.pair_layers([0, 5], 6, 12, "depth") == [(0, 0), (5, 11)]
    with pytest.raises(ValueError, match="no layer 7 in B"):
        aq.pair_layers([7], 12, 6, "index")
    with pytest.raises(ValueError, match="layer_pairing"):
        aq.pair_layers([1], 12, 6, "nearest")


@pytest.mark.parametrize(
    "kw, match",
    [
        (dict(model_a="EleutherAI/pythia-70m", model_b="EleutherAI/pythia-160m"), "pythia-70m"),
        (dict(model_a="tiny:0", model_b="tiny:1", layers=(2,)), "tiny:0"),
        (dict(match_method="greedy"), "match_method"),
        (dict(threshold_method="mean"), "rule"),
        (dict(threshold_method="percentile", threshold_value=120), "value"),
        (dict(input_type="images"), "input_type"),
        (dict(layer_pairing="nearest"), "layer_pairing"),
        (dict(layers=()), "layers"),
        (dict(layers=(1, 1)), "repeats"),
        (dict(num_samples=1), "num_samples"),
        (dict(device="tpu"), "device"),
        (dict(text_corpus="pile"), "text_corpus"),
        (dict(model_a="tiny:0", model_b="tiny:1", layers=(0,), seq_length=100), "seq_length"),
        (dict(offline="yes"), "offline"),
        (
            dict(model_a="EleutherAI/gpt-j-6b", layers=(3,), offline=True),
            r"model_a='EleutherAI/gpt-j-6b' has no offline stand-in \(offline=True\); choose one",
        ),
        (dict(model_b="./no/such/folder", layers=(3,), offline=True), "model_b='./no/such/f"),
    ],
)
def test_config_validation_names_the_bad_setting(kw, match):
    base = dict(model_a="gpt2", model_b="gpt2-medium", layers=(3, 5, 7))
    base.update(kw)
    with pytest.raises(ValueError, match=match):
        aq.AQConfig(**base).validate()


def test_seed_config_is_valid_and_depth_pairing_fits_six_layers():
    cfg = aq.AQConfig().validate()
    assert (
        cfg.layers == (3, 5, 7) and cfg.threshold == 0.3 and cfg.input_types == ["random", "text"]
    )
    aq.AQConfig(
        model_a="EleutherAI/pythia-160m",
        model_b="EleutherAI/pythia-70m",
        layers=(7,),
        layer_pairing="depth",
    ).validate()
    with pytest.raises(ValueError, match="no layer 7 in B"):
        aq.AQConfig(
            model_a="EleutherAI/pythia-160m", model_b="EleutherAI/pythia-70m", layers=(7,)
        ).validate()


def test_frequency_agreement_known_answers():
    f = np.array([1, 1, 2, 3, 3, 3])
    same = aq.frequency_agreement(f, f, np.arange(6))
    assert same["rate"] == 1.0 and same["chance"] == pytest.approx((4 + 1 + 9) / 36)
    assert same["p_value"] < 0.05
    shifted = aq.frequency_agreement(f, f, np.array([3, 4, 5, 0, 1, 2]))
    assert shifted["same"] == 0
    masked = aq.frequency_agreement(f, f, np.arange(6), mask=f == 3)
    assert masked["n"] == 3 and masked["rate"] == 1.0


# ----------------------------------------------------------------------------- tiny models


@pytest.fixture(scope="session")
def tiny(tiny_lm):
    return tiny_lm  # tests/conftest.py: trained once per test run


@pytest.fixture(scope="module")
def bridges(tiny, monkeypatch_module):
    return [models.load_model(folder, "cpu") for folder in tiny[0]]


@pytest.fixture(scope="module")
def monkeypatch_module():
    mp = pytest.MonkeyPatch()
    mp.setenv("HF_HUB_OFFLINE", "1")
    yield mp
    mp.undo()


def _tiny_cfg(tiny, **kw):
    a, b = tiny[0]
    base = dict(
        model_a=str(a),
        model_b=str(b),
        layers=(0, 1),
        num_samples=24,
        seq_length=32,
        batch_size=8,
        device="cpu",
        input_type="both",
        text_corpus="offline",
        sample_sequences=24,
        spectral_sequences=24,
        checkpoint_every=1,
    )
    base.update(kw)
    return aq.AQConfig(**base).validate()


def test_whole_pipeline_on_the_tiny_pair(tiny, bridges):
    cfg = _tiny_cfg(tiny, stream_cka=True)
    lines = []
    res = aq.run_aq(cfg, *bridges, log=lines.append)
    assert set(res.pairs) == {"random", "text"}
    assert list(res.pairs["random"]) == ["0-0", "1-1"]
    pr = res.pairs["random"]["0-0"]
    assert pr.n_tokens == 24 * 31 and pr.methods["ot"].scores.shape == (256,)  # BOS out
    assert 0.3 < pr.cka["linear"] <= 1.0 and pr.cka["linear_null"] < 0.1
    text = res.pairs["text"]["0-0"]
    assert text.n_tokens == res.inputs["text"]["n_valid_tokens"] < 24 * 32  # BOS, separators out
    # linear CKA over every streamed token (here the sample is every sequence: the same)
    assert pr.cka["n_tokens_all"] == pr.n_tokens == pr.cka["n_tokens"]
    assert pr.cka["linear_all_tokens"] == pytest.approx(pr.cka["linear"], abs=1e-9)
    assert pr.cka["linear_all_tokens_null"] < 0.1
    assert any("all 744 streamed tokens" in line for line in pr.lines())
    assert "in-memory sample" in " ".join(pr.lines())
    m, la, lb = res.cka_matrix["random"]
    assert m.shape == (2, 2) and la == [0, 1] and lb == [0, 1]
    assert m[0, 0] == pytest.approx(pr.cka["linear"])
    assert set(res.universal) == set(aq.METHODS)
    u = res.universal["ot"]["0-0"]
    assert u["n_total"] == 256
    assert u["independent_expected"] == pytest.approx(u["n_a"] * u["n_b"] / 256)
    assert u["null"] == "token-shuffle" and u["n_null"] == 1
    assert res.universal["basic"]["0-0"]["n_null"] == cfg.n_permutations
    assert res.universal["procrustes"]["0-0"]["n_null"] == cfg.n_shuffles
    assert res.spectral["procrustes"]["0-0"]["model"] == "B"
    assert res.spectral["ot"]["1-1"]["model"] == "A"
    assert any("expected by chance" in line for line in lines)
    assert any(line.startswith("rule: the seed's table") for line in lines)
    d = runs.to_jsonable(res.to_dict())
    assert d["pairs"]["text"]["1-1"]["methods"]["basic"]["counts"][0]["nulls"]
    assert "profile" not in d["spectral"]["ot"]["0-0"]


def test_a_resumed_stream_gives_identical_statistics(tiny, bridges, tmp_path):
    cfg = _tiny_cfg(tiny, input_type="random")
    a, b = bridges
    pairs = aq.check_models(cfg, a, b)
    inputs = aq.make_inputs(cfg, "random", a)
    whole = aq.stream_models(a, b, inputs, pairs, cfg)
    run = runs.Run.create("aq_test", "resume", root=tmp_path)
    part = aq.stream_models(a, b, inputs, pairs, cfg, run=run, max_batches=2)
    assert part.n_batches == 2
    resumed = aq.stream_models(a, b, inputs, pairs, cfg, run=run, resume=True)
    assert resumed.n_batches == whole.n_batches == 3
    for p in pairs:
        for acc in ("stats", "null"):
            s1 = getattr(whole, acc)[p].state_dict()
            s2 = getattr(resumed, acc)[p].state_dict()
            assert set(s1) == set(s2)
            for key, v1 in s1.items():  # every accumulator: sums, shifts, cross, sum_bb, counts
                v2 = s2[key]
                if isinstance(v1, torch.Tensor):
                    assert torch.equal(v1, v2), (acc, key)
                elif isinstance(v1, list) and v1 and isinstance(v1[0], torch.Tensor):
                    assert len(v1) == len(v2) and all(map(torch.equal, v1, v2)), (acc, key)
                else:
                    assert v1 == v2, (acc, key)
        assert len(whole.stats[p].state_dict()["sum_bb"]) == 1  # B's second moment is compared
    # a finished stream is reloaded, not recomputed; other settings refuse to resume
    again = aq.stream_models(a, b, inputs, pairs, cfg, run=run, resume=True, max_batches=0)
    assert again.n_batches == 3
    other = _tiny_cfg(tiny, input_type="random", batch_size=4)
    with pytest.raises(ValueError, match="batch_size"):
        aq.stream_models(a, b, inputs, pairs, other, run=run, resume=True)


def test_random_tokens_lead_with_a_masked_bos_like_text(tiny, bridges):
    """The first position of a GPT-2-style model is an attention sink with outlier activations
    whatever its token: random rows start with BOS, masked, as text rows do."""
    cfg = _tiny_cfg(tiny)
    tok = aq.act.tokenizer_of(bridges[0])
    for kind in ("random", "text"):
        inputs = aq.make_inputs(cfg, kind, bridges[0])
        assert (inputs.tokens[:, 0] == tok.bos_token_id).all(), kind
        assert not inputs.mask[:, 0].any(), kind
    random = aq.make_inputs(cfg, "random", bridges[0])
    assert random.mask[:, 1:].all() and (random.tokens[:, 1:] != tok.bos_token_id).all()
    assert random.info["bos"] is True


def test_spectra_skip_the_first_position_and_sequences_with_separators():
    """The FFT sees only sequences whose every position after the first is counted: a document
    separator (masked) inside a text row would put a spike of another context in it."""
    n, t, d = 6, 16, 3
    seq = torch.arange(n * t * d, dtype=torch.float32).reshape(n, t, d)
    mask = torch.ones(n, t, dtype=torch.bool)
    mask[:, 0] = False  # BOS
    mask[2, 7] = False  # a separator in sequence 2
    mask[4, 15] = False  # and one at the end of sequence 4
    for kind in ("text", "random"):
        sample = aq.Sample({0: seq}, {0: seq + 1}, mask, kind)
        got = sample.spectral("A", 0)
        assert got.shape == (4, t - 1, d), kind
        torch.testing.assert_close(got, seq[[0, 1, 3, 5], 1:])
        torch.testing.assert_close(sample.spectral("B", 0, 2), seq[[0, 1], 1:] + 1)
    every = aq.Sample({0: seq}, {0: seq}, torch.ones(n, t, dtype=torch.bool), "random")
    assert every.spectral("A", 0).shape == (n, t, d)  # nothing masked: every position kept
    bad = mask.clone()
    bad[:, 5] = False
    with pytest.raises(ValueError, match="separator"):
        aq.Sample({0: seq}, {0: seq}, bad, "text").spectral("A", 0)


def test_bad_layer_of_a_loaded_model_names_it(tiny, bridges):
    cfg = _tiny_cfg(tiny, layers=(2,))
    with pytest.raises(ValueError, match="does not exist"):
        aq.check_models(cfg, *bridges)


def test_an_untrained_model_gives_low_cka_and_counts_near_the_nulls(tiny, bridges, tmp_path):
    """Against an untrained model: CKA near 0; the basic and Gurnee counts at the largest of
    their nulls (neuron permutation, token shuffle) above the same threshold; no OT or
    Procrustes match at 0.5, as in their token-shuffle null. (Its neurons still read the same
    tokens, so the matched |corr| sit a little above the null's: mean + 2 std flags a few
    neurons that the null does not, which is no correspondence of units.)"""
    from transformers import GPT2LMHeadModel

    from akira_nb.text import ByteTokenizer

    folder = tmp_path / "untrained"
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(5)
        hf = GPT2LMHeadModel(models._hf_config(TEST_TINY, 257, 256)).eval()
    with models.quiet_hf():
        hf.save_pretrained(str(folder))
        ByteTokenizer().save_pretrained(folder)
    untrained = models.load_model(folder, "cpu")
    cfg = _tiny_cfg(tiny, model_b=str(folder), input_type="random", num_samples=32)
    res = aq.run_aq(cfg, bridges[0], untrained)
    trained = aq.run_aq(_tiny_cfg(tiny, input_type="random", num_samples=32), *bridges)
    for key in ("0-0", "1-1"):
        pr = res.pairs["random"][key]
        assert pr.cka["linear"] < 0.2 < trained.pairs["random"][key].cka["linear"]
        for name in ("basic", "gurnee"):
            m = pr.methods[name]
            for rule, value in m.rules:  # fixed 0.3 and 0.5 against the largest null count
                assert abs(m.count(rule, value).count - m.chance(rule, value)) <= 6, (key, name)
        for name in ("ot", "procrustes"):
            m = pr.methods[name]
            half = m.count("fixed", 0.5)
            assert half.count == 0 and half.null_count == 0, (key, name)
            assert trained.pairs["random"][key].methods[name].count("fixed", 0.5).count > 100
            assert m.main.count <= 0.06 * len(m.scores) and m.scores.max() < 0.5


def test_pair_stream_null_keeps_only_its_cross_product():
    stream = aq.PairStream([(0, 0), (1, 1)], 48, 64, "cpu")
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        xa = {k: torch.randn(100, 48, generator=g, dtype=torch.float64) for k in (0, 1)}
        xb = {k: torch.randn(100, 64, generator=g, dtype=torch.float64) for k in (0, 1)}
        stream.update(xa, xb)
    real, null = stream.stats[(0, 0)], stream.null[(0, 0)]
    assert null.nbytes == 8 * 48 * 64 and null.n == real.n == 300
    assert stream.nbytes == 2 * (real.nbytes + null.nbytes)
    state = stream.state_dict()
    assert set(state["null"]["0-0"]) >= {"cross", "n_updates"}
    assert "sum_bb" not in state["null"]["0-0"] and "sum_b" not in state["null"]["0-0"]
    again = aq.PairStream([(0, 0), (1, 1)], 48, 64, "cpu")
    again.load_state_dict(state)
    torch.testing.assert_close(again.null[(1, 1)].corr(), stream.null[(1, 1)].corr())


def test_gurnee_over_all_of_bs_layers_finds_a_partner_outside_the_paired_layer():
    """Gurnee et al. take each A neuron's max over every neuron of every layer of B: copies of
    A's layer-0 neurons that sit in B's layer 1 are missed by the paired layer (0 vs 0) and
    found over all of B's layers, with the layer they sit in."""
    g = torch.Generator().manual_seed(21)
    n, d, k = 3000, 128, 12
    a0, a1 = (torch.randn(n, d, generator=g, dtype=torch.float64) for _ in range(2))
    b0, b1 = (torch.randn(n, d, generator=g, dtype=torch.float64) for _ in range(2))
    b1[:, :k] = a0[:, :k] + 0.2 * torch.randn(n, k, generator=g, dtype=torch.float64)
    cfg = _cfg(layers=(0, 1))
    stream = aq.PairStream([(0, 0), (1, 1)], d, d, "cpu", all_b_layers=[0, 1])
    for i in range(0, n, 500):
        s = slice(i, i + 500)
        stream.update({0: a0[s], 1: a1[s]}, {0: b0[s], 1: b1[s]})
    paired = aq.gurnee_method(stream.stats[(0, 0)], stream.null[(0, 0)], cfg)
    assert paired.count("fixed", 0.5).count == 0
    every = aq.gurnee_all_layers(stream, cfg)
    assert set(every) == {"0", "1"}
    g0 = every["0"]
    assert g0["layers_b"] == [0, 1] and g0["n_neurons"] == d
    assert g0["count"] == k and g0["indices"] == list(range(k)), g0
    assert g0["best_layer_b_of_aq"] == {"1": k}
    assert every["1"]["count"] == 0
    assert stream.nbytes > 2 * (stream.stats[(0, 0)].nbytes + stream.null[(0, 0)].nbytes)
    # its state goes into the checkpoint and comes back
    again = aq.PairStream([(0, 0), (1, 1)], d, d, "cpu", all_b_layers=[0, 1])
    again.load_state_dict(stream.state_dict())
    assert aq.gurnee_all_layers(again, cfg)["0"]["indices"] == g0["indices"]
    with pytest.raises(ValueError, match="all_b_layers"):
        aq.PairStream([(0, 0), (1, 1)], d, d, "cpu").load_state_dict(stream.state_dict())


def test_the_tiny_pipeline_measures_gurnee_over_all_of_bs_layers_on_text(tiny, bridges):
    cfg = _tiny_cfg(tiny, gurnee_all_layers=True)
    res = aq.run_aq(cfg, *bridges)
    assert set(res.gurnee_all) == {"text"}  # Gurnee et al. measured on text
    g = res.gurnee_all["text"]
    assert set(g) == {"0", "1"} and g["0"]["layers_b"] == [0, 1]
    assert g["1"]["n_neurons"] == 256 and 0 <= g["1"]["pct"] <= 100
    d = res.to_dict()["gurnee_all"]["text"]["0"]
    assert "excess" not in d and {"count", "pct", "threshold"} <= set(d)
    assert any(line.startswith("gurnee over all of B's layers") for line in res.gurnee_lines())


@pytest.fixture(scope="module")
def standin_cache(tmp_path_factory):
    """Stand-ins built once into a private cache (AKIRA_CACHE_DIR)."""
    mp = pytest.MonkeyPatch()
    mp.setenv("AKIRA_CACHE_DIR", str(tmp_path_factory.mktemp("standin_cache")))
    mp.setenv("HF_HUB_OFFLINE", "1")
    yield
    mp.undo()


def test_offline_runs_two_different_standins_on_the_real_vocabulary(standin_cache):
    from akira_nb import standins, text

    cfg = _cfg(
        model_a="pythia-70m",  # both pythia-70m: the stand-ins of A and B differ by their seed
        model_b="pythia-70m",
        layers=(1,),
        num_samples=6,
        seq_length=64,
        batch_size=6,
        sample_sequences=6,
        spectral_sequences=6,
        input_type="random",  # the text inputs are checked below, not run
        text_corpus="wikitext-2",
        n_shuffles=1,
        n_rotations=1,
        n_permutations=3,
        offline=True,
    )
    both = aq.AQConfig(**{**cfg.to_dict(), "input_type": "both"})
    assert aq.offline_replacements(both) == {
        "EleutherAI/pythia-70m (Hugging Face, model A)": "random weights of its architecture, "
        f"seed 0 ({standins.folder_path('EleutherAI/pythia-70m', seed=0)})",
        "EleutherAI/pythia-70m (Hugging Face, model B)": "random weights of its architecture, "
        f"seed 1 ({standins.folder_path('EleutherAI/pythia-70m', seed=1)})",
        "wikitext-2 (Hugging Face)": "the kit's offline corpus",
        "pythia tokenizer": "pythia-standin",
    }
    assert "wikitext-2 (Hugging Face)" not in aq.offline_replacements(cfg)  # no text run
    a, b = aq.load_models(cfg)
    assert {aq.act.d_mlp(a), aq.act.d_mlp(b)} == {2048}
    assert aq.act.vocab_size(a) == 50277 == len(text.get_tokenizer("pythia-standin"))
    assert not all(
        torch.equal(pa, pb) for pa, pb in zip(a.parameters(), b.parameters())
    )  # seeds 0 and 1
    res = aq.run_aq(cfg, a, b)
    random, txt = aq.make_inputs(cfg, "random", a), aq.make_inputs(cfg, "text", a)
    assert int(random.tokens[:, 1:].max()) < 50277 - 1000 and int(random.tokens.max()) > 40000
    assert res.inputs["random"]["vocab_size"] == 50277
    docs = aq.load_texts("offline", cfg.seed)[:50]
    want = text.encode_documents(docs, text.get_tokenizer("pythia-standin"))[:63]
    assert txt.tokens[0, 1:].tolist() == want.tolist()  # the offline corpus, stand-in tokenizer
    pr = res.pairs["random"]["1-1"]
    assert pr.procrustes["n_train"] == 3 * 63 and pr.procrustes["dtype"] == "float64"
    assert len(pr.methods["procrustes"].scores) == 2048
    assert set(res.stages) >= {"stream", "sample", "ot", "cka", "procrustes + null"}


# ----------------------------------------------------------------------------- chance arithmetic


def _hand_method(counts, null_counts, n=256, name="basic"):
    """A MethodResult made by hand: ``counts = (above 0.3, above 0.5)`` neurons score 0.6 or
    0.4 (the rest 0), and each null replicate ``(k3, k5)`` the same way."""

    def row(c3, c5):
        s = np.zeros(n)
        s[:c5] = 0.6
        s[c5:c3] = 0.4
        return s

    nulls = np.stack([row(*k) for k in null_counts])
    return aq.MethodResult(
        name, "A", row(*counts), {"neuron-permutation": nulls}, [("fixed", 0.3), ("fixed", 0.5)]
    )


def _hand_result(layers):
    """An AQResult of random tokens whose basic method has the given per-layer counts."""
    pairs = {}
    for i, (counts, nulls) in enumerate(layers):
        pr = aq.PairResult("random", i, i, 4000, {"basic": _hand_method(counts, nulls)})
        pairs[pr.key] = pr
    return aq.AQResult(_cfg(), [(i, i) for i in range(len(layers))], {"random": pairs})


# the tiny run's shape: L0 +3.9 above its chance, L1 -12.2 below it; 149 of 512 against 157.3
BELOW_IN_TOTAL = [
    ((85, 40), [(81, 42)] * 9 + [(82, 43)]),  # chance 81.1 above 0.3, 42.1 above 0.5
    ((64, 35), [(76, 42)] * 8 + [(77, 43)] * 2),  # chance 76.2 above 0.3, 42.2 above 0.5
]


def test_above_chance_is_the_whole_sets_excess_never_a_sum_of_positive_parts():
    res = _hand_result(BELOW_IN_TOTAL)
    s = res.chance_summary("random", "basic")
    assert (s["count"], s["total"]) == (149, 512)
    assert s["chance"] == pytest.approx(157.3)
    assert s["excess"] == pytest.approx(-8.3)
    assert s["excess_pct"] == pytest.approx(-100 * 8.3 / 512)
    # at chance: |excess| within 2 sd of the null count (binomial spread here: the replicates
    # hardly vary), summed over the two layer pairs
    q = np.array([81.1, 76.2]) / 256
    sd = np.sqrt((256 * q * (1 - q) * (1 + 1 / 10)).sum())
    assert s["sd"] == pytest.approx(sd) and s["word"] == "at chance"
    assert res.method_pct("random", "basic", above_null=True) == pytest.approx(s["excess_pct"])
    assert res.method_pct("random", "basic", above_null=True) < 0  # today: +0.76
    assert res.verdict("random", "basic") == "at chance"
    saved = res.to_dict()["chance"]["random"]["basic"]  # results.json keeps both rules' sums
    assert [(c["rule"], c["count"], c["word"]) for c in saved] == [
        ("fixed 0.3", 149, "at chance"),
        ("fixed 0.5", 75, "at chance"),
    ]
    line = next(v for v in res.verdicts() if v.startswith("random / basic"))
    assert "-8.3 (-1.6% of neurons)" in line and "-> at chance" in line, line
    assert "above chance ->" not in line
    # the other rule: 75 of 512 above 0.5 against 84.3 expected is at chance too
    assert "75 of 512 above fixed 0.5 (chance 84.3: at chance)" in line, line


def test_counts_far_from_chance_read_below_or_above_it():
    below = _hand_result([((40, 10), [(80, 40)] * 20)] * 2)
    assert below.chance_summary("random", "basic")["word"] == "below chance"
    assert below.verdict("random", "basic") == "below chance"
    above = _hand_result([((140, 60), [(80, 40)] * 20)] * 2)
    s = above.chance_summary("random", "basic")
    assert s["word"] == "above chance" and s["excess_pct"] == pytest.approx(100 * 120 / 512)
    assert above.verdict("random", "basic") == "very strong"  # 23.4% above chance
    # a count of 1 or 2 against a null of 0 is no evidence (the spread is at least 1 neuron)
    one = _hand_result([((2, 0), [(0, 0)])])
    assert one.chance_summary("random", "basic")["word"] == "at chance"


def test_a_universal_overlap_from_too_few_replicates_judges_nothing():
    u = {
        "observed": 0,
        "n_a": 0,
        "n_b": 3,
        "n_total": 256,
        "rule": "fixed 0.3",
        "null": "token-shuffle",
        "n_null": 1,
        "chance": 0.0,
        "p_value": 1.0,
        "null_overlaps": [0],
        "independent_expected": 0.0,
        "independent_p_value": 1.0,
        "model": "A",
    }
    line = aq.universal_line("ot", "0-0", u)
    assert "not measurable: null of 1 replicate (needs >= 19)" in line, line
    assert "p = 1" not in line.split("independence")[0]
    assert aq.universal_word(u) == "not measurable: null of 1 replicate (needs >= 19)"
    many = dict(u, n_null=100, null_overlaps=[40, 50] * 50, chance=45.0, observed=44, p_value=0.6)
    assert aq.universal_word(many) == "at chance" and "p = 0.6" in aq.universal_line("b", "k", many)
    high = dict(many, observed=90, p_value=1 / 101)
    assert aq.universal_word(high) == "above chance"


def test_one_hooks_activations_of_a_model_of_the_pair_are_drawn(bridges):
    """The notebook's look-inside cell: run_with_cache on model A, its MLP hook drawn."""
    import matplotlib.pyplot as plt

    from akira_nb.action_quanta import plots

    model = bridges[0]
    tokens = activations.random_tokens(activations.vocab_size(model), 2, 12, seed=0).tokens
    _, cache = model.run_with_cache(tokens)
    hook = activations.mlp_hook(0)
    fig = plots.neuron_activations(cache, hook, n_neurons=16)
    assert fig.axes[0].images[0].get_array().shape == (12, 16)
    assert "mlp.hook_post" in fig.axes[0].get_title()
    plt.close(fig)
    with pytest.raises(ValueError, match="hook='nope' is not in the cache"):
        plots.neuron_activations(cache, "nope")
