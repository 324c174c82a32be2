"""What every explorer (``akira_nb.<experiment>.widgets``) shares: figures that pyplot does not
track, and the wiring of ipywidgets controls to a plain callback.

Why explorer figures stay out of pyplot. In JupyterLab 4 with ipykernel 7 the widget front end
sends some comm messages (an ``Output`` widget echoing its new outputs back to the kernel) on a
kernel *subshell*, a second thread, while the callback of the control that changed still runs
on the main thread. The ``comm`` package fires IPython's ``post_execute`` event after every comm
message, and the hooks registered there (pyplot's ``draw_all`` and matplotlib-inline's
``flush_figures``) draw, show and close **every figure pyplot tracks**, from that second
thread, including the one the callback is drawing at that moment. Two threads drawing one
figure corrupt its PNG: an explorer showed its figure once and then, after a control changed,
a white image or its titles only. A figure made by :func:`figure` is not registered with
pyplot, so no hook can touch it; the callback shows it with ``IPython.display.display``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

#: CSS class of every explorer's box (tests/browser finds the explorers by it)
CSS_CLASS = "akira-explorer"


def figure(**kwargs) -> Figure:
    """A new figure (``kwargs`` as for :class:`matplotlib.figure.Figure`, e.g. ``figsize``,
    ``layout``) on an Agg canvas, not tracked by pyplot: ``plt.show`` and the kernel's hooks
    never draw or close it; show it with ``IPython.display.display(fig)``."""
    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


def show(lines: str | Sequence[str], *figs) -> None:
    """Print ``lines`` and display each figure of ``figs`` (None skipped): what a callback
    wired by :func:`build` does with its result, inside the explorer's Output."""
    from IPython.display import display

    print(lines if isinstance(lines, str) else "\n".join(lines))
    for fig in figs:
        if fig is not None:
            display(fig)


def build(draw: Callable[..., None], controls: dict, rows: Sequence[Sequence[str]]):
    """Wire ``draw(**values of controls)`` to ``controls`` (``interactive_output``: it runs
    once now and again after every change, inside an Output it clears first). A ValueError
    from ``draw`` (a value outside what was run) is printed as one line. ``rows``: the control
    names of each row above the output. Returns ``(box, controls)``; the box carries the CSS
    class :data:`CSS_CLASS`. Only what ipywidgets 7.7 and 8.x share."""
    import ipywidgets as W

    def guarded(**values):
        try:
            draw(**values)
        except ValueError as exc:
            print(f"error: {exc}")

    out = W.interactive_output(guarded, controls)
    box = W.VBox([W.HBox([controls[name] for name in row]) for row in rows] + [out])
    box.add_class(CSS_CLASS)
    return box, controls


__all__ = ["CSS_CLASS", "build", "figure", "show"]
