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
# **Arms**, all at the same token budget, the same seeds and the same data order (paired):
# `band` (differential), `band_geomean` (uniform at the geometric mean: the seed's control),
# `band_uniform` (uniform at the shared LR), `baseline_differential` (the same LR hierarchy on a
# parameter-matched standard GPT whose hidden units are split into the band slices: is it the
# bands or the LR spread?). A uniform-LR sweep around the geometric mean tunes the control.
#
# | size | what runs | cost |
# |---|---|---|
# | `tiny` (CI, CPU) | offline byte corpus, the 7+1 tiny model (8 bands x 16, 2 layers), 80 steps x 16 x 32 tokens, 4 arms x 3 seeds + 2 sweep points | about 1 minute on one CPU thread (the last cell prints this run's) |
# | `t4` | wikitext-103 (GPT-2 tokenizer), the 7+1 model (8 x 64, 6 layers), 1,000 steps x 16 x 256 tokens, 4 arms x 3 seeds + 3 sweep points | not yet timed |
# | `a100` | as t4 at 5,000 steps, 5 seeds, the sweep on 2 seeds | not yet timed |
#
# At `tiny` (below the seed's scale) every verdict is computed and printed, and reads "not
# comparable" in the kit summary.

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
TOTAL_STEPS = None  # None: the size's (tiny 80, t4 1000, a100 5000)
TARGET_LOSS = None  # None: the uniform control's mean final val loss x 1.02
OFFLINE = False  # True: local stand-ins of the same shape for every download (random weights,
# the offline corpus): runs the t4 / a100 shapes anywhere; every verdict reads "not comparable"
RESUME = SIZE != "tiny"  # continue the newest run of this size after a disconnect
USE_DRIVE = SIZE != "tiny"  # on Colab, keep runs and checkpoints on Google Drive

# %%
import time

from IPython.display import display

from akira_nb import runs
from akira_nb.differential_lr import experiment, plots, widgets

started = time.perf_counter()
runs.use_drive(enabled=USE_DRIVE)  # no-op outside Colab
plan = experiment.study(
    SIZE,
    lr_preset=LR_PRESET,
    seeds=SEEDS,
    total_steps=TOTAL_STEPS,
    target_loss=TARGET_LOSS,
    offline=OFFLINE,
)
print("device:", runtime.get_device())
print(plan.describe())

# %% [markdown]
# ## Train every arm x seed, then the uniform sweep
# One `akira_nb.bandformer.train` call per arm and seed into one run folder; each is saved to
# `arms/<arm>_s<seed>.json` as it finishes. With `RESUME`, re-running this cell reloads the
# finished ones and continues a half-trained one from its checkpoint.

# %%
out = experiment.run_study(plan, name=f"notebook-{SIZE}-{plan.lr_preset}", resume=RESUME, log=None)
run = out["run"]
print("\n".join(out["lines"][:3]))
print("run folder:", run.path)

# %% [markdown]
# ## Every arm: mean +- std over seeds
# Steps to the target validation loss (linearly interpolated between evaluations; an arm that
# never gets there counts as the budget), final train / validation / test loss, the train-loss
# variance over the last quarter of the steps after the warm-up (half the variance of its
# step-to-step differences, so a curve still falling is not counted as noise), and the spikes
# (steps above 2x the median of the 20 before, reported beside it). The trivial baseline: the
# unigram cross-entropy.

# %%
print(out["tables"]["arms"])
print(f"target: {out['target']:.4f} ({out['target_rule']})")
print(f"unigram cross-entropy: val {out['unigram']:.4f}, test {out['unigram_test']:.4f}")

# %% [markdown]
# ## Curves with seed bands

# %%
fig = plots.plot_curves(experiment.curves_of(out["records"]), out["target"], out["unigram"])

# %% [markdown]
# ## Do the bands move at their prescribed rates? (H4)
# Each band's ||dW|| / ||W|| per monitor interval relative to band 0's (the median over
# intervals, geometric mean over seeds) against its prescribed LR ratio, on log axes: on the
# diagonal a band moves exactly as its LR says; the dashed lines are the seed's 2x band. The
# no-bands arm is measured per hidden slice; the uniform control sits at prescribed ratio 1.

# %%
fig = plots.plot_rates(out["rates"])

# %% [markdown]
# ## The uniform-LR sweep: is the control tuned?
# The band model at uniform LRs around the geometric mean (x1 is the control arm, "shared LR"
# the `band_uniform` arm), final validation loss on the sweep seeds; the dashed line is the
# differential arm's.

# %%
print(out["tables"]["sweep"])
fig = plots.plot_sweep(out["sweep"], plan.geomean, out["stats"])

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

# %%
assert set(out["figures"]) == {f.stem for f in (run.path / "figures").glob("*.png")}
assert "_____" not in out["tables"]["template"]
size = sum(f.stat().st_size for f in run.path.rglob("*") if f.is_file())
seconds = time.perf_counter() - started
print(f"run folder {run.path}: {size / 1e6:.1f} MB; this notebook took {seconds:.0f} s")
runs.flush_drive()  # Drive writes are asynchronous; a no-op outside Colab
print(out["recommendation"]["line"], f"(rule: {out['recommendation']['rule']})")
