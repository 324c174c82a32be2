"""Per-stage wall seconds, CPU seconds and peak host / device memory of a run (:class:`Stages`)."""

from __future__ import annotations

import contextlib
import os
import time

import torch

from akira_nb.runtime import get_device


def _host_peak_bytes() -> int | None:
    """The process's peak resident memory since it started (Linux ``VmHWM``, else
    ``ru_maxrss``), or None."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        import resource
        import sys

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak if sys.platform == "darwin" else peak * 1024
    except (ImportError, OSError):
        return None


def _host_rss_bytes() -> int | None:
    """The process's resident memory now (Linux ``/proc/self/statm``), or None."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return None


class Stages:
    """Wall seconds, CPU seconds (every thread of the process) and peak memory of each stage of
    a run, summed over its repeats (layer pairs, input types): ``with stages("ot"): ...``.

    Peak host memory of a stage: the process's resident peak (``VmHWM``) when the stage raised
    it (exact), else the largest resident size sampled every 10 ms during the stage (nothing
    is reset, so ``/usr/bin/time`` still reads the whole run's peak). Peak device memory:
    ``torch.cuda.max_memory_allocated`` within the stage. :attr:`out` goes to results.json."""

    def __init__(self, device=None):
        self.device = None if device is None else get_device(device)
        self.out: dict[str, dict] = {}

    @contextlib.contextmanager
    def __call__(self, name: str):
        import threading

        cuda = self.device is not None and self.device.type == "cuda"
        if cuda:
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        before, sampled, done = _host_peak_bytes(), [_host_rss_bytes() or 0], threading.Event()

        def sample():
            while not done.wait(0.01):
                sampled[0] = max(sampled[0], _host_rss_bytes() or 0)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        wall, cpu = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            if cuda:
                torch.cuda.synchronize(self.device)
            seconds, cpu_seconds = time.perf_counter() - wall, time.process_time() - cpu
            done.set()
            sampler.join()
            rec = self.out.setdefault(name, {"seconds": 0.0, "cpu_seconds": 0.0, "repeats": 0})
            rec["seconds"] += seconds
            rec["cpu_seconds"] += cpu_seconds
            rec["repeats"] += 1
            after = _host_peak_bytes()
            peak = after if after is not None and after != before else sampled[0]
            if peak:
                rec["peak_host_gb"] = max(rec.get("peak_host_gb", 0.0), peak / 1e9)
            if cuda:
                dev = torch.cuda.max_memory_allocated(self.device) / 1e9
                rec["peak_device_gb"] = max(rec.get("peak_device_gb", 0.0), dev)

    def lines(self) -> list[str]:
        return stage_lines(self.out)


def stage_lines(stages: dict) -> list[str]:
    """One line per stage of :attr:`Stages.out`."""
    out = []
    for name, r in stages.items():
        mem = f", peak host {r['peak_host_gb']:.2f} GB" if "peak_host_gb" in r else ""
        if "peak_device_gb" in r:
            mem += f", peak device {r['peak_device_gb']:.2f} GB"
        out.append(
            f"stage {name}: {r['seconds']:.1f} s wall, {r['cpu_seconds']:.1f} CPU-s "
            f"({r['repeats']}x){mem}"
        )
    return out


__all__ = [
    "Stages",
    "stage_lines",
]
