import argparse
import json

import pytest

from akira_nb.grokking import cli


def _parse(argv):
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return parser.parse_args([str(a) for a in argv])


def test_cli_writes_results_figures_and_snapshot_frames(tmp_path):
    argv = ["--size", "tiny", "--p", 7, "--n_epochs", 20, "--eval_every", 10,
            "--wave_modes", "fnet", "--seeds", 0, 1, "--snapshot_every", 10,
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
    assert [f.name for f in frames] == ["epoch_000010.png", "epoch_000020.png"]
    assert "standard" in out["table"] and "fnet" in out["table"]

    # --resume reopens the same run and reloads the finished arms
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
