"""The kit's main job: ``python -m akira_nb all --size tiny`` runs every experiment."""

import json

from akira_nb.__main__ import EXPERIMENTS, main


def test_main_job_runs_every_experiment_at_tiny_size(tmp_path, capsys):
    assert main(["all", "--size", "tiny", "--output_dir", str(tmp_path)]) == 0
    for experiment in EXPERIMENTS:
        runs = sorted((tmp_path / experiment).iterdir())
        assert runs, f"{experiment} wrote no run folder"
        results = json.loads((runs[-1] / "results.json").read_text())
        assert results, experiment
        assert any((runs[-1] / "figures").iterdir()), f"{experiment} saved no figure"
    out = capsys.readouterr().out
    assert "=== grokking done" in out and "=== spatiotemporal done" in out
