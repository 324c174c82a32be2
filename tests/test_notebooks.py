"""Every notebook is a jupytext pair: the .py (py:percent) is the source and the committed
.ipynb must hold the same cells, without outputs. (nbmake executes the .ipynb separately.)"""

from pathlib import Path

import jupytext
import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
SOURCES = sorted(NOTEBOOKS.glob("*.py"))


def test_there_are_notebooks():
    assert SOURCES, f"no notebook sources in {NOTEBOOKS}"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_pair_in_sync_and_without_outputs(source):
    ipynb = source.with_suffix(".ipynb")
    assert ipynb.is_file(), f"{ipynb.name} missing: run jupytext --to ipynb {source.name}"
    text_nb = jupytext.read(source)
    committed = jupytext.read(ipynb)
    want = [(c.cell_type, c.source.strip()) for c in text_nb.cells]
    have = [(c.cell_type, c.source.strip()) for c in committed.cells]
    assert have == want, (
        f"{ipynb.name} is out of sync with {source.name}: run "
        f"jupytext --to ipynb --update notebooks/{source.name}"
    )
    for cell in committed.cells:
        if cell.cell_type == "code":
            assert not cell.get("outputs"), f"{ipynb.name} has committed outputs"
            assert cell.get("execution_count") is None


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_notebook_has_badge_and_parameters_cell(source):
    nb = jupytext.read(source)
    assert "colab.research.google.com" in nb.cells[0].source
    assert any("parameters" in c.metadata.get("tags", []) for c in nb.cells)
