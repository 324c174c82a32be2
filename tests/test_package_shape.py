"""The package's shape: ``akira_nb/__init__.py`` names every sub-package and shared module without
importing torch; the grokking package's imports form no cycle and take no private name."""

import ast
import subprocess
import sys
from pathlib import Path

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


def test_grokking_imports_form_no_cycle_and_take_no_private_name():
    package = "akira_nb.grokking"
    folder = PACKAGE / "grokking"
    modules = {p.stem for p in folder.glob("*.py") if p.stem != "__init__"}
    graph = {}
    for name in modules:
        pairs = _imports(folder / f"{name}.py", package)
        graph[name] = {m for m, _ in pairs if m in modules}
        private = [f"{m}.{n}" for m, n in pairs if n.startswith("_")]
        assert private == [], f"{name} imports private names {private}"
    assert graph["experiment"] >= {"train", "ensemble"}  # the parser sees the real imports
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
