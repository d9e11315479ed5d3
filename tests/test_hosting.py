"""Hosting: the CPU quota read from sample cgroup files, the pool's shape, settings from Streamlit
secrets, and the Streamlit Community Cloud recipe (deploy/streamlit_cloud) parsed and resolved."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.version import Version

from learnmech_app.quota import available_cpus, cgroup_cpu_quota, pool_shape
from learnmech_app.resources import settings_from_secrets

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy" / "streamlit_cloud"


def cgroup(tmp_path, files: dict[str, str], own: str) -> tuple[Path, Path]:
    """A fake /sys/fs/cgroup tree and /proc/self/cgroup."""
    root = tmp_path / "cgroup"
    root.mkdir(parents=True)
    for rel, text in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text(text + "\n")
    proc = tmp_path / "proc_self_cgroup"
    proc.write_text(own + "\n")
    return root, proc


@pytest.mark.parametrize(("files", "own", "expected"), [
    ({"cpu.max": "200000 100000"}, "0::/", 2.0),  # cgroup v2, a container's own namespace
    ({"cpu.max": "150000 100000"}, "0::/", 1.5),
    ({"cpu.max": "max 100000"}, "0::/", None),  # no limit
    ({"kubepods/pod1/cpu.max": "50000 100000", "cpu.max": "max 100000"}, "0::/kubepods/pod1", 0.5),
    ({"kubepods/cpu.max": "300000 100000"}, "0::/kubepods/pod1/app", 3.0),  # limit on a parent cgroup
    ({"cpu,cpuacct/cpu.cfs_quota_us": "200000", "cpu,cpuacct/cpu.cfs_period_us": "100000"},
     "4:cpu,cpuacct:/", 2.0),  # cgroup v1
    ({"cpu/cpu.cfs_quota_us": "-1", "cpu/cpu.cfs_period_us": "100000"}, "1:cpu:/", None),
    ({"cpu/docker/abc/cpu.cfs_quota_us": "100000", "cpu/docker/abc/cpu.cfs_period_us": "50000"},
     "1:cpu:/docker/abc", 2.0),
    ({}, "", None),  # no cgroup files at all (macOS, bare metal)
])
def test_cpu_quota_from_cgroup_files(tmp_path, files, own, expected):
    root, proc = cgroup(tmp_path, files, own)
    assert cgroup_cpu_quota(root, proc) == expected


def test_available_cpus_is_the_quota_bounded_by_the_affinity_mask(tmp_path):
    mask = len(os.sched_getaffinity(0))
    root, proc = cgroup(tmp_path, {"cpu.max": "50000 100000"}, "0::/")
    assert available_cpus(root, proc) == 0.5
    root, proc = cgroup(tmp_path / "big", {"cpu.max": f"{100000 * (mask + 8)} 100000"}, "0::/")
    assert available_cpus(root, proc) == mask
    root, proc = cgroup(tmp_path / "none", {}, "")
    assert available_cpus(root, proc) == mask


@pytest.mark.parametrize(("cpus", "cap", "expected"), [
    (2.0, 2, (2, 1)),  # hosted on 2 CPUs: two workers, one thread each
    (0.5, 2, (1, 1)),  # under one CPU: still one worker
    (1.5, 2, (1, 1)),
    (2.0, 4, (2, 1)),  # local profile on 2 cores: no more workers than cores
    (16.0, 4, (4, 4)),  # a big machine: the cap on runs, the rest as threads
])
def test_pool_shape(cpus, cap, expected):
    assert pool_shape(cpus, cap) == expected


def test_settings_come_from_secrets_unless_the_environment_has_them():
    environ = {"LEARNMECH_WORKERS": "3"}
    secrets = {"LEARNMECH_PROFILE": "hosted", "LEARNMECH_WORKERS": 1, "api_key": "x", "auth": {"a": 1}}
    assert settings_from_secrets(secrets, environ) == {"LEARNMECH_PROFILE": "hosted"}
    assert environ == {"LEARNMECH_WORKERS": "3", "LEARNMECH_PROFILE": "hosted"}


def test_settings_from_secrets_without_a_secrets_file():
    class NoFile:
        def get(self, name):
            raise FileNotFoundError("no secrets.toml")

    environ = {}
    assert settings_from_secrets(NoFile(), environ) == {} and environ == {}


# --- the Community Cloud recipe -----------------------------------------------------------------------


def requirement_lines(path: Path) -> list[str]:
    lines = []
    for raw in path.read_text().splitlines():
        line = raw.split(" #")[0].strip()
        if line and not line.startswith("#"):
            lines.append(line)
    return lines


def test_the_root_requirements_pin_torch_and_name_no_other_index():
    lines = requirement_lines(ROOT / "requirements.txt")
    assert not any(line.startswith(("--index-url", "--extra-index-url", "-i ", "--find-links")) for line in lines)
    torch = next(Requirement(line) for line in lines if line.startswith("torch"))
    assert str(torch.specifier) == "==2.13.0"


def test_the_cloud_requirements_take_the_cpu_build_of_the_same_torch_and_everything_else():
    lines = requirement_lines(DEPLOY / "requirements.txt")
    assert "--extra-index-url https://download.pytorch.org/whl/cpu" in lines
    includes = [line.split(None, 1)[1] for line in lines if line.startswith("-r ")]
    assert [(DEPLOY / inc).resolve() for inc in includes] == [ROOT / "requirements.txt"]
    reqs = [Requirement(line) for line in lines if not line.startswith("-")]
    torch = next(r for r in reqs if r.name == "torch")
    root_torch = next(Requirement(line) for line in requirement_lines(ROOT / "requirements.txt")
                      if line.startswith("torch"))
    pinned = Version(str(torch.specifier).removeprefix("=="))
    assert pinned.local == "cpu" and pinned in root_torch.specifier  # 2.13.0+cpu satisfies torch==2.13.0


def test_the_cloud_entrypoint_is_the_app_with_its_pages():
    assert (DEPLOY / "streamlit_app.py").resolve() == ROOT / "app.py"
    assert (DEPLOY / "pages").resolve() == ROOT / "pages"
    compile((DEPLOY / "streamlit_app.py").read_text(), "streamlit_app.py", "exec")
    config = (ROOT / ".streamlit" / "config.toml").read_text()
    import tomllib

    assert tomllib.loads(config)["server"]["fileWatcherType"] == "none"
