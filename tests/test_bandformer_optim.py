"""Per-band parameter groups, LR modes, the schedule and the weight-change monitor, on small
stand-in models that follow the model/optim contract (parameter_bands, embedding names, cfg)."""

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from akira_nb.bandformer import optim

DEFAULT_LRS = (1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2)


class StandInBands(nn.Module):
    """Tied embeddings, per-band LayerNorm + MLP, a shared full-width mixer, a final norm, and a
    frozen buffer-like parameter that must stay out of every group."""

    def __init__(self, band_dims=(8, 6, 6, 4, 4, 4, 2), band_lrs=DEFAULT_LRS, shared_lr=3e-4):
        super().__init__()
        self.cfg = SimpleNamespace(band_dims=band_dims, band_lrs=band_lrs, shared_lr=shared_lr)
        d = sum(band_dims)
        self.wte = nn.Embedding(13, d)
        self.wpe = nn.Embedding(5, d)
        self.mix = nn.Linear(d, d)
        self.bands = nn.ModuleList(
            nn.ModuleDict(
                {
                    "ln": nn.LayerNorm(b),
                    "fc": nn.Linear(b, 2 * b),
                    "proj": nn.Linear(2 * b, b, bias=False),
                }
            )
            for b in band_dims
        )
        self.ln_f = nn.LayerNorm(d)
        self.lm_head = nn.Linear(d, 13, bias=False)
        self.lm_head.weight = self.wte.weight
        self.frozen = nn.Parameter(torch.ones(3, 3), requires_grad=False)

    def parameter_bands(self):
        return {
            n: int(n.split(".")[1]) if n.startswith("bands.") else None
            for n, _ in self.named_parameters()
        }

    def embedding_parameter_names(self):
        return {"wte.weight", "wpe.weight"}

    def forward(self, idx):
        x = self.mix(self.wte(idx) + self.wpe(torch.arange(idx.shape[1])))
        parts = x.split(self.cfg.band_dims, dim=-1)
        parts = [h + m["proj"](m["fc"](m["ln"](h)).relu()) for h, m in zip(parts, self.bands)]
        return self.lm_head(self.ln_f(torch.cat(parts, -1)))


class StandInBaseline(nn.Module):
    """A baseline: every parameter shared, the config holds only ``lr``."""

    def __init__(self):
        super().__init__()
        self.cfg = SimpleNamespace(lr=3e-4)
        self.wte = nn.Embedding(13, 8)
        self.fc = nn.Linear(8, 8)
        self.ln = nn.LayerNorm(8)

    def parameter_bands(self):
        return {n: None for n, _ in self.named_parameters()}

    def embedding_parameter_names(self):
        return {"wte.weight"}


def trainable(model):
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


@pytest.mark.parametrize("mode", optim.LR_MODES)
def test_groups_partition_trainable_parameters_exactly_once(mode):
    model = StandInBands()
    groups = optim.param_groups(model, mode)
    ids = [id(p) for g in groups for p in g["params"]]
    assert len(ids) == len(set(ids))
    assert set(ids) == {id(p) for p in trainable(model).values()}
    assert id(model.frozen) not in ids
    names = [n for g in groups for n in g["param_names"]]
    assert sorted(names) == sorted(trainable(model))
    assert sum(p.numel() for g in groups for p in g["params"]) == sum(
        p.numel() for p in trainable(model).values()
    )
    assert all(g["params"] for g in groups)  # empty groups dropped
    # a group list that misses or repeats a tensor fails the code's own check
    with pytest.raises(AssertionError, match="missing"):
        optim.check_partition(model, groups[1:])
    with pytest.raises(AssertionError, match="both"):
        optim.check_partition(model, groups + groups[:1])


def test_group_names_order_and_decay_rule():
    model = StandInBands()
    groups = optim.param_groups(model, weight_decay=0.1)
    expected = [n for b in range(7) for n in (f"band_{b}", f"band_{b}/no_decay")]
    assert [g["name"] for g in groups] == expected + ["shared", "shared/no_decay"]
    by_name = {g["name"]: g for g in groups}
    assert set(by_name["band_3"]["param_names"]) == {"bands.3.fc.weight", "bands.3.proj.weight"}
    assert set(by_name["band_3/no_decay"]["param_names"]) == {
        "bands.3.ln.weight",
        "bands.3.ln.bias",
        "bands.3.fc.bias",
    }
    assert set(by_name["shared"]["param_names"]) == {"mix.weight"}  # tied lm_head = wte
    assert set(by_name["shared/no_decay"]["param_names"]) == {
        "wte.weight",
        "wpe.weight",
        "mix.bias",
        "ln_f.weight",
        "ln_f.bias",
    }
    for g in groups:
        no_decay = g["name"].endswith("/no_decay")
        assert g["weight_decay"] == (0.0 if no_decay else 0.1)
        assert g["band"] == (None if g["name"].startswith("shared") else int(g["name"][5]))
        if not no_decay:
            assert all(p.ndim >= 2 for p in g["params"])


def test_group_lrs_in_each_mode():
    model = StandInBands()
    mean = optim.geometric_mean(DEFAULT_LRS)
    for mode, want in [
        ("differential", lambda b: 3e-4 if b is None else DEFAULT_LRS[b]),
        ("geomean", lambda b: mean),
        ("uniform", lambda b: 3e-4),
    ]:
        for g in optim.param_groups(model, mode):
            assert g["lr"] == g["base_lr"] == want(g["band"]), (mode, g["name"])
    # explicit LRs override the configured ones
    lrs = (1e-3,) * 6 + (2e-3,)
    groups = optim.param_groups(model, band_lrs=lrs, shared_lr=5e-4)
    assert optim.base_lrs(groups) == {**{f"band_{b}": lrs[b] for b in range(7)}, "shared": 5e-4}


def test_geometric_mean_known_answer():
    assert optim.geometric_mean(DEFAULT_LRS) == pytest.approx(
        10 ** (sum(math.log10(x) for x in DEFAULT_LRS) / 7), rel=1e-12
    )
    assert optim.geometric_mean((1e-5, 1e-2)) == pytest.approx(10**-3.5, rel=1e-12)
    assert optim.geometric_mean((2e-4,) * 5) == pytest.approx(2e-4, rel=1e-12)
    # the inventory's figures for the canonical set: ~8.5e-4 over 8 LRs, ~8.3e-4 over bands 0-6
    assert optim.geometric_mean(optim.LR_PRESETS["canonical_7p1"].band_lrs) == pytest.approx(
        8.49e-4, rel=2e-3
    )
    assert optim.geometric_mean(optim.LR_PRESETS["canonical_7"].band_lrs) == pytest.approx(
        8.29e-4, rel=2e-3
    )


def test_presets_shapes_and_eight_band_model():
    for name, preset in optim.LR_PRESETS.items():
        assert len(preset.band_lrs) in (7, 8), name
        assert preset.shared_lr > 0 and preset.source
    assert optim.LR_PRESETS["026_v1"].band_lrs == DEFAULT_LRS
    p = optim.LR_PRESETS["canonical_7p1"]
    assert p.band_lrs[6] / p.band_lrs[0] == pytest.approx(3000)
    model = StandInBands((4,) * 8, p.band_lrs, p.shared_lr)
    groups = optim.param_groups(model)
    assert optim.base_lrs(groups)["band_7"] == 1e-3
    assert [g["name"] for g in groups][-4:] == [
        "band_7",
        "band_7/no_decay",
        "shared",
        "shared/no_decay",
    ]


def test_baseline_groups():
    model = StandInBaseline()
    groups = optim.param_groups(model)
    assert [(g["name"], g["lr"]) for g in groups] == [("shared", 3e-4), ("shared/no_decay", 3e-4)]
    geo = optim.param_groups(model, "geomean", band_lrs=(1e-5, 1e-3))
    assert [g["lr"] for g in geo] == [pytest.approx(1e-4)] * 2
    with pytest.raises(ValueError, match="geomean"):
        optim.param_groups(model, "geomean")


def test_bad_inputs_raise_value_errors_naming_them():
    model = StandInBands()
    with pytest.raises(ValueError, match=r"lr_mode='cosine'.*differential.*geomean.*uniform"):
        optim.param_groups(model, "cosine")
    with pytest.raises(ValueError, match="weight_decay=-0.1"):
        optim.param_groups(model, weight_decay=-0.1)
    with pytest.raises(ValueError, match="band_lrs.*6 learning rates.*7 bands"):
        optim.param_groups(model, band_lrs=DEFAULT_LRS[:6])
    with pytest.raises(ValueError, match="band_lrs.*8 learning rates.*7 bands"):
        optim.param_groups(model, band_lrs=optim.LR_PRESETS["canonical_7p1"].band_lrs)
    with pytest.raises(ValueError, match=r"band_lrs\[2\]=0"):
        optim.param_groups(model, band_lrs=(1e-5, 1e-4, 0, 1e-3, 1e-3, 1e-3, 1e-3))
    with pytest.raises(ValueError, match="shared_lr=nan"):
        optim.param_groups(model, shared_lr=float("nan"))
    with pytest.raises(ValueError, match="lrs=.*empty"):
        optim.geometric_mean(())
    model.parameter_bands = lambda: {"wte.weight": None}
    with pytest.raises(ValueError, match="parameter_bands.*missing"):
        optim.param_groups(model)
    model = StandInBands()
    model.parameter_bands = lambda: {n: 7 for n, _ in model.named_parameters()}
    with pytest.raises(ValueError, match=r"=7 must be None or a band index in \[0, 6\]"):
        optim.param_groups(model)


def test_adamw_steps_with_the_groups_and_keeps_names():
    torch.manual_seed(0)
    model = StandInBands()
    opt = optim.make_adamw(model)
    model(torch.randint(0, 13, (2, 5))).square().mean().backward()
    opt.step()
    state = opt.state_dict()
    assert [g["name"] for g in state["param_groups"]] == [g["name"] for g in opt.param_groups]
    assert state["param_groups"][0]["param_names"] == ["bands.0.fc.weight", "bands.0.proj.weight"]
    table = optim.describe_groups(opt.param_groups)
    assert "band_6/no_decay" in table and "shared" in table and table.count("\n") == 16 + 1
    n = sum(p.numel() for p in trainable(model).values())
    assert table.splitlines()[-1].split()[-1] == f"{n:,}"


def test_schedule_known_values():
    w, t, r = 10, 110, 0.1
    f = optim.lr_multiplier
    assert f(0, w, t, r) == pytest.approx(0.1)
    assert f(4, w, t, r) == pytest.approx(0.5)
    assert f(w - 1, w, t, r) == 1.0
    assert f(w, w, t, r) == 1.0
    assert f(60, w, t, r) == pytest.approx(0.55)  # cosine midpoint: r + (1 - r) / 2
    assert f(35, w, t, r) == pytest.approx(r + (1 - r) * 0.5 * (1 + math.cos(math.pi / 4)))
    assert f(t, w, t, r) == pytest.approx(r)
    assert f(t + 50, w, t, r) == r
    assert f(0, 0, 100, 0.0) == 1.0 and f(100, 0, 100, 0.0) == pytest.approx(0.0, abs=1e-15)
    with pytest.raises(ValueError, match="warmup_steps=20"):
        f(0, 20, 10)
    with pytest.raises(ValueError, match="min_ratio=1.5"):
        f(0, 1, 10, 1.5)
    with pytest.raises(ValueError, match="step=-1"):
        f(-1, 1, 10)


def test_set_lrs_uses_each_groups_own_base_lr_and_never_compounds():
    model = StandInBands()
    opt = optim.make_adamw(model)
    base = {g["name"]: g["base_lr"] for g in opt.param_groups}
    for _ in range(1000):  # the reference's lr *= (step + 1) / warmup would reach 0 here
        m = optim.set_lrs(opt, 3, warmup_steps=10, total_steps=100)
    assert m == pytest.approx(0.4)
    for step in (0, 9, 10, 55, 100):
        m = optim.set_lrs(opt, step, 10, 100)
        assert m == optim.lr_multiplier(step, 10, 100)
        for g in opt.param_groups:
            assert g["lr"] == base[g["name"]] * m
    assert opt.param_groups[0]["lr"] == pytest.approx(1e-6)  # band 0 at min_ratio 0.1
    extra = {"params": [torch.zeros(2, requires_grad=True)], "param_names": ["x"], "name": "extra"}
    opt.add_param_group(extra)
    with pytest.raises(ValueError, match="'extra' has no base_lr"):
        optim.set_lrs(opt, 0, 10, 100)


def test_monitor_on_a_hand_made_update():
    model = StandInBands()
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(1.0)
    mon = optim.WeightChangeMonitor(model, every=5)
    assert mon.keys == [f"band_{b}" for b in range(7)] + ["shared"]
    # powers of two: 1 + d and 1 + 2d are exact in float32
    deltas = {f"band_{b}": 2.0 ** (b - 12) for b in range(7)} | {"shared": 2.0**-5}
    bands = model.parameter_bands()

    def add(scale):
        with torch.no_grad():
            for n, p in trainable(model).items():
                p.add_(deltas[optim.group_key(bands[n])] * scale)

    add(1.0)  # every weight 1 -> 1 + d: ||dW|| / ||W|| = d exactly
    assert mon.step(3) is None and mon.history["step"] == []
    logged = mon.step(5)
    for k, d in deltas.items():
        assert logged[k] == pytest.approx(d, rel=1e-6), k
    add(1.0)  # 1 + d -> 1 + 2d, measured from the new snapshot: d / (1 + d)
    assert mon.step(7) is None
    mon.step(10)
    assert mon.history["step"] == [5, 10]
    for k, d in deltas.items():
        assert mon.history[k] == pytest.approx([d, d / (1 + d)], rel=1e-6), k
    ratios = mon.ratios(at=0)
    for b in range(7):
        r = ratios[f"band_{b}"]
        assert r["measured"] == pytest.approx(2**b, rel=1e-6)
        assert r["prescribed"] == pytest.approx(DEFAULT_LRS[b] / 1e-5)
        assert r["factor"] == pytest.approx(2**b / (DEFAULT_LRS[b] / 1e-5), rel=1e-6)
    assert ratios["shared"]["prescribed"] == pytest.approx(30)
    # prescribed ratios from a geomean arm's groups: all 1
    mon2 = optim.WeightChangeMonitor(model, 5, lrs=optim.param_groups(model, "geomean"))
    assert set(mon2.lrs.values()) == {optim.geometric_mean(DEFAULT_LRS)}
    with pytest.raises(ValueError, match="no interval"):
        mon2.ratios()
    with pytest.raises(ValueError, match="every=0"):
        optim.WeightChangeMonitor(model, every=0)


def test_monitor_follows_real_training_steps():
    """Under AdamW every band moves; the changes are positive and finite."""
    torch.manual_seed(0)
    model = StandInBands()
    opt = optim.make_adamw(model)
    mon = optim.WeightChangeMonitor(model, every=2, lrs=opt.param_groups)
    x = torch.randint(0, 13, (4, 5))
    for step in range(1, 5):
        opt.zero_grad()
        model(x).logsumexp(-1).mean().backward()
        opt.step()
        mon.step(step)
    assert mon.history["step"] == [2, 4]
    assert all(0 < v < 1 for k in mon.keys for v in mon.history[k])
    r = mon.ratios()
    assert r["band_6"]["measured"] > r["band_3"]["measured"] > 1  # faster bands move more


def test_real_band_transformer_and_baseline():
    """The contract on the kit's models: groups partition the parameters, LRs as configured, the
    band share of the groups equals model_summary's, and one scheduled AdamW step is monitored."""
    from akira_nb.bandformer import model as bm

    torch.manual_seed(0)
    cfg = bm.preset("tiny")
    model = bm.BandTransformer(cfg)
    groups = optim.param_groups(model)
    optim.check_partition(model, groups)
    assert [g["name"] for g in groups][-3:] == ["band_6", "band_6/no_decay", "shared/no_decay"]
    assert optim.base_lrs(groups) == {
        **{f"band_{b}": lr for b, lr in enumerate(cfg.band_lrs)},
        "shared": cfg.shared_lr,
    }
    shared_names = {n for g in groups if g["band"] is None for n in g["param_names"]}
    assert model.embedding_parameter_names() <= shared_names
    assert all(g["weight_decay"] == 0 for g in groups if g["band"] is None)
    in_bands = sum(p.numel() for g in groups if g["band"] is not None for p in g["params"])
    summary = bm.model_summary(model)
    assert in_bands == sum(summary["bands"])
    assert in_bands / summary["non_embedding"] == pytest.approx(summary["band_fraction"])

    opt = torch.optim.AdamW(groups)
    mon = optim.WeightChangeMonitor(model, every=1, lrs=opt.param_groups)
    optim.set_lrs(opt, 0, warmup_steps=2, total_steps=10)
    assert opt.param_groups[0]["lr"] == pytest.approx(cfg.band_lrs[0] / 2)
    model.loss(torch.randint(0, cfg.vocab_size, (2, 16))).backward()
    opt.step()
    logged = mon.step(1)
    assert all(v > 0 for v in logged.values())
    assert logged["band_6"] > logged["band_0"]

    for other in (bm.preset("tiny", layout="reference", wormhole=False), bm.preset("tiny_7p1")):
        m = bm.BandTransformer(other)
        names = {g["name"] for g in optim.param_groups(m, "geomean")}
        assert {f"band_{b}" for b in range(other.n_bands)} <= names
    # the model's presets and these LR sets are the same numbers
    assert bm.BandConfig().band_lrs == optim.LR_PRESETS["026_v1"].band_lrs
    for name in ("canonical_7p1", "sbm_7p1"):
        assert tuple(bm.PRESETS[name]["band_lrs"]) == optim.LR_PRESETS[name].band_lrs
    baseline = bm.BaselineTransformer.matched_to(cfg)
    base_groups = optim.param_groups(baseline)
    assert [(g["name"], g["lr"]) for g in base_groups] == [
        ("shared", baseline.cfg.lr),
        ("shared/no_decay", baseline.cfg.lr),
    ]
