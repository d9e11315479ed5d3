"""CPUs this server may really use: the container's cgroup quota, not the host's core count.

No Streamlit here. `os.cpu_count()` reports the host's cores; a container on Streamlit Community
Cloud (or any Kubernetes/Docker host) gets a CPU quota instead: cgroup v2 writes it to `cpu.max`
("200000 100000" = 2 CPUs, "max 100000" = no limit), cgroup v1 to `cpu.cfs_quota_us` /
`cpu.cfs_period_us` (-1 = no limit). The quota is looked up in the process's own cgroup (from
/proc/self/cgroup) and its parents up to the mount point; the affinity mask bounds it from above.
"""

from __future__ import annotations

import math
import os
from pathlib import Path


def _read(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def _own_paths(proc_cgroup: Path) -> tuple[str | None, str | None]:
    """(cgroup v2 path, cgroup v1 cpu controller path) of this process, from /proc/self/cgroup."""
    v2 = v1 = None
    for line in (_read(proc_cgroup) or "").splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy, controllers, path = parts
        if hierarchy == "0" and controllers == "":
            v2 = path
        elif "cpu" in controllers.split(","):
            v1 = path
    return v2, v1


def _up_from(base: Path, path: str | None):
    """base/path, then each parent folder up to base itself."""
    rel = Path((path or "/").lstrip("/"))
    while True:
        yield base / rel
        if rel == Path("."):
            return
        rel = rel.parent


def _v2_quota(text: str | None) -> float | None:
    parts = (text or "").split()
    if len(parts) == 2 and parts[0] != "max":
        try:
            return int(parts[0]) / int(parts[1])
        except (ValueError, ZeroDivisionError):
            return None
    return None


def _v1_quota(quota: str | None, period: str | None) -> float | None:
    try:
        q, p = int(quota or "-1"), int(period or "0")
    except ValueError:
        return None
    return q / p if q > 0 and p > 0 else None


CGROUP_ROOT = "/sys/fs/cgroup"
PROC_CGROUP = "/proc/self/cgroup"


def cgroup_cpu_quota(root: str | Path = CGROUP_ROOT, proc_cgroup: str | Path = PROC_CGROUP) -> float | None:
    """CPUs granted by the cgroup quota (fractional: 1.5), or None when there is no quota."""
    root, proc_cgroup = Path(root), Path(proc_cgroup)
    v2_path, v1_path = _own_paths(proc_cgroup)
    for folder in _up_from(root, v2_path):  # cgroup v2 (unified)
        quota = _v2_quota(_read(folder / "cpu.max"))
        if quota is not None:
            return quota
    for mount in ("cpu,cpuacct", "cpu", "cpuacct,cpu"):  # cgroup v1
        base = root / mount
        if not base.is_dir():
            continue
        for folder in _up_from(base, v1_path):
            quota = _v1_quota(_read(folder / "cpu.cfs_quota_us"), _read(folder / "cpu.cfs_period_us"))
            if quota is not None:
                return quota
    return None


def affinity_cpus() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # macOS, Windows
        return max(1, os.cpu_count() or 1)


def available_cpus(root: str | Path = CGROUP_ROOT, proc_cgroup: str | Path = PROC_CGROUP) -> float:
    """The CPU quota when there is one, else the affinity mask (never more than the mask)."""
    quota = cgroup_cpu_quota(root, proc_cgroup)
    cpus = affinity_cpus()
    return min(quota, cpus) if quota is not None else float(cpus)


def pool_shape(cpus: float, max_runs: int) -> tuple[int, int]:
    """(training workers, torch threads per worker) for this many CPUs and the profile's concurrent-run cap.

    One worker per whole CPU (at least one, at most the cap); the CPUs left over go to the workers'
    torch threads (small models run fastest on one thread each).
    """
    workers = max(1, min(int(max_runs), int(math.floor(cpus + 1e-9)) or 1))
    return workers, max(1, int(cpus // workers))
