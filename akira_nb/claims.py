"""The kit's one claims vocabulary: a seed claim beside the measurement, and its verdict.

- :func:`verdict` decides every claim of every experiment: "not run" (nothing measured), "not
  comparable" (the run is not at the seed's scale or protocol; the rule's result on the run's
  own numbers kept beside it as ``computed_verdict``), else "holds" / "does not hold" / "not
  measurable: <why>".
- :class:`Claim` is one claim row (``claim``, ``claimed``, ``measured``, ``rule``, ``verdict``,
  ``measured_value``, ``unit``, ``computed_verdict``), valid once built; :func:`judge` builds
  one through :func:`verdict` and returns it as the dict that results.json and the summary hold.
- :func:`offline` marks every measured row of an offline run (stand-ins) not comparable.
- :class:`Section` is what every experiment's ``kit_summary(out)`` returns; :func:`write_summary`
  writes the kit summary (``summary.md`` + ``summary.json``) beside the runs.
"""

from __future__ import annotations

import datetime as _dt
import math
import numbers
import os
import re
from dataclasses import dataclass, field
from typing import Any, Iterable, TypedDict

from akira_nb.runs import Run, atomic_write_json, atomic_write_text, runs_root

VERDICT_WORDS = ("holds", "does not hold", "not comparable", "not run", "not measurable")
CLAIM_KEYS = ("claim", "claimed", "measured", "rule", "verdict")
_VERDICT_RE = re.compile(r"^(holds|does not hold|not comparable|not run|not measurable)\b")
_SEED_WORDS = {"SUPPORTED": "holds", "NOT SUPPORTED": "does not hold"}  # 013's seed_verdict


def verdict(
    holds: bool | None,
    *,
    measured: bool = True,
    why_not: str | None = None,
    unmeasurable: str | None = None,
) -> tuple[str, str | None]:
    """``(verdict, computed_verdict)`` of one claim. ``holds``: the claim's rule on this run's
    numbers (None: the rule has nothing to judge; ``unmeasurable`` says why); ``measured``:
    False when the run measured nothing for it; ``why_not``: why the run is not comparable with
    the seed (then the verdict is "not comparable" and the rule's own result is the computed
    verdict beside it)."""
    if not measured:
        return "not run", None
    if unmeasurable or holds is None:
        own = f"not measurable: {unmeasurable or 'the rule has nothing to judge'}"
    else:
        own = "holds" if holds else "does not hold"
    return ("not comparable", own) if why_not else (own, None)


def verdict_word(verdict: Any) -> str | None:
    """The verdict word a verdict starts with (one of :data:`VERDICT_WORDS`; "not comparable
    (offline stand-ins ...)" gives "not comparable"), or None when it starts with none."""
    match = _VERDICT_RE.match(verdict) if isinstance(verdict, str) else None
    return match.group(1) if match else None


@dataclass(frozen=True)
class Claim:
    """One seed claim beside this run's measurement (checked when built: ``ValueError`` naming
    the field). ``extra`` keeps an experiment's own keys (013's ``seed_verdict``, ...)."""

    claim: str
    claimed: str
    measured: str
    rule: str
    verdict: str
    measured_value: float | None = None
    unit: str = ""
    computed_verdict: str | None = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self):
        where = f"claim {_trim(self.claim, 60)!r}"
        for key in ("verdict", "computed_verdict"):
            value = getattr(self, key)
            if (value is not None or key == "verdict") and not verdict_word(value):
                raise ValueError(f"{where}: {key}={value!r} must start with one of {VERDICT_WORDS}")
        value = self.measured_value
        if value is not None and (isinstance(value, bool) or not isinstance(value, numbers.Real)):
            raise ValueError(f"{where}: measured_value={value!r} must be a number or None")
        if not isinstance(self.unit, str):
            raise ValueError(f'{where}: unit={self.unit!r} must be a string ("" for a ratio)')
        finite = value is not None and math.isfinite(value)
        object.__setattr__(self, "measured_value", float(value) if finite else None)

    @classmethod
    def from_dict(cls, row: dict) -> Claim:
        """A claim dict (the rows results.json holds) as a :class:`Claim`; a ``seed_verdict``
        (013: SUPPORTED / NOT SUPPORTED) fills a missing ``computed_verdict``."""
        known = {k: row[k] for k in cls.__dataclass_fields__ if k in row and k != "extra"}
        extra = {k: v for k, v in row.items() if k not in cls.__dataclass_fields__}
        if known.get("computed_verdict") is None:
            known["computed_verdict"] = _seed_verdict(row.get("seed_verdict"))
        return cls(**known, extra=extra)

    def to_dict(self) -> dict:
        """The claim as the dict results.json and summary.json hold (no ``computed_verdict``
        key when there is none)."""
        row = {k: getattr(self, k) for k in self.__dataclass_fields__ if k != "extra"}
        if row["computed_verdict"] is None:
            del row["computed_verdict"]
        return {**self.extra, **row}


def judge(
    claim: str,
    rule: str,
    claimed: str,
    measured: str | None,
    holds: bool | None,
    *,
    why_not: str | None = None,
    value: float | None = None,
    unit: str = "",
    unmeasurable: str | None = None,
    **extra,
) -> dict:
    """One claim row, its verdict decided by :func:`verdict`: ``measured`` None (or prose that
    starts with "not run") means nothing was measured. Returns :meth:`Claim.to_dict`."""
    ran = measured is not None and not str(measured).startswith("not run")
    word, computed = verdict(holds, measured=ran, why_not=why_not, unmeasurable=unmeasurable)
    return Claim(
        claim=claim,
        claimed=claimed,
        measured=measured if ran else (measured or "not run"),
        rule=rule,
        verdict=word,
        measured_value=value if ran else None,
        unit=unit,
        computed_verdict=computed,
        extra=extra,
    ).to_dict()


def offline(rows: list[dict], keep: Iterable[str] = ()) -> list[dict]:
    """Offline stand-ins measure the code path, never the models: every measured row (except
    the claims named in ``keep``) reads :data:`akira_nb.standins.NOT_COMPARABLE`, the rule's own
    result kept as its ``computed_verdict``. Changes ``rows`` in place and returns them."""
    from akira_nb.standins import NOT_COMPARABLE

    keep = set(keep)
    for row in rows:
        if row["verdict"] != "not run" and row["claim"] not in keep:
            if verdict_word(row["verdict"]) != "not comparable":
                row["computed_verdict"] = row["verdict"]
            row["verdict"] = NOT_COMPARABLE
    return rows


class Section(TypedDict, total=False):
    """What an experiment's ``kit_summary(out)`` returns: its section of the kit summary."""

    experiment: str  # the sub-command's name (required)
    title: str
    size: str | None  # tiny / t4 / a100, or None for the seed's protocol
    run: Any  # a Run, a path or a string: the run folder
    claims: list[dict]  # Claim.to_dict() rows
    headline: int | str  # the headline claim's index or text (default: the first)
    baselines: list[str]
    notes: list[str]


def _seed_verdict(seed: Any) -> str | None:
    if not isinstance(seed, str):
        return None
    return _SEED_WORDS.get(seed, seed if verdict_word(seed) else None)


# -- the kit summary ----------------------------------------------------------------------

# cell widths (characters) of a claims row: 80 + 50 + 60 + 80, plus footnote marks and
# separators, keep every row under 300 characters whatever the texts
_WIDTH = {"claim": 80, "claimed": 50, "measured": 60, "verdict": 80}
_OVERVIEW_WIDTH = {"claim": 60, "claimed": 40, "measured": 40, "verdict": 60}


def computed_verdict(claim: dict) -> str | None:
    """What the claim's rule gives on this run's own numbers: its ``computed_verdict``, else a
    ``seed_verdict`` (013: SUPPORTED / NOT SUPPORTED) in the kit's words, else None."""
    if claim.get("computed_verdict") is not None:
        return claim["computed_verdict"]
    return _seed_verdict(claim.get("seed_verdict"))


def _verdict_text(claim: dict, width: int | None = None) -> tuple[str, bool]:
    """The verdict as shown, with the computed one beside "not comparable"; within ``width``
    the verdict may shrink to its word (then the flag says the full text belongs elsewhere)."""
    verdict = " ".join(str(claim["verdict"]).split())
    comp = computed_verdict(claim) if verdict_word(verdict) == "not comparable" else None
    suffix = f" (on this run's numbers: {_trim(comp, 40) if width else comp})" if comp else ""
    if width is None or len(verdict) + len(suffix) <= width:
        return verdict + suffix, False
    return (verdict_word(verdict) or _trim(verdict, 20)) + suffix, True


def claim_lines(claims: list[dict]) -> list[str]:
    """Each claim of a kit-summary section as one printed line, with its rule (and, beside a
    "not comparable" verdict, what the rule gives on the run's own numbers)."""
    return [
        f"{c['claim']}: claimed {c['claimed']}, measured {c['measured']} -> "
        f"{_verdict_text(c)[0]} (rule: {c['rule']})"
        for c in claims
    ]


def _trim(text: Any, width: int) -> str:
    """``text`` on one line, cut at a word boundary to at most ``width`` characters."""
    text = " ".join(str(text).split())
    if len(text) <= width:
        return text
    cut = text[: width - 1]
    if cut.rfind(" ") > width // 2:
        cut = cut[: cut.rfind(" ")]
    return cut.rstrip(" ,;:(") + "…"


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _row(cells: Iterable[Any]) -> str:
    return "| " + " | ".join(_cell(v) for v in cells) + " |"


def _value_text(claim: dict) -> str | None:
    """``measured_value`` with its unit ("29.5x", "29.1% of neurons", "3.17 nats"), or None."""
    value = claim.get("measured_value")
    if value is None or not math.isfinite(value):
        return None
    number = f"{value:,.0f}" if float(value).is_integer() else f"{value:.4g}"
    unit = claim.get("unit") or ""
    return number + ("" if not unit or unit[0] in "%x" else " ") + unit


def _measured_text(claim: dict, width: int) -> tuple[str, bool]:
    """The measured prose when it fits ``width``; else the value with its unit (or the prose
    cut short), flagged so the full prose goes to a footnote."""
    prose = " ".join(str(claim["measured"]).split())
    if len(prose) <= width:
        return prose, False
    return _value_text(claim) or _trim(prose, width), True


def _check_claim(experiment: str, i: int, claim: Any) -> dict:
    """A claim dict read as a :class:`Claim` (so checked against the contract) and returned as
    its dict: ``measured_value`` / ``unit`` filled (None / "") when absent, ``computed_verdict``
    filled from 013's ``seed_verdict`` when that gives one."""
    where = f"section {experiment!r}, claim {i}"
    if not isinstance(claim, dict):
        raise ValueError(f"{where}: {claim!r:.200} must be a dict with keys {CLAIM_KEYS}")
    where += f" ({_trim(claim.get('claim', ''), 60)!r})"
    for key in CLAIM_KEYS:
        if key not in claim:
            raise ValueError(f"{where} has no {key!r} key; every claim needs {CLAIM_KEYS}")
    try:
        return Claim.from_dict(claim).to_dict()
    except ValueError as err:
        raise ValueError(f"{where}: {str(err).split(': ', 1)[-1]}") from None


def _run_text(experiment: str, run: Any) -> str | None:
    """A section's run folder as text: a :class:`~akira_nb.runs.Run`, a path or a string."""
    if run is None or isinstance(run, str):
        return run
    if isinstance(run, Run):
        return str(run.path)
    if isinstance(run, os.PathLike):
        return os.fspath(run)
    raise ValueError(f"section {experiment!r}: run={run!r:.200} must be a Run, a path or a string")


def _headline(experiment: str, headline: Any, claims: list[dict]) -> int | None:
    """The index of the section's headline claim: ``headline`` names it by index or by its
    ``claim`` text; without one, the first claim (None when there is no claim)."""
    if headline is None:
        return 0 if claims else None
    texts = [c["claim"] for c in claims]
    if isinstance(headline, int) and not isinstance(headline, bool):
        if -len(claims) <= headline < len(claims):
            return headline % len(claims)
    elif headline in texts:
        return texts.index(headline)
    raise ValueError(
        f"section {experiment!r}: headline={headline!r:.200} must be the index (0 to "
        f"{len(claims) - 1}) or the claim text of one of its {len(claims)} claims"
    )


def verdict_counts(claims: list[dict]) -> dict:
    """How many claims have each verdict word (every word of :data:`VERDICT_WORDS`)."""
    counts = dict.fromkeys(VERDICT_WORDS, 0)
    for c in claims:
        counts[verdict_word(c["verdict"])] += 1
    return counts


def _computed_counts(claims: list[dict]) -> dict:
    """Among the "not comparable" claims: how many give each verdict on the run's own numbers."""
    words = [
        verdict_word(computed_verdict(c))
        for c in claims
        if verdict_word(c["verdict"]) == "not comparable"
    ]
    return {w: words.count(w) for w in VERDICT_WORDS if words.count(w)}


def check_section(i: int, section: Any) -> dict:
    """``sections[i]`` checked (``ValueError`` naming the experiment, the claim and the key)
    and completed: claims as :func:`_check_claim`, ``run`` as text, and ``counts``,
    ``computed_counts``, ``headline_index`` and ``missing_values`` (claims that lacked
    ``measured_value`` or ``unit``) added."""
    experiment = section.get("experiment") if isinstance(section, dict) else None
    if not isinstance(experiment, str) or not experiment:
        raise ValueError(
            f"sections[{i}]={section!r:.200} must be a dict with an 'experiment' key (a name)"
        )
    raw = section.get("claims") or []
    if not isinstance(raw, list):
        raise ValueError(f"section {experiment!r}: claims={raw!r:.200} must be a list of dicts")
    claims = [_check_claim(experiment, j, c) for j, c in enumerate(raw)]
    return {
        **section,
        "run": _run_text(experiment, section.get("run")),
        "claims": claims,
        "headline_index": _headline(experiment, section.get("headline"), claims),
        "counts": verdict_counts(claims),
        "computed_counts": _computed_counts(claims),
        "missing_values": [c["claim"] for c in raw if "measured_value" not in c or "unit" not in c],
    }


def _overview_row(sec: dict) -> list[str]:
    counts, comp = sec["counts"], sec["computed_counts"]
    cells = [sec["experiment"], sec.get("size") or "seed protocol"]
    if sec["headline_index"] is None:
        cells += ["(no claim)", "-", "-", "-"]
    else:
        c, w = sec["claims"][sec["headline_index"]], _OVERVIEW_WIDTH
        cells += [_trim(c["claim"], w["claim"]), _trim(c["claimed"], w["claimed"])]
        cells += [_measured_text(c, w["measured"])[0], _verdict_text(c, w["verdict"])[0]]
    not_comparable = str(counts["not comparable"])
    if comp:
        not_comparable += f" ({', '.join(f'{n} {w}' for w, n in comp.items())})"
    return (
        cells
        + [counts["holds"], counts["does not hold"], not_comparable]
        + [
            counts["not run"],
            counts["not measurable"],
        ]
    )


def _overview_lines(sections: list[dict]) -> list[str]:
    header = ["experiment", "size", "headline claim", "seed says", "measured", "verdict"]
    return [
        "## Overview",
        "",
        "One row per experiment: its headline claim, the seed's value beside this run's, and "
        "how many of its claims hold, do not hold, are not comparable (the run is below the "
        "seed's scale; in brackets, what the rules give on this run's own numbers), were not "
        "run or are not measurable.",
        "",
        _row(header + ["holds", "does not hold", "not comparable", "not run", "not measurable"]),
        "|" + "---|" * (len(header) + 5),
        *(_row(_overview_row(sec)) for sec in sections),
        "",
    ]


def _claim_row(claim: dict, notes: dict) -> list[str]:
    """One claims-table row; the rule (and any text cut short) goes to the footnotes ``notes``
    (``{text: number}``, shared by the section's rows so a repeated rule is one footnote)."""

    def mark(text: str) -> str:
        return f"[{notes.setdefault(text, len(notes) + 1)}]"

    w = _WIDTH
    measured, cut = _measured_text(claim, w["measured"])
    if cut:
        measured += " " + mark(f"measured: {' '.join(str(claim['measured']).split())}")
    verdict, shrunk = _verdict_text(claim, w["verdict"])
    details = [f"rule: {' '.join(str(claim['rule']).split())}"]
    for key, label in (("claim", "claim"), ("claimed", "seed says")):
        if len(_trim(claim[key], w[key])) < len(" ".join(str(claim[key]).split())):
            details.append(f"{label}: {claim[key]}")
    if shrunk:
        details.append(f"verdict: {claim['verdict']}")
    verdict += " " + mark("; ".join(details))
    return [_trim(claim["claim"], w["claim"]), _trim(claim["claimed"], w["claimed"])] + [
        measured,
        verdict,
    ]


def _section_lines(sec: dict) -> list[str]:
    size = sec.get("size") or "the seed's protocol"
    lines = [f"## {sec.get('title', sec['experiment'])} ({sec['experiment']}, size: {size})", ""]
    if sec["claims"]:
        notes: dict[str, int] = {}
        rows = [_row(_claim_row(c, notes)) for c in sec["claims"]]
        lines += [_row(["claim", "seed says", "measured", "verdict"]), "|---|---|---|---|"]
        lines += rows + [""] + [f"- [{n}] {_cell(text)}" for text, n in notes.items()] + [""]
    for title, key in (("Baselines", "baselines"), ("Notes", "notes")):
        if sec.get(key):
            lines += [f"{title}:", ""] + [f"- {item}" for item in sec[key]] + [""]
    lines += [f"Run folder: `{sec.get('run') or '-'}`", ""]
    return lines


def _markdown(checked: list[dict]) -> str:
    lines = ["# akira-nb: the seed documents' claims beside this kit's measurements", ""]
    lines += _overview_lines(checked)
    for sec in checked:
        lines += _section_lines(sec)
    return "\n".join(lines)


def summary_markdown(sections: list[dict]) -> str:
    """The kit summary as Markdown: an overview (one row per experiment: size, headline claim
    beside the measurement, verdict counts), then per experiment its claims table (claim, the
    seed's value, the measured value, the verdict with the computed one beside "not
    comparable"; each rule a numbered footnote under the table), baselines, notes, run folder.
    ``sections`` as for :func:`write_summary`."""
    return _markdown([check_section(i, s) for i, s in enumerate(sections)])


def _overview_json(sec: dict) -> dict:
    i = sec["headline_index"]
    keys = ("claim", "claimed", "measured", "measured_value", "unit", "verdict")
    headline = None if i is None else {"index": i} | {k: sec["claims"][i][k] for k in keys}
    if headline and "computed_verdict" in sec["claims"][i]:
        headline["computed_verdict"] = sec["claims"][i]["computed_verdict"]
    return {
        "experiment": sec["experiment"],
        "title": sec.get("title", sec["experiment"]),
        "size": sec.get("size"),
        "headline": headline,
        "counts": sec["counts"],
        "computed_counts": sec["computed_counts"],
    }


def write_summary(sections: list[dict], root=None) -> dict:
    """Write the kit summary beside the runs: ``<root>/summary.md`` and ``summary.json``
    (``root`` as in :func:`akira_nb.runs.runs_root`). Each section is what an experiment's
    ``experiment.kit_summary(out)`` returns: ``experiment`` (required), ``title``, ``size``,
    ``run`` (a ``Run``, a path or a string), ``claims`` (the claims contract above; a
    claim without ``measured_value`` / ``unit`` gets None / "" and is listed in the section's
    ``missing_values``), optional ``headline`` (a claim's index or text; default the first),
    ``baselines``, ``notes``. A section that breaks the contract is refused (``ValueError``
    naming the experiment, the claim and the key) before anything is written. The JSON holds
    the ``overview`` (per experiment: headline claim and verdict counts) and every checked
    section. Returns ``{"md": path, "json": path, "text": md}``."""
    if not isinstance(sections, (list, tuple)):
        raise ValueError(f"sections={sections!r:.200} must be a list of kit-summary sections")
    checked = [check_section(i, s) for i, s in enumerate(sections)]
    base = runs_root(root)
    text = _markdown(checked)
    md = atomic_write_text(base / "summary.md", text)
    js = atomic_write_json(
        base / "summary.json",
        {
            "written": _dt.datetime.now().isoformat(timespec="seconds"),
            "overview": [_overview_json(sec) for sec in checked],
            "experiments": checked,
        },
    )
    return {"md": md, "json": js, "text": text}
