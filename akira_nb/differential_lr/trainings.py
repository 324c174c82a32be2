"""013's trainings: :class:`Trainings` trains (or reloads) each training of a study once,
saving it to ``arms/<tag>.json`` (``<arm>_x<multiplier>_b<steps>_s<seed>``) as it finishes
and taking a reported training's final losses over the held-out sets; :func:`tune` runs an
arm's LR sweep at every budget (:func:`.sweep.run_sweep`, the kit's sweep rule); and
:func:`tuned_rows` / :func:`sweep_rows` give the tuned arms and the sweep points as rows.
"""

from __future__ import annotations

import time
from dataclasses import replace

import numpy as np

from akira_nb import runtime
from akira_nb.differential_lr import evaluate as ev
from akira_nb.differential_lr import sweep as sw
from akira_nb.differential_lr.presets import Study
from akira_nb.runs import atomic_write_json, read_json


def _train_module():
    """The band-model trainer, imported when first needed (it imports torch)."""
    from akira_nb.bandformer import train

    return train


def load_final_model(plan: Study, run, key: dict):
    """The model of the finished training ``key`` (:meth:`.presets.Study.key`), loaded from its
    final checkpoint in ``run`` (on the CPU)."""
    train = _train_module()
    cfg = plan.config(key["arm"], key["mult"], key["budget"], key["seed"])
    state = run.latest_checkpoint(
        key["tag"], config=cfg.to_dict(), may_change=train.RESUME_MAY_CHANGE
    )
    if state is None or int(state["step"]) != cfg.total_steps:
        raise RuntimeError(
            f"{key['tag']}: no final checkpoint in {run.checkpoint_dir(key['tag'])} "
            f"to take its final losses from; delete arms/{key['tag']}.json to train it again"
        )
    model, _ = train.build_model(cfg)
    model.load_state_dict(state["model"])
    return model


class Trainings:
    """Every training of a study, each at most once: reloaded from ``arms/<tag>.json`` on
    ``resume``, else trained (from its checkpoint when half done) and saved there. The final
    losses of a reported training (:meth:`final`) are over ``val_blocks`` and ``test_blocks``
    (at least ``final_eval_predictions`` predictions each); ``unigram`` is the unigram loss of
    ``val_blocks``, ``unigram_eval`` that of the evaluation set (the curves')."""

    def __init__(self, plan: Study, run, resume: bool, splits, log):
        from akira_nb import text

        self.plan, self.run, self.resume, self.splits, self.log = plan, run, resume, splits, log
        self.records: dict[str, tuple[dict, dict]] = {}  # tag -> (key, record), in order
        first = plan.config(plan.arms[0], 1.0, plan.longest, plan.seeds[0])
        held_out = replace(first, final_eval_predictions=plan.final_eval_predictions)
        final_blocks = _train_module().final_validation_blocks
        self.has_test = bool(splits.test.shape[0])
        self.eval_blocks = min(first.eval_batches * first.batch_size, int(splits.val.shape[0]))
        self.val_blocks = final_blocks(held_out, splits.val)
        self.test_blocks = final_blocks(held_out, splits.test if self.has_test else splits.val)
        self.unigram = float(
            text.unigram_cross_entropy(splits.train, self.val_blocks, splits.vocab_size)
        )
        curves_set = _train_module().validation_blocks(first, splits.val)
        self.unigram_eval = float(  # the unigram loss of the curves' set
            text.unigram_cross_entropy(splits.train, curves_set, splits.vocab_size)
        )

    def get(self, arm: str, mult: float, budget: int, seed: int) -> dict:
        key = self.plan.key(arm, mult, budget, seed)
        if key["tag"] not in self.records:
            path = self.run.file(f"arms/{key['tag']}.json")
            if self.resume and path.is_file():
                rec = read_json(path)
                self.log(f"{key['tag']}: reloaded from {path.name}")
            else:
                rec = self._train(key)
            self.records[key["tag"]] = (key, rec)
        return self.records[key["tag"]][1]

    def _train(self, key: dict) -> dict:
        train = _train_module()
        cfg = self.plan.config(key["arm"], key["mult"], key["budget"], key["seed"])
        cpu = time.process_time()
        res = train.train(cfg, run=self.run, resume=self.resume, tag=key["tag"])
        rec = {**res.summary(), **key, "cpu_seconds": time.process_time() - cpu}
        atomic_write_json(self.run.file(f"arms/{key['tag']}.json"), rec)
        return rec

    def final(self, arm: str, mult: float, budget: int, seed: int) -> dict:
        """The record of a reported training with its final losses over the held-out sets:
        ``final_val_loss`` over ``val_blocks``, ``test_loss`` over ``test_blocks`` (the
        validation split's when there is no test split), from the final weights in its
        checkpoint; computed once, saved in its ``arms/<tag>.json`` (``eval_val_loss``: the
        evaluation set's loss that the sweep ranked by)."""
        key, rec = self.plan.key(arm, mult, budget, seed), self.get(arm, mult, budget, seed)
        if "final_val_predictions" in rec:
            return rec
        train, cpu = _train_module(), time.process_time()
        cfg = self.plan.config(arm, mult, budget, seed)
        device = runtime.get_device(cfg.device)
        with runtime.cpu_threads(cfg.cpu_threads, device):
            model = load_final_model(self.plan, self.run, key).to(device)
            val = train.evaluate(model, self.val_blocks, cfg, device)
            test = train.evaluate(model, self.test_blocks, cfg, device)
        per_block = int(self.val_blocks.shape[1]) - 1
        rec.update(
            eval_val_loss=rec["final_val_loss"],
            final_val_loss=val,
            final_val_predictions=int(self.val_blocks.shape[0]) * per_block,
            test_loss=test,
            test_predictions=int(self.test_blocks.shape[0]) * per_block,
            test_split="test" if self.has_test else "val (no test split)",
            final_eval_cpu_seconds=time.process_time() - cpu,
        )
        atomic_write_json(self.run.file(f"arms/{key['tag']}.json"), rec)
        return rec

    def held_out(self) -> dict:
        """The loss sets' sizes in predictions: ``eval`` (the curves' and the sweep's), ``val``
        and ``test`` (the reported final losses'), ``val_blocks`` and the test set's split."""
        per_block = int(self.val_blocks.shape[1]) - 1
        return {
            "val_blocks": int(self.val_blocks.shape[0]),
            "eval": self.eval_blocks * per_block,
            "val": int(self.val_blocks.shape[0]) * per_block,
            "test": int(self.test_blocks.shape[0]) * per_block,
            "test_split": "test" if self.has_test else "val (no test split)",
        }

    def final_loss(self, arm: str, mult: float, budget: int, seed: int) -> float:
        """A reported training's final validation loss over ``val_blocks`` (:meth:`final`)."""
        return float(self.final(arm, mult, budget, seed)["final_val_loss"])

    def eval_loss(self, arm: str, mult: float, budget: int, seed: int) -> float:
        """A training's final validation loss on the evaluation set (the curves' set)."""
        return float(self.get(arm, mult, budget, seed)["history"]["val_loss"][-1])

    def sweep_loss(self, arm: str, budget: int):
        """The sweep's loss at a multiplier: the mean over the sweep seeds of the final val
        loss on the evaluation set (every sweep point; the large sets only for the best)."""
        seeds = self.plan.sweep_seeds
        return lambda m: float(np.mean([self.eval_loss(arm, m, budget, s) for s in seeds]))


def tune(trainings: Trainings, arm: str) -> dict:
    """``{budget: sweep}`` of ``arm`` (:func:`.sweep.run_sweep`, the kit's sweep rule, on the
    sweep seeds, each budget centred on the previous one's tuned multiplier when the arm
    learned there), then the other seeds at the longest budget's tuned multiplier. Each sweep
    gains ``learned``."""
    plan, out, centre = trainings.plan, {}, 1.0
    for budget in plan.budgets:
        grid = [centre * m for m in plan.sweep] or [centre]
        extensions = plan.sweep_extensions if plan.sweep else 0
        res = sw.run_sweep(trainings.sweep_loss(arm, budget), grid, extensions)
        losses = [trainings.final_loss(arm, res["best"], budget, s) for s in plan.sweep_seeds]
        res["learned"] = ev.learned(losses, trainings.unigram, seeds=plan.sweep_seeds)
        if not plan.sweep:
            res["note"] = "not tuned (sweep=[]): the prescribed LRs"
        out[budget] = res
        centre = res["best"] if res["learned"]["ok"] else 1.0
    for s in plan.seeds:
        trainings.get(arm, out[plan.longest]["best"], plan.longest, s)
    return out


def tuned_rows(plan: Study, trainings: Trainings, sweeps: dict) -> dict:
    """``{budget: {arm: row}}``: each arm at its tuned multiplier (``mult``, ``lr``), its seeds
    there (the sweep seeds; every seed at the longest budget), final val loss mean +- std over
    the held-out set (``final_val_loss``; :meth:`Trainings.final`) and on the evaluation set
    (``eval_val_loss``: the curves' set), the learning check (``learned``, ``learn_line``), and
    the sweep's note."""
    out: dict[int, dict] = {}
    for budget in plan.budgets:
        seeds = plan.seeds if budget == plan.longest else plan.sweep_seeds
        for arm, per_budget in sweeps.items():
            m = per_budget[budget]["best"]
            losses = [trainings.final_loss(arm, m, budget, s) for s in seeds]
            curves_end = [trainings.eval_loss(arm, m, budget, s) for s in seeds]
            check = ev.learned(losses, trainings.unigram, seeds=seeds)
            out.setdefault(budget, {})[arm] = {
                "mult": m,
                "lr": plan.lr_of(arm, m),
                "seeds": list(seeds),
                "tags": [plan.key(arm, m, budget, s)["tag"] for s in seeds],
                "final_val_loss": ev.mean_std(losses),
                "predictions": trainings.held_out()["val"],
                "eval_val_loss": ev.mean_std(curves_end),
                "learned": check["ok"],
                "learn_line": check["line"],
                "note": per_budget[budget]["note"],
            }
    return out


def sweep_rows(plan: Study, sweeps: dict, predictions: int) -> list[dict]:
    """One row per arm and budget: the points (multiplier, LR, loss over ``predictions`` of the
    evaluation set), the tuned one, the note."""
    return [
        {
            "arm": arm,
            "budget": budget,
            "predictions": predictions,
            "points": [{**p, "lr": plan.lr_of(arm, p["mult"])} for p in res["points"]],
            "best": res["best"],
            "best_lr": plan.lr_of(arm, res["best"]),
            "extensions": res["extensions"],
            "note": res["note"],
            "learned": res["learned"]["ok"],
        }
        for arm, per_budget in sweeps.items()
        for budget, res in per_budget.items()
    ]
