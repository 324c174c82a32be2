"""One-layer models for a + b mod p: embeddings -> token mixing -> MLP -> unembedding.

Every model reads the tokens ``a b =`` and predicts (a + b) mod p at the ``=`` position. Only the
mixer differs (``MIXERS``): ``standard`` (the causal 4-head attention of Nanda et al. 2023),
``fnet`` (orthonormal 2D FFT mixing, no parameters), ``learned_gate`` (learnable gates on the
sequence-frequency bins), ``phase_shift`` (learnable phase rotations of the k = 1 bin), ``full``
(Q/K/V/O with phase-alignment scores between the Q and K spectra). All share Nanda's set-up
(d_model 128, d_mlp 512, ReLU, no LayerNorm, untied embed/unembed, learned positions).

Only the ``=`` position is read and the model has one layer, so after mixing only that position
is computed (keys and values still see all three tokens): activations after mixing carry a
position axis of length 1. The models are TransformerLens ``HookedRootModule``s with its hook
names (``hook_embed``, ``blocks.0.attn.hook_pattern``, ``blocks.0.mlp.hook_post``, ...), so
``run_with_cache`` works on them.
"""

from __future__ import annotations

import functools
import math

import torch
import torch.nn as nn
import torch.nn.functional as F
from transformer_lens import HookedRootModule
from transformer_lens.hook_points import HookPoint

from akira_nb.modular_arithmetic.config import MIXERS, ModelConfig  # noqa: F401  (MIXERS: its old path)

N_CTX = 3
EQ_POS = 2


def _randn(*shape: int, scale: float) -> nn.Parameter:
    return nn.Parameter(torch.randn(*shape) / scale)


# The fixed DFT matrices, computed in float64 once per size, dtype and device and rounded to
# the model's dtype (so a float64 model uses float64 constants). They are made outside any
# inference_mode / no_grad context the first call may run in: a cached inference tensor could
# never be saved for a later backward().
def _constant(fn):
    @functools.lru_cache(maxsize=None)
    @functools.wraps(fn)
    def cached(*args):
        with torch.inference_mode(False), torch.no_grad():
            return fn(*args)

    return cached


@_constant
def _rdft_matrix(n: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """[n, 2 (n // 2 + 1)]: ``x @ D`` is the rFFT of ``x`` over its last axis (length n), the
    real parts of every bin followed by their imaginary parts."""
    angle = 2 * math.pi * torch.outer(torch.arange(n), torch.arange(n // 2 + 1)).double() / n
    return torch.cat([angle.cos(), -angle.sin()], dim=1).to(dtype=dtype, device=device)


@_constant
def _fnet_matrix(d: int, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """[3 d, d]: ``x.reshape(B, 3 d) @ M`` is Re(F_seq F_hidden x) at ``=`` (orthonormal)."""
    angle = 2 * math.pi * torch.outer(torch.arange(d), torch.arange(d)).double() / d
    c, s = angle.cos(), angle.sin()
    h = math.sqrt(3) / 2
    mix = torch.cat([c, -c / 2 + h * s, -c / 2 - h * s]) / math.sqrt(3 * d)
    return mix.to(dtype=dtype, device=device)


class Attention(nn.Module):
    """Causal multi-head attention, queried only at the ``=`` position.

    On ``x = [a, b, =]`` the ``=`` query attends to all three positions (the causal mask allows
    them all), pattern = softmax(q_= k_s / sqrt(d_head)); output = W_O (pattern @ V).
    With ``phase_scores=True`` (the ``full`` mixer) the score of head h is instead
    sum_f Re(Q_f conj K_f) / sqrt(|Q_f||K_f|) over the rFFT bins f of the head dimension, i.e.
    sum_f cos(angle Q_f - angle K_f) sqrt(|Q_f||K_f|), the phase alignment of the two spectra,
    scaled by 1 / sqrt(d_head) like the dot product.

    Computed as few large ops: K and V of all three positions by one matmul, Q at ``=`` only,
    the three scores per head element-wise (no batched matmuls of 1 x 3 matrices). The phase
    scores use the factorisation Re(Q_f conj K_f) / sqrt(|Q_f||K_f|) = <u(Q_f), u(K_f)> with
    u(z) = z / sqrt|z| (|z| clamped at 1e-6), the spectra taken by a matmul with the real rDFT
    matrix; it equals the rFFT form (a test checks both against each other).
    """

    def __init__(self, cfg: ModelConfig, phase_scores: bool = False):
        super().__init__()
        d, h, dh = cfg.d_model, cfg.n_heads, cfg.d_head
        s = math.sqrt(d)
        self.n_heads, self.d_head, self.phase_scores = h, dh, phase_scores
        self.W_Q = _randn(h, d, dh, scale=s)
        self.W_K = _randn(h, d, dh, scale=s)
        self.W_V = _randn(h, d, dh, scale=s)
        self.W_O = _randn(h, dh, d, scale=s)
        self.hook_q = HookPoint()
        self.hook_k = HookPoint()
        self.hook_v = HookPoint()
        self.hook_attn_scores = HookPoint()
        self.hook_pattern = HookPoint()
        self.hook_z = HookPoint()

    def _unit_spectrum(self, x: torch.Tensor) -> torch.Tensor:
        """z / sqrt|z| for every rFFT bin z of the last axis, as [..., (re, im), bin]."""
        n = x.shape[-1]
        spec = (x.reshape(-1, n) @ _rdft_matrix(n, x.dtype, x.device)).view(*x.shape[:-1], 2, -1)
        return spec * spec.square().sum(-2, keepdim=True).clamp_min(1e-12).pow(-0.25)

    def forward(self, resid: torch.Tensor) -> torch.Tensor:  # [B, 3, d] -> [B, 1, d]
        B, S, d = resid.shape
        h, dh = self.n_heads, self.d_head
        w_kv = torch.cat([self.W_K, self.W_V]).permute(1, 0, 2).reshape(d, 2 * h * dh)
        k, v = (resid.reshape(B * S, d) @ w_kv).view(B, S, 2, h, dh).unbind(2)
        k, v = self.hook_k(k), self.hook_v(v)  # [B, 3, h, dh]
        w_q = self.W_Q.permute(1, 0, 2).reshape(d, h * dh)
        q = self.hook_q((resid[:, EQ_POS] @ w_q).view(B, 1, h, dh))
        if self.phase_scores:
            scores = (self._unit_spectrum(q) * self._unit_spectrum(k)).sum((-2, -1))  # [B, 3, h]
        else:
            scores = (q * k).sum(-1)
        scores = self.hook_attn_scores(scores.transpose(1, 2)[:, :, None] / math.sqrt(dh))
        pattern = self.hook_pattern(scores.softmax(dim=-1))  # [B, h, 1, 3]
        z = self.hook_z((pattern[:, :, 0].transpose(1, 2)[..., None] * v).sum(1)[:, None])
        return (z.reshape(B, h * dh) @ self.W_O.reshape(h * dh, d))[:, None]


class FNetMixer(nn.Module):
    """Orthonormal FNet mixing, Re(F_seq F_hidden x) with ``norm='ortho'`` (no parameters).

    On ``[a, b, =]`` the ``=`` output is Re(sum_s w^(2s) F_d(x_s)) / sqrt(3), w = exp(-2 pi i/3):
    a fixed unitary mix of the three token vectors' hidden-dimension spectra. Being unitary it
    never scales the residual up (the public version's unnormalised FFT multiplied it by ~14).

    With C, S the cosine and sine DFT matrices of the hidden axis this is
    (C (x_a - (x_b + x_=) / 2) + S sqrt(3) / 2 (x_b - x_=)) / sqrt(3 d): one matmul of the
    three concatenated token vectors with a fixed [3 d, d] matrix, which measures faster on a
    CPU than the 2D FFT and its complex copies (a test checks it equals ``torch.fft.fft2``).
    """

    def forward(self, resid: torch.Tensor) -> torch.Tensor:
        B, S, d = resid.shape
        return (resid.reshape(B, S * d) @ _fnet_matrix(d, resid.dtype, resid.device))[:, None]


class LearnedGateMixer(nn.Module):
    """Learnable real gates on the two rFFT bins (DC and k = 1) of the length-3 sequence.

    Per channel c the ``=`` output is g1_c x_= + (g0_c - g1_c) mean(x_a, x_b, x_=): a learned
    blend of "keep my own token" and "average of the three tokens". Gates start at 1 (identity:
    no mixing until they move apart). The gates act on *sequence* frequencies, not on the
    Fourier frequencies of Z_p. ``d_model * 2`` parameters.

    It is computed in that closed form (irfft(gates * rfft(x)) at ``=``; a test checks the two
    agree): the FFTs over a length-3 axis and their complex copies took most of the step.
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.gates = nn.Parameter(torch.ones(2, cfg.d_model))

    def forward(self, resid: torch.Tensor) -> torch.Tensor:
        g0, g1 = self.gates
        return (g1 * resid[:, EQ_POS] + (g0 - g1) * resid.mean(1))[:, None]


class PhaseShiftMixer(nn.Module):
    """Learnable phase rotation of the k = 1 sequence-frequency bin (per channel).

    The orthonormal rFFT of a real length-3 sequence has a real DC bin X0 and one complex bin X1;
    position s is x_s = (X0 + 2 Re(X1 exp(2 pi i s / 3))) / sqrt(3). The mixer rotates X1 by
    phi_c per channel, moving each channel's oscillating part around the three positions, and
    returns the ``=`` position (s = 2). The public version also gave the DC bin a phase: irfft
    drops the imaginary part of a real signal's DC bin, so that phase only scales DC by
    cos(phi), whose gradient is exactly zero at its initial value 0: it never trains. Here only
    the k = 1 phases exist (``d_model`` parameters, all trainable); at init (phi = 0) the mixer
    is the identity.

    At s = 2 the rotation works out to mean + cos(phi) (x_= - mean) - sin(phi) (x_b - x_a) /
    sqrt(3), mean = (x_a + x_b + x_=) / 3, and it is computed so (a test checks it equals the
    rFFT -> rotate -> irFFT form).
    """

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.phases = nn.Parameter(torch.zeros(cfg.d_model))

    def forward(self, resid: torch.Tensor) -> torch.Tensor:
        mean = resid.mean(1)
        turn = (resid[:, 1] - resid[:, 0]) / math.sqrt(3)
        out = mean + self.phases.cos() * (resid[:, EQ_POS] - mean) - self.phases.sin() * turn
        return out[:, None]


class MLP(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        s = math.sqrt(cfg.d_model)
        self.W_in = _randn(cfg.d_model, cfg.d_mlp, scale=s)
        self.b_in = nn.Parameter(torch.zeros(cfg.d_mlp))
        self.W_out = _randn(cfg.d_mlp, cfg.d_model, scale=s)
        self.b_out = nn.Parameter(torch.zeros(cfg.d_model))
        self.hook_pre = HookPoint()
        self.hook_post = HookPoint()

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # [B, 1, d]; bias and matmul fused
        flat = x.reshape(-1, x.shape[-1])
        pre = self.hook_pre(torch.addmm(self.b_in, flat, self.W_in).view(*x.shape[:-1], -1))
        post = self.hook_post(F.relu(pre))
        out = torch.addmm(self.b_out, post.reshape(flat.shape[0], -1), self.W_out)
        return out.view(x.shape)


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        make = {
            "standard": lambda: Attention(cfg),
            "full": lambda: Attention(cfg, phase_scores=True),
            "fnet": FNetMixer,
            "learned_gate": lambda: LearnedGateMixer(cfg),
            "phase_shift": lambda: PhaseShiftMixer(cfg),
        }
        self.mlp = MLP(cfg)  # drawn before the mixer: same seed, same MLP in every arm
        self.attn = make[cfg.mixer]()  # named "attn" so hook names match TransformerLens
        self.hook_resid_pre = HookPoint()
        self.hook_attn_out = HookPoint()
        self.hook_resid_mid = HookPoint()
        self.hook_mlp_out = HookPoint()
        self.hook_resid_post = HookPoint()

    def forward(self, resid: torch.Tensor) -> torch.Tensor:
        resid = self.hook_resid_pre(resid)
        mid = self.hook_resid_mid(resid[:, EQ_POS:] + self.hook_attn_out(self.attn(resid)))
        return self.hook_resid_post(mid + self.hook_mlp_out(self.mlp(mid)))


class GrokkingModel(HookedRootModule):
    """Embeddings -> one mixing block -> MLP -> unembedding; logits at ``=`` of shape [B, p]."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        p, d = cfg.p, cfg.d_model
        self.W_E = _randn(p + 1, d, scale=math.sqrt(d))
        self.W_pos = _randn(N_CTX, d, scale=math.sqrt(d))
        self.W_U = _randn(d, p, scale=math.sqrt(p + 1))
        # the mixer's weights are drawn last, so with one seed every arm starts from the same
        # embeddings, MLP and unembedding and differs only in its token mixing
        self.blocks = nn.ModuleList([Block(cfg)])
        self.hook_embed = HookPoint()
        self.hook_pos_embed = HookPoint()
        self.setup()

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        if tokens.ndim != 2 or tokens.shape[1] != N_CTX:
            raise ValueError(f"tokens must have shape [batch, 3]; got {tuple(tokens.shape)}")
        resid = self.hook_embed(F.embedding(tokens, self.W_E)) + self.hook_pos_embed(self.W_pos)
        resid = self.blocks[0](resid)
        return resid[:, 0] @ self.W_U

    @property
    def neuron_logit_map(self) -> torch.Tensor:
        """W_L = W_out W_U of shape [d_mlp, p]: each neuron's direct effect on the logits."""
        return self.blocks[0].mlp.W_out @ self.W_U

    def mixing_parameter_count(self) -> int:
        return sum(t.numel() for t in self.blocks[0].attn.parameters())

    def frequency_weights(self) -> dict[str, torch.Tensor]:
        """The wave mixers' learned values (gates or phases); empty for other mixers."""
        attn = self.blocks[0].attn
        if isinstance(attn, LearnedGateMixer):
            return {"gates": attn.gates.detach().cpu()}
        if isinstance(attn, PhaseShiftMixer):
            return {"phases": attn.phases.detach().cpu()}
        return {}


def build_model(p: int, mixer: str = "standard", **kwargs) -> GrokkingModel:
    return GrokkingModel(ModelConfig(p=p, mixer=mixer, **kwargs))


def parameter_count(model: nn.Module) -> int:
    return sum(t.numel() for t in model.parameters() if t.requires_grad)
