"""The kit's main job: ``python -m akira_nb all --size tiny`` runs every experiment."""

import json

from akira_nb.__main__ import EXPERIMENTS, main


def test_main_job_runs_every_experiment_at_tiny_size(tmp_path, capsys):
    assert main(["all", "--size", "tiny", "--output_dir", str(tmp_path)]) == 0
    results = sorted(tmp_path.glob("*/*/results.json"))
    assert len({r.parent.parent.name for r in results}) == len(EXPERIMENTS), results
    for path in results:
        assert json.loads(path.read_text()), path
        assert any(path.parent.glob("figures/*.png")), f"{path.parent} saved no figure"
    out = capsys.readouterr().out
    for experiment in EXPERIMENTS:
        assert f"=== {experiment} done" in out
