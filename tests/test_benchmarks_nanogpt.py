"""benchmarks/baseline_vs_nanogpt.py against a stand-in for nanoGPT's model.py (written here:
no network, no checkout): the import from --reference-dir, identical batches, the kit side
equal to the kit trainer, the evaluation and summary arithmetic, the JSON and figure, and the
refusals of bad input."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

import baseline_vs_nanogpt as bench  # noqa: E402

from akira_nb.bandformer import train  # noqa: E402

# nanoGPT's constructor signature (GPTConfig fields, GPT(config), forward(idx, targets) ->
# (logits, loss) with targets viewed as nanoGPT does) over a small standard transformer. It
# records every input it reads (SEEN: (training?, idx)); ZERO_LOGITS makes it predict uniformly.
STAND_IN = """
from dataclasses import dataclass
import torch
import torch.nn as nn
import torch.nn.functional as F

SEEN = []
ZERO_LOGITS = False

@dataclass
class GPTConfig:
    block_size: int = 1024
    vocab_size: int = 50304
    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    dropout: float = 0.0
    bias: bool = True

class Block(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.n_head = c.n_head
        self.ln_1, self.ln_2 = nn.LayerNorm(c.n_embd), nn.LayerNorm(c.n_embd)
        self.c_attn = nn.Linear(c.n_embd, 3 * c.n_embd, bias=c.bias)
        self.c_proj = nn.Linear(c.n_embd, c.n_embd, bias=c.bias)
        self.mlp = nn.Sequential(nn.Linear(c.n_embd, 4 * c.n_embd), nn.GELU(),
                                 nn.Linear(4 * c.n_embd, c.n_embd))

    def forward(self, x):
        q, k, v = self.c_attn(self.ln_1(x)).unflatten(-1, (3, self.n_head, -1)).permute(
            2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)
        x = x + self.c_proj(y.transpose(1, 2).flatten(-2))
        return x + self.mlp(self.ln_2(x))

class GPT(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.block_size, config.n_embd)
        self.h = nn.ModuleList([Block(config) for _ in range(config.n_layer)])
        self.ln_f = nn.LayerNorm(config.n_embd)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        self.wte.weight = self.lm_head.weight
        print("number of parameters: (the benchmark silences this line)")

    def forward(self, idx, targets=None):
        SEEN.append((self.training, idx.clone()))
        x = self.wte(idx) + self.wpe(torch.arange(idx.shape[1]))
        for block in self.h:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        if ZERO_LOGITS:
            logits = logits * 0
        loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))
        return logits, loss
"""


@pytest.fixture
def ref_dir(tmp_path):
    (tmp_path / "model.py").write_text(STAND_IN)
    return tmp_path


def _args(*extra):
    args = bench.parser().parse_args(
        ["--steps", "6", "--lrs", "1e-3", "3e-3", "--seeds", "0", "1", "--eval-batches", "2"]
        + list(extra)
    )
    bench.check_args(args)
    return args


# ----------------------------------------------------------------------------- refusals


def _one_line_error(capsys, *words):
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith("error: "), out
    for w in words:
        assert w in out[0], (w, out[0])


def test_refuses_a_missing_reference_folder(tmp_path, capsys):
    missing = tmp_path / "nowhere"
    assert bench.main(["--reference-dir", str(missing)]) == 2
    _one_line_error(capsys, "--reference-dir", str(missing), "model.py")


def test_refuses_a_folder_without_model_py(tmp_path, capsys):
    assert bench.main(["--reference-dir", str(tmp_path)]) == 2
    _one_line_error(capsys, "--reference-dir", "has no file 'model.py'")


def test_refuses_a_model_py_without_gpt_or_one_that_fails(tmp_path, capsys):
    (tmp_path / "model.py").write_text("class GPTConfig:\n    pass\n")
    assert bench.main(["--reference-dir", str(tmp_path)]) == 2
    _one_line_error(capsys, "--reference-dir", "defines no GPT", "karpathy/nanoGPT")
    (tmp_path / "model.py").write_text("raise ImportError('no torch here')\n")
    assert bench.main(["--reference-dir", str(tmp_path)]) == 2
    _one_line_error(capsys, "importing model.py failed", "no torch here")


@pytest.mark.parametrize(
    "argv, words",
    [
        (["--lrs", "0"], ["--lrs[0]", "0.0", "(0, 1)"]),
        (["--lrs", "1e-3", "nan"], ["--lrs[1]", "nan"]),
        (["--lrs", "1e-3", "1e-3"], ["--lrs", "repeats"]),
        (["--steps", "0"], ["--steps[0]", "0"]),
        (["--steps", "200", "200"], ["--steps", "repeats"]),
        (["--seeds", "0", "0"], ["--seeds", "repeats a seed"]),
        (["--seeds", "-1"], ["--seeds[0]", "-1"]),
        (["--eval-batches", "0"], ["--eval-batches", "0"]),
        (["--seq-len", "1"], ["--seq-len", "1"]),
        (["--weight-decay", "-0.1"], ["--weight-decay", "-0.1"]),
        (["--device", "tpu"], ["tpu"]),
    ],
)
def test_refuses_bad_settings_before_running(argv, words, ref_dir, capsys):
    assert bench.main(["--reference-dir", str(ref_dir), *argv]) == 2
    _one_line_error(capsys, *words)


def test_argparse_refuses_non_numbers():
    with pytest.raises(SystemExit) as exc:
        bench.main(["--steps", "many"])
    assert exc.value.code == 2


# ----------------------------------------------------------------------------- the core


def test_imports_model_py_from_the_folder_and_builds_it_at_the_kit_sizes(ref_dir, capsys):
    module = bench.load_reference(str(ref_dir))
    assert module.__file__ == str(ref_dir.resolve() / "model.py")
    assert len(module.sha256) == 64 and module.root == str(ref_dir.resolve())
    cfg = bench.run_config(_args(), 6, 1e-3, 0)
    kit, _ = train.build_model(cfg)
    ref = bench.build_reference(module, kit.cfg, 0)
    c = ref.config
    assert (c.n_layer, c.n_head, c.n_embd) == (kit.cfg.n_layers, kit.cfg.n_heads, kit.cfg.d_model)
    assert (c.block_size, c.vocab_size, c.dropout, c.bias) == (32, 257, 0.0, True)
    assert capsys.readouterr().out == ""  # its parameter-count print is silenced
    # a tied weight is counted once: 257 x 64 (tied) + 32 x 64 + 2 LN + 2 blocks of
    # 12 d^2 + 13 d (attention and 4x MLP with biases, two LNs)
    d = 64
    assert bench.n_params(ref) == 257 * d + 32 * d + 2 * d + 2 * (12 * d * d + 13 * d)
    # the same seed, the same initial weights
    again = bench.build_reference(module, kit.cfg, 0)
    assert torch.equal(again.wte.weight, ref.wte.weight)


def test_reference_optimizer_takes_the_kit_rule_and_settings(ref_dir):
    module = bench.load_reference(str(ref_dir))
    cfg = bench.run_config(_args(), 6, 2e-3, 0)
    kit, _ = train.build_model(cfg)
    kit_opt = train.make_optimizer(kit, cfg, cfg.band_config())
    ref = bench.build_reference(module, kit.cfg, 0)
    opt = bench.reference_optimizer(ref, 2e-3, 0.1, kit_opt)
    decay, rest = opt.param_groups
    assert decay["weight_decay"] == 0.1 and rest["weight_decay"] == 0.0
    assert all(g["lr"] == g["base_lr"] == 2e-3 for g in opt.param_groups)
    # decayed: the 4 Linear weights of each block (c_attn, c_proj, 2 MLP); the tied
    # embedding / head, the positions, biases and norms are not
    assert len(decay["params"]) == 8 and all(p.ndim == 2 for p in decay["params"])
    ids = {id(p) for p in rest["params"]}
    assert id(ref.wte.weight) in ids and id(ref.lm_head.weight) in ids and id(ref.wpe.weight) in ids
    assert len(decay["params"]) + len(rest["params"]) == len(list(ref.parameters()))
    for key in ("betas", "eps", "fused"):
        assert opt.defaults[key] == kit_opt.defaults[key]


def test_both_models_read_the_kit_trainers_batches_in_order(ref_dir, monkeypatch):
    module = bench.load_reference(str(ref_dir))
    kit_seen = []
    kit_loss = bench.kit_loss
    monkeypatch.setattr(
        bench, "kit_loss", lambda m, x: kit_seen.append(x.clone()) or kit_loss(m, x)
    )
    args = _args("--lrs", "2e-3", "--seeds", "3")
    record = bench.compare(args, module, torch.device("cpu"))
    cfg = bench.run_config(args, 6, 2e-3, 3)
    splits = train.make_data(cfg)
    want = [splits.train[train.train_batch(cfg, splits.train.shape[0], s)] for s in range(6)]
    assert len(kit_seen) == 6 and all(torch.equal(a, b) for a, b in zip(kit_seen, want))
    ref_train = [idx for training, idx in module.SEEN if training]
    assert len(ref_train) == 6
    assert all(torch.equal(a, b[:, :-1]) for a, b in zip(ref_train, want))
    # evaluation: the trainer's validation set, every block once, batch by batch
    val = train.validation_blocks(cfg, splits.val)
    ref_val = torch.cat([idx for training, idx in module.SEEN if not training])
    assert torch.equal(ref_val, val[:, :-1]) and val.shape[0] == 32
    assert record["data"]["val_predictions"] == 32 * 31


def test_the_kit_side_equals_the_kit_trainer():
    args = _args()
    cfg = bench.run_config(args, 6, 3e-3, 1)
    splits = train.make_data(cfg)
    val = train.validation_blocks(cfg, splits.val)
    row = bench.run_one(bench.KIT, cfg, None, splits, val, torch.device("cpu"))
    assert row["val_loss"] == pytest.approx(train.train(cfg).final_val_loss, rel=1e-6)
    assert row["params"] == 115_238 and row["lr"] == 3e-3 and row["steps"] == 6


def test_reference_val_loss_of_a_uniform_predictor_is_log_vocab(ref_dir):
    module = bench.load_reference(str(ref_dir))
    module.ZERO_LOGITS = True
    cfg = bench.run_config(_args(), 6, 1e-3, 0)
    kit, _ = train.build_model(cfg)
    ref = bench.build_reference(module, kit.cfg, 0)
    blocks = torch.randint(257, (21, 32), generator=torch.Generator().manual_seed(0))
    got = bench.reference_val_loss(ref, blocks, 16, torch.device("cpu"))  # 16 + 5 blocks
    assert got == pytest.approx(math.log(257), abs=1e-5)
    assert ref.training  # back in train mode
    # a model that does not predict uniformly: the batches of 16 and 5 blocks weighted by
    # their predictions give the mean over all of them, as one call over the 21 blocks does
    module.ZERO_LOGITS = False
    with torch.no_grad():
        whole = float(ref(blocks[:, :-1], blocks[:, 1:].contiguous())[1])
    got = bench.reference_val_loss(ref, blocks, 16, torch.device("cpu"))
    assert got == pytest.approx(whole, rel=1e-6) and abs(whole - math.log(257)) > 1e-3


def test_summarize_known_numbers():
    losses = {  # (model, lr, seed): loss
        ("kit", 1e-3, 0): 3.0, ("kit", 1e-3, 1): 3.2, ("kit", 2e-3, 0): 2.8,
        ("kit", 2e-3, 1): 2.9, ("kit", 3e-3, 0): 2.95, ("kit", 3e-3, 1): 2.95,
        ("nanogpt", 1e-3, 0): 3.1, ("nanogpt", 1e-3, 1): 3.1, ("nanogpt", 2e-3, 0): 3.0,
        ("nanogpt", 2e-3, 1): 3.0, ("nanogpt", 3e-3, 0): 2.9, ("nanogpt", 3e-3, 1): 2.7,
    }  # fmt: skip
    rows = [dict(model=m, lr=lr, seed=s, steps=200, val_loss=v) for (m, lr, s), v in losses.items()]
    e = bench.summarize(rows)["200"]
    assert e["lrs"] == [1e-3, 2e-3, 3e-3] and e["seeds"] == [0, 1]
    assert e["per_lr"]["kit"]["0.001"]["mean"] == pytest.approx(3.1)
    assert e["per_lr"]["kit"]["0.001"]["sd"] == pytest.approx(0.2 / math.sqrt(2))
    assert e["best"]["kit"] == pytest.approx(
        {"lr": 2e-3, "mean": 2.85, "sd": 0.1 / math.sqrt(2), "n": 2, "at_edge": False}
    )
    assert e["best"]["nanogpt"]["lr"] == 3e-3 and e["best"]["nanogpt"]["at_edge"] is True
    d = e["diff_per_lr"]["0.002"]
    assert d["per_seed"] == pytest.approx([-0.2, -0.1]) and d["mean"] == pytest.approx(-0.15)
    best = e["diff_at_best"]  # kit at 2e-3 minus nanoGPT at 3e-3, seed by seed
    assert best["per_seed"] == pytest.approx([-0.1, 0.2]) and best["mean"] == pytest.approx(0.05)
    assert best["sd"] == pytest.approx(0.3 / math.sqrt(2))
    lines = bench.table(bench.summarize(rows))
    assert any("nanoGPT GPT at 200 steps: LR 3.0e-03" in ln and "widen --lrs" in ln for ln in lines)
    assert lines[-1].startswith("  kit - nanoGPT at each one's best LR: +0.0500 +- 0.2121")
    kit_only = bench.summarize([r for r in rows if r["model"] == "kit"])["200"]
    assert "diff_at_best" not in kit_only and list(kit_only["per_lr"]) == ["kit"]


def test_main_writes_the_json_and_the_figure(ref_dir, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["--reference-dir", str(ref_dir), "--steps", "6", "--lrs", "1e-3", "3e-3"]
    argv += ["--seeds", "0", "1", "--eval-batches", "2", "--out", str(out)]
    assert bench.main(argv) == 0
    record = json.loads((out / "baseline_vs_nanogpt.json").read_text())
    assert set(record) == set(bench.JSON_KEYS)
    assert len(record["runs"]) == 2 * 2 * 2  # LRs x seeds x models
    assert {r["model"] for r in record["runs"]} == {"kit", "nanogpt"}
    assert all(math.isfinite(r["val_loss"]) and r["cpu_s"] > 0 for r in record["runs"])
    assert record["models"]["kit"]["params"] == 115_238
    assert record["models"]["nanogpt"]["params"] == 118_592
    assert record["settings"]["warmup_steps"] == {"6": 1}
    png = (out / "baseline_vs_nanogpt.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
    text = capsys.readouterr().out
    assert "kit - nanoGPT at each one's best LR" in text and "CPU-s (user + system)" in text
    assert "= 992 predictions" in text  # 32 blocks x 31


def test_without_a_reference_the_kit_runs_alone(capsys):
    assert bench.main(["--steps", "3", "--lrs", "1e-3", "--seeds", "0", "--eval-batches", "1"]) == 0
    text = capsys.readouterr().out
    assert "no --reference-dir: the kit's baseline alone" in text
    assert "nanoGPT GPT " not in text and "kit - nanoGPT" not in text
