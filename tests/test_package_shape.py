"""The package's shape: ``akira_nb/__init__.py`` names every sub-package and shared module without
importing torch; every package's modules form no cycle and take no private name; every
experiment package has the same files; no experiment imports another."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

import akira_nb

PACKAGE = Path(akira_nb.__file__).parent


def _children() -> set[str]:
    """Every sub-package and module directly under akira_nb/ (``__main__`` aside)."""
    pkgs = {p.parent.name for p in PACKAGE.glob("*/__init__.py")}
    mods = {p.stem for p in PACKAGE.glob("*.py") if not p.stem.startswith("__")}
    return pkgs | mods


def test_init_names_every_subpackage_and_shared_module():
    children = _children()
    assert {"grokking", "alignment", "bandformer", "runs", "lr_sweep"} <= children
    assert set(akira_nb.__all__) == children
    for name in children:
        assert f"``{name}``" in akira_nb.__doc__, name
    assert "``action_quanta``" in akira_nb.__doc__  # alignment's sub-command


def test_import_akira_nb_does_not_import_torch():
    code = "import sys, akira_nb; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def _imports(path: Path, package: str) -> list[tuple[str, str]]:
    """(module, name) for every ``from <package>[.module] import name`` in ``path`` (relative
    imports resolved; ``from <package> import module`` gives (module, module))."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not isinstance(node, ast.ImportFrom) or node.level > 1:
            continue
        full = node.module or ""
        if node.level == 1:
            full = f"{package}.{full}" if full else package
        if full == package:
            found += [(a.name, a.name) for a in node.names]
        elif full.startswith(package + "."):
            found += [(full[len(package) + 1 :], a.name) for a in node.names]
    return found


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle of ``graph`` (module -> modules it imports), or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(node: str, path: list[str]) -> list[str] | None:
        state[node] = 1
        path = path + [node]
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt) :] + [nxt]
            if nxt not in state and (found := visit(nxt, path)):
                return found
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := visit(start, [])):
            return found
    return None


def test_cycle_finder_finds_a_known_cycle():
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) is not None
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None


@pytest.mark.parametrize("package", sorted(p.parent.name for p in PACKAGE.glob("*/__init__.py")))
def test_a_packages_modules_form_no_cycle_and_take_no_private_name(package):
    folder = PACKAGE / package
    modules = {p.stem for p in folder.glob("*.py") if p.stem != "__init__"}
    graph = {}
    for name in modules:
        pairs = _imports(folder / f"{name}.py", f"akira_nb.{package}")
        graph[name] = {m for m, _ in pairs if m in modules}
        private = [f"{m}.{n}" for m, n in pairs if n.startswith("_")]
        assert private == [], f"{name} imports private names {private}"
    if package in _experiment_packages():  # the parser sees the real imports
        assert graph["experiment"] & {"presets", "claims"}, graph["experiment"]
    assert _cycle(graph) is None, f"import cycle: {' -> '.join(_cycle(graph))}"


def test_no_module_imports_a_private_name_from_another_package():
    """Shared helpers live in a shared module under a public name: ``from akira_nb.X import
    _name`` is allowed only inside package X."""
    found = []
    for path in PACKAGE.rglob("*.py"):
        here = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts[:2])
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                other = ".".join(node.module.split(".")[:2])
                if node.module.startswith("akira_nb") and other != here:
                    found += [f"{path.name}: {node.module}.{a.name}" for a in node.names]
    private = [f for f in found if f.rsplit(".", 1)[1].startswith("_")]
    assert found and private == [], private  # found: the walk saw the kit's own imports


# -- one shape for every experiment package (issue 18) ------------------------------------------

ROLE_FILES = ("presets", "claims", "experiment", "plots", "widgets", "cli")
MAX_FILE_LINES, MAX_FUNCTION_LINES = 700, 80


def _experiment_packages() -> list[str]:
    from akira_nb.__main__ import EXPERIMENTS

    return sorted(path.split(".")[1] for path in EXPERIMENTS.values())


def test_every_experiment_package_has_the_same_files():
    packages = _experiment_packages()
    assert len(packages) == 5 and len(set(packages)) == 5
    for pkg in packages:
        have = {p.stem for p in (PACKAGE / pkg).glob("*.py")}
        assert set(ROLE_FILES) <= have, f"{pkg} lacks {sorted(set(ROLE_FILES) - have)}"


def test_no_file_over_700_lines_and_no_function_over_80():
    long_files, long_functions = [], []
    for path in sorted(PACKAGE.rglob("*.py")):
        text = path.read_text()
        name = path.relative_to(PACKAGE.parent)
        if len(text.splitlines()) > MAX_FILE_LINES:
            long_files.append(f"{name}: {len(text.splitlines())} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                length = node.end_lineno - node.lineno + 1
                if length > MAX_FUNCTION_LINES:
                    long_functions.append(f"{name}:{node.lineno} {node.name}: {length} lines")
    assert long_files == [] and long_functions == [], long_files + long_functions


def _package_imports() -> dict[str, set[str]]:
    """akira_nb sub-package or shared module -> the others it imports (at any depth: imports
    inside functions count)."""
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[0] == "__main__":
            continue
        here = parts[0]
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.ImportFrom):
                if node.level == 0 and node.module and node.module.startswith("akira_nb"):
                    names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
                elif node.level >= 1:
                    base = parts[: len(parts) - node.level]
                    module = ".".join(("akira_nb", *base, *([node.module] if node.module else [])))
                    names = [module] + [f"{module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names if a.name.startswith("akira_nb")]
            for full in names:
                bits = full.split(".")
                if len(bits) > 1 and bits[1] in _children() and bits[1] != here:
                    graph.setdefault(here, set()).add(bits[1])
    return graph


def test_no_experiment_package_imports_another_and_the_graph_has_no_cycle():
    """Libraries (alignment, bandformer, modular_arithmetic) and shared modules sit below the
    experiments: no experiment imports another, no library or shared module imports an
    experiment, and the packages' import graph has no cycle."""
    graph, experiments = _package_imports(), set(_experiment_packages())
    assert graph["action_quanta"] >= {"alignment", "modular_arithmetic"}  # the walk sees them
    assert graph["band_transformer"] >= {"bandformer"}
    assert graph["grokking"] >= {"modular_arithmetic"}
    crossing = sorted(
        (a, b) for a, deps in graph.items() for b in deps if a in experiments and b in experiments
    )
    assert crossing == [], crossing
    for lib in set(_children()) - experiments:  # libraries and shared modules: no experiment
        assert not (graph.get(lib, set()) & experiments), (lib, graph.get(lib))
    assert _cycle(graph) is None, f"import cycle: {' -> '.join(_cycle(graph))}"


def test_every_claim_row_is_decided_by_the_one_verdict_rule():
    """Each experiment's claims.py builds its rows with ``akira_nb.claims.judge`` (which calls
    ``verdict``), and no module but ``claims.py`` spells out the verdict ladder itself."""
    for pkg in _experiment_packages():
        text = (PACKAGE / pkg / "claims.py").read_text()
        assert "judge(" in text and "def kit_summary(" in text, pkg
    for path in PACKAGE.rglob("*.py"):
        if path == PACKAGE / "claims.py":
            continue
        text = path.read_text()
        assert '"holds" if ' not in text and "'holds' if " not in text, path
