import math

import pytest
import torch

from akira_nb.modular_arithmetic.data import make_dataset
from akira_nb.modular_arithmetic.models import MIXERS, ModelConfig, build_model, parameter_count

P = 13


@pytest.fixture(scope="module")
def tokens():
    return make_dataset(P, 0.5).inputs


@pytest.mark.parametrize("mixer", MIXERS)
def test_output_shape(mixer, tokens):
    torch.manual_seed(0)
    model = build_model(P, mixer, d_model=32, n_heads=4, d_mlp=64)
    assert model(tokens).shape == (P * P, P)


def test_parameter_counts_match_the_reference_at_p53():
    # standard and full: embeddings + Q/K/V/O + MLP (+ biases) + unembed; the wave modes drop
    # the 65,536 Q/K/V/O weights; learned_gate adds 2 x 128 gates, phase_shift 128 phases.
    counts = {m: parameter_count(build_model(53, m)) for m in MIXERS}
    assert counts["standard"] == counts["full"] == 211_328
    assert counts["fnet"] == 145_792
    assert counts["learned_gate"] == 145_792 + 256
    assert counts["phase_shift"] == 145_792 + 128


def test_fnet_has_no_mixing_parameters():
    assert build_model(P, "fnet").mixing_parameter_count() == 0
    assert build_model(P, "standard").mixing_parameter_count() == 4 * 128 * 128


def test_every_arm_of_a_seed_shares_embeddings_mlp_and_unembedding():
    models = {}
    for mixer in MIXERS:
        torch.manual_seed(11)
        models[mixer] = build_model(P, mixer, d_model=32, n_heads=4, d_mlp=64)
    ref = models["standard"].state_dict()
    shared = [k for k in ref if not k.startswith("blocks.0.attn")]
    assert "blocks.0.mlp.W_in" in shared and "W_U" in shared
    for mixer, model in models.items():
        state = model.state_dict()
        for key in shared:
            assert torch.equal(state[key], ref[key]), (mixer, key)


def test_fnet_mixer_never_scales_the_residual_up():
    from akira_nb.modular_arithmetic.models import FNetMixer

    x = torch.randn(64, 3, 32)
    out = FNetMixer()(x)[:, 0]
    assert (out.norm(dim=-1) <= x.norm(dim=(1, 2)) + 1e-5).all()


@pytest.mark.parametrize("mixer", ["learned_gate", "phase_shift"])
def test_wave_mixers_start_as_identity_and_every_parameter_gets_gradient(mixer, tokens):
    torch.manual_seed(0)
    model = build_model(P, mixer, d_model=32, n_heads=4, d_mlp=64)
    resid = torch.randn(7, 3, 32)
    assert torch.allclose(model.blocks[0].attn(resid)[:, 0], resid[:, 2], atol=1e-5)
    # at the initial point (where the public version's DC phases were stuck) every mixing
    # parameter must already receive gradient
    model(tokens).logsumexp(-1).sum().backward()
    for name, prm in model.blocks[0].attn.named_parameters():
        assert (prm.grad.abs() > 0).all(), name


def _full_sequence_standard_logits(model, tokens):
    """Reference forward over all three positions (causal attention), read at '='."""
    attn, mlp = model.blocks[0].attn, model.blocks[0].mlp
    x = model.W_E[tokens] + model.W_pos
    q = torch.einsum("bsd,hde->bhse", x, attn.W_Q)
    k = torch.einsum("bsd,hde->bhse", x, attn.W_K)
    v = torch.einsum("bsd,hde->bhse", x, attn.W_V)
    scores = q @ k.transpose(-1, -2) / math.sqrt(attn.d_head)
    scores = scores.masked_fill(torch.triu(torch.ones(3, 3, dtype=torch.bool), 1), -torch.inf)
    z = scores.softmax(-1) @ v
    x = x + torch.einsum("bhse,hed->bsd", z, attn.W_O)
    x = x + torch.relu(x @ mlp.W_in + mlp.b_in) @ mlp.W_out + mlp.b_out
    return x[:, -1] @ model.W_U


def test_last_position_forward_equals_full_sequence_forward(tokens):
    torch.manual_seed(0)
    model = build_model(P, "standard", d_model=32, n_heads=4, d_mlp=64).double()
    assert torch.allclose(model(tokens), _full_sequence_standard_logits(model, tokens), atol=1e-10)


def test_run_with_cache_uses_transformer_lens_names(tokens):
    model = build_model(P, "standard", d_model=32, n_heads=4, d_mlp=64)
    _, cache = model.run_with_cache(tokens[:4])
    assert cache["blocks.0.attn.hook_pattern"].shape == (4, 4, 1, 3)
    assert torch.allclose(cache["blocks.0.attn.hook_pattern"].sum(-1), torch.ones(4, 4, 1))
    assert cache["blocks.0.mlp.hook_post"].shape == (4, 1, 64)
    assert cache["hook_embed"].shape == (4, 3, 32)


@pytest.mark.parametrize(
    "kwargs,field",
    [
        (dict(mixer="attention"), "mixer"),
        (dict(d_model=30, n_heads=4), "n_heads"),
        (dict(d_mlp=0), "d_mlp"),
        (dict(p=12), "p"),
    ],
)
def test_bad_model_config_raises(kwargs, field):
    with pytest.raises(ValueError, match=field):
        ModelConfig(**{"p": 13, **kwargs}).validate()


# The FFT forms the mixers were first written in (and the public version's), kept here as the
# known answers the closed forms must equal.
def _fft_fnet(resid):
    return torch.fft.fft2(resid, dim=(-2, -1), norm="ortho").real[:, 2:]


def _fft_gate(resid, gates):
    spec = torch.fft.rfft(resid, dim=1, norm="ortho") * gates
    return torch.fft.irfft(spec, n=3, dim=1, norm="ortho")[:, 2:]


def _fft_phase(resid, phases):
    spec = torch.fft.rfft(resid, dim=1, norm="ortho")
    rot = torch.polar(torch.ones_like(phases), phases)
    spec = torch.cat([spec[:, :1], spec[:, 1:] * rot], dim=1)
    return torch.fft.irfft(spec, n=3, dim=1, norm="ortho")[:, 2:]


def _fft_attention(attn, resid):
    """Attention at '=' by per-head einsums; phase scores by the rFFT of the head axis."""
    q = torch.einsum("bd,hde->bhe", resid[:, 2], attn.W_Q)[:, None]
    k = torch.einsum("bsd,hde->bshe", resid, attn.W_K)
    v = torch.einsum("bsd,hde->bshe", resid, attn.W_V)
    if attn.phase_scores:
        qf = torch.fft.rfft(q, dim=-1)[:, :, :, None]
        kf = torch.fft.rfft(k.transpose(1, 2), dim=-1)[:, None]
        cross = (qf * kf.conj()).real
        scores = (cross / (qf.abs() * kf.abs()).clamp_min(1e-12).sqrt()).sum(-1)
    else:
        scores = torch.einsum("bqhe,bshe->bqhs", q, k)
    pattern = (scores.transpose(1, 2) / math.sqrt(attn.d_head)).softmax(-1)
    z = torch.einsum("bhqs,bshe->bqhe", pattern, v)
    return torch.einsum("bqhe,hed->bqd", z, attn.W_O)


def _mixer_with_random_parameters(mixer, d=32):
    torch.manual_seed(3)
    attn = build_model(P, mixer, d_model=d, n_heads=4, d_mlp=64).blocks[0].attn.double()
    with torch.no_grad():
        for prm in attn.parameters():  # away from the identity start of the wave mixers
            prm.copy_(torch.randn_like(prm))
    return attn


@pytest.mark.parametrize("mixer", MIXERS)
def test_closed_form_mixers_equal_their_fft_forms_with_gradients(mixer):
    attn = _mixer_with_random_parameters(mixer)
    resid = torch.randn(50, 3, 32, dtype=torch.float64, requires_grad=True)
    known = {
        "standard": lambda x: _fft_attention(attn, x),
        "full": lambda x: _fft_attention(attn, x),
        "fnet": _fft_fnet,
        "learned_gate": lambda x: _fft_gate(x, attn.gates),
        "phase_shift": lambda x: _fft_phase(x, attn.phases),
    }[mixer]
    out, want = attn(resid), known(resid)
    assert out.shape == want.shape == (50, 1, 32)
    assert torch.allclose(out, want, atol=1e-10, rtol=1e-9)
    # the same gradients, for the input and every mixing parameter
    weights = torch.randn_like(out)
    inputs = [resid, *attn.parameters()]
    got = torch.autograd.grad((out * weights).sum(), inputs)
    ref = torch.autograd.grad((want * weights).sum(), inputs)
    for name, a, b in zip(["resid", *(n for n, _ in attn.named_parameters())], got, ref):
        assert torch.allclose(a, b, atol=1e-9, rtol=1e-8), name


@pytest.mark.parametrize("mixer", MIXERS)
def test_closed_form_mixers_match_fft_forms_in_float32(mixer):
    attn = _mixer_with_random_parameters(mixer, d=128).float()
    resid = torch.randn(200, 3, 128) / math.sqrt(128) * 3
    known = {
        "fnet": _fft_fnet,
        "learned_gate": lambda x: _fft_gate(x, attn.gates),
        "phase_shift": lambda x: _fft_phase(x, attn.phases),
    }.get(mixer, lambda x: _fft_attention(attn, x))
    with torch.no_grad():
        assert torch.allclose(attn(resid), known(resid), atol=1e-4, rtol=1e-4)


@pytest.mark.parametrize("mixer", MIXERS)
def test_training_works_after_a_first_forward_under_inference_mode(mixer, tokens):
    # the fixed DFT matrices are cached on first use; made under inference_mode they were
    # inference tensors, and every later backward() refused to save them
    from akira_nb.modular_arithmetic import models

    for name in ("_rdft_matrix", "_fnet_matrix"):
        getattr(models, name).cache_clear()
    torch.manual_seed(0)
    # d_model 40 / d_head 10: sizes no other test uses, so this forward is the first one
    model = build_model(P, mixer, d_model=40, n_heads=4, d_mlp=64)
    with torch.inference_mode():
        model(tokens)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    before = [t.detach().clone() for t in model.parameters()]
    loss = torch.nn.functional.cross_entropy(model(tokens), (tokens[:, 0] + tokens[:, 1]) % P)
    loss.backward()
    opt.step()
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
