"""The kit summary (``runs/summary.md`` + ``summary.json``): the overview, claims tables with
their rules as footnotes, computed verdicts beside "not comparable", the numbers in the JSON,
and sections that break the claims contract refused. Every section here is made by hand."""

import json

import pytest

from akira_nb.claims import claim_lines, summary_markdown, write_summary
from akira_nb.runs import Run

STANDINS = "not comparable (offline stand-ins: random weights and the offline corpus)"


def claim(name="a claim", verdict="holds", **extra):
    return {
        "claim": name,
        "claimed": "2x",
        "measured": "1.1x",
        "rule": f"rule of {name}",
        "verdict": verdict,
        **extra,
    }


def section(claims, **extra):
    base = {"experiment": "exp", "title": "An experiment", "size": "tiny", "claims": claims}
    return base | extra


MIXED = [
    claim("c0", "holds", measured_value=1.1, unit="x"),
    claim("c1", "holds"),
    claim("c2", "does not hold"),
    claim("c3", STANDINS, computed_verdict="holds"),
    claim("c4", "not comparable", computed_verdict="does not hold"),
    claim("c5", "not run"),
    claim("c6", "not measurable: too few AQ neurons for the test"),
]


def table_rows(text):
    return [line for line in text.splitlines() if line.startswith("|")]


def test_the_overview_row_gives_the_headline_and_the_verdict_counts():
    text = summary_markdown([section(MIXED)])
    assert text.index("## Overview") < text.index("## An experiment")
    assert (
        "| exp | tiny | c0 | 2x | 1.1x | holds | 2 | 1 | 2 (1 holds, 1 does not hold) | 1 | 1 |"
        in text
    )


def test_the_headline_is_named_by_claim_text_or_index():
    by_text = summary_markdown([section(MIXED, headline="c2")])
    by_index = summary_markdown([section(MIXED, headline=2)])
    row = "| exp | tiny | c2 | 2x | 1.1x | does not hold | 2 | 1 |"
    assert row in by_text and row in by_index


def test_a_rule_becomes_a_numbered_footnote_shared_by_claims_with_the_same_rule():
    claims = [claim("x"), claim("y", "does not hold") | {"rule": "rule of x"}, claim("z")]
    text = summary_markdown([section(claims)])
    assert "| claim | seed says | measured | verdict |" in text
    assert "| x | 2x | 1.1x | holds [1] |" in text
    assert "| y | 2x | 1.1x | does not hold [1] |" in text
    assert "| z | 2x | 1.1x | holds [2] |" in text
    assert "- [1] rule: rule of x" in text and "- [2] rule: rule of z" in text
    assert "| rule |" not in text


def test_long_texts_keep_every_row_short_and_the_full_text_in_footnotes():
    rule, prose, name = "r" * 995 + " end.", "measured " * 60, "a long claim " * 15
    claims = [
        claim(name, STANDINS, computed_verdict="does not hold", measured_value=29.5, unit="x")
        | {"rule": rule, "measured": prose, "claimed": "seed " * 30},
        claim("no value", "holds") | {"measured": prose},
    ]
    text = summary_markdown([section(claims)])
    assert max(len(row) for row in table_rows(text)) <= 300
    assert "| 29.5x [1] | not comparable (on this run's numbers: does not hold) [2] |" in text
    assert f"- [1] measured: {prose.strip()}" in text
    assert f"rule: {rule}" in text and f"claim: {name}" in text and STANDINS in text
    assert "| no value | 2x | measured measured" in text and "… [1] | holds [3] |" in text


def test_a_not_comparable_claim_shows_what_its_rule_gives_on_this_runs_numbers():
    claims = [
        claim("c", "not comparable", computed_verdict="holds"),
        claim("d", "not comparable", seed_verdict="NOT SUPPORTED"),  # 013's key today
        claim("e", "holds", computed_verdict="does not hold"),  # shown only beside "not comp."
    ]
    text = summary_markdown([section(claims)])
    assert "| c | 2x | 1.1x | not comparable (on this run's numbers: holds) [1] |" in text
    assert "| d | 2x | 1.1x | not comparable (on this run's numbers: does not hold) [2] |" in text
    assert "| e | 2x | 1.1x | holds [3] |" in text
    assert claim_lines(claims[:1]) == [
        "c: claimed 2x, measured 1.1x -> not comparable (on this run's numbers: holds) "
        "(rule: rule of c)"
    ]


def test_claim_lines_print_claim_values_verdict_and_rule():
    c = {"claim": "x", "claimed": "2x", "measured": "1.1x", "rule": "r", "verdict": "holds"}
    assert claim_lines([c]) == ["x: claimed 2x, measured 1.1x -> holds (rule: r)"]


def test_write_summary_writes_markdown_and_json_with_values_units_and_counts(runs_root):
    sec = section(MIXED, run="runs/exp/x", baselines=["chance 0.04"], notes=["tiny note"])
    sec["claims"] = [claim("a | b", "does not hold", measured_value=1.1, unit="x")] + MIXED[1:]
    out = write_summary([sec])
    assert out["md"] == runs_root / "summary.md" and out["json"] == runs_root / "summary.json"
    text = out["md"].read_text()
    assert text == out["text"] and "| a \\| b | 2x | 1.1x | does not hold [1] |" in text
    assert "chance 0.04" in text and "tiny note" in text and "Run folder: `runs/exp/x`" in text
    data = json.loads(out["json"].read_text())
    (exp,) = data["experiments"]
    assert [(c["measured_value"], c["unit"]) for c in exp["claims"]] == [(1.1, "x")] + [
        (None, "")
    ] * 6
    assert exp["missing_values"] == ["c1", "c2", "c3", "c4", "c5", "c6"]
    counts = {"holds": 1, "does not hold": 2, "not comparable": 2, "not run": 1}
    assert exp["counts"] == counts | {"not measurable": 1}
    assert exp["computed_counts"] == {"holds": 1, "does not hold": 1}
    (row,) = data["overview"]
    assert row["counts"] == exp["counts"] and row["headline"]["measured_value"] == 1.1
    assert row["headline"]["claim"] == "a | b" and row["headline"]["unit"] == "x"


def test_a_section_without_values_or_units_still_writes(runs_root):
    sec = section([claim()], run="r")
    data = json.loads(write_summary([sec])["json"].read_text())
    assert data["experiments"][0]["claims"][0] == claim() | {
        "measured_value": None,
        "unit": "",
    }


def test_the_run_folder_renders_from_a_run_a_path_or_a_string(runs_root):
    run = Run.create("exp", "r")
    sections = [section([claim()], run=run), section([claim()], run=run.path)]
    sections.append(section([claim()], run=str(run.path)))
    out = write_summary(sections)
    assert out["text"].count(f"Run folder: `{run.path}`") == 3
    runs = [s["run"] for s in json.loads(out["json"].read_text())["experiments"]]
    assert runs == [str(run.path)] * 3


@pytest.mark.parametrize(
    "bad, match",
    [
        ({"title": "no experiment key"}, r"sections\[1\].*'experiment'"),
        (section([{k: v for k, v in claim("c7").items() if k != "rule"}]), r"'exp'.*'c7'.*'rule'"),
        (section([claim("c8", "probably")]), r"'exp'.*'c8'.*verdict='probably'"),
        (section([claim(computed_verdict="likely")]), "computed_verdict='likely'"),
        (section([claim("c9", measured_value="1.1")]), r"'c9'.*measured_value='1.1'"),
        (section([claim(measured_value=True)]), "measured_value=True"),
        (section([claim(unit=3)]), "unit=3"),
        (section([claim()], headline="no such claim"), "headline='no such claim'"),
        (section([claim()], headline=1), r"headline=1 must be the index \(0 to 0\)"),
        (section([claim()], run=42), "run=42"),
        (section("not a list"), "claims='not a list'"),
    ],
)
def test_a_section_that_breaks_the_contract_is_refused_before_anything_is_written(
    runs_root, bad, match
):
    with pytest.raises(ValueError, match=match):
        write_summary([section([claim()]), bad])
    assert not (runs_root / "summary.md").exists() and not (runs_root / "summary.json").exists()
