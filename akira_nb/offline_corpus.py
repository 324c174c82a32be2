"""The offline corpus: the docstrings of a fixed list of Python standard-library modules, read
from their source files with ``ast`` (nothing imported, nothing downloaded), the same on every
install of one CPython release. Built once per machine and kept in the kit's cache folder
(``runtime.cache_dir()``) under a name that changes with the sources it is read from.
:mod:`akira_nb.text` tokenizes and splits it."""

from __future__ import annotations

import ast
import functools
import hashlib
import inspect
import json
import platform
import sysconfig
import tokenize
from pathlib import Path
from typing import Iterable, Sequence

from akira_nb.runs import atomic_write_text, read_json
from akira_nb.runtime import cache_dir

# Single-file modules present in every CPython 3.10-3.13 install (none removed by PEP 594, none
# that Debian/Ubuntu split into separate packages such as tkinter, distutils or lib2to3).
STDLIB_MODULES = (
    "abc argparse ast base64 bdb bisect bz2 calendar cmd code codecs codeop colorsys compileall "
    "configparser contextlib copy copyreg csv dataclasses datetime decimal difflib dis doctest "
    "enum filecmp fileinput fnmatch fractions ftplib functools getopt getpass gettext glob "
    "graphlib gzip hashlib heapq hmac imaplib inspect io ipaddress keyword linecache locale lzma "
    "mailbox mimetypes modulefinder netrc numbers opcode operator optparse os pathlib pdb pickle "
    "pickletools pkgutil platform plistlib poplib posixpath pprint profile pstats pty py_compile "
    "pyclbr pydoc queue quopri random reprlib rlcompleter runpy sched secrets selectors shelve "
    "shlex shutil signal smtplib socket socketserver ssl stat statistics string stringprep struct "
    "subprocess symtable sysconfig tabnanny tarfile tempfile textwrap threading timeit token "
    "tokenize trace traceback tracemalloc tty types typing uuid warnings wave weakref webbrowser "
    "zipapp zipfile zipimport"
).split()
# Packages: every .py file under them, sorted, test folders excluded.
STDLIB_PACKAGES = (
    "asyncio collections concurrent email html http importlib json logging multiprocessing "
    "sqlite3 unittest urllib wsgiref xml xmlrpc zoneinfo"
).split()


def _stdlib_files() -> tuple[list[Path], list[str]]:
    root = Path(sysconfig.get_paths()["stdlib"])
    files, missing = [], []
    for name in STDLIB_MODULES:
        path = root / f"{name}.py"
        if not path.is_file():
            path = root / name / "__init__.py"  # e.g. pathlib became a package in 3.13
        if path.is_file():
            files.append(path)
        else:
            missing.append(name)
    for name in STDLIB_PACKAGES:
        pkg = root / name
        if not pkg.is_dir():
            missing.append(name)
            continue
        found = [
            p
            for p in pkg.rglob("*.py")
            if not any(part.startswith("test") for part in p.relative_to(pkg).parts[:-1])
        ]
        files.extend(sorted(found, key=lambda p: p.relative_to(root).as_posix()))
    return files, missing


def _docstrings(tree: ast.AST) -> Iterable[str]:
    """Docstrings of the module, its classes and functions, in source order (depth first)."""
    if isinstance(tree, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
        doc = ast.get_docstring(tree, clean=False)
        if doc:
            doc = inspect.cleandoc(doc).strip()
            if doc:
                yield doc
    for child in ast.iter_child_nodes(tree):
        yield from _docstrings(child)


def _build_offline_corpus(files: list[Path], missing: list[str]) -> tuple[list[str], list[str]]:
    seen: set[str] = set()
    docs: list[str] = []
    missing = list(missing)
    for path in files:
        with tokenize.open(path) as fh:  # honours the file's encoding declaration
            source = fh.read()
        try:
            tree = ast.parse(source, filename=str(path))
        except SyntaxError:  # a source newer than this interpreter's grammar; skip it
            missing.append(path.name)
            continue
        for doc in _docstrings(tree):
            if doc not in seen:
                seen.add(doc)
                docs.append(doc)
    return docs, missing


def _corpus_cache_file(files: list[Path], missing: list[str]) -> Path:
    """Where the built corpus is kept, named by a hash of everything it is built from: this
    module's lists, the interpreter, and each source file's path, size and modification time
    (a changed standard library, or another Python, is another file)."""
    h = hashlib.sha256(repr((STDLIB_MODULES, STDLIB_PACKAGES, missing)).encode())
    h.update(f"{platform.python_implementation()} {platform.python_version()}".encode())
    for path in files:
        st = path.stat()
        h.update(f"{path}\0{st.st_size}\0{st.st_mtime_ns}\0".encode())
    return cache_dir() / "offline_corpus" / f"{h.hexdigest()[:24]}.json"


def _read_cached_corpus(path: Path) -> tuple[list[str], list[str]] | None:
    """The cached corpus, or None when it is missing, unreadable or not what it says it is (its
    documents' fingerprint is checked)."""
    try:
        data = read_json(path)
        docs, missing = data["documents"], data["missing"]
        if fingerprint(docs) == data["sha256"]:
            return docs, missing
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return None


def _write_cached_corpus(path: Path, docs: list[str], missing: list[str]) -> None:
    """Keep the corpus for the next process (atomically; a cache that cannot be written is
    skipped: the corpus is rebuilt next time)."""
    data = {"documents": docs, "missing": missing, "sha256": fingerprint(docs)}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(data))
    except OSError:
        pass


@functools.lru_cache(maxsize=1)
def _offline_corpus() -> tuple[tuple[str, ...], tuple[str, ...]]:
    files, missing = _stdlib_files()
    cache = _corpus_cache_file(files, missing)
    found = _read_cached_corpus(cache)
    if found is None:
        found = _build_offline_corpus(files, missing)
        _write_cached_corpus(cache, *found)
    return tuple(found[0]), tuple(found[1])


def offline_corpus() -> list[str]:
    """The offline corpus as a list of documents: the docstrings of ``STDLIB_MODULES`` and
    ``STDLIB_PACKAGES`` read from their source files with ``ast`` (nothing is imported), in that
    fixed order (a package's files sorted), cleaned with ``inspect.cleandoc``, deduplicated
    (first occurrence kept). It needs no download, package data or licence of its own, and it
    is identical on every install of one CPython release (the order never depends on hashing or
    the file system); another Python version gives another corpus, so every use records
    :func:`offline_corpus_info`. Built once per machine: kept in the kit's cache folder
    (``runtime.cache_dir()``) under a name that changes with the sources it is read from."""
    return list(_offline_corpus()[0])


def fingerprint(docs: Sequence[str]) -> str:
    """SHA-256 (hex) of the documents in order, NUL-separated: equal exactly when the corpora
    are equal."""
    h = hashlib.sha256()
    for doc in docs:
        h.update(doc.encode("utf-8"))
        h.update(b"\x00")
    return h.hexdigest()


def offline_corpus_info() -> dict:
    """What identifies the offline corpus: fingerprint, sizes, Python version, missing modules."""
    docs, missing = _offline_corpus()
    return {
        "corpus": "offline",
        "source": "docstrings of Python standard-library modules (akira_nb.text.STDLIB_*)",
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "n_documents": len(docs),
        "n_chars": sum(len(d) for d in docs),
        "n_bytes": sum(len(d.encode("utf-8")) for d in docs),
        "sha256": fingerprint(docs),
        "missing_modules": list(missing),
    }
