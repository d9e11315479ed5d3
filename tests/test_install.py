"""Fresh install (marked `install`; about a minute, most of it the verify's five tiny runs).

A copy of the repository is installed with pip, as a wheel, into a new virtual environment that sees
this environment's packages through a .pth file (so torch and the rest are not downloaded: `--no-index`
makes any download an error). From a folder outside the repository: `learnmech --version`,
`learnmech verify edge_of_stability --size tiny`, and `load_runs()` reading the gallery shipped inside
the installed package. Deselect with `-m "not install"`.
"""

import json
import os
import shutil
import site
import subprocess
import sys
from pathlib import Path

import pytest

import learnmech_core

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.install
SKIP = shutil.ignore_patterns(".git", "__pycache__", "*.egg-info", "build", "dist", ".venv", ".pytest_cache",
                              ".ruff_cache", "test-artifacts", "index.sqlite*", "tmp")


def _venv(tmp_path: Path) -> Path:
    """A new venv without pip whose site-packages ends with this environment's (pip, torch, ...)."""
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    own = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                         capture_output=True, text=True, check=True).stdout.strip()
    outer = [p for p in site.getsitepackages() + [site.getusersitepackages()] if Path(p).is_dir()]
    (Path(own) / "_outer_environment.pth").write_text("\n".join(outer) + "\n")
    return venv


def test_wheel_install_in_a_fresh_venv_runs_from_anywhere(tmp_path):
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=SKIP)
    venv = _venv(tmp_path)
    subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "-q", "--no-index", "--no-build-isolation",
                    str(source)], check=True, cwd=tmp_path)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "LEARNMECH_GALLERY")}
    env["LEARNMECH_HOME"] = str(tmp_path / "store")

    def run(*argv):
        done = subprocess.run(argv, cwd=elsewhere, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-2000:]
        return done.stdout

    assert run(str(venv / "bin" / "learnmech"), "--version").strip() == f"learnmech {learnmech_core.__version__}"
    verdict = json.loads(run(str(venv / "bin" / "learnmech"), "verify", "edge_of_stability", "--size", "tiny",
                             "--json"))
    assert verdict["phenomenon"] == "edge_of_stability" and len(verdict["runs"]) >= 2
    assert all(r["measured"] is not None for r in verdict["runs"])
    code = ("import learnmech_core as lm\nfrom learnmech_core.store import gallery_root\n"
            "t = lm.load_runs()\nprint(lm.__file__)\nprint(gallery_root())\nprint(t.shape)\n"
            "print(sorted(t['source'].unique()))\nprint(t[t.source == 'gallery'].key.nunique())")
    installed, gallery, shape, sources, gallery_runs = run(str(venv / "bin" / "python"), "-c", code).splitlines()
    venv = venv.resolve()
    assert Path(installed).resolve().is_relative_to(venv) and Path(gallery).resolve().is_relative_to(venv)
    shipped = {p.name for p in (ROOT / "learnmech_core" / "gallery" / "runs").iterdir() if p.is_dir()}
    assert int(gallery_runs) == len(shipped) > 0
    assert sources == str(["gallery", "store"])  # the verify's runs were stored in LEARNMECH_HOME
    assert int(shape.strip("()").split(",")[0]) > 0
