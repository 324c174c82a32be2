"""The kit's parameter-matched baseline GPT beside karpathy/nanoGPT's ``GPT``, trained the same
way on the kit's tiny data: validation losses, their difference over seeds, parameter counts.

The 026 / 013 experiments compare the band transformer against a "parameter-matched standard
GPT" (the ``baseline`` arm, ``BaselineTransformer.matched_to`` the band config). This benchmark
guards the claim that it is a standard GPT: it trains nanoGPT's model beside it, both driven by
one plain loop, and prints both validation losses. It prints figures; it asserts nothing.

    python benchmarks/baseline_vs_nanogpt.py --reference-dir PATH            # 200 steps, 3 LRs
    python benchmarks/baseline_vs_nanogpt.py --reference-dir PATH --steps 200 1000 \\
        --lrs 1e-3 2e-3 3e-3 --seeds 0 1 2 --out runs/bench

``PATH`` is a checkout of https://github.com/karpathy/nanoGPT; its ``model.py`` is imported from
there (never copied into the kit). Without ``--reference-dir`` the kit's baseline runs alone.

What is the same for both models, per (steps, LR, seed):

- data: the kit's offline corpus and byte tokenizer, packed into ``--seq-len`` blocks
  (``akira_nb.bandformer.train.make_data``); step s reads the batch of the kit's trainer
  (``train.train_batch``), so both see the same batches in the same order; the validation set is
  the trainer's (``train.validation_blocks``, ``--eval-batches`` x ``--batch-size`` blocks),
  scored once at the end over every one of its ``blocks x (seq_len - 1)`` predictions;
- model size: the kit's baseline is matched to the ``tiny`` band config (2 layers, 4 heads,
  64 wide, d_mlp solved for the parameter count, tied embeddings, biases, dropout 0); nanoGPT's
  ``GPTConfig`` takes the same ``n_layer``, ``n_head``, ``n_embd``, ``block_size`` (the kit's
  n_ctx), ``vocab_size``, ``dropout`` and ``bias=True``. nanoGPT fixes its MLP at 4 x n_embd and
  always ties its embeddings: the parameter counts are printed side by side;
- initialisation seed (``runtime.seed_everything(seed)`` before each model is built; each
  model draws its own init, nanoGPT's is its own ``_init_weights``);
- optimiser: AdamW with the kit's betas, eps and fused setting (read off the kit trainer's
  optimiser), weight decay ``--weight-decay`` on weight matrices only (no decay on biases,
  norms and embeddings: the kit's rule, applied to nanoGPT's ``nn.Embedding`` weights too),
  one LR, the kit's schedule (``optim.set_lrs``: linear warm-up over 10% of the steps, cosine
  to 0.1 x), gradient clipping at 1.0 and the kit trainer's step (``train.optimizer_step``);
- loss: mean next-token cross-entropy over the same predictions (the kit's ``training_loss``;
  nanoGPT's own ``forward(idx, targets)`` on ``x[:, :-1]``, ``x[:, 1:]``).

Output: per step budget and LR, each model's validation loss (mean +- sample sd over seeds),
the paired difference kit - nanoGPT (per seed, then mean +- sd), each model's best LR (flagged
when it sits at an edge of the sweep) and the difference at the best LRs, the unigram
cross-entropy of the validation set (a model that did not beat it did not learn), CPU-seconds
beside wall seconds. ``--out DIR`` writes ``baseline_vs_nanogpt.json`` and
``baseline_vs_nanogpt.png`` (validation loss against LR, error bars over seeds, one panel per
step budget). Bad input: one line and exit status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import importlib.util
import io
import json
import math
import statistics
import sys
import time
from pathlib import Path

import torch

from akira_nb import runtime, text
from akira_nb.bandformer import optim, train
from akira_nb.bandformer.model import model_summary, training_loss

sys.path.insert(0, str(Path(__file__).resolve().parent))
import paired  # noqa: E402

NAME = "baseline_vs_nanogpt"
KIT, REF = "kit", "nanogpt"
LABELS = {KIT: "kit baseline", REF: "nanoGPT GPT"}
WARMUP_SHARE = 0.1  # 026 tiny: 20 of 200 steps
JSON_KEYS = ("settings", "data", "models", "runs", "summary", "cpu_s", "wall_s", "environment")


# ----------------------------------------------------------------------------- set-up


def check_args(args: argparse.Namespace) -> None:
    """``ValueError`` naming the option, the value and what is allowed."""
    for i, s in enumerate(args.steps):
        runtime.check_int(f"--steps[{i}]", s, low=1)
    if len(set(args.steps)) != len(args.steps):
        raise ValueError(f"--steps {args.steps} repeats a budget; give each once")
    for i, lr in enumerate(args.lrs):
        if not (math.isfinite(lr) and 0 < lr < 1):
            raise ValueError(f"--lrs[{i}]={lr!r} must be a learning rate in (0, 1)")
    if len(set(args.lrs)) != len(args.lrs):
        raise ValueError(f"--lrs {args.lrs} repeats a learning rate; give each once")
    runtime.check_seeds("--seeds", args.seeds)
    runtime.check_int("--data-seed", args.data_seed, low=0)
    for name in ("batch_size", "eval_batches"):
        runtime.check_int(f"--{name.replace('_', '-')}", getattr(args, name), low=1)
    runtime.check_int("--seq-len", args.seq_len, low=2)
    runtime.check_int("--threads", args.threads, low=0)
    runtime.check_real("--weight-decay", args.weight_decay, low=0.0)
    runtime.check_device("--device", args.device)


def load_reference(path: str | None):
    """nanoGPT's ``model`` module imported from ``PATH/model.py`` (None without a path);
    ``ValueError`` when the folder, the file, or its ``GPT`` / ``GPTConfig`` is missing."""
    root = paired.reference_dir(path, "model.py")
    if root is None:
        return None
    spec = importlib.util.spec_from_file_location("nanogpt_model", root / "model.py")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # a broken or foreign model.py
        raise ValueError(
            f"--reference-dir {path!r}: importing model.py failed ({type(exc).__name__}: {exc})"
        ) from exc
    missing = [n for n in ("GPT", "GPTConfig") if not hasattr(module, n)]
    if missing:
        raise ValueError(
            f"--reference-dir {path!r}: model.py defines no {' / '.join(missing)}; expected a "
            "checkout of karpathy/nanoGPT"
        )
    module.sha256 = hashlib.sha256((root / "model.py").read_bytes()).hexdigest()
    module.root = str(root)
    return module


def run_config(args, steps: int, lr: float, seed: int) -> train.TrainConfig:
    """The kit trainer's config of one run: its ``baseline`` arm at ``lr`` (the baseline's one
    LR is the band config's ``shared_lr``), also the source of the batches and validation set."""
    return train.TrainConfig(
        arm="baseline",
        preset="tiny",
        model_overrides={"shared_lr": lr},
        dataset="offline",
        seq_len=args.seq_len,
        batch_size=args.batch_size,
        total_steps=steps,
        warmup_steps=round(WARMUP_SHARE * steps),
        weight_decay=args.weight_decay,
        eval_every=steps,
        eval_batches=args.eval_batches,
        seed=seed,
        data_seed=args.data_seed,
        device=args.device,
        checkpoint_every=0,
        monitor_every=0,
        cpu_threads=args.threads,
        progress=False,
    ).validate()


def reference_config(module, kit_gpt) -> object:
    """nanoGPT's ``GPTConfig`` at the kit baseline's sizes (``kit_gpt``: its ``GPTConfig``)."""
    return module.GPTConfig(
        block_size=kit_gpt.n_ctx,
        vocab_size=kit_gpt.vocab_size,
        n_layer=kit_gpt.n_layers,
        n_head=kit_gpt.n_heads,
        n_embd=kit_gpt.d_model,
        dropout=kit_gpt.dropout,
        bias=True,
    )


def build_reference(module, kit_gpt, seed: int) -> torch.nn.Module:
    """nanoGPT's ``GPT`` initialised from ``seed`` (its parameter-count line silenced)."""
    runtime.seed_everything(seed)
    with contextlib.redirect_stdout(io.StringIO()):
        return module.GPT(reference_config(module, kit_gpt))


def reference_optimizer(model, lr: float, weight_decay: float, kit_opt) -> torch.optim.AdamW:
    """AdamW over ``model`` with the kit's rule (decay on weight matrices, not on biases,
    norms or ``nn.Embedding`` weights) and the kit optimiser's betas, eps and fused setting."""
    embed = {
        id(p) for m in model.modules() if isinstance(m, torch.nn.Embedding) for p in m.parameters()
    }
    params = [p for p in model.parameters() if p.requires_grad]  # a tied weight appears once
    decay = [p for p in params if p.ndim >= 2 and id(p) not in embed]
    rest = [p for p in params if not (p.ndim >= 2 and id(p) not in embed)]
    groups = [
        dict(name="decay", params=decay, weight_decay=weight_decay, lr=lr, base_lr=lr),
        dict(name="no_decay", params=rest, weight_decay=0.0, lr=lr, base_lr=lr),
    ]
    keep = ("betas", "eps", "fused")
    return torch.optim.AdamW(groups, lr=lr, **{k: kit_opt.defaults[k] for k in keep})


def kit_loss(model, x: torch.Tensor) -> torch.Tensor:
    return training_loss(model(x), x)


def reference_loss(model, x: torch.Tensor) -> torch.Tensor:
    return model(x[:, :-1], x[:, 1:].contiguous())[1]  # nanoGPT views its targets


# ----------------------------------------------------------------------------- train, score


def fit(model, opt, loss_fn, cfg: train.TrainConfig, splits, device) -> None:
    """``cfg.total_steps`` steps of the kit trainer's loop: batch ``train_batch(step)``, the
    loss, the LR schedule, ``optimizer_step`` (backward, clipping, AdamW)."""
    scaler = runtime.grad_scaler(device)
    params = [p for p in model.parameters() if p.requires_grad]
    n_blocks = splits.train.shape[0]
    model.train()
    for step in range(cfg.total_steps):
        x = splits.train[train.train_batch(cfg, n_blocks, step)].to(device)
        with runtime.autocast(device):
            loss = loss_fn(model, x)
        optim.set_lrs(opt, step, cfg.warmup_steps, cfg.total_steps, cfg.min_lr_ratio)
        opt.zero_grad(set_to_none=True)
        train.optimizer_step(loss, opt, scaler, params, cfg.grad_clip)


@torch.no_grad()
def reference_val_loss(model, blocks: torch.Tensor, batch_size: int, device) -> float:
    """Mean next-token loss of nanoGPT's ``GPT`` over every prediction of ``blocks`` (its own
    loss per batch, weighted by the batch's predictions), in eval mode."""
    model.eval()
    total = 0.0
    for start in range(0, blocks.shape[0], batch_size):
        x = blocks[start : start + batch_size].to(device)
        with runtime.autocast(device):
            total += float(reference_loss(model, x)) * x.shape[0] * (x.shape[1] - 1)
    model.train()
    return total / (blocks.shape[0] * (blocks.shape[1] - 1))


def n_params(model) -> int:
    """Distinct parameters (a tied weight counted once)."""
    return sum(p.numel() for p in model.parameters())


def run_one(which: str, cfg: train.TrainConfig, module, splits, val, device) -> dict:
    """Train and score one model for one (steps, LR, seed); its row."""
    cpu0, wall0 = time.process_time(), time.perf_counter()
    model, _ = train.build_model(cfg)  # the kit's baseline, seeded; also sets the kit optimiser
    kit_opt = train.make_optimizer(model, cfg, cfg.band_config())
    if which == REF:
        lr = cfg.band_config().shared_lr
        model = build_reference(module, model.cfg, cfg.seed)
        opt = reference_optimizer(model, lr, cfg.weight_decay, kit_opt)
    else:
        opt = kit_opt
    model.to(device)
    fit(model, opt, kit_loss if which == KIT else reference_loss, cfg, splits, device)
    if which == KIT:
        loss = train.mean_loss(model, val, cfg.batch_size, device)
    else:
        loss = reference_val_loss(model, val, cfg.batch_size, device)
    return {
        "model": which,
        "steps": cfg.total_steps,
        "lr": cfg.band_config().shared_lr,
        "seed": cfg.seed,
        "val_loss": loss,
        "params": n_params(model),
        "cpu_s": time.process_time() - cpu0,
        "wall_s": time.perf_counter() - wall0,
    }


# ----------------------------------------------------------------------------- summary


def mean_sd(values) -> tuple[float, float]:
    """Mean and sample sd (0.0 for one value)."""
    values = list(values)
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summarize(rows: list[dict]) -> dict:
    """Per step budget: each model's loss per LR (mean, sd, n), the paired kit - nanoGPT
    difference per LR, each model's best LR (lowest mean; ``at_edge`` when it is the smallest
    or largest LR of a sweep of 2 or more) and the per-seed difference at the best LRs."""
    out = {}
    for steps in sorted({r["steps"] for r in rows}):
        at = [r for r in rows if r["steps"] == steps]
        lrs = sorted({r["lr"] for r in at})
        models = [m for m in (KIT, REF) if any(r["model"] == m for r in at)]
        loss = {(r["model"], r["lr"], r["seed"]): r["val_loss"] for r in at}
        seeds = sorted({r["seed"] for r in at})
        per_lr = {m: {} for m in models}
        for m in models:
            for lr in lrs:
                mean, sd = mean_sd(loss[m, lr, s] for s in seeds)
                per_lr[m][repr(lr)] = {"mean": mean, "sd": sd, "n": len(seeds)}
        best = {}
        for m in models:
            lr = min(lrs, key=lambda v: per_lr[m][repr(v)]["mean"])
            edge = len(lrs) > 1 and lr in (lrs[0], lrs[-1])
            best[m] = {"lr": lr, **per_lr[m][repr(lr)], "at_edge": edge}
        entry = {"lrs": lrs, "seeds": seeds, "per_lr": per_lr, "best": best}
        if len(models) == 2:
            entry["diff_per_lr"] = {
                repr(lr): _diff([loss[KIT, lr, s] - loss[REF, lr, s] for s in seeds]) for lr in lrs
            }
            kl, rl = best[KIT]["lr"], best[REF]["lr"]
            entry["diff_at_best"] = _diff([loss[KIT, kl, s] - loss[REF, rl, s] for s in seeds])
        out[str(steps)] = entry
    return out


def _diff(values: list[float]) -> dict:
    mean, sd = mean_sd(values)
    return {"mean": mean, "sd": sd, "per_seed": values}


def table(summary: dict) -> list[str]:
    """The printed table: one line per (steps, LR), then each budget's best-LR line."""
    lines = []
    for steps, e in summary.items():
        models = list(e["per_lr"])
        head = f"{'steps':>6} {'LR':>8} " + " ".join(f"{LABELS[m]:>17}" for m in models)
        lines.append(head + ("   kit - nanoGPT (paired by seed)" if len(models) == 2 else ""))
        for lr in e["lrs"]:
            cells = [_pm(e["per_lr"][m][repr(lr)]) for m in models]
            diff = f"   {_pm(e['diff_per_lr'][repr(lr)], signed=True)}" if len(models) == 2 else ""
            lines.append(f"{steps:>6} {lr:>8.1e} " + " ".join(f"{c:>17}" for c in cells) + diff)
        for m in models:
            b = e["best"][m]
            edge = " (at the edge of the sweep: widen --lrs)" if b["at_edge"] else ""
            lines.append(f"  best {LABELS[m]} at {steps} steps: LR {b['lr']:.1e}, {_pm(b)}{edge}")
        if len(models) == 2:
            d = e["diff_at_best"]
            lines.append(
                f"  kit - nanoGPT at each one's best LR: {_pm(d, signed=True)} over "
                f"{len(e['seeds'])} seeds (per seed: "
                + ", ".join(f"{v:+.4f}" for v in d["per_seed"])
                + ")"
            )
    return lines


def _pm(stat: dict, signed: bool = False) -> str:
    return f"{stat['mean']:{'+' if signed else ''}.4f} +- {stat['sd']:.4f}"


def figure(summary: dict):
    """Validation loss against LR (log axis), error bars = sd over seeds, one panel per budget
    (a Figure outside pyplot)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.2 * len(summary), 3.6))
    axes = fig.subplots(1, len(summary), squeeze=False)[0]
    for ax, (steps, e) in zip(axes, summary.items()):
        for m, style in zip(e["per_lr"], ("o-", "s--")):
            stats = [e["per_lr"][m][repr(lr)] for lr in e["lrs"]]
            ax.errorbar(
                e["lrs"], [s["mean"] for s in stats], yerr=[s["sd"] for s in stats],
                fmt=style, capsize=3, label=LABELS[m],
            )  # fmt: skip
        ax.set_xscale("log")
        ax.set_xticks(e["lrs"], [f"{lr:g}" for lr in e["lrs"]], rotation=45)
        ax.minorticks_off()
        ax.set(xlabel="learning rate", ylabel="validation loss (nats/token)")
        ax.set_title(f"{steps} steps, {len(e['seeds'])} seeds (sd)")
        ax.legend()
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------------- main


def parser() -> argparse.ArgumentParser:
    p = runtime.ArgumentParser(description=__doc__.splitlines()[0])
    add = p.add_argument
    add("--reference-dir", default=None, help="a checkout of karpathy/nanoGPT (its model.py)")
    add("--steps", type=int, nargs="+", default=[200], help="step budgets (default: 200)")
    add("--lrs", type=float, nargs="+", default=[1e-3, 2e-3, 3e-3], help="the LR sweep")
    add("--seeds", type=int, nargs="+", default=[0, 1, 2], help="initialisation seeds")
    add("--data-seed", type=int, default=0, help="the split and batch order (all runs)")
    add("--batch-size", type=int, default=16)
    add("--seq-len", type=int, default=32, help="tokens per block (the models' context)")
    add("--eval-batches", type=int, default=64, help="validation blocks / batch size")
    add("--weight-decay", type=float, default=0.1)
    add("--threads", type=int, default=1, help="CPU threads (0: torch's default)")
    add("--device", default="cpu")
    add("--out", default=None, help="folder for the JSON and the figure")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        check_args(args)
        module = load_reference(args.reference_dir)
    except ValueError as exc:
        print(f"error: {exc}")
        return 2
    cpu0, wall0 = time.process_time(), time.perf_counter()
    device = runtime.get_device(args.device)
    if device.type == "cpu":
        runtime.flush_denormals()  # as the kit trainer does
    with runtime.cpu_threads(args.threads, device):
        record = compare(args, module, device)
    record["cpu_s"] = time.process_time() - cpu0
    record["wall_s"] = time.perf_counter() - wall0
    print(f"total: {record['cpu_s']:.1f} CPU-s (user + system), {record['wall_s']:.1f} s wall")
    if args.out:
        write(record, Path(args.out))
    return 0


def compare(args, module, device) -> dict:
    """Every (steps, LR, seed) run of both models (kit first); prints as it goes."""
    models = [KIT] + ([REF] if module is not None else [])
    first = run_config(args, args.steps[0], args.lrs[0], args.seeds[0])
    splits = train.make_data(first)
    val = train.validation_blocks(first, splits.val)
    data = {
        "corpus": "offline",
        "tokenizer": first.tokenizer,
        "train_blocks": int(splits.train.shape[0]),
        "val_blocks": int(val.shape[0]),
        "val_predictions": int(val.shape[0] * (val.shape[1] - 1)),
        "unigram_val_loss": text.unigram_cross_entropy(splits.train, val, splits.vocab_size),
    }
    info = describe(first, module)
    print_header(args, data, info, device)
    rows = []
    for steps in args.steps:
        for lr in args.lrs:
            for seed in args.seeds:
                cfg = run_config(args, steps, lr, seed)
                for m in models:
                    rows.append(run_one(m, cfg, module, splits, val, device))
                    print(_row_line(rows[-1]), flush=True)
    summary = summarize(rows)
    print("\n".join(["", *table(summary)]))
    settings = {k: v for k, v in vars(args).items() if k != "out"}
    settings["warmup_steps"] = {str(s): round(WARMUP_SHARE * s) for s in args.steps}
    env = runtime.environment_info(device)
    return dict(settings=settings, data=data, models=info, runs=rows, summary=summary,
                environment=env)  # fmt: skip


def describe(cfg: train.TrainConfig, module) -> dict:
    """Both models' configs and parameter counts (built once, from seed 0)."""
    kit, _ = train.build_model(cfg)
    out = {KIT: {"config": kit.cfg.to_dict(), "params": model_summary(kit)["total"]}}
    if module is not None:
        ref = build_reference(module, kit.cfg, 0)
        rc = reference_config(module, kit.cfg)
        out[REF] = {
            "config": {k: getattr(rc, k) for k in vars(rc)},
            "params": n_params(ref),
            "model_py_sha256": module.sha256,
            "reference_dir": module.root,
        }
    return out


def print_header(args, data: dict, info: dict, device) -> None:
    k = info[KIT]["config"]
    print(f"torch {torch.__version__}, {device}, {torch.get_num_threads()} thread(s)")
    print(
        f"kit baseline: {k['n_layers']} layers, {k['n_heads']} heads, d_model {k['d_model']}, "
        f"d_mlp {k['d_mlp']}, tied embeddings, {info[KIT]['params']:,} parameters"
    )
    if REF in info:
        r = info[REF]["config"]
        print(
            f"nanoGPT GPT: n_layer {r['n_layer']}, n_head {r['n_head']}, n_embd {r['n_embd']}, "
            f"MLP {4 * r['n_embd']} (fixed 4x), tied embeddings, {info[REF]['params']:,} "
            f"parameters (model.py sha256 {info[REF]['model_py_sha256'][:12]})"
        )
    else:
        print("no --reference-dir: the kit's baseline alone")
    print(
        f"data: offline corpus, {data['tokenizer']} tokenizer, {args.batch_size} x "
        f"{args.seq_len} tokens a step, {data['train_blocks']:,} train blocks; validation "
        f"{data['val_blocks']:,} blocks = {data['val_predictions']:,} predictions, unigram "
        f"cross-entropy {data['unigram_val_loss']:.4f}"
    )


def _row_line(r: dict) -> str:
    return (
        f"  {LABELS[r['model']]:<13} steps {r['steps']:>5}  LR {r['lr']:.1e}  seed {r['seed']}  "
        f"val loss {r['val_loss']:.4f}  ({r['cpu_s']:.1f} CPU-s, {r['wall_s']:.1f} s wall)"
    )


def write(record: dict, out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{NAME}.json").write_text(json.dumps(record, indent=1, default=str) + "\n")
    figure(record["summary"]).savefig(out / f"{NAME}.png", dpi=120)
    print(f"wrote {out / f'{NAME}.json'} and {out / f'{NAME}.png'}")


if __name__ == "__main__":
    sys.exit(main())
