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
# # 000 · Action Quanta: do two language models share MLP neurons?
#
# [![Open In Colab](https://colab.research.google.com/assets/colab-badge.svg)](https://colab.research.google.com/github/akira-nb/akira-nb/blob/main/notebooks/000_action_quanta.ipynb)
#
# **Hypothesis (seed 000).** Some MLP neurons of two different language models (gpt2 vs
# gpt2-medium, or pythia-70m vs pythia-160m) are the same unit: "Action Quanta" (AQ). The seed
# finds them by comparing neuron *i* of A with neuron *i* of B (its *basic* method: correlation
# over tokens minus a random-rotation baseline, AQ above 0.3), then by aligning the two models
# (CKA, optimal-transport matching, Procrustes), on random tokens (structural AQ) and on text
# (semantic AQ); AQ found by both are *universal*, and are said to be low-frequency along the
# sequence. Its table reads the AQ share: > 20 % very strong, 10-20 % strong, 5-10 % moderate,
# < 5 % weak.
#
# **What this notebook does that the reference did not.** Every neuron of both models is kept
# (gpt2's 3072 against all 4096 of gpt2-medium); Procrustes is fitted on half of the sequences
# and scored on the other half; BOS (led by it, random rows too: the first position is an
# attention sink), pad and document separators are excluded; the spectra of
# each method's AQ are taken from the model its indices name; and **every AQ count is printed
# beside the count expected by chance**: a token-shuffle null for every method, and for the basic
# method a neuron-permutation null (neuron *i* of A against a random neuron of B), which is what
# index matching finds between unrelated neurons. Beyond the seed, two grokking models give a
# ground truth: their neurons have known key frequencies, so matched neurons should share them.
#
# | size | what runs | cost |
# |---|---|---|
# | `tiny` (CI, CPU) | two 2-layer GPT-2-style models trained offline (seeds 0 and 1), both layers, 64 x 64 tokens per input type; grokking p = 23 | measured on 2 CPU cores: see the CPU-seconds the run prints (the first run also trains and caches the tiny pair) |
# | `t4` | the seed's protocol: gpt2 vs gpt2-medium, layers 3 / 5 / 7 by index, 500 x 64 random tokens and 500 x 64 of wikitext-2 | not yet timed on a T4 (target < 30 min) |
# | `a100` | every layer of A paired by relative depth, 40,000 x 64 tokens (2.56 M) per input type, wikitext-103; any pair, including the known-answer ones | not yet timed |
#
# Away from the seed's protocol (for example at `tiny`) the reference's numbers are still
# printed beside the measured ones, and every verdict about them reads "not comparable".

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
# None: the size's preset (tiny: the tiny pair; t4 / a100: gpt2/gpt2-medium). Other pairs:
# "pythia-70m/pythia-160m" (the seed's alternative), and the known-answer pairs (same
# architecture, other training seeds) "pythia-160m/pythia-160m-seed1" (-seed2, -seed3),
# "stanford-gpt2-small-a/b" (... /e), "stanford-gpt2-medium-a/b" (... /e)
PAIR = None
LAYER_PAIRING = None  # None: the preset's ("index" at tiny / t4, "depth" at a100)
INPUT_TYPE = "both"  # "random" (structural), "text" (semantic) or "both" (universal AQ)
THRESHOLD_METHOD = None  # aligned methods' rule; None: "statistical" (mean + 2 std, the seed's)
MATCH_METHOD = None  # OT: None = "emd"; "hungarian" for a one-to-one match
RUN_GROKKING = True  # the ground truth beyond the seed
OFFLINE = False  # True: local stand-ins of the same shape for every download (random weights,
# the offline corpus): runs the t4 / a100 shapes anywhere; every verdict reads "not comparable"
RESUME = runtime.resume_default(SIZE)  # above tiny: continue the newest run after a disconnect
USE_DRIVE = SIZE != "tiny"  # on Colab, keep runs and checkpoints on Google Drive

# %%
from akira_nb import runs
from akira_nb.action_quanta import experiment, plots, presets, widgets
from akira_nb.alignment import activations, aq

runs.use_drive(enabled=USE_DRIVE)  # no-op outside Colab
# the one way to build the settings: the size's preset with this notebook's knobs on top (the
# CLI builds its settings the same way)
study = presets.study(
    SIZE,
    offline=OFFLINE,
    pair=PAIR,
    grokking=RUN_GROKKING,
    layer_pairing=LAYER_PAIRING,
    input_type=INPUT_TYPE,
    threshold_method=THRESHOLD_METHOD,
    match_method=MATCH_METHOD,
)
print(study.describe())
print("\n".join(f"note: {n}" for n in study.notes))
print(study.aq)

# %% [markdown]
# ## Run the comparison
# Both models read the same tokens. For every compared layer pair, the correlation of every
# neuron of A with every neuron of B is accumulated batch by batch (float64 running sums, so
# memory does not grow with the number of tokens), together with the same statistics for B's
# tokens shuffled against A's (the null). The stream is saved in the run folder every few
# batches: with `RESUME`, re-running this cell after a disconnect continues where it stopped.
# A sample of sequences is kept in memory for CKA, Procrustes and the spectra. Then the
# grokking models train. The cell ends with one line per analysis (each count beside the count
# expected by chance over every compared layer pair) and with what the run cost, measured: its
# CPU-seconds (every thread of this process) beside its wall seconds.

# %%
out = experiment.run_experiment(
    study, name=f"notebook-{experiment.run_name(study)}", resume=RESUME, log=None
)
result, run = out["result"], out["run"]
print("\n".join(out["lines"].values()))
print(experiment.cost_line(out["cost"]))
print("run folder:", run.path)

# %% [markdown]
# ## Look inside model A
# In the TransformerLens way: `run_with_cache` on two random sequences keeps every hook's
# activations; the first compared layer's MLP neurons (`blocks.<l>.mlp.hook_post`, the
# activations every method here correlates) for one sequence, position by neuron.

# %%
model_a, layer_a = out["models"][0], result.layer_pairs[0][0]
look = activations.random_tokens(activations.vocab_size(model_a), 2, 32, seed=0).tokens
logits, cache = model_a.run_with_cache(look.to(next(model_a.parameters()).device))
fig = plots.neuron_activations(cache, activations.mlp_hook(layer_a))

# %% [markdown]
# ## The basic method (the seed's): neuron *i* of A vs neuron *i* of B
# Excess = index-matched correlation minus its mean over 5 Haar rotations of B's neurons; AQ =
# excess > 0.3 (Gurnee et al.'s 0.5 beside it). Read each count against the two chance counts
# printed beside it. The rotated baseline of one neuron spreads widely (a rotated neuron mixes
# every neuron of B), so "actual minus baseline" exceeds 0.3 for many pairs of unrelated
# neurons: the neuron-permutation null counts them. Gurnee et al.'s form (max correlation over
# B's neurons minus the same under a rotation) is printed below it, for the paired layer and,
# on text (where Gurnee et al. measured), over every layer of B, as they defined it (on by
# default at `tiny` and for the known-answer pairs; the known-answer claim reads it).

# %%
for pr in result.pairs[study.aq.input_types[0]].values():
    print("\n".join(pr.methods["basic"].lines() + pr.methods["gurnee"].lines()))
print("\n".join(result.gurnee_lines()))
first = next(iter(result.pairs[study.aq.input_types[0]].values()))
fig = plots.seed_figure(first)

# %% [markdown]
# ## The aligned method: CKA, optimal transport, held-out Procrustes
# CKA compares the two layers as wholes (1 = the same representation up to rotation and scale;
# the CKA of a token-shuffled pair is printed beside it). CKA (linear and debiased) and
# Procrustes run on an in-memory sample (`sample_sequences`: 256 sequences, about 16,000
# tokens, at `t4` / `a100`; every sequence at `tiny`), whose token counts each line prints;
# with `stream_cka` (on at `tiny` and `a100`) linear CKA is also computed exactly over every
# streamed token from the running sums. OT matches every A neuron to one B
# neuron with cost 1 - |corr|; Procrustes fits an orthogonal map from A to B on half of the
# sequences and scores each B neuron's held-out correlation with its prediction (error 0 is a
# perfect map, 1 is no better than predicting 0). The share the statistical rule (mean + 2 std)
# flags is set by the shape of the scores, not by any correspondence: about 2.3% of a Gaussian,
# up to about 5% of a heavy right tail, and nothing at all of bounded scores piled up near 1
# (matched |corr| of two similar models), where mean + 2 std lies above every score. So each
# count is read against its null count above the same threshold, a rule that flags nothing in
# the data and the null is said to flag nothing (not "weak"), and the fixed-0.5 count is printed
# beside it.

# %%
for by in result.pairs.values():
    for pr in by.values():
        print("\n".join(pr.aligned_lines()))
fig = plots.cka_heatmap(
    *result.cka_matrix[study.aq.input_types[0]], title=f"{study.aq.input_types[0]} tokens"
)
fig = plots.ot_matches(first)

# %% [markdown]
# ## Random vs text tokens, and universal AQ
# Structural AQ (random tokens) and semantic AQ (text) of the same method and layer pair are
# compared in the same model's neuron index space; their intersection is the universal AQ.
# Both sets score the **same neurons**, and a neuron's own properties (its spread, how much it
# co-varies with the other model as a whole) carry over from random tokens to text, so two sets
# that are each at chance overlap more than two independent sets would. The chance level is
# therefore a paired null: the same null (the same neuron permutations of B for the basic
# method, the token shuffles for the others) applied to both input types, each replicate
# thresholded by the same rule, and the overlap of the two null sets taken, over every
# replicate (mean and permutation p-value). A p-value from R replicates cannot go below
# 1 / (1 + R), so a null of fewer than 19 replicates (the single streamed token shuffle of the
# Gurnee and OT methods) prints its replicate count and judges nothing. The hypergeometric
# number beside it is only the independence bound, which is what the reference compared against.

# %%
print("\n".join(result.universal_lines()) or "universal AQ need INPUT_TYPE = 'both'")
fig = plots.universality(result)

# %% [markdown]
# ## Spectral analysis: are AQ neurons low-frequency along the sequence?
# Per neuron: the power spectrum along the sequence (averaged over sequences), its spectral
# centroid with and without the DC bin, and its power in 7 equal-width bands. The FFT sees the
# positions after BOS only, and only sequences without a document separator (a separator would
# put a jump to another document's context into the sequence). AQ and other
# neurons are compared with a two-sided Mann-Whitney U test. Each method's AQ indices name one
# model's neurons (basic / Gurnee / OT: A's; Procrustes: B's), and the spectra come from that
# model (the reference took A's spectra for indices of B's neurons).

# %%
print("\n".join(result.spectral_lines()))
tested = [(m, k, s) for m, by in result.spectral.items() for k, s in by.items() if s["n_aq"] >= 2]
if tested:
    fig = plots.spectral_figure(tested[0][2])

# %% [markdown]
# ## Verdicts (the seed's interpretation table)
# Applied, as the seed did, to the raw AQ %, and to the % above chance, which is the figure that
# means something: the count over every compared layer pair minus the count expected by chance
# over the same pairs (per pair, the largest mean count of the method's nulls above the same
# threshold), so it is negative whenever the whole set is below chance. A count within 2
# standard deviations of its chance count reads "at chance" (the rule is printed first), and
# only a count above chance gets a word of the seed's table. Where the rule flags nothing in
# the data nor the null, no verdict is read from it; the counts above fixed 0.5 follow on each
# line, each with its own reading against chance. A universal overlap whose paired null has
# fewer than 19 replicates prints its replicate count and is "not measurable" (a permutation
# p-value from so few cannot reach 0.05).

# %%
print(f"chance: {aq.CHANCE_RULE}")
print("\n".join(result.verdicts()))

# %% [markdown]
# ## The reference's reported numbers beside this run's
# The reference (gpt2 vs gpt2-medium, layers 3 / 5 / 7, 500 x 64 tokens) reported these; each is
# printed beside the measured value at every compared layer pair, with its chance level, and
# marked "not comparable" when the models or the protocol differ. Then each claim with its rule
# and verdict (the same rows go into the kit summary).

# %%
print(experiment.reference_table(out["reference"]))
print()
print("\n".join(experiment.claim_lines(out["claims"])))

# %% [markdown]
# ## Beyond the seed: a ground truth from grokking
# Two one-layer models trained on a + b mod p with different seeds. A grokked model's MLP
# neurons each follow one key frequency of Z_p, so the answer is known: a correct matching pairs
# neurons of the same frequency far more often than the chance rate sum_k P_A(k) P_B(k), and
# index matching (the seed's basic pairing) does not.

# %%
if out["grok"] is not None:
    print("\n".join(experiment.grokking_lines(out["grok"])))
    fig = plots.grokking_figure(out["grok"])

# %% [markdown]
# ## Explorer
# Pick the tokens, the layer pair, the method, the threshold rule and its value: the count, the
# counts expected by chance and the histogram update. The static figure first (the explorer's
# default view), so a saved notebook keeps it.

# %%
from IPython.display import display

counts, line, fig = widgets.explore(result, study.aq.input_types[0], first.key, "ot", "fixed", 0.5)
print(line)
display(fig)  # the explorer's figures are not pyplot's: display them
box, controls = widgets.build_explorer(result)
display(box)

# %%
# Sanity checks that fail the notebook run if the pipeline went wrong, and the saved artefacts.
for by in result.pairs.values():
    for pr in by.values():
        assert 0.0 <= pr.cka["linear"] <= 1.0 and pr.cka["linear_null"] < pr.cka["linear"]
        assert pr.methods["ot"].scores.shape[0] == result.models["A"]["d_mlp"]
print("figures:", sorted(p.name for p in (run.path / "figures").iterdir()))
print("results:", run.path / "results.json")
runs.flush_drive()  # Drive writes are asynchronous; a no-op outside Colab
