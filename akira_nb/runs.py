"""Run folders: ``<root>/<experiment>/<timestamp>-<name>/`` with config, results, figures and
checkpoints.

- ``results.json`` and checkpoints are written atomically (temp file in the same folder, then
  ``os.replace``), so a disconnect mid-write never leaves a half-written file behind.
- Checkpoints hold only tensors, numbers, strings, lists and dicts, and load with
  ``torch.load(..., weights_only=True)``.
- ``Run.open_or_create(..., resume=True)`` reopens the newest run of the same experiment and name,
  so training continues from its newest checkpoint.
- The root is ``AKIRA_RUNS_DIR`` when set (on Colab, a mounted Drive folder), else ``runs/`` at
  the top of the kit's checkout (so notebooks executed from ``notebooks/`` write to the same
  place as the CLI), else ``./runs``.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import re
import tempfile
from dataclasses import asdict, is_dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.=+-]*$")
_CKPT_RE = re.compile(r"^ckpt_(\d+)\.pt$")


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
    if isinstance(obj, torch.Tensor):
        return to_jsonable(obj.detach().cpu().tolist())
    if isinstance(obj, np.ndarray):
        return to_jsonable(obj.tolist())
    if isinstance(obj, (np.floating, float)):
        value = float(obj)
        return value if math.isfinite(value) else None
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.bool_,)):
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


def atomic_write_json(path: str | os.PathLike, obj: Any) -> Path:
    """Write ``obj`` as indented JSON to ``path`` atomically."""
    path = Path(path)
    data = json.dumps(to_jsonable(obj), indent=2, allow_nan=False).encode()
    _atomic_write(path, lambda fh: fh.write(data))
    return path


def atomic_torch_save(obj: Any, path: str | os.PathLike) -> Path:
    """``torch.save`` to ``path`` atomically."""
    path = Path(path)
    _atomic_write(path, lambda fh: torch.save(obj, fh))
    return path


def check_name(name: str, what: str = "name") -> str:
    if not isinstance(name, str) or not _NAME_RE.match(name):
        raise ValueError(
            f"{what}={name!r} must be a non-empty string of letters, digits and _ . = + -"
        )
    return name


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
        base = runs_root(root) / experiment
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
    def open_or_create(
        cls, experiment: str, name: str, config: Any = None, resume: bool = False, root=None
    ) -> Run:
        """With ``resume=True`` reopen the newest run called ``name`` (its config must match
        ``config``); otherwise, or when none exists, start a new folder."""
        if resume:
            run = cls.find_latest(experiment, name, root)
            if run is not None:
                if config is not None and run.config is not None:
                    old, new = run.config, to_jsonable(config)
                    if old != new:
                        diff = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
                        raise ValueError(
                            f"resume=True but the config differs from {run.path} in {diff}; "
                            "pass the same settings or start a new run (resume=False)"
                        )
                return run
        return cls.create(experiment, name, config, root)

    # -- contents -------------------------------------------------------------------------
    @property
    def config(self) -> dict | None:
        path = self.path / "config.json"
        return json.loads(path.read_text()) if path.is_file() else None

    def write_results(self, results: Any) -> Path:
        """Atomically (re)write ``results.json``."""
        return atomic_write_json(self.path / "results.json", results)

    def read_results(self) -> dict | None:
        path = self.path / "results.json"
        return json.loads(path.read_text()) if path.is_file() else None

    def file(self, name: str) -> Path:
        """Path of an artefact inside the run folder (sub-folders are created)."""
        path = self.path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        return path

    def save_figure(self, fig, name: str, dpi: int = 110) -> Path:
        """Save a matplotlib figure as ``figures/<name>.png``."""
        path = self.file(f"figures/{name}.png")
        tmp = path.with_name(f".{path.name}.tmp.png")
        fig.savefig(tmp, dpi=dpi, bbox_inches="tight")
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

    def latest_checkpoint(self, tag: str = "", map_location="cpu") -> dict | None:
        """The newest checkpoint's state (loaded with ``weights_only=True``), or None."""
        found = self._checkpoints(self.checkpoint_dir(tag))
        if not found:
            return None
        return torch.load(found[-1][1], map_location=map_location, weights_only=True)

    def __repr__(self) -> str:
        return f"Run({str(self.path)!r})"
