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


def _as_decided(claim: dict) -> tuple[str, str | None]:
    """What ``claims.verdict`` gives for the row's own result (its verdict, or beside "not
    comparable" its computed verdict) and its comparability."""
    from akira_nb.claims import verdict

    word = verdict_word(claim["verdict"])
    own = claim.get("computed_verdict") if word == "not comparable" else claim["verdict"]
    own_word = verdict_word(own)
    holds = {"holds": True, "does not hold": False}.get(own_word)
    why = own.split(": ", 1)[1] if own_word == "not measurable" else None
    return verdict(
        holds,
        measured=word != "not run",
        why_not="not comparable" if word == "not comparable" else None,
        unmeasurable=why,
    )


@pytest.mark.xdist_group("main_job")
def test_every_claim_in_the_summary_is_what_the_one_verdict_rule_gives(main_job):
    """Each experiment's claims fed back through ``claims.verdict``: a "not comparable" row
    carries the rule's own result, a judged row carries none, and the words agree."""
    summary = json.loads((main_job["root"] / "summary.json").read_text())["experiments"]
    seen = set()
    for sec in summary:
        for claim in sec["claims"]:
            word, computed = _as_decided(claim)
            assert verdict_word(word) == verdict_word(claim["verdict"]), claim
            assert computed == claim.get("computed_verdict"), claim
            seen.add(verdict_word(claim["verdict"]))
    assert "not comparable" in seen  # tiny runs are below every seed's scale
