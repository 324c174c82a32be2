import argparse
import json
import subprocess
import sys

import pytest

from akira_nb.grokking import cli
from akira_nb.modular_arithmetic import models


def _parse(argv):
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return parser.parse_args([str(a) for a in argv])


def test_cli_writes_results_figures_and_snapshot_frames(tmp_path):
    argv = ["--size", "tiny", "--p", 7, "--n_epochs", 20, "--eval_every", 10,
            "--wave_modes", "fnet", "--seeds", 0, 1, "--snapshot_every", 20,
            "--d_model", 32, "--d_mlp", 64, "--output_dir", tmp_path, "--quiet"]  # fmt: skip
    out = cli.main(_parse(argv))
    run = out["run"].path
    results = json.loads((run / "results.json").read_text())
    assert [(r["mixer"], r["seeds"]) for r in results["table"]] == [("standard", 2), ("fnet", 2)]
    assert results["config"]["base"]["d_model"] == 32
    assert results["environment"]["torch"]
    figures = {p.name for p in (run / "figures").iterdir()}
    assert {"curves_p7.png", "progress_p7.png", "embedding_spectrum_p7.png"} <= figures
    assert {"neurons_standard_p7.png", "neurons_fnet_p7.png"} <= figures
    frames = sorted((run / "figures" / "frames_p7_fnet_s1").iterdir())
    assert [f.name for f in frames] == ["epoch_000020.png"]  # every 20 epochs (one frame each)
    assert "standard" in out["table"] and "fnet" in out["table"]

    # --resume reopens the same run and reloads the finished arms (its figures: drawn above)
    from akira_nb.grokking import experiment

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(experiment, "save_figures", lambda *a, **k: {})
        again = cli.main(_parse([*argv, "--resume"]))
    assert again["run"].path == run
    assert again["rows"][0]["test_acc_mean"] == out["rows"][0]["test_acc_mean"]


@pytest.mark.parametrize(
    "argv,field",
    [(["--p", "12"], "p"), (["--train_frac", "1.2"], "train_frac"), (["--lr", "-1"], "lr")],
)
def test_cli_bad_input_raises_value_error_naming_the_flag(tmp_path, argv, field):
    with pytest.raises(ValueError, match=field):
        cli.main(_parse([*argv, "--output_dir", tmp_path, "--quiet"]))


def test_literal_mixer_names_equal_the_models():
    assert cli.MIXERS == models.MIXERS


def test_cli_module_does_not_import_torch():
    code = "import sys, akira_nb.grokking.cli; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_every_flag_has_help_and_the_parser_a_description():
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    assert "seed document's own protocol" in parser.description
    missing = [a.dest for a in parser._actions if not a.help]
    assert missing == []


def test_default_is_the_seed_protocol_without_size_or_akira_size(monkeypatch):
    monkeypatch.delenv("AKIRA_SIZE", raising=False)
    plan = cli.config_from_args(_parse([]))
    assert plan.size is None
    assert (plan.base.train_frac, plan.base.lr, plan.base.n_epochs) == (0.3, 1e-3, 30_000)
    assert plan.primes == [53] and plan.seeds == [0] and plan.mixers == list(models.MIXERS)
    assert plan.base.cpu_threads == 1
    line = plan.describe()
    assert "seed's protocol" in line and "train_frac=0.3" in line and "lr=0.001" in line
    # flags given on the command line are not reported as filled by the preset
    plan = cli.config_from_args(_parse(["--p", 53, "--n_epochs", 30000, "--lr", 0.002]))
    assert plan.base.lr == 0.002 and plan.base.train_frac == 0.3
    assert "n_epochs=" not in plan.describe() and "lr=" not in plan.describe()


def test_size_flag_wins_over_akira_size_and_akira_size_over_the_seed(monkeypatch):
    monkeypatch.setenv("AKIRA_SIZE", "tiny")
    tiny = cli.config_from_args(_parse([]))
    assert tiny.size == "tiny" and tiny.base.train_frac == 0.7 and tiny.primes == [23]
    assert "preset 'tiny'" in tiny.describe()
    t4 = cli.config_from_args(_parse(["--size", "t4"]))
    assert t4.size == "t4" and t4.base.train_frac == 0.3


def test_threads_and_model_choice_flags(monkeypatch):
    monkeypatch.delenv("AKIRA_SIZE", raising=False)
    assert cli.config_from_args(_parse(["--threads", 0])).base.cpu_threads == 0
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    (threads,) = [a for a in parser._actions if a.dest == "threads"]
    assert "default 1" in threads.help and "0: torch's default" in threads.help
    assert cli.config_from_args(_parse(["--threads", 2])).base.cpu_threads == 2
    assert cli.config_from_args(_parse(["--progress_every", 0])).base.progress_every == 0
    plan = cli.config_from_args(_parse(["--no_standard", "--wave_modes", "fnet"]))
    assert plan.mixers == ["fnet"]
    assert cli.config_from_args(_parse(["--no_standard"])).mixers == list(cli.WAVE_MODES)
    with pytest.raises(ValueError, match="cpu_threads"):
        cli.config_from_args(_parse(["--threads", -1]))


TINY = ["--size", "tiny", "--p", 7, "--n_epochs", 10, "--eval_every", 5, "--wave_modes",
        "fnet", "--no_standard", "--d_model", 32, "--d_mlp", 64, "--quiet"]  # fmt: skip


def test_cli_resume_refuses_other_settings_and_allows_more_epochs(tmp_path):
    cli.main(_parse([*TINY, "--output_dir", tmp_path, "--name", "r"]))
    with pytest.raises(ValueError, match=r"resume refused.*lr saved 0\.003, now 0\.01"):
        cli.main(_parse([*TINY, "--output_dir", tmp_path, "--name", "r", "--resume", "--lr", 0.01]))
    with pytest.raises(ValueError, match=r"resume refused.*eval_every saved 5, now 10"):
        cli.main(
            _parse([*TINY, "--output_dir", tmp_path, "--name", "r", "--resume", "--eval_every", 10])
        )
    out = cli.main(
        _parse([*TINY, "--output_dir", tmp_path, "--name", "r", "--resume", "--n_epochs", 20])
    )
    assert out["results"][0].history["epoch"][-1] == 20
    assert len(list((tmp_path / "grokking").iterdir())) == 1  # the same run folder


@pytest.mark.parametrize(
    "argv,match",
    [
        (["--seeds", "-1"], "seeds"),
        (["--seeds", "1", "1"], "seeds"),
        (["--device", "cuda"], "device"),
        (["--device", "tpu"], "device"),
        (["--p", "7", "9"], "p=9"),
        (["--p", "7", "7"], "primes=.*repeats 7"),
        (["--wave_modes", "fnet", "fnet"], "mixers=.*repeats 'fnet'"),
        (["--n_epochs", "0"], "n_epochs"),
        (["--lr", "inf"], "lr"),
    ],
)
def test_bad_input_leaves_no_run_folder(tmp_path, argv, match):
    if "cuda" in argv:
        torch = pytest.importorskip("torch")
        if torch.cuda.is_available():
            pytest.skip("CUDA is available here")
    with pytest.raises(ValueError, match=match):
        cli.main(_parse([*TINY, *argv, "--output_dir", tmp_path]))
    assert not (tmp_path / "grokking").exists()


def test_seed_and_seeds_together_are_refused_naming_both(tmp_path):
    with pytest.raises(ValueError, match=r"--seed 3 and --seeds \[0, 1\].*one of them"):
        cli.main(_parse([*TINY, "--seed", 3, "--seeds", 0, 1, "--output_dir", tmp_path]))
    assert not (tmp_path / "grokking").exists()
    assert cli.config_from_args(_parse([*TINY, "--seed", 3])).seeds == [3]


def test_ensemble_flag_is_off_unless_given():
    assert _parse([]).ensemble is False
    assert _parse(["--ensemble"]).ensemble is True
    assert _parse(["--no-ensemble"]).ensemble is False


def test_offline_is_accepted_replaces_nothing_and_says_so(tmp_path, capsys):
    from akira_nb import standins

    argv = ["--size", "tiny", "--p", 7, "--n_epochs", 10, "--eval_every", 10,
            "--wave_modes", "fnet", "--d_model", 32, "--d_mlp", 64, "--quiet"]  # fmt: skip
    plain = cli.main(_parse([*argv, "--output_dir", tmp_path / "plain"]))
    capsys.readouterr()
    offline = cli.main(_parse([*argv, "--output_dir", tmp_path / "offline", "--offline"]))
    printed = capsys.readouterr().out
    assert cli.OFFLINE_NOTE in printed and standins.BANNER not in printed
    results = json.loads((offline["run"].path / "results.json").read_text())
    assert results["standins"] == {"offline": True, "replaced": {}}
    same = ("mixer", "test_acc_mean", "train_acc_mean", "params")  # the same run (not speed)
    assert [[r[k] for k in same] for r in offline["rows"]] == [
        [r[k] for k in same] for r in plain["rows"]
    ]
