# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     notebook_metadata_filter: -jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # 013 · Differential learning rates: does the band LR hierarchy help?
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/akira-nb/akira-nb/blob/main/notebooks/013_differential_lr.ipynb)
#
# **Hypothesis (seed 013).** AKIRA trains each band at its own learning rate: band 0 (DC) at
# 1e-5, band 6 at 3e-2, the temporal band 7 at 1e-3 (3000x from slowest to fastest). The seed
# predicts that this hierarchy, against one uniform LR with "the same total learning budget"
# (the geometric mean of the band LRs), (H1) reaches a target loss 20% faster, (H2) ends with a
# 5% lower test loss, (H3) has 30% less loss variance, and (H4) that each band's weights
# actually change at its prescribed rate (within 2x). H0: a uniform LR does as well.
#
# **Arms**, all at the same token budgets, the same seeds and the same data order (paired):
# `band` (differential), `band_geomean` (one uniform LR for every group, starting at the
# geometric mean: the seed's control), `baseline_differential` (the same LR hierarchy on a
# parameter-matched standard GPT whose hidden units are split into the band slices: is it the
# bands or the LR spread?). `band_uniform` (one LR starting at the shared LR) is the same arm as
# `band_geomean` once its LR is tuned, so it is not trained by default.
#
# **Every arm at its own tuned LR, at two budgets.** An arm's reported loss is at the best point
# of its own LR sweep: multipliers of its prescribed LRs (a differential arm keeps its ratios),
# at least 3 points spanning 10x on the first seed; a best point at an edge adds one point beyond
# it (at most twice, then the run says "the optimum may lie beyond"). The sweep's best run is
# the arm's first seed; the other seeds train at the tuned LR of the longest budget. H1-H4
# compare the tuned arms at the longest budget, and an arm whose final validation loss is not at
# least 0.05 nats below the unigram loss at every seed "did not learn" and judges nothing. The
# sweep ranks its points on the evaluation batches (the curves' set); the reported final
# validation and test losses are over at least 50,000 held-out predictions each.
#
# | size | what runs | cost |
# |---|---|---|
# | `tiny` (CI, CPU) | offline byte corpus, the 7+1 tiny model (8 bands x 16, 2 layers), budgets of 40 and 200 steps x 16 x 32 tokens, 3 arms, each swept at both budgets, 3 seeds at 200 steps | measured on 2 CPU cores: see the CPU-seconds the last cell prints |
# | `t4` | wikitext-103 (GPT-2 tokenizer), the 7+1 model (8 x 64, 6 layers), one budget of 1,000 steps x 16 x 256 tokens, 3 arms, each swept (3+ points), 3 seeds | not yet timed |
# | `a100` | as t4 at 5,000 steps, 5 seeds, the sweeps on 2 seeds | not yet timed |
#
# At `tiny` (below the seed's scale) every verdict is computed and printed, and reads "not
# comparable" in the kit summary, with the computed one beside it.

# %%
# Set-up (the same cell in every notebook): on Colab, clone the kit once and run colab_setup.sh
# (it keeps Colab's torch, numpy and ipywidgets); elsewhere, and once installed, nothing happens.
import importlib.util
import os
import subprocess
import sys

if "google.colab" in sys.modules and importlib.util.find_spec("akira_nb") is None:
    if not os.path.isdir("akira-nb"):
        subprocess.run(["git", "clone", "https://github.com/akira-nb/akira-nb.git"], check=True)
    setup = subprocess.run(["bash", "akira-nb/colab_setup.sh"], capture_output=True, text=True)
    print(setup.stdout, setup.stderr)
    setup.check_returncode()
    sys.path.insert(0, os.path.abspath("akira-nb"))

# %% tags=["parameters"]
from akira_nb import runtime

SIZE = runtime.get_size()
runtime.warn_if_no_gpu(SIZE)
LR_PRESET = None  # None: "013" (1e-5 .. 3e-2, band 7 1e-3); also 026_v1, canonical_7, spec_b_warmstart, sbm_7p1
SEEDS = None  # None: the size's (tiny/t4 [0, 1, 2], a100 [0..4])
BUDGETS = None  # None: the size's total steps per budget (tiny [40, 200], t4 [1000], a100 [5000])
SWEEP = None  # None: multipliers 0.316, 1, 3.16 of each arm's prescribed LRs; []: no sweep
TARGET_LOSS = None  # None: the tuned uniform control's mean final val loss x 1.02
OFFLINE = False  # True: local stand-ins of the same shape for every download (random weights,
# the offline corpus): runs the t4 / a100 shapes anywhere; every verdict reads "not comparable"
RESUME = runtime.resume_default(SIZE)  # above tiny: continue the newest run after a disconnect
USE_DRIVE = SIZE != "tiny"  # on Colab, keep runs and checkpoints on Google Drive

# %%
import time

from IPython.display import display

from akira_nb import runs
from akira_nb.bandformer import look_inside
from akira_nb.differential_lr import experiment, plots, presets, widgets

started, cpu_started = time.perf_counter(), time.process_time()
runs.use_drive(enabled=USE_DRIVE)  # no-op outside Colab
plan = presets.study(
    SIZE,
    lr_preset=LR_PRESET,
    seeds=SEEDS,
    budgets=BUDGETS,
    sweep=SWEEP,
    target_loss=TARGET_LOSS,
    offline=OFFLINE,
)
print("device:", runtime.get_device())
print(plan.describe())

# %% [markdown]
# ## Tune and train every arm at every budget
# One `akira_nb.bandformer.train` call per arm, LR, budget and seed into one run folder; each is
# saved to `arms/<arm>_x<multiplier>_b<steps>_s<seed>.json` as it finishes. With `RESUME`,
# re-running this cell reloads the finished ones and continues a half-trained one from its
# checkpoint.

# %%
out = experiment.run_experiment(
    plan, name=f"notebook-{SIZE}-{plan.lr_preset}", resume=RESUME, log=None
)
run = out["run"]
print("\n".join(out["lines"][:3]))
print("run folder:", run.path)

# %% [markdown]
# ## Each arm's tuned LR at each budget, and the learning check
# The tuned multiplier of the arm's prescribed LRs, the LR it gives (the geometric mean over the
# bands, the one LR of a uniform arm), the final validation loss over the seeds trained there,
# and whether the arm beat the unigram loss by the margin at every seed. Below it every sweep
# point; the figure draws them (the starred point is the tuned one; the open marker with its
# bar, the tuned arm's mean over every seed, which the verdicts compare).

# %%
print(out["tables"]["tuned"])
print()
print(out["tables"]["sweep"])
fig = plots.plot_sweep(out["sweep"], out["tuned"], out["unigram"])

# %% [markdown]
# ## Every tuned arm at the longest budget: mean +- std over seeds
# Steps to the target validation loss (linearly interpolated between evaluations; an arm that
# never gets there counts as the budget), final train / validation / test loss, the train-loss
# variance over the last quarter of the steps after the warm-up (half the variance of its
# step-to-step differences, so a curve still falling is not counted as noise), and the spikes
# (steps above 2x the median of the 20 before, reported beside it). The trivial baseline: the
# unigram cross-entropy.

# %%
print(out["tables"]["arms"])
print(f"target: {out['target']:.4f} ({out['target_rule']})")
print(
    f"unigram cross-entropy: val {out['unigram']:.4f}, test {out['unigram_test']:.4f} (the "
    f"final-loss sets), {out['unigram_eval']:.4f} on the evaluation batches (the curves')"
)

# %% [markdown]
# ## Curves with seed bands (the tuned arms, longest budget)

# %%
curves = experiment.curves_of(out["tuned_records"])
fig = plots.plot_curves(curves, out["target"], out["unigram_eval"])  # the curves' own set

# %% [markdown]
# ## Do the bands move at their prescribed rates? (H4)
# Each band's ||dW|| / ||W|| per monitor interval relative to band 0's (the median over
# intervals, geometric mean over seeds) against its prescribed LR ratio, as one point per band
# (bands are categories: no line joins them). Left, on log axes: on the diagonal a band moves
# exactly as its LR says; the dashed lines are the seed's 2x band. Right: the factor measured /
# prescribed per band, the 2x band shaded. The no-bands arm is measured per hidden slice; the
# uniform control sits at prescribed ratio 1.

# %%
fig = plots.plot_rates(out["rates"])

# %% [markdown]
# ## Look inside the trained band model
# The tuned `band` arm's model (its first seed, final weights) on 8 held-out validation blocks,
# in the TransformerLens way: `run_with_cache` keeps every hook's activations, and
# `blocks.<l>.hook_band_out` (the block's output, one slot per band) gives each band's mean
# activation norm per block.

# %%
model = experiment.trained_model(out, "band")
logits, cache = model.run_with_cache(out["val_blocks"][:8])
fig = look_inside.plot_band_norms(cache, "hook_band_out")

# %% [markdown]
# ## The seed's results (section 4) and conclusion (section 5), filled in
# Every blank is a measured number; each H line is decided by the rule printed under it.

# %%
print(out["tables"]["template"])

# %% [markdown]
# ## Explore the saved results
# Pick an LR preset (this notebook's study, and every other 013 study saved under this runs
# root, the newest per preset), an arm and the arm to draw beside it (the uniform control
# first): their curves, their measures and the verdicts. It opens on the study just run. The
# static figure first (the explorer's first view), so a saved notebook keeps it.

# %%
saved = widgets.load_results()
saved[plan.lr_preset] = run.read_results()  # this study, whatever else was saved after it
lines, fig = widgets.explore(saved, plan.lr_preset, "band")  # the callback, called directly once
print("\n".join(lines[:6]))
display(fig)
box, controls = widgets.build_explorer(saved, lr_preset=plan.lr_preset)
display(box)

# %% [markdown]
# ## The verdict
# The run's own cost: its process CPU time (every thread) beside the wall time, measured here.

# %%
assert set(out["figures"]) == {f.stem for f in (run.path / "figures").glob("*.png")}
assert "_____" not in out["tables"]["template"]
if SIZE == "tiny" and SWEEP is None and BUDGETS is None:  # the preset trains long enough
    assert all(r["learned"] for r in out["tuned"][plan.longest].values()), out["tables"]["tuned"]
size = sum(f.stat().st_size for f in run.path.rglob("*") if f.is_file())
print(f"run folder {run.path}: {size / 1e6:.1f} MB")
print(
    f"the study: {out['cpu_seconds']:.0f} CPU-s ({out['wall_seconds']:.0f} s wall); this notebook: "
    f"{time.process_time() - cpu_started:.0f} CPU-s ({time.perf_counter() - started:.0f} s wall)"
)
runs.flush_drive()  # Drive writes are asynchronous; a no-op outside Colab
print(out["recommendation"]["line"], f"(rule: {out['recommendation']['rule']})")
