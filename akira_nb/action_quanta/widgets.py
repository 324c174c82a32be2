"""The 000 explorer: pick the input type, the layer pair, the method, the threshold rule and its
value; see the AQ count beside the counts expected by chance, and the histogram of the scores
with the nulls and the threshold.

:func:`explore` is the plain callback (pytest calls it); :func:`build_explorer` wires ipywidgets
to it, using only what ipywidgets 7.7 and 8.x share (Dropdown, FloatText, Output, HBox / VBox,
interactive_output). The histogram is a figure pyplot does not track
(:func:`akira_nb.explorers.figure`; the module says why).
"""

from __future__ import annotations

from akira_nb import explorers
from akira_nb.action_quanta.plots import count_figure
from akira_nb.alignment import aq
from akira_nb.alignment.thresholds import DEFAULT_VALUES, RULES, check_rule


def explore(
    result: aq.AQResult,
    input_type: str = "random",
    pair: str | None = None,
    method: str = "ot",
    rule: str = "statistical",
    value: float | None = None,
):
    """The AQ count of ``method`` at layer pair ``pair`` (a key such as ``"0-0"``; default the
    first) on ``input_type`` tokens under ``rule``/``value`` (None: the rule's default), beside
    every null of the method. Returns ``(counts, line, figure)``: ``counts`` maps each null's
    name to its :class:`~.thresholds.AQCount` (the count is the same, the chance levels
    differ)."""
    if input_type not in result.pairs:
        raise ValueError(
            f"input_type={input_type!r} was not run; choose one of {list(result.pairs)}"
        )
    by = result.pairs[input_type]
    pair = pair if pair is not None else next(iter(by))
    if pair not in by:
        raise ValueError(f"pair={pair!r} was not compared; choose one of {list(by)}")
    methods = by[pair].methods
    if method not in methods:
        raise ValueError(f"method={method!r} is not available; choose one of {list(methods)}")
    rule, value = check_rule(rule, value)
    m = methods[method]
    counts = m.counts(rule, value)
    line = f"{input_type} tokens, layers {pair}: {m.line(rule, value)}"
    fig = count_figure(m, rule, value, title=f"{input_type} L{pair}")
    return counts, line, fig


def build_explorer(result: aq.AQResult):
    """Widgets wired to :func:`explore`; returns ``(box, controls)``."""
    import ipywidgets as W

    kinds = list(result.pairs)
    first = result.pairs[kinds[0]]
    controls = {
        "input_type": W.Dropdown(options=kinds, value=kinds[0], description="tokens"),
        "pair": W.Dropdown(options=list(first), value=next(iter(first)), description="layers"),
        "method": W.Dropdown(
            options=list(next(iter(first.values())).methods), value="ot", description="method"
        ),
        "rule": W.Dropdown(options=list(RULES), value="statistical", description="rule"),
        "value": W.FloatText(value=DEFAULT_VALUES["statistical"], description="value"),
    }

    def on_rule(change):  # each rule's own default value when the rule changes
        controls["value"].value = DEFAULT_VALUES[change["new"]]

    controls["rule"].observe(on_rule, names="value")

    def draw(**kw):  # a value outside the rule's range: explorers.build prints the error
        _, line, fig = explore(result, **kw)
        explorers.show(line, fig)

    names = list(controls)
    return explorers.build(draw, controls, [names[:3], names[3:]])


__all__ = ["build_explorer", "explore"]
