"""The kit's main job: ``python -m akira_nb all --size tiny`` runs every experiment and writes
the kit summary."""

import json

import pytest

from akira_nb.__main__ import EXPERIMENTS
from akira_nb.claims import VERDICT_WORDS, verdict_word


@pytest.mark.xdist_group("main_job")  # with the other readers of the main job's runs
def test_main_job_runs_every_experiment_at_tiny_size_and_writes_the_summary(main_job):
    assert main_job["code"] == 0
    tmp_path = main_job["root"]
    results = sorted(tmp_path.glob("*/*/results.json"))
    assert len({r.parent.parent.name for r in results}) == len(EXPERIMENTS), results
    for path in results:
        assert json.loads(path.read_text()), path
        assert any(path.parent.glob("figures/*.png")), f"{path.parent} saved no figure"
    out = main_job["out"]
    for experiment in EXPERIMENTS:
        assert f"=== {experiment} done" in out
    summary = json.loads((tmp_path / "summary.json").read_text())["experiments"]
    assert len(summary) == len(EXPERIMENTS) and all(s["experiment"] for s in summary)
    text = (tmp_path / "summary.md").read_text()
    assert text in out  # printed as well as written
    for sec in summary:
        assert sec["claims"], f"{sec['experiment']} contributed no claim"
        for claim in sec["claims"]:
            assert claim["rule"] and claim["measured"] not in ("", None), claim
            assert verdict_word(claim["verdict"]) in VERDICT_WORDS, claim
            # every experiment supplies its number and unit beside the prose
            value = claim["measured_value"]
            assert value is None or isinstance(value, (int, float)), claim
            assert isinstance(claim["unit"], str), claim
        assert not sec.get("missing_values"), (sec["experiment"], sec["missing_values"])
        run_folder = tmp_path.joinpath(*[p for p in sec["run"].split("/")][-2:])
        assert sec["run"] in text and (run_folder / "results.json").is_file(), sec["run"]
