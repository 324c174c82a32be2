"""Run folders: ``<root>/<experiment>/<timestamp>-<name>/`` with config, results, figures and
checkpoints.

- ``results.json`` and checkpoints are written atomically (temp file, then ``os.replace``);
  checkpoints hold only tensors, numbers, strings, lists and dicts (``weights_only=True``).
- ``Run.open_or_create(..., resume=True)`` reopens the newest run of the same experiment and
  name (a notebook's ``RESUME``), removing temp files a killed write left; the CLI's
  ``--resume`` asks for a run that exists (:func:`resume_must_exist`).
- One resume guard for every experiment: :func:`check_resume` refuses a resume whose settings
  differ in a field that matters, naming each field; a newest checkpoint that does not load is
  skipped with a one-line warning. :func:`read_json` names a corrupt run file in one line.
- The root (:func:`runs_root`, checked by :func:`check_runs_root` before anything is written)
  is ``AKIRA_RUNS_DIR`` when set (on Colab, a mounted Drive folder), else ``runs/`` at the top
  of the kit's checkout, else ``./runs``.
"""

from __future__ import annotations

import contextlib
import contextvars
import datetime as _dt
import json
import math
import os
import re
import sys
import tempfile
import warnings
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any, Iterable

# torch and numpy are imported where they are needed (``python -m akira_nb --help`` stays fast);
# to_jsonable only meets their objects once they have been imported by someone else.

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.=+-]*$")
_CKPT_RE = re.compile(r"^ckpt_(\d+)\.pt$")
# the temp files of _atomic_write (``.<name>.<8 random>.tmp``) and Run.save_figure
_TEMP_RE = re.compile(r"^\..+\.([a-z0-9_]{8}\.tmp|tmp\.png)$")
PNG_OPTIONS = {"compress_level": 1}  # what PIL writes every saved figure with
# Run.open_or_create(resume=True): must a run exist (the CLI's --resume)? See resume_must_exist.
_RESUME_MUST_EXIST = contextvars.ContextVar("akira_resume_must_exist", default=False)


def runs_root(root: str | os.PathLike | None = None) -> Path:
    """The folder that holds every experiment's runs (see the module docstring)."""
    if root is not None:
        return Path(root)
    env = os.environ.get("AKIRA_RUNS_DIR")
    if env:
        return Path(env)
    checkout = Path(__file__).resolve().parent.parent
    if (checkout / "pyproject.toml").is_file() and (checkout / "akira_nb").is_dir():
        return checkout / "runs"
    return Path.cwd() / "runs"


def _root_setting(root) -> str:
    """Which setting gave the runs root, for an error message."""
    if root is not None:
        return "output_dir"
    return "AKIRA_RUNS_DIR" if os.environ.get("AKIRA_RUNS_DIR") else "the runs folder"


def check_runs_root(root: str | os.PathLike | None = None) -> Path:
    """The runs root (:func:`runs_root`), checked before anything is written: a folder that
    exists, or one that can be made (its nearest existing parent is a folder where this user
    can write). Otherwise ``ValueError`` naming the setting it came from (``output_dir``, or
    ``AKIRA_RUNS_DIR``) and the path. Creates nothing."""
    path = runs_root(root)
    where = f"{_root_setting(root)}={str(path)!r}"
    base = path
    while not base.exists() and base != base.parent:
        base = base.parent
    if not base.is_dir():
        what = f"{where} is" if base == path else f"{where} cannot be made: {str(base)!r} is"
        raise ValueError(
            f"{what} a file, not a folder; pass a folder for the runs (one that does not exist "
            "yet is made)"
        )
    try:  # a folder made and removed at once: writable here (os.access is True for root)
        os.rmdir(tempfile.mkdtemp(prefix=".akira-write-check-", dir=base))
    except OSError as exc:
        raise ValueError(
            f"{where} cannot be made or written (making a folder in {str(base)!r}: "
            f"{exc.strerror or exc}); pass a folder where you can write"
        ) from None
    return path


@contextlib.contextmanager
def resume_must_exist(enabled: bool = True):
    """Within this block ``Run.open_or_create(resume=True)`` refuses (``ValueError`` naming the
    name and the folder it looked in) when there is no run to resume: the CLI's explicit
    ``--resume``. Outside it, ``resume=True`` resumes a run if there is one and otherwise starts
    one (a notebook's ``RESUME``, whose first run on a fresh machine must start)."""
    token = _RESUME_MUST_EXIST.set(bool(enabled))
    try:
        yield
    finally:
        _RESUME_MUST_EXIST.reset(token)


def read_json(path: str | os.PathLike) -> Any:
    """The JSON in ``path``; a corrupt file is a ``ValueError`` naming it in one line."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise ValueError(f"{path}: corrupt JSON ({exc}); delete it or start a new run") from None


def use_drive(folder: str = "akira-runs", enabled: bool = True) -> Path | None:
    """On Colab, mount Google Drive and send every run to ``MyDrive/<folder>`` (sets
    ``AKIRA_RUNS_DIR``) so checkpoints survive a disconnect. Elsewhere, or with
    ``enabled=False``, do nothing and return None. Call :func:`flush_drive` at the end."""
    from akira_nb.runtime import in_colab

    if not enabled or not in_colab():
        return None
    from google.colab import drive  # only importable on Colab

    drive.mount("/content/drive")
    path = Path("/content/drive/MyDrive") / folder
    path.mkdir(parents=True, exist_ok=True)
    os.environ["AKIRA_RUNS_DIR"] = str(path)
    return path


def flush_drive() -> None:
    """Flush pending Drive writes (they are asynchronous) when Drive was mounted by
    :func:`use_drive`; a no-op elsewhere."""
    if os.environ.get("AKIRA_RUNS_DIR", "").startswith("/content/drive"):
        from google.colab import drive

        drive.flush_and_unmount()
        del os.environ["AKIRA_RUNS_DIR"]  # later runs must not write into the unmounted path


def to_jsonable(obj: Any) -> Any:
    """Dataclasses, numpy and torch values as JSON types; non-finite floats become None."""
    if is_dataclass(obj) and not isinstance(obj, type):
        return to_jsonable(asdict(obj))
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    torch, np = sys.modules.get("torch"), sys.modules.get("numpy")
    if torch is not None and isinstance(obj, torch.Tensor):
        return to_jsonable(obj.detach().cpu().tolist())
    if np is not None and isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, float) or (np is not None and isinstance(obj, np.floating)):
        value = float(obj)
        return value if math.isfinite(value) else None
    if np is not None and isinstance(obj, np.integer):
        return int(obj)
    if np is not None and isinstance(obj, np.bool_):
        return bool(obj)
    if isinstance(obj, Path):
        return str(obj)
    return obj


def _atomic_write(path: Path, write) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    path = Path(path)
    _atomic_write(path, lambda fh: fh.write(text.encode()))
    return path


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    path = Path(path)
    data = json.dumps(to_jsonable(obj), indent=2, allow_nan=False).encode()
    _atomic_write(path, lambda fh: fh.write(data))
    return path


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to ``path`` atomically."""
    import torch

    path = Path(path)
    _atomic_write(path, lambda fh: torch.save(obj, fh))
    return path


def _flatten(obj: Any, prefix: str = "") -> dict:
    if isinstance(obj, dict) and obj:
        out = {}
        for key, value in obj.items():
            out.update(_flatten(value, f"{prefix}{key}."))
        return out
    return {prefix[:-1]: obj}


def _may_change(key: str, may_change: Iterable[str]) -> bool:
    return any(key == m or key.startswith(f"{m}.") or key.endswith(f".{m}") for m in may_change)


def check_resume(saved: Any, new: Any, where: str, may_change: Iterable[str] = ()) -> None:
    """The kit's one resume guard: raise ``ValueError`` when the config ``saved`` with a run or
    checkpoint differs from ``new`` in a field that matters, naming every such field with both
    values. Nested dicts are compared field by field (``train.lr``); a name in ``may_change``
    exempts that field wherever it stands (``steps`` exempts ``steps`` and ``train.steps``) and
    everything under it. ``saved=None`` (nothing stored) is refused too."""
    may_change = tuple(may_change)
    if saved is None:
        raise ValueError(
            f"resume refused: {where} stores no config, so it cannot be checked against this "
            "run's settings; start a new run (resume=False)"
        )
    old, cur = _flatten(to_jsonable(saved)), _flatten(to_jsonable(new))
    diff = [
        k
        for k in sorted(set(old) | set(cur))
        if old.get(k) != cur.get(k) and not _may_change(k, may_change)
    ]
    if diff:
        missing = "(absent)"
        parts = [
            f"{k} saved {old.get(k, missing)!r}, now {cur.get(k, missing)!r}" for k in diff[:12]
        ]
        more = f"; and {len(diff) - 12} more" if len(diff) > 12 else ""
        raise ValueError(
            f"resume refused: {where} was made with other settings: {'; '.join(parts)}{more}. "
            "Pass the same settings or start a new run (resume=False)"
        )


def check_name(name: str, what: str = "name") -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValueError(
            f"{what}={name!r} must be a non-empty string of letters, digits and _ . = + -"
        )
    return name


def _load_failure(exc: Exception) -> str:
    """Why a checkpoint did not load, in one line: the exception type and PyTorch's first
    sentence, without its advice (re-loading with ``weights_only=False`` runs the file's code)."""
    text = re.sub(r"\x1b\[[0-9;]*m", "", str(exc))
    marker = "WeightsUnpickler error:"
    if marker in text:  # not a plain-tensor file: what it holds, not how to load it anyway
        detail = text.split(marker, 1)[1].strip()
        reason = "not a plain-tensor checkpoint: " + detail.splitlines()[0] if detail else ""
    else:
        reason = next((line.strip() for line in text.splitlines() if line.strip()), "")
    reason = re.split(r"\.(?:\s|$)", reason, maxsplit=1)[0][:160] or "no reason given"
    return f"{type(exc).__name__}: {reason}"


class Run:
    """One run folder. Create with :meth:`create` or :meth:`open_or_create`."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        if not self.path.is_dir():
            raise ValueError(f"path={str(self.path)!r} is not an existing run folder")

    # -- finding and creating -------------------------------------------------------------
    @classmethod
    def create(cls, experiment: str, name: str, config: Any = None, root=None) -> Run:
        check_name(experiment, "experiment")
        check_name(name, "name")
        base = check_runs_root(root) / experiment
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        path = base / f"{stamp}-{name}"
        suffix = 1
        while path.exists():
            suffix += 1
            path = base / f"{stamp}-{name}-{suffix}"
        path.mkdir(parents=True)
        run = cls(path)
        if config is not None:
            atomic_write_json(path / "config.json", config)
        return run

    @classmethod
    def find_latest(cls, experiment: str, name: str, root=None) -> Run | None:
        """The newest run folder of ``experiment`` called ``name``, or None."""
        base = runs_root(root) / check_name(experiment, "experiment")
        if not base.is_dir():
            return None
        pattern = re.compile(r"^\d{8}-\d{6}-" + re.escape(name) + r"(-\d+)?$")
        found = sorted(p for p in base.iterdir() if p.is_dir() and pattern.match(p.name))
        return cls(found[-1]) if found else None

    @classmethod
    def resumable(
        cls,
        experiment: str,
        name: str,
        config: Any = None,
        resume: bool = False,
        root=None,
        may_change: Iterable[str] = (),
        must_exist: bool | None = None,
    ) -> Run | None:
        """The run :meth:`open_or_create` would reopen, checked and left untouched: with
        ``resume=True`` the newest run called ``name`` (its config must match ``config`` outside
        ``may_change``, see :func:`check_resume`), else None (a new run would start). When there
        is none to resume and ``must_exist`` (default: within :func:`resume_must_exist`, the
        CLI's ``--resume``): ``ValueError`` naming the name and the folder looked in. Call it
        before a long load, so that a refused resume costs nothing."""
        base = check_runs_root(root) / check_name(experiment, "experiment")
        if not resume:
            return None
        run = cls.find_latest(experiment, name, root)
        if run is not None:
            if config is not None:
                check_resume(run.config, config, f"the run {run.path}", may_change)
            return run
        if _RESUME_MUST_EXIST.get() if must_exist is None else must_exist:
            raise ValueError(
                f"nothing to resume: no run called {name!r} in {str(base)!r}; check the "
                "name (and the output folder), or drop --resume to start a new run"
            )
        return None

    @classmethod
    def open_or_create(
        cls,
        experiment: str,
        name: str,
        config: Any = None,
        resume: bool = False,
        root=None,
        may_change: Iterable[str] = (),
        must_exist: bool | None = None,
    ) -> Run:
        """With ``resume=True`` reopen the newest run called ``name`` (checked by
        :meth:`resumable`; temp files of a killed write are removed); otherwise, or when there
        is none to resume and it need not exist, start a new folder."""
        run = cls.resumable(experiment, name, config, resume, root, may_change, must_exist)
        if run is not None:
            run.remove_temp_files()
            return run
        return cls.create(experiment, name, config, root)

    def remove_temp_files(self) -> list[Path]:
        """Remove the temp files a killed write left in the run folder (``.<name>.<random>.tmp``
        of an atomic write, ``.<name>.tmp.png`` of a figure); returns them. Call it only when
        nothing writes into the run (on reopening it)."""
        found = [p for p in self.path.rglob(".*") if _TEMP_RE.match(p.name) and p.is_file()]
        for path in found:
            path.unlink(missing_ok=True)
        return found

    # -- contents -------------------------------------------------------------------------
    @property
    def config(self) -> dict | None:
        path = self.path / "config.json"
        return read_json(path) if path.is_file() else None

    def write_results(self, results: Any) -> Path:
        """Atomically (re)write ``results.json``."""
        return atomic_write_json(self.path / "results.json", results)

    def read_results(self) -> dict | None:
        path = self.path / "results.json"
        return read_json(path) if path.is_file() else None

    def file(self, name: str) -> Path:
        """Path of an artefact inside the run folder (sub-folders are created)."""
        path = self.path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def save_figures(self, figs: dict, dpi: int = 110) -> dict:
        """Save every figure of ``{name: figure}`` (None entries skipped) as
        ``figures/<name>.png`` and close it; returns ``{name: path}``."""
        import matplotlib.pyplot as plt

        paths = {}
        for name, fig in figs.items():
            if fig is not None:
                paths[name] = self.save_figure(fig, name, dpi)
                plt.close(fig)
        return paths

    def save_figure(self, fig, name: str, dpi: int = 110) -> Path:
        """Save a matplotlib figure as ``figures/<name>.png`` (``PNG_OPTIONS``: zlib level 1,
        cheaper to write than PIL's default level 6 for slightly larger files)."""
        path = self.file(f"figures/{name}.png")
        tmp = path.with_name(f".{path.name}.tmp.png")
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight", pil_kwargs=PNG_OPTIONS)
        os.replace(tmp, path)
        return path

    # -- checkpoints ----------------------------------------------------------------------
    def checkpoint_dir(self, tag: str = "") -> Path:
        return self.path / "checkpoints" / tag if tag else self.path / "checkpoints"

    def save_checkpoint(self, state: dict, step: int, tag: str = "", keep: int = 2) -> Path:
        """Save ``state`` as ``checkpoints/[tag/]ckpt_<step>.pt``; keep the newest ``keep``."""
        folder = self.checkpoint_dir(tag)
        path = atomic_torch_save(state, folder / f"ckpt_{int(step):09d}.pt")
        for old in self._checkpoints(folder)[:-keep] if keep > 0 else []:
            old[1].unlink(missing_ok=True)
        return path

    @staticmethod
    def _checkpoints(folder: Path) -> list[tuple[int, Path]]:
        if not folder.is_dir():
            return []
        found = []
        for p in folder.iterdir():
            m = _CKPT_RE.match(p.name)
            if m:
                found.append((int(m.group(1)), p))
        return sorted(found)

    def latest_checkpoint(
        self, tag: str = "", map_location="cpu", config: Any = None, may_change: Iterable[str] = ()
    ) -> dict | None:
        """The newest checkpoint that loads (with ``weights_only=True``), or None when there is
        none. A newer file that does not load (truncated, corrupt, not a checkpoint) is skipped
        with a ``RuntimeWarning`` naming it and why. With ``config``, the checkpoint's stored
        ``state["config"]`` must match it (:func:`check_resume`, outside ``may_change``)."""
        import torch

        found = self._checkpoints(self.checkpoint_dir(tag))
        for i, (_, path) in reversed(list(enumerate(found))):
            try:
                state = torch.load(path, map_location=map_location, weights_only=True)
                if not isinstance(state, dict):
                    raise TypeError(f"it holds a {type(state).__name__}, not a dict")
            except Exception as exc:  # any file that does not load is skipped, and named
                then = (
                    "trying the previous one"
                    if i
                    else "no older checkpoint is left, so the training restarts from step 0"
                )
                warnings.warn(
                    f"skipped checkpoint {path}: it does not load ({_load_failure(exc)}); {then}",
                    RuntimeWarning,
                    stacklevel=2,
                )
                continue
            if config is not None:
                check_resume(state.get("config"), config, f"the checkpoint {path}", may_change)
            return state
        return None

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"
