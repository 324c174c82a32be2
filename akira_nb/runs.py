"""Run folders: ``<root>/<experiment>/<timestamp>-<name>/`` with config, results, figures and
checkpoints.

- ``results.json`` and checkpoints are written atomically (temp file in the same folder, then
  ``os.replace``), so a disconnect mid-write never leaves a half-written file behind.
- Checkpoints hold only tensors, numbers, strings, lists and dicts, and load with
  ``torch.load(..., weights_only=True)``.
- ``Run.open_or_create(..., resume=True)`` reopens the newest run of the same experiment and name,
  so training continues from its newest checkpoint.
- One resume guard for every experiment: :func:`check_resume` compares a saved config with the
  new one and refuses (``ValueError`` naming each field with both values) a resume whose
  settings differ in a field that matters. ``Run.open_or_create`` applies it to the run's
  ``config.json``, ``Run.latest_checkpoint(config=...)`` to the config every kit checkpoint
  stores under ``"config"``. A newest checkpoint that does not load is skipped with a warning
  naming the file, and the newest one that loads is used.
- :func:`write_summary` writes the kit summary (``summary.md`` + ``summary.json``) beside the
  runs: one section per experiment, the seed's claims beside the measurements.
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
        cls,
        experiment: str,
        name: str,
        config: Any = None,
        resume: bool = False,
        root=None,
        may_change: Iterable[str] = (),
    ) -> Run:
        """With ``resume=True`` reopen the newest run called ``name`` (its config must match
        ``config`` outside ``may_change``, see :func:`check_resume`); otherwise, or when none
        exists, start a new folder."""
        if resume:
            run = cls.find_latest(experiment, name, root)
            if run is not None:
                if config is not None:
                    check_resume(run.config, config, f"the run {run.path}", may_change)
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

    def latest_checkpoint(
        self, tag: str = "", map_location="cpu", config: Any = None, may_change: Iterable[str] = ()
    ) -> dict | None:
        """The newest checkpoint that loads (with ``weights_only=True``), or None when there is
        none. A newer file that does not load (truncated, corrupt, not a checkpoint) is skipped
        with a ``RuntimeWarning`` naming it and why. With ``config``, the checkpoint's stored
        ``state["config"]`` must match it (:func:`check_resume`, outside ``may_change``)."""
        import torch

        for _, path in reversed(self._checkpoints(self.checkpoint_dir(tag))):
            try:
                state = torch.load(path, map_location=map_location, weights_only=True)
                if not isinstance(state, dict):
                    raise TypeError(f"it holds a {type(state).__name__}, not a dict")
            except Exception as exc:  # any file that does not load is skipped, and named
                reason = str(exc).strip().splitlines()[0] if str(exc).strip() else repr(exc)
                warnings.warn(
                    f"skipped checkpoint {path}: it does not load ({type(exc).__name__}: "
                    f"{reason[:200]}); trying the previous one",
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


def claim_lines(claims: list[dict]) -> list[str]:
    """Each claim of a kit-summary section as one printed line, with its rule."""
    return [
        f"{c['claim']}: claimed {c['claimed']}, measured {c['measured']} -> {c['verdict']} "
        f"(rule: {c['rule']})"
        for c in claims
    ]


def _cell(value: Any) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def summary_markdown(sections: list[dict]) -> str:
    """The kit summary as Markdown: per experiment, its claims table (claim, the seed's value,
    the measured value, the rule, the verdict), its baselines and notes, and its run folder."""
    lines = ["# akira-nb: the seed documents' claims beside this kit's measurements", ""]
    for sec in sections:
        size = sec.get("size") or "the seed's protocol"
        lines += [f"## {sec.get('title', sec['experiment'])} (size: {size})", ""]
        claims = sec.get("claims", [])
        if claims:
            lines += [
                "| claim | seed says | measured | rule | verdict |",
                "|---|---|---|---|---|",
            ]
            for c in claims:
                cells = (c.get(k, "") for k in ("claim", "claimed", "measured", "rule", "verdict"))
                lines.append("| " + " | ".join(_cell(v) for v in cells) + " |")
            lines.append("")
        for title, key in (("Baselines", "baselines"), ("Notes", "notes")):
            if sec.get(key):
                lines += [f"{title}:", ""] + [f"- {item}" for item in sec[key]] + [""]
        lines += [f"Run folder: `{sec.get('run', '-')}`", ""]
    return "\n".join(lines)


def write_summary(sections: list[dict], root=None) -> dict:
    """Write the kit summary beside the runs: ``<root>/summary.md`` and ``summary.json``
    (``root`` as in :func:`runs_root`). Each section is what an experiment's
    ``experiment.kit_summary(out)`` returns. Returns ``{"md": path, "json": path, "text": md}``."""
    for i, sec in enumerate(sections):
        if not isinstance(sec, dict) or "experiment" not in sec:
            raise ValueError(f"sections[{i}]={sec!r} must be a dict with an 'experiment' key")
    base = runs_root(root)
    text = summary_markdown(sections)
    md = base / "summary.md"
    _atomic_write(md, lambda fh: fh.write(text.encode()))
    js = atomic_write_json(
        base / "summary.json",
        {"written": _dt.datetime.now().isoformat(timespec="seconds"), "experiments": sections},
    )
    return {"md": md, "json": js, "text": text}
