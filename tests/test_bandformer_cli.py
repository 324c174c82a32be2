"""``python -m akira_nb bandformer``: flags, the reference-style arm choice, the one-line error,
--selftest and --wandb."""

import argparse
import subprocess
import sys

import pytest

import akira_nb.__main__ as entry
from akira_nb.band_transformer import cli
from akira_nb.bandformer import optim, train
from akira_nb.bandformer.model import TEST_COMPLETE


def _parse(argv):
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return parser.parse_args([str(a) for a in argv])


@pytest.fixture
def registered(monkeypatch):
    """The sub-command, whether or not __main__ lists it yet."""
    monkeypatch.setitem(entry.EXPERIMENTS, "bandformer", "akira_nb.band_transformer")


def test_literal_choices_equal_the_real_ones():
    assert cli.ARMS == train.ARMS
    assert cli.DATASETS == train.DATASETS
    assert cli.LR_MODES == optim.LR_MODES
    assert set(cli._ARM_OF.values()) | {"band_no_wormhole", "baseline_wide"} == set(train.ARMS)
    for (_model, lr_mode), arm in cli._ARM_OF.items():
        assert train.ARM_LR_MODE[arm] == lr_mode


def test_cli_module_does_not_import_torch():
    code = "import sys, akira_nb.band_transformer.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_every_flag_has_help_and_the_parser_a_description():
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    assert "reference notebook's protocol" in parser.description
    assert [a.dest for a in parser._actions if not a.help] == []
    flags = {s for a in parser._actions for s in a.option_strings}
    for flag in (
        "--num_layers",
        "--num_heads",
        "--band_dims",
        "--band_lrs",
        "--use_wormhole",
        "--no-wormhole",
        "--batch_size",
        "--total_steps",
        "--warmup_steps",
        "--seq_len",
        "--dataset",
        "--seed",
        "--output_dir",
        "--resume",
        "--size",
        "--model",
        "--lr-mode",
        "--arms",
        "--selftest",
        "--wandb",
        "--wandb_project",
        "--threads",
        "--quiet",
    ):
        assert flag in flags, flag


def test_selftest_prints_the_model_test_and_ends_with_the_seeds_line(registered, capsys):
    assert entry.main(["bandformer", "--selftest"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert out[0] == "Creating AKIRA Band Transformer..."
    assert "Band dims: (128, 96, 80, 64, 64, 48, 32)" in out
    assert out[-1] == TEST_COMPLETE == "AKIRA Band Transformer test complete!"


def test_bad_input_is_one_error_line_exit_2_and_no_run_folder(registered, tmp_path, capsys):
    argv = ["bandformer", "--size", "tiny", "--total_steps", "0", "--output_dir", str(tmp_path)]
    assert entry.main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: ") and "total_steps" in err[0]
    assert not any(tmp_path.iterdir())
    assert entry.main(["bandformer", "--model", "baseline", "--lr-mode", "geomean"]) == 2
    assert "does not apply to --model baseline" in capsys.readouterr().err


def test_size_and_flags_build_the_study_the_one_way(monkeypatch):
    monkeypatch.delenv("AKIRA_SIZE", raising=False)
    plan = cli.config_from_args(_parse([]))
    assert plan.size is None and plan.tokens_per_arm == 5000 * 16 * 256
    monkeypatch.setenv("AKIRA_SIZE", "tiny")
    plan = cli.config_from_args(
        _parse(
            [
                "--total_steps",
                30,
                "--band_dims",
                "16,16,16,16",
                "--band_lrs",
                "1e-4 1e-3 1e-2 1e-1",
                "--num_layers",
                1,
                "--threads",
                2,
                "--arms",
                "band",
                "baseline",
            ]
        )
    )
    assert plan.size == "tiny" and plan.base.total_steps == 30 and plan.base.cpu_threads == 2
    over = plan.base.model_overrides
    assert over["band_dims"] == (16,) * 4 and over["band_lrs"] == (1e-4, 1e-3, 1e-2, 1e-1)
    assert over["n_layers"] == 1 and over["shared_lr"] == 3e-3  # the preset's, kept
    assert plan.arms == ["band", "baseline"] and "total_steps=" not in plan.describe()
    assert "preset 'tiny'" in plan.describe()
    assert cli.config_from_args(_parse(["--size", "t4"])).base.dataset == "wikitext-103"


@pytest.mark.parametrize(
    "argv,arm",
    [
        (["--model", "band"], "band"),
        (["--model", "band", "--no-wormhole"], "band_no_wormhole"),
        (["--model", "band", "--lr-mode", "uniform"], "band_uniform"),
        (["--model", "band", "--lr-mode", "geomean"], "band_geomean"),
        (["--model", "reference"], "reference"),
        (["--model", "baseline"], "baseline"),
    ],
)
def test_model_lr_mode_and_wormhole_pick_one_arm(monkeypatch, argv, arm):
    monkeypatch.setenv("AKIRA_SIZE", "tiny")
    plan = cli.config_from_args(_parse(argv))
    assert plan.arms == [arm]
    assert not set(plan.base.model_overrides) - {"band_lrs", "shared_lr"}


@pytest.mark.parametrize(
    "argv,match",
    [
        (["--model", "band", "--arms", "band"], "given together"),
        (["--lr-mode", "uniform"], "choose the arm of one --model"),
        (["--no-wormhole"], "choose the arm of one --model"),
        (["--model", "reference", "--lr-mode", "uniform"], "is not an arm"),
        (["--model", "baseline", "--no-wormhole"], "do not apply"),
        (["--model", "reference", "--use_wormhole"], "wormhole"),  # the arm sets it off
        (["--seed", 1, "--seeds", 1, 2], "given together"),
        (["--aq_seeds", 1], "aq_seeds"),
        (["--budgets", 200, 1000, "--total_steps", 50], "given together"),
        (["--budgets", 1000, 200], "budgets"),
        (["--lr_multipliers", "1,2"], "lr_multipliers"),
    ],
)
def test_conflicting_flags_raise(monkeypatch, argv, match):
    monkeypatch.setenv("AKIRA_SIZE", "tiny")
    with pytest.raises(ValueError, match=match):
        cli.config_from_args(_parse(argv))


def test_wandb_asked_for_but_missing_is_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb -> ImportError
    with pytest.raises(ValueError, match="pip install wandb"):
        cli.main(_parse(["--size", "tiny", "--wandb", "--output_dir", tmp_path]))
    assert not any(tmp_path.iterdir())
    assert cli.check_wandb(False) is None


def test_wandb_logger_sends_trains_metrics_live_one_run_per_arm():
    from akira_nb.band_transformer import experiment

    logged, inits = [], []

    class FakeRun:
        summary = {}

        def log(self, row, step):
            logged.append((step, row))

        def finish(self):
            logged.append("finished")

    class FakeWandb:
        @staticmethod
        def init(**kw):
            inits.append(kw)
            return FakeRun()

    cfg = train.TrainConfig(
        arm="band",
        seed=3,
        total_steps=4,
        warmup_steps=1,
        batch_size=2,
        seq_len=8,
        eval_every=2,
        eval_batches=1,
        checkpoint_every=0,
        monitor_every=0,
        progress=False,
    )
    tracker = experiment.WandbLogger(FakeWandb, "akira_exp026")
    res = train.train(cfg, log=tracker.start(cfg))
    tracker.end(cfg, res)
    assert inits[0]["project"] == "akira_exp026" and "band_akira_seed3_" in inits[0]["name"]
    assert [step for step, _ in logged[:-1]] == [2, 4]
    assert {"train/step", "train/loss", "eval/loss", "eval/perplexity"} <= set(logged[0][1])
    assert any(k.startswith("lr/band_") for k in logged[0][1])
    assert logged[-1] == "finished" and FakeRun.summary["final/val_loss"] == res.final_val_loss


@pytest.mark.parametrize(
    "model, lr_mode, wormhole, arm",
    [
        ("band", None, None, "band"),
        ("band", "uniform", None, "band_uniform"),
        ("band", "differential", False, "band_no_wormhole"),
        ("reference", None, None, "reference"),
        ("baseline", None, None, "baseline"),
        ("baseline", "uniform", None, "baseline"),
        ("baseline", "differential", None, "baseline_differential"),
    ],
)
def test_model_and_lr_mode_name_one_arm(model, lr_mode, wormhole, arm):
    assert cli.arm_for(model, lr_mode, wormhole)[0] == arm


@pytest.mark.parametrize(
    "model, lr_mode, wormhole, word",
    [
        ("baseline", "geomean", None, "geomean"),
        ("baseline", None, True, "wormhole"),
        ("reference", "uniform", None, "not an arm"),
    ],
)
def test_a_combination_that_is_no_arm_is_refused_by_name(model, lr_mode, wormhole, word):
    with pytest.raises(ValueError, match=word):
        cli.arm_for(model, lr_mode, wormhole)


def test_the_budget_and_sweep_flags_reach_the_study(monkeypatch):
    monkeypatch.setenv("AKIRA_SIZE", "tiny")
    argv = ["--budgets", 100, 500, "--lr_multipliers", "0.1,1,10", "--max_extensions", 0]
    plan = cli.config_from_args(_parse(argv + ["--sweep_arms", "band", "--long_arms", "band"]))
    assert plan.budgets == [100, 500] and plan.base.total_steps == 100
    assert plan.lr_multipliers == [0.1, 1.0, 10.0] and plan.max_extensions == 0
    assert plan.sweep_arms == ["band"] and plan.arms_at(500) == ["band"]
    assert cli.config_from_args(_parse(["--sweep_arms"])).sweep_arms == []  # none swept
    assert cli.config_from_args(_parse(["--total_steps", 30])).budgets == [30]
    plan = cli.config_from_args(_parse(["--final_eval_predictions", 0]))
    assert plan.base.final_eval_predictions == 0


def test_offline_and_the_count_flags_reach_the_study(monkeypatch):
    monkeypatch.delenv("AKIRA_SIZE", raising=False)
    argv = ["--size", "t4", "--offline", "--total_steps", 2, "--ablation_batches", 1]
    plan = cli.config_from_args(_parse(argv + ["--stats_sequences", 3, "--aq_samples", 20]))
    assert plan.base.offline is True and plan.base.dataset == "wikitext-103"
    assert (plan.ablation_batches, plan.stats_sequences, plan.aq["num_samples"]) == (1, 3, 20)
    assert plan.aq["layers"] == (2, 5)  # the rest of the preset's AQ settings kept
    assert plan.base.warmup_steps == 0  # the preset's 5% of the steps
    assert plan.aq_config("band").text_corpus == "offline"  # no wikitext-2 download either
    assert cli.config_from_args(_parse(["--size", "t4"])).base.offline is False


def test_offline_main_prints_the_banner_first_and_passes_the_run_no_second(monkeypatch, capsys):
    from akira_nb import standins
    from akira_nb.band_transformer import experiment

    seen = {}

    def fake_run(plan, **kw):
        seen.update(kw, offline=plan.base.offline)
        return {"lines": ["(the run)"], "run": type("R", (), {"path": "somewhere"})()}

    monkeypatch.setattr(experiment, "run_experiment", fake_run)
    cli.main(_parse(["--size", "t4", "--offline", "--total_steps", 2]))
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == standins.BANNER and lines.count(standins.BANNER) == 1
    assert "gpt2 tokenizer -> gpt2-standin" in lines[2] and "settings: preset 't4'" in lines[4]
    assert seen["offline"] is True and seen["banner"] is False
