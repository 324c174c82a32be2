"""Per-band parameter groups, LR modes, the schedule and the weight-change monitor, on small
stand-in models that follow the model/optim contract (parameter_bands, embedding names, cfg)."""

import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from akira_nb.bandformer import monitor, optim

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
    mon = monitor.WeightChangeMonitor(model, every=5)
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
    mon2 = monitor.WeightChangeMonitor(model, 5, lrs=optim.param_groups(model, "geomean"))
    assert set(mon2.lrs.values()) == {optim.geometric_mean(DEFAULT_LRS)}
    with pytest.raises(ValueError, match="no interval"):
        mon2.ratios()
    with pytest.raises(ValueError, match="every=0"):
        monitor.WeightChangeMonitor(model, every=0)


def test_monitor_follows_real_training_steps():
    """Under AdamW every band moves; the changes are positive and finite."""
    torch.manual_seed(0)
    model = StandInBands()
    opt = optim.make_adamw(model)
    mon = monitor.WeightChangeMonitor(model, every=2, lrs=opt.param_groups)
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
    mon = monitor.WeightChangeMonitor(model, every=1, lrs=opt.param_groups)
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


# ----------------------------------------------------------------------------- 013 additions

# (preset, geometric mean worked out by hand from the product of its band LRs)
HAND_GEOMEANS = {
    "026_v1": (1e-5 * 3e-5 * 1e-4 * 3e-4 * 1e-3 * 3e-3 * 1e-2) ** (1 / 7),  # 3.09e-4
    "canonical_7p1": (1e-5 * 1e-4 * 3e-4 * 1e-3 * 3e-3 * 1e-2 * 3e-2 * 1e-3) ** (1 / 8),
    "013": (1e-5 * 1e-4 * 3e-4 * 1e-3 * 3e-3 * 1e-2 * 3e-2 * 1e-3) ** (1 / 8),
    "canonical_7": (1e-5 * 1e-4 * 3e-4 * 1e-3 * 3e-3 * 1e-2 * 3e-2) ** (1 / 7),
    "spec_b_warmstart": 1e-4 * (0.1 * 0.2 * 0.4 * 0.6 * 0.8 * 1.0 * 1.2 * 0.6) ** (1 / 8),
    "sbm_7p1": (3e-5 * 5e-5 * 1e-4 * 3e-4 * 5e-4 * 1e-3 * 3e-3 * 3e-4) ** (1 / 8),
    "026_uniform": 3e-4,
}


@pytest.mark.parametrize("name", sorted(optim.LR_PRESETS))
def test_each_presets_geometric_mean_and_same_total_learning_budget(name):
    pre = optim.lr_preset(name)
    g = optim.geometric_mean(pre.band_lrs)
    assert g == pytest.approx(HAND_GEOMEANS[name], rel=1e-12)
    b = optim.learning_budget(pre.band_lrs)
    assert b["geometric_mean"] == g and b["n_bands"] == len(pre.band_lrs)
    # the uniform LR at the geometric mean keeps the log budget (the product of the LRs) ...
    assert b["uniform_log_budget"] == pytest.approx(b["log_budget"], rel=1e-12)
    assert math.prod([g] * len(pre.band_lrs)) == pytest.approx(math.prod(pre.band_lrs), rel=1e-9)
    # ... and not the plain sum (AM >= GM, equal only for a uniform set)
    assert b["arithmetic_mean"] == pytest.approx(sum(pre.band_lrs) / len(pre.band_lrs))
    assert b["arithmetic_over_geometric"] >= 1 - 1e-12
    assert (b["ratio_max_min"] == pytest.approx(1.0)) == (name == "026_uniform")


def test_the_inventorys_geometric_means_and_ratios():
    # inventory 4.1: ~8.5e-4 over the 8 canonical LRs, ~8.3e-4 over bands 0-6; ratio 3000x
    assert optim.geometric_mean(optim.LR_PRESETS["013"].band_lrs) == pytest.approx(8.5e-4, rel=0.01)
    assert optim.geometric_mean(optim.LR_PRESETS["canonical_7"].band_lrs) == pytest.approx(
        8.3e-4, rel=0.01
    )
    assert optim.learning_budget(optim.LR_PRESETS["013"].band_lrs)[
        "ratio_max_min"
    ] == pytest.approx(3000)
    assert optim.LR_PRESETS["013"].band_lrs == optim.LR_PRESETS["canonical_7p1"].band_lrs


def test_custom_lr_preset_and_its_errors():
    c = optim.lr_preset("custom", band_lrs=[1e-4, 1e-2])
    assert c.band_lrs == (1e-4, 1e-2) and c.shared_lr == pytest.approx(1e-3)
    assert optim.lr_preset("custom", band_lrs=(1e-4, 1e-2), shared_lr=5e-4).shared_lr == 5e-4
    with pytest.raises(ValueError, match="lr_preset='nope' is not allowed"):
        optim.lr_preset("nope")
    with pytest.raises(ValueError, match="needs band_lrs"):
        optim.lr_preset("custom")
    with pytest.raises(ValueError, match="pass lr_preset='custom'"):
        optim.lr_preset("013", band_lrs=(1e-3, 1e-2))
    with pytest.raises(ValueError, match=r"band_lrs\[1\]=0"):
        optim.lr_preset("custom", band_lrs=(1e-3, 0))


def test_monitor_recovers_known_ratios_under_plain_sgd_per_group_lrs():
    # every weight 1, a fixed gradient of ones: SGD moves every weight of band b by lr_b, so
    # ||dW|| / ||W|| = lr_b exactly (powers of two: 1 - lr is exact in float32) and the measured
    # ratios are the prescribed ones (up to 2^10 = 1024x between band 0 and band 6)
    lrs = tuple(2.0 ** -(16 - b * 10 // 6) for b in range(7))
    model = StandInBands(band_lrs=lrs, shared_lr=2.0**-11)
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(1.0)
    groups = optim.param_groups(model, "differential", weight_decay=0.0)
    opt = torch.optim.SGD(groups, lr=1.0)
    mon = monitor.WeightChangeMonitor(model, every=1, lrs=opt.param_groups)
    for p in trainable(model).values():
        p.grad = torch.ones_like(p)
    opt.step()
    logged = mon.step(1)
    for b, lr in enumerate(lrs):
        assert logged[f"band_{b}"] == pytest.approx(lr, rel=1e-6)
    assert logged["shared"] == pytest.approx(2.0**-11, rel=1e-6)
    ratios = mon.ratios()
    assert ratios["band_6"]["prescribed"] == 2.0**10
    for k, r in ratios.items():
        assert r["factor"] == pytest.approx(1.0, rel=1e-6), k


def _tiny_baseline():
    from akira_nb.bandformer import model as bm

    torch.manual_seed(0)
    band_cfg = bm.preset("tiny")
    return bm.BaselineTransformer.matched_to(band_cfg), band_cfg


def test_proportional_slices():
    assert optim.proportional_slices(6, (2, 1, 3)).tolist() == [0, 0, 1, 2, 2, 2]
    # twice as wide: every slice twice as long
    assert optim.proportional_slices(12, (2, 1, 3)).tolist() == [0] * 4 + [1] * 2 + [2] * 6
    counts = torch.bincount(optim.proportional_slices(96, (32, 24, 20, 16, 16, 12, 8)))
    assert counts.tolist() == [24, 18, 15, 12, 12, 9, 6]  # 96 / 128 of each band dim
    with pytest.raises(ValueError, match="cannot be split"):
        optim.proportional_slices(2, (1, 1, 1))


def test_sliced_adamw_steps_each_slice_at_its_band_lr():
    # AdamW's first step on a fixed gradient moves each weight by lr * (wd * w + g / (|g| + eps)):
    # with g = 1 and eps tiny the step of a row in slice i is band_lr_i * (wd * w + 1) exactly
    model, band_cfg = _tiny_baseline()
    lrs = band_cfg.band_lrs
    opt = optim.make_sliced_adamw(model, band_cfg.band_dims, lrs, 3e-4, weight_decay=0.1, eps=1e-12)
    assert [g["name"] for g in opt.param_groups] == [
        "hidden",
        "hidden/no_decay",
        "shared/no_decay",
    ]
    rows = opt.row_slices
    names = dict(model.named_parameters())
    assert "W_E" not in rows and "ln_final.weight" not in rows
    qkv = rows["blocks.0.attn.qkv.weight"]
    d = model.cfg.d_model
    assert torch.equal(qkv[:d], qkv[d : 2 * d]) and torch.equal(qkv[:d], rows["blocks.0.ln1.bias"])
    before = {n: p.detach().clone() for n, p in names.items()}
    for p in model.parameters():
        p.grad = torch.ones_like(p)
    opt.step()
    lr_t = torch.tensor(lrs, dtype=torch.float64)
    for name, idx in rows.items():
        p, w = names[name].detach().double(), before[name].double()
        wd = 0.1 if p.ndim >= 2 else 0.0
        shape = (-1,) + (1,) * (p.ndim - 1)
        want = -lr_t[idx].view(shape) * (wd * w + 1.0)
        torch.testing.assert_close(p - w, want, rtol=2e-3, atol=1e-9)
    # per-slice step sizes in the prescribed ratios: slice i's mean |step| / slice 0's
    w = names["blocks.1.mlp.fc_out.bias"].detach() - before["blocks.1.mlp.fc_out.bias"]
    idx = rows["blocks.1.mlp.fc_out.bias"]
    per_slice = torch.stack([w[idx == i].abs().mean() for i in range(len(lrs))]).double()
    assert (per_slice / per_slice[0]).tolist() == pytest.approx(
        [lr / lrs[0] for lr in lrs], rel=1e-3
    )
    # shared parameters stepped at the shared LR
    dE = names["W_E"].detach() - before["W_E"]
    assert dE.abs().mean().item() == pytest.approx(3e-4, rel=1e-3)


def test_monitor_per_slice_on_a_sliced_model():
    # set each weight to 1, move every row of slice i by 2^-(10 - i): the monitor's slice keys
    # recover those changes exactly (the rows of each tensor summed into their slices)
    model, band_cfg = _tiny_baseline()
    opt = optim.make_sliced_adamw(model, band_cfg.band_dims, band_cfg.band_lrs, 3e-4)
    with torch.no_grad():
        for p in model.parameters():
            p.fill_(1.0)
    mon = monitor.WeightChangeMonitor(
        model, every=2, lrs=optim.prescribed_lrs(opt), row_slices=opt.row_slices
    )
    assert mon.keys == [f"band_{i}" for i in range(7)] + ["shared"]
    deltas = torch.tensor([2.0 ** -(10 - i) for i in range(7)])
    with torch.no_grad():
        for n, p in model.named_parameters():
            if n in opt.row_slices:
                p.add_(deltas[opt.row_slices[n]].view((-1,) + (1,) * (p.ndim - 1)))
            else:
                p.add_(2.0**-4)
    logged = mon.step(2)
    for i in range(7):
        assert logged[f"band_{i}"] == pytest.approx(float(deltas[i]), rel=1e-6)
    assert logged["shared"] == pytest.approx(2.0**-4, rel=1e-6)
    assert mon.lrs["band_6"] == band_cfg.band_lrs[6] and mon.lrs["shared"] == 3e-4
    # state_dict off the grid holds the snapshot; a fresh monitor loaded from it continues alike
    state = mon.state_dict(3)
    assert "snapshot" in state and state["last_step"] == 2
    other = monitor.WeightChangeMonitor(
        model, every=2, lrs=optim.prescribed_lrs(opt), row_slices=opt.row_slices
    )
    other.load_state_dict(state)
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(1.5)
    assert other.step(4) == pytest.approx(mon.step(4))
    with pytest.raises(ValueError, match="does not fit"):
        monitor.WeightChangeMonitor(
            model, every=3, lrs=optim.prescribed_lrs(opt), row_slices=opt.row_slices
        ).load_state_dict(state)
    with pytest.raises(ValueError, match="model without bands"):
        optim.make_sliced_adamw(StandInBands(), (1,) * 7, DEFAULT_LRS, 3e-4)
