"""Every notebook is a jupytext pair: the .py (py:percent) is the source and the committed
.ipynb must hold the same cells, without outputs. (nbmake executes the .ipynb separately.)"""

from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
SOURCES = sorted(NOTEBOOKS.glob("*.py"))


def _read(path: Path):
    """``jupytext.read``, imported here: jupytext loads nbformat, whose JSON-schema format
    checkers take about 2 CPU-s to import, which every test worker would pay at collection."""
    import jupytext

    return jupytext.read(path)


def test_there_are_notebooks():
    assert SOURCES, f"no notebook sources in {NOTEBOOKS}"


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_pair_in_sync_and_without_outputs(source):
    ipynb = source.with_suffix(".ipynb")
    assert ipynb.is_file(), f"{ipynb.name} missing: run jupytext --to ipynb {source.name}"
    text_nb = _read(source)
    committed = _read(ipynb)
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
    nb = _read(source)
    assert "colab.research.google.com" in nb.cells[0].source
    assert any("parameters" in c.metadata.get("tags", []) for c in nb.cells)


def _code_cells(source):
    return [c for c in _read(source).cells if c.cell_type == "code"]


def test_every_notebook_starts_with_the_same_colab_set_up_cell():
    first = {s.stem: _code_cells(s)[0].source.strip() for s in SOURCES}
    assert len(set(first.values())) == 1, f"the set-up cells differ: {sorted(first)}"
    cell = next(iter(first.values()))
    assert "colab_setup.sh" in cell and "check_returncode" in cell  # errors shown, not hidden
    assert "2>/dev/null" not in cell


@pytest.mark.parametrize("source", SOURCES, ids=lambda p: p.stem)
def test_parameters_cell_takes_the_size_from_runtime_and_warns_without_a_gpu(source):
    cell = next(c for c in _code_cells(source) if "parameters" in c.metadata.get("tags", []))
    assert "SIZE = runtime.get_size()" in cell.source
    assert "runtime.warn_if_no_gpu(SIZE)" in cell.source
    assert "AKIRA_SIZE" not in "".join(c.source for c in _code_cells(source))
