"""akira_nb.claims: the one verdict rule, the Claim row checked when built, judge()."""

import pytest

from akira_nb.claims import Claim, judge, verdict


def test_verdict_ladder_on_every_case():
    assert verdict(True) == ("holds", None)
    assert verdict(False) == ("does not hold", None)
    assert verdict(True, measured=False) == ("not run", None)
    assert verdict(None) == ("not measurable: the rule has nothing to judge", None)
    assert verdict(True, unmeasurable="one seed") == ("not measurable: one seed", None)
    assert verdict(False, why_not="tiny") == ("not comparable", "does not hold")
    assert verdict(None, why_not="tiny", unmeasurable="x") == (
        "not comparable",
        "not measurable: x",
    )
    assert verdict(True, measured=False, why_not="tiny") == ("not run", None)


def test_judge_builds_the_row_through_verdict():
    row = judge("c", "r", "1x", "2x", True, value=2, unit="x", why_not="tiny", key="k1")
    assert row == {
        "key": "k1",
        "claim": "c",
        "claimed": "1x",
        "measured": "2x",
        "rule": "r",
        "verdict": "not comparable",
        "measured_value": 2.0,
        "unit": "x",
        "computed_verdict": "holds",
    }
    assert judge("c", "r", "1x", None, True, value=3)["verdict"] == "not run"
    assert judge("c", "r", "1x", None, True, value=3)["measured_value"] is None
    assert judge("c", "r", "1x", "not run (no seeds)", False)["measured"] == "not run (no seeds)"
    assert judge("c", "r", "1x", "nan", False, value=float("nan"))["measured_value"] is None


@pytest.mark.parametrize(
    "field, value, words",
    [
        ("verdict", "maybe", "verdict='maybe' must start with one of"),
        ("computed_verdict", "perhaps", "computed_verdict='perhaps'"),
        ("measured_value", "3", "measured_value='3' must be a number"),
        ("measured_value", True, "measured_value=True must be a number"),
        ("unit", 3, "unit=3 must be a string"),
    ],
)
def test_a_bad_claim_cannot_be_built(field, value, words):
    row = dict(claim="c", claimed="a", measured="b", rule="r", verdict="holds")
    with pytest.raises(ValueError, match=words):
        Claim(**{**row, field: value})


def test_from_dict_keeps_extra_keys_and_reads_013s_seed_verdict():
    row = dict(claim="c", claimed="a", measured="b", rule="r", verdict="not comparable")
    claim = Claim.from_dict({**row, "seed_verdict": "NOT SUPPORTED", "h": "H1"})
    assert claim.computed_verdict == "does not hold" and claim.extra == {
        "seed_verdict": "NOT SUPPORTED",
        "h": "H1",
    }
    assert claim.to_dict()["h"] == "H1" and "computed_verdict" not in Claim(**row).to_dict()
