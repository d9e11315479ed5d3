"""Where a run was computed: library versions, the device's name and the source commit (for meta.json)."""

from __future__ import annotations

import functools
import platform
import subprocess
from pathlib import Path


def environment(device: str) -> dict:
    """Versions (learnmech, torch, numpy, Python), platform, the device a spec's `device` names, and the
    git commit of the learnmech source when it is a checkout (absent for an installed wheel)."""
    import numpy as np
    import torch

    from .version import __version__

    return {"learnmech": __version__, "torch": torch.__version__, "numpy": np.__version__,
            "python": platform.python_version(), "platform": platform.platform(), "device": device_name(device),
            **source_commit()}


def device_name(device: str) -> str:
    """'cuda: NVIDIA H100 80GB HBM3', 'mps: Apple GPU' or 'cpu: <model name>' for a spec's device
    ('auto' picks as the trainer does: CUDA, else MPS, else the CPU)."""
    import torch

    if device in ("cuda", "auto") and torch.cuda.is_available():
        return f"cuda: {torch.cuda.get_device_name(torch.cuda.current_device())}"
    mps = getattr(torch.backends, "mps", None)
    if device in ("mps", "auto") and mps is not None and mps.is_available():
        return "mps: Apple GPU"
    return f"cpu: {cpu_name()}"


@functools.cache
def cpu_name() -> str:
    """The CPU's model name (Linux /proc/cpuinfo), else what `platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


@functools.cache
def source_commit() -> dict:
    """{'git_commit': sha, 'git_dirty': bool} when learnmech runs from a git checkout, else {} (read once
    per process: the code a process runs is the code it loaded)."""
    root = Path(__file__).resolve().parent.parent
    if not (root / ".git").exists():
        return {}
    try:
        def git(*args: str) -> str:
            done = subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True, timeout=10,
                                  check=True)
            return done.stdout.strip()

        commit = git("rev-parse", "HEAD")
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        return {}
    return {"git_commit": commit, "git_dirty": dirty}
