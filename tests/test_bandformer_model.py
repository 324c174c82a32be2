import json
import math

import pytest
import torch
import torch.nn.functional as F

from akira_nb.alignment import activations
from akira_nb.bandformer.layers import _dropout
from akira_nb.bandformer.model import (
    PRESETS,
    TEST_COMPLETE,
    BandConfig,
    BandLayerNorm,
    BandLayout,
    BandLinear,
    BandTransformer,
    BaselineTransformer,
    GPTConfig,
    band_groups,
    band_parameter_count,
    model_summary,
    preset,
)
from akira_nb.bandformer.selftest import selftest

TINY = dict(n_ctx=32)
VARIANTS = {
    "band": dict(),
    "band_no_wormhole": dict(wormhole=False),
    "reference": dict(layout="reference", wormhole=False),
    "reference_wormhole": dict(layout="reference"),
}


def tiny_model(seed=0, **overrides):
    torch.manual_seed(seed)
    return BandTransformer(preset("tiny", **{**TINY, **overrides})).eval()


def tiny_baseline(seed=0):
    torch.manual_seed(seed)
    return BaselineTransformer.matched_to(preset("tiny", **TINY)).eval()


def tokens(batch=2, seq=24, seed=0, vocab=257):
    return torch.randint(vocab, (batch, seq), generator=torch.Generator().manual_seed(seed))


def meta_count(model_cls, cfg):
    with torch.device("meta"):
        return sum(p.numel() for p in model_cls(cfg).parameters())


# ----------------------------------------------------------------------------- config


@pytest.mark.parametrize(
    "overrides, field",
    [
        (dict(band_dims=(128, 96, 80, 64, 64, 48, 30), hidden_dim=512), "hidden_dim"),
        (dict(band_dims=(128, 0, 80, 64, 64, 48, 32)), "band_dims[1]"),
        (dict(band_dims=(128, 96.0, 80, 64, 64, 48, 32)), "band_dims[1]"),
        (dict(band_dims=(128, True, 80, 64, 64, 48, 32)), "band_dims[1]"),
        (dict(band_dims="128,96"), "band_dims"),
        (dict(band_dims=(512,), band_lrs=(1e-3,)), "band_dims"),
        (dict(band_lrs=(1e-5, 3e-5)), "band_lrs"),
        (dict(band_lrs=(1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 0.0)), "band_lrs[6]"),
        (dict(shared_lr=-1.0), "shared_lr"),
        (dict(d_head=32), "d_head"),
        (dict(layout="reference", n_heads=7), "n_heads"),
        (dict(layout="bands"), "layout"),
        (dict(wormhole=1), "wormhole"),
        (dict(dropout=1.0), "dropout"),
        (dict(vocab_size=1), "vocab_size"),
    ],
)
def test_bad_configs_raise_naming_the_field(overrides, field):
    with pytest.raises(ValueError, match=field.replace("[", r"\[").replace("]", r"\]")):
        BandConfig(**overrides).validate()


def test_band_dims_are_any_positive_ints_summing_to_the_hidden_size():
    cfg = BandConfig(band_dims=[100, 156, 256], band_lrs=[1e-4] * 3, d_head=4, hidden_dim=512)
    assert cfg.validate().band_dims == (100, 156, 256)  # a list becomes a tuple
    assert cfg.d_model == 512 and cfg.d_mlp == 2048 and cfg.heads_per_band == (25, 39, 64)
    with pytest.raises(ValueError, match="sum to 512, but hidden_dim=500"):
        BandConfig(
            band_dims=(100, 156, 256), band_lrs=(1e-4,) * 3, d_head=4, hidden_dim=500
        ).validate()
    # the head rule holds for the band layout only: the reference layout uses n_heads
    BandConfig(band_dims=(100, 412), band_lrs=(1e-4, 1e-3), layout="reference").validate()


def test_presets_are_valid():
    for name in PRESETS:
        assert preset(name).validate() is not None
    default = preset("default")
    assert default.band_dims == (128, 96, 80, 64, 64, 48, 32) and default.d_model == 512
    assert default.band_lrs == (1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2)
    assert default.tie_embeddings and default.wormhole and default.layout == "band"
    canonical = preset("canonical_7p1")
    assert canonical.band_dims == (64,) * 8 and canonical.n_bands == 8
    assert canonical.band_lrs[:7] == (1e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2)
    assert canonical.band_lrs[7] == 1e-3  # the temporal band
    assert preset("tiny").d_model == 128 and preset("tiny_7p1").n_bands == 8
    with pytest.raises(ValueError, match="preset"):
        preset("huge")


def test_config_round_trips_through_json():
    cfg = preset("canonical_7p1", n_layers=3)
    again = BandConfig.from_dict(json.loads(json.dumps(cfg.to_dict())))
    assert again == cfg and isinstance(again.band_dims, tuple)
    with pytest.raises(ValueError, match="unknown BandConfig fields"):
        BandConfig.from_dict({**cfg.to_dict(), "num_bands": 8})
    gpt = GPTConfig(d_model=64, n_heads=4, d_mlp=100)
    assert GPTConfig.from_dict(json.loads(json.dumps(gpt.to_dict()))) == gpt


# ----------------------------------------------------------------------------- band machinery


def test_band_linear_is_the_block_diagonal_map():
    torch.manual_seed(0)
    dims_in, dims_out = (5, 3, 8), (2, 7, 4)
    layer = BandLinear(dims_in, dims_out, std=1.0)
    for b in layer.bias:
        b.data.normal_()
    x = torch.randn(4, 6, sum(dims_in))
    got = BandLayout(dims_out).from_padded(layer(BandLayout(dims_in).to_padded(x)))
    want = x @ torch.block_diag(*layer.weight) + torch.cat(list(layer.bias))
    torch.testing.assert_close(got, want)
    padded = layer(BandLayout(dims_in).to_padded(x))
    assert padded.shape == (4, 6, 3, 7)
    assert padded[..., 0, 2:].abs().max() == 0 and padded[..., 2, 4:].abs().max() == 0


def test_band_layer_norm_normalises_each_band_over_its_own_slice():
    torch.manual_seed(0)
    dims = (4, 9, 2)
    ln = BandLayerNorm(dims)
    for w, b in zip(ln.weight, ln.bias):
        w.data.normal_()
        b.data.normal_()
    x = torch.randn(3, 5, sum(dims)) * 3 + 1
    got = ln.layout.from_padded(ln(ln.layout.to_padded(x)))
    parts = x.split(dims, -1)
    want = torch.cat(
        [F.layer_norm(p, (d,), w, b) for p, d, w, b in zip(parts, dims, ln.weight, ln.bias)], -1
    )
    torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def _attention(q, k, v):
    t = q.shape[-2]
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    scores = scores.masked_fill(~torch.ones(t, t, dtype=torch.bool).tril(), float("-inf"))
    return scores.softmax(-1) @ v


def test_band_attention_is_one_causal_attention_per_band():
    # known answer: band by band, a standard multi-head attention on the band's slice with its
    # own weights (written with loops here, the model batches it)
    model = tiny_model()
    cfg, attn = model.cfg, model.blocks[0].attn
    for p in attn.qkv.bias:
        p.data.normal_(std=0.1)
    x = torch.randn(2, 10, cfg.d_model)
    layout = BandLayout(cfg.band_dims)
    with torch.no_grad():
        got = layout.from_padded(attn(layout.to_padded(x)))
        want = []
        for i, (part, d) in enumerate(zip(x.split(cfg.band_dims, -1), cfg.band_dims)):
            qkv = part @ attn.qkv.weight[i] + attn.qkv.bias[i]
            q, k, v = (t.unflatten(-1, (-1, cfg.d_head)).transpose(1, 2) for t in qkv.split(d, -1))
            z = _attention(q, k, v).transpose(1, 2).flatten(-2)
            want.append(z @ attn.proj.weight[i] + attn.proj.bias[i])
    torch.testing.assert_close(got, torch.cat(want, -1), atol=1e-6, rtol=1e-5)


def test_wormhole_is_the_gated_mean_over_sender_bands():
    # known answer with a loop over the 42 pairs (the model has none)
    model = tiny_model()
    cfg, worm = model.cfg, model.blocks[0].wormhole
    for g in worm.gates:
        g.data.uniform_(-1, 1)
    x = torch.randn(2, 10, cfg.d_model)
    layout = BandLayout(cfg.band_dims)
    dw = cfg.d_wormhole
    with torch.no_grad():
        got = layout.from_padded(worm(layout.to_padded(x)))
        parts = x.split(cfg.band_dims, -1)
        qkv = [p @ worm.qkv.weight[i] + worm.qkv.bias[i] for i, p in enumerate(parts)]
        want = []
        for i in range(cfg.n_bands):
            senders = [j for j in range(cfg.n_bands) if j != i]
            mixed = sum(
                torch.tanh(worm.gates[i][s])
                * _attention(qkv[i][..., :dw], qkv[j][..., dw : 2 * dw], qkv[j][..., 2 * dw :])
                for s, j in enumerate(senders)
            ) / len(senders)
            want.append(mixed @ worm.proj.weight[i] + worm.proj.bias[i])
    torch.testing.assert_close(got, torch.cat(want, -1), atol=1e-6, rtol=1e-5)


def _padded_cost(dims, groups):
    return sum((b - a) * max(dims[a:b]) ** 2 for a, b in groups)


def _all_runs(n, max_groups):
    """Every cut of range(n) into at most max_groups contiguous runs (brute force)."""
    from itertools import combinations

    for k in range(min(max_groups, n)):
        for cuts in combinations(range(1, n), k):
            ends = (0, *cuts, n)
            yield tuple(zip(ends[:-1], ends[1:]))


def test_band_groups_known_answers():
    assert band_groups((128, 96, 80, 64, 64, 48, 32)) == ((0, 1), (1, 3), (3, 7))
    assert _padded_cost((128, 96, 80, 64, 64, 48, 32), ((0, 1), (1, 3), (3, 7))) == 51_200
    assert band_groups((64,) * 8) == ((0, 8),)  # equal bands: one group, no padding
    assert band_groups((128, 96, 80, 64, 64, 48, 32), max_groups=1) == ((0, 7),)
    with pytest.raises(ValueError, match="max_groups"):
        band_groups((4, 4), max_groups=0)


@pytest.mark.parametrize("seed", range(5))
def test_band_groups_is_the_cheapest_cut(seed):
    g = torch.Generator().manual_seed(seed)
    dims = tuple(int(d) for d in torch.randint(1, 40, (6,), generator=g))
    for max_groups in (1, 2, 3):
        got = band_groups(dims, max_groups)
        best = min(_padded_cost(dims, c) for c in _all_runs(len(dims), max_groups))
        assert len(got) <= max_groups and _padded_cost(dims, got) == best
        assert got[0][0] == 0 and got[-1][1] == len(dims)
        assert all(a[1] == b[0] for a, b in zip(got, got[1:]))


def test_band_layout_conversions_round_trip():
    dims = (5, 3, 8, 8, 2)
    layout = BandLayout(dims, ((0, 2), (2, 4), (4, 5)))  # uneven, equal, single
    x = torch.randn(3, 4, sum(dims))
    xs = layout.to_groups(x)
    assert [tuple(t.shape) for t in xs] == [(2, 12, 5), (2, 12, 8), (1, 12, 2)]
    assert xs[0][1, :, 3:].abs().max() == 0  # band 1 (3 wide) padded to 5 with zeros
    torch.testing.assert_close(xs[0][1, :, :3], x[..., 5:8].reshape(12, 3), rtol=0, atol=0)
    torch.testing.assert_close(layout.from_groups(xs, (3, 4)), x, rtol=0, atol=0)
    xp = layout.to_padded(x)
    ys = layout.padded_to_groups(xp)
    assert all(torch.equal(a, b) for a, b in zip(xs, ys))
    torch.testing.assert_close(layout.groups_to_padded(ys, (3, 4)), xp, rtol=0, atol=0)


@pytest.mark.parametrize(
    "name, overrides",
    [
        ("tiny", {}),
        ("tiny", dict(wormhole=False)),
        ("tiny", dict(layout="reference")),
        ("tiny", dict(band_dims=(8, 20, 12, 16, 24, 16, 32))),  # unsorted: other groups
        ("tiny_7p1", {}),
    ],
)
def test_grouped_layout_equals_the_single_padded_group(name, overrides):
    # the same weights in the one-group layout (every band padded to the widest, as one batched
    # matmul) and in the grouped one: same logits, gradients and hook values
    cfg = preset(name, **{**TINY, **overrides})
    torch.manual_seed(0)
    grouped = BandTransformer(cfg).eval()
    with torch.no_grad():  # non-zero biases, LayerNorm offsets and gates
        for p in grouped.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    single = BandTransformer(cfg, max_groups=1).eval()
    single.load_state_dict(grouped.state_dict())
    assert len(single.blocks[0].layout.groups) == 1
    x = tokens(batch=3, seq=20)
    torch.testing.assert_close(grouped(x), single(x), atol=2e-6, rtol=1e-5)
    grouped.loss(x).backward()
    single.loss(x).backward()
    for (name_, a), b in zip(grouped.named_parameters(), single.parameters()):
        torch.testing.assert_close(a.grad, b.grad, atol=1e-7, rtol=1e-4, msg=name_)
    _, c1 = grouped.run_with_cache(x)
    _, c2 = single.run_with_cache(x)
    assert set(c1) == set(c2)
    for key in c2:
        torch.testing.assert_close(c1[key], c2[key], atol=2e-6, rtol=1e-5, msg=key)


def test_cpu_dropout_keeps_with_probability_one_minus_p_and_rescales():
    torch.manual_seed(0)
    x = torch.ones(200_000)
    y = _dropout(x, 0.25)
    kept = y != 0
    torch.testing.assert_close(y[kept].unique(), torch.tensor([1 / 0.75]))
    assert abs(kept.float().mean().item() - 0.75) < 0.005  # 0.75 +- 5 standard errors
    assert torch.equal(_dropout(x, 0.25, training=False), x) and torch.equal(_dropout(x, 0.0), x)
    assert _dropout(x, 1.0).abs().max() == 0
    g = torch.ones(5, requires_grad=True)
    out = _dropout(g, 0.5)
    out.sum().backward()
    torch.testing.assert_close(g.grad, out.detach())  # the gradient is the same mask and scale


def test_training_mode_dropout_runs_and_eval_mode_is_deterministic():
    torch.manual_seed(0)
    model = BandTransformer(preset("tiny", n_ctx=32, dropout=0.1))
    x = tokens(batch=2, seq=16)
    model.train()
    a, b = model(x), model(x)
    assert not torch.allclose(a, b)  # a fresh dropout mask per call
    model.eval()
    torch.testing.assert_close(model(x), model(x), rtol=0, atol=0)


# ----------------------------------------------------------------------------- causality


@pytest.mark.parametrize("variant", [*VARIANTS, "baseline"])
def test_changing_token_t_never_changes_earlier_logits(variant):
    model = tiny_baseline() if variant == "baseline" else tiny_model(**VARIANTS[variant])
    x = tokens(seq=24)
    with torch.no_grad():
        base = model(x)
        for t in (1, 11, 23):
            changed = x.clone()
            changed[:, t] = (changed[:, t] + 1) % 257
            out = model(changed)
            torch.testing.assert_close(out[:, :t], base[:, :t], atol=1e-6, rtol=0)
            assert (out[:, t:] - base[:, t:]).abs().max() > 1e-3  # the change is seen from t on


@pytest.mark.parametrize("variant", ["band", "reference_wormhole"])
def test_hooked_attention_path_matches_the_fused_one(variant):
    # patterns are materialised only when hooked; both paths give the same logits
    model = tiny_model(**VARIANTS[variant])
    x = tokens(seq=20)
    with torch.no_grad():
        fused = model(x)
        logits, cache = model.run_with_cache(x)
    torch.testing.assert_close(logits, fused, atol=1e-5, rtol=1e-5)
    cfg = model.cfg
    heads = sum(cfg.heads_per_band) if cfg.layout == "band" else cfg.n_heads
    pattern = cache["blocks.0.attn.hook_pattern"]
    assert pattern.shape == (2, heads, 20, 20)
    worm = cache["blocks.1.wormhole.hook_pattern"]
    assert worm.shape == (2, len(cfg.band_pairs), 20, 20) == (2, 42, 20, 20)
    for p in (pattern, worm):
        torch.testing.assert_close(p.sum(-1), torch.ones(p.shape[:-1]))
        assert p.triu(1).abs().max() == 0  # nothing attends to a later position


# ----------------------------------------------------------------------------- wormhole flow


def _perturbed_band_outputs(model, band):
    """Block 0's output per band, clean and with band ``band``'s input slice perturbed."""
    cfg = model.cfg
    sl = cfg.band_slices[band]

    def perturb(x, hook):
        x = x.clone()
        x[..., sl] += torch.randn(x[..., sl].shape, generator=torch.Generator().manual_seed(1))
        return x

    x = tokens(seq=16)
    with torch.no_grad():
        _, clean = model.run_with_cache(x, names_filter="blocks.0.hook_resid_post")
        with model.hooks(fwd_hooks=[("blocks.0.hook_resid_pre", perturb)]):
            _, moved = model.run_with_cache(x, names_filter="blocks.0.hook_resid_post")
    a, b = clean["blocks.0.hook_resid_post"], moved["blocks.0.hook_resid_post"]
    return [(a[..., s] - b[..., s]).abs().max().item() for s in cfg.band_slices]


def test_without_the_wormhole_no_band_sees_another():
    for band in (0, 3, 6):
        diffs = _perturbed_band_outputs(tiny_model(wormhole=False), band)
        assert diffs[band] > 0.1
        assert all(d == 0 for i, d in enumerate(diffs) if i != band), diffs


def test_the_wormhole_carries_information_between_bands_and_its_gate_gates_it():
    diffs = _perturbed_band_outputs(tiny_model(), 3)
    # every band hears band 3 (weakly at init: gates tanh(0.1), a mean over 6 senders)
    assert all(d > 1e-6 for d in diffs), diffs
    closed = _perturbed_band_outputs(tiny_model(wormhole_gate_init=0.0), 3)
    assert all(d == 0 for i, d in enumerate(closed) if i != 3), closed
    shared = _perturbed_band_outputs(tiny_model(layout="reference", wormhole=False), 3)
    assert all(d > 1e-4 for d in shared), shared  # the reference's shared attention mixes all


# ----------------------------------------------------------------------------- parameters


def test_reference_layout_reproduces_the_reference_parameter_counts():
    # inventory 2.1: 60,015,616 at seq 256 without wormhole, untied head; band groups = band MLPs
    # + band norms, 2.11M of 60.97M (3.5%)
    cfg = preset("reference")
    with torch.device("meta"):
        model = BandTransformer(cfg)
    s = model_summary(model)
    assert s["total"] == 60_015_616
    assert s["bands"] == [791_808, 446_400, 310_560, 199_296, 199_296, 112_608, 50_496]
    assert s["band_fraction_total"] == pytest.approx(0.0352, abs=5e-4)
    assert s["band_fraction"] == pytest.approx(2_110_464 / 8_421_376)


@pytest.mark.parametrize("name", ["default", "canonical_7p1", "tiny"])
def test_baseline_is_within_two_percent_of_the_band_model(name):
    cfg = preset(name)
    gpt = BaselineTransformer.matched_config(cfg)
    band = band_parameter_count(cfg)
    built = meta_count(BaselineTransformer, gpt)
    assert built == gpt.n_params()
    assert abs(built / band - 1) <= 0.02
    assert (gpt.vocab_size, gpt.n_ctx, gpt.n_layers) == (cfg.vocab_size, cfg.n_ctx, cfg.n_layers)
    assert gpt.tie_embeddings == cfg.tie_embeddings and gpt.lr == cfg.shared_lr
    assert 2 <= gpt.d_mlp / gpt.d_model <= 8  # a plain GPT shape, not a degenerate one


def test_default_parameter_counts():
    cfg = preset("default")
    with torch.device("meta"):
        s = model_summary(BandTransformer(cfg))
    assert s["total"] == band_parameter_count(cfg) == 29_245_148
    assert s["embedding"] == 50257 * 512 + 256 * 512  # tied: W_E and W_pos only
    assert s["shared"] == 2 * 512  # the final LayerNorm
    assert s["band_fraction"] > 0.99
    gpt = BaselineTransformer.matched_config(cfg)
    assert (gpt.d_model, gpt.d_mlp) == (384, 1363)


def test_counting_the_band_models_parameters_draws_no_random_number_and_is_remembered(
    monkeypatch,
):
    """``band_parameter_count`` (which ``matched_config`` calls inside ``build_model``, after the
    seed is set) leaves the global random state as it found it, and builds a config's model
    once per process."""
    from akira_nb.bandformer import model as model_mod

    cfg = preset("tiny", n_ctx=48)
    torch.manual_seed(0)
    state = torch.get_rng_state()
    count = band_parameter_count(cfg)
    assert torch.equal(torch.get_rng_state(), state)
    with torch.device("meta"):
        assert count == sum(p.numel() for p in BandTransformer(cfg).parameters())

    def no_build(*a, **k):
        raise AssertionError("counted twice")

    monkeypatch.setattr(model_mod, "BandTransformer", no_build)
    assert band_parameter_count(preset("tiny", n_ctx=48)) == count


def test_matched_to_refuses_an_impossible_match():
    with pytest.raises(ValueError, match="tol"):
        BaselineTransformer.matched_config(preset("tiny"), d_model=512)
    with pytest.raises(ValueError, match="tol"):
        BaselineTransformer.matched_config(preset("tiny"), tol=0.0)


@pytest.mark.parametrize("variant", [*VARIANTS, "baseline"])
def test_parameter_bands_cover_every_parameter_exactly_once(variant):
    model = tiny_baseline() if variant == "baseline" else tiny_model(**VARIANTS[variant])
    owner = model.parameter_bands()
    names = [n for n, _ in model.named_parameters()]
    assert sorted(owner) == sorted(names) and len(set(names)) == len(names)
    embed = model.embedding_parameter_names()
    assert embed <= set(names) and {"W_E", "W_pos"} <= embed
    assert all(owner[n] is None for n in embed)
    if variant == "baseline":
        assert set(owner.values()) == {None} and model.band_fraction() == 0.0
        return
    cfg = model.cfg
    assert set(owner.values()) - {None} == set(range(cfg.n_bands))
    shapes = dict(model.named_parameters())
    for name, band in owner.items():  # a band's norm weights have its width
        if band is not None and ".ln2.weight." in name:
            assert shapes[name].shape == (cfg.band_dims[band],)
    # the direct count
    bands = sum(p.numel() for n, p in model.named_parameters() if owner[n] is not None)
    non_embedding = sum(p.numel() for n, p in model.named_parameters() if n not in embed)
    assert model.band_fraction() == pytest.approx(bands / non_embedding)
    assert model_summary(model)["bands"] == [
        sum(p.numel() for n, p in model.named_parameters() if owner[n] == i)
        for i in range(cfg.n_bands)
    ]
    if cfg.layout == "band":
        assert model.band_fraction() >= 0.5
        shared = [n for n in names if owner[n] is None and n not in embed]
        assert shared == ["ln_final.weight", "ln_final.bias"]


def test_tied_and_untied_embeddings():
    tied = tiny_model()
    assert "W_U" not in dict(tied.named_parameters())
    untied = tiny_model(tie_embeddings=False)
    assert untied.embedding_parameter_names() == {"W_E", "W_pos", "W_U"}
    assert untied.W_U.shape == (128, 257)


# ----------------------------------------------------------------------------- hooks


def test_hook_post_and_the_alignment_activations_work_on_the_band_model():
    model = tiny_model()
    cfg = model.cfg
    inputs = activations.random_tokens(cfg.vocab_size, n=3, seq_len=12, seed=0)
    acts = activations.collect_activations(model, inputs, layers=[0, 1], batch_size=2)
    assert activations.n_layers(model) == 2 and activations.d_mlp(model) == cfg.d_mlp == 512
    assert acts[1].shape == (36, 512)
    with torch.no_grad():
        _, cache = model.run_with_cache(inputs.tokens)
    post = cache["blocks.1.mlp.hook_post"]
    assert post.shape == (3, 12, cfg.d_mlp)
    torch.testing.assert_close(acts[1], post.reshape(-1, cfg.d_mlp))
    # band i's neurons are the GELU of its own pre-activations: hook_pre's slice
    pre = cache["blocks.1.mlp.hook_pre"]
    sl = cfg.mlp_band_slices[2]
    torch.testing.assert_close(post[..., sl], F.gelu(pre[..., sl]))
    assert activations.describe(model)["name"].startswith("BandTransformer(")


def test_band_hook_and_band_activations():
    model = tiny_model()
    cfg = model.cfg
    x = tokens(seq=12)
    with torch.no_grad():
        _, cache = model.run_with_cache(x)
    band_out = cache["blocks.0.hook_band_out"]
    assert band_out.shape == (2, 12, cfg.n_bands, max(cfg.band_dims))
    resid = cache["blocks.0.hook_resid_post"]
    acts = model.band_activations(x, layer=0)
    assert [a.shape for a in acts] == [(2, 12, d) for d in cfg.band_dims]
    for i, (a, sl, d) in enumerate(zip(acts, cfg.band_slices, cfg.band_dims)):
        torch.testing.assert_close(a, resid[..., sl])
        assert band_out[..., i, d:].abs().sum() == 0  # pads stay zero
    assert model.band_activations(x)[6].shape == (2, 12, cfg.band_dims[6])
    with pytest.raises(ValueError, match="layer"):
        model.band_activations(x, layer=2)


def test_bad_tokens_are_refused():
    model = tiny_model()
    with pytest.raises(ValueError, match="n_ctx=32"):
        model(tokens(seq=33))
    with pytest.raises(ValueError, match="integer tensor"):
        model(torch.zeros(2, 4))


def test_state_dict_round_trip():
    a, b = tiny_model(seed=0), tiny_model(seed=1)
    x = tokens(seq=10)
    assert not torch.allclose(a(x), b(x))
    b.load_state_dict(a.state_dict())
    torch.testing.assert_close(a(x), b(x))
    assert "blocks.0.mlp.fc_in.weight.3" in a.state_dict()


# Learning: both tiny models train well below the unigram loss in tests/test_bandformer_train.py
# (through the kit's trainer, which builds these same models).


# ----------------------------------------------------------------------------- self-test


def test_selftest_report():
    report = selftest(preset("tiny"))
    lines = report.splitlines()
    assert lines[0] == "Creating AKIRA Band Transformer..."
    assert lines[-1] == TEST_COMPLETE == "AKIRA Band Transformer test complete!"
    assert "Hidden dim: 128" in lines and "Band dims: (32, 24, 20, 16, 16, 12, 8)" in lines
    assert "Band LRs: (1e-05, 3e-05, 0.0001, 0.0003, 0.001, 0.003, 0.01)" in lines
    assert "Logits shape: (2, 16, 257)" in lines
    assert "  band 6: (2, 16, 8)" in lines
    total = model_summary(tiny_model(n_ctx=64))["total"]
    assert f"Model parameters: {total:,} (the seed's README says ~25M)" in lines
    assert any(line.lstrip().startswith("band_0") for line in lines)
    assert any(line.lstrip().startswith("shared") for line in lines)
    assert any(line.startswith("Matched baseline GPT:") for line in lines)


def test_selftest_of_the_default_model():
    report = selftest()
    assert "Model parameters: 29,245,148 (the seed's README says ~25M)" in report
    assert "Hidden dim: 512" in report and "Logits shape: (2, 16, 50257)" in report
    assert report.endswith(TEST_COMPLETE)


@pytest.mark.parametrize("name", ["attn_out", "wormhole_out", "mlp_out", "band_out"])
def test_a_padded_hook_that_writes_into_the_pads_changes_nothing_there(name):
    """The padded hooks' pad entries are not part of any band: what a hook writes there is
    dropped (as by ``from_padded``), so adding a constant everywhere equals adding it on the
    real entries only."""
    model = tiny_model()
    model.eval()
    x = tokens(seq=12)
    mask = model.blocks[0].layout.mask  # [n, width]: True on real entries
    hook = f"blocks.0.hook_{name}"
    with torch.no_grad():
        everywhere = model.run_with_hooks(x, fwd_hooks=[(hook, lambda t, hook: t + 0.1)])
        real_only = model.run_with_hooks(x, fwd_hooks=[(hook, lambda t, hook: t + 0.1 * mask)])
    torch.testing.assert_close(everywhere, real_only, rtol=0, atol=1e-6)


# ----------------------------------------------------------------------------- chunked loss


@pytest.mark.parametrize("kind", ["band", "reference", "baseline"])
def test_loss_sum_is_the_summed_next_token_loss_without_the_whole_logits(kind, monkeypatch):
    """Evaluation's ``loss_sum`` computes the logits a chunk of positions at a time: it equals
    the mean loss times the predictions, for any chunk, and never calls the unembedding of the
    whole ``[B, T, vocab]`` (at t4: 823 MB per batch of 16 x 256 x 50257 in fp32)."""
    if kind == "baseline":
        model = tiny_baseline()
    else:
        model = tiny_model(**({} if kind == "band" else VARIANTS["reference"]))
    x = tokens(batch=3, seq=20)
    with torch.no_grad():
        expected = float(model.loss(x)) * 3 * 19
        monkeypatch.setattr(
            model, "_unembed", lambda h: pytest.fail("the whole logits were computed")
        )
        for chunk in (7, 60, 1024):
            assert float(model.loss_sum(x, chunk=chunk)) == pytest.approx(expected, rel=1e-5)
        if kind != "baseline":  # band_activations reads the blocks only
            assert len(model.band_activations(x)) == model.cfg.n_bands


@pytest.mark.parametrize("autocast", [False, True])
def test_training_loss_is_next_token_loss_with_its_gradient_in_the_logits_memory(autocast):
    """The training step's loss: the value and the gradient of ``next_token_loss`` (also under
    a bf16 autocast), with the gradient written into the logits' own buffer, so a step holds
    one ``[B, T, vocab]`` buffer where ``F.cross_entropy`` holds its log-softmax and two
    temporaries beside the logits (at t4 823 MB each)."""
    from akira_nb.bandformer.model import next_token_loss, training_loss

    model = tiny_model()
    x = tokens(batch=3, seq=20)
    grads, values, shared = [], [], []
    for fn in (next_token_loss, training_loss):
        model.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            logits = model(x)
            ptr = logits.data_ptr()  # alive to the end: no other tensor gets its memory
            logits.register_hook(lambda g, ptr=ptr: shared.append(g.data_ptr() == ptr))
            loss = fn(logits, x)
        (2.0 * loss).backward()
        values.append(float(loss.detach()))
        grads.append(torch.cat([p.grad.flatten() for p in model.parameters()]))
    assert values[1] == pytest.approx(values[0], rel=1e-6)
    assert torch.allclose(grads[1], grads[0], rtol=1e-4, atol=1e-7)
    assert shared == [False, not autocast]  # fp32: the logits buffer holds their gradient


def test_cpu_dropout_attention_keeps_a_boolean_mask_and_equals_the_explicit_ops():
    """Training on the CPU (dropout on the pattern): the same values and gradients as the
    explicit softmax, dropout and product on the same random draws, with no float
    ``[B H, T, T]`` tensor kept for the backward (three per attention were: 5.6 GB at t4)."""
    from transformer_lens.hook_points import HookPoint

    from akira_nb.bandformer.layers import _causal_pattern, causal_attention

    gen = torch.Generator().manual_seed(0)
    q, k, v = (
        torch.randn(2, 3, 9, 4, generator=gen, dtype=torch.float64).requires_grad_()
        for _ in range(3)
    )
    grad = torch.randn(2, 3, 9, 4, generator=gen, dtype=torch.float64)

    def explicit():
        pattern = _causal_pattern(q.flatten(0, 1), k.flatten(0, 1)).view(2, 3, 9, 9)
        return _dropout(pattern, 0.3) @ v

    saved = []

    def pack(t):
        saved.append((tuple(t.shape), t.dtype))
        return t

    results = []
    for fn in (explicit, lambda: causal_attention(q, k, v, HookPoint(), 0.3)):
        torch.manual_seed(5)
        saved.clear()
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = fn()
        results.append((out, torch.autograd.grad(out, (q, k, v), grad)))
        kept = [dt for shape, dt in saved if shape[-2:] == (9, 9)]
    assert kept == [torch.bool]  # the last one, the kit's: the mask only
    (o1, g1), (o2, g2) = results
    assert torch.allclose(o1, o2, atol=1e-12)
    assert all(torch.allclose(a, b, atol=1e-12) for a, b in zip(g1, g2))

    def seeded(q, k, v):
        torch.manual_seed(7)  # the same mask at every evaluation
        return causal_attention(q, k, v, HookPoint(), 0.3)

    assert torch.autograd.gradcheck(seeded, (q, k, v))


def test_the_equal_width_gpt_has_the_band_models_width_and_the_matched_ones_other_fields():
    band = preset("tiny", n_ctx=32)
    wide = BaselineTransformer.equal_width_config(band)
    matched = BaselineTransformer.matched_config(band)
    assert wide.d_model == sum(band.band_dims) == band.d_model
    assert wide.d_mlp == band.mlp_ratio * band.d_model and wide.n_heads == band.n_heads
    for field in ("vocab_size", "n_ctx", "n_layers", "lr", "tie_embeddings", "dropout"):
        assert getattr(wide, field) == getattr(matched, field), field
    assert wide.n_params() > band_parameter_count(band) > 0.98 * matched.n_params()
