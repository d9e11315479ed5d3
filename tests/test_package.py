"""The package's shape: the spec checks without an import circle, the version, the shipped gallery."""

import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_config_imported_alone_still_checks_model_against_data():
    # config.py imports neither data nor models; importing any part of the package registers compat's checks
    code = ("from learnmech_core.config import CROSS_CHECKS, DataSpec, ModelSpec, RunSpec\n"
            "try:\n    RunSpec(model=ModelSpec(arch='cnn'), data=DataSpec(name='moons'))\n"
            "except ValueError as err:\n    print(len(CROSS_CHECKS), err)\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.startswith("1 model.arch 'cnn' needs image datasets")


def test_compat_registers_its_check_once():
    from learnmech_core import compat, config

    registered = list(config.CROSS_CHECKS)
    assert registered == [compat.check_compatible]
    with pytest.raises(ValueError, match="optim.batch_size must be at most data.n_train=512"):
        config.RunSpec(optim=config.OptimSpec(name="sgd", batch_size=600))


def _requirements(name: str) -> set[str]:
    lines = (ROOT / name).read_text().splitlines()
    return {line.split("#")[0].replace(" ", "") for line in lines if line.split("#")[0].strip()
            and not line.startswith("-r")}


def test_pyproject_pins_agree_with_the_requirements_files():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    runtime = _requirements("requirements.txt")
    assert set(project["dependencies"]) | set(extras["app"]) == runtime  # hosted platforms read requirements.txt
    assert "torch==2.13.0" in project["dependencies"]
    assert set(extras["ray"]) == _requirements("requirements-extra.txt")
    assert set(extras["bench"]) == _requirements("requirements-bench.txt")
    assert set(extras["test"]) - {"learnmech[app,ray]"} == _requirements("requirements-test.txt")
    assert project["scripts"]["learnmech"] == "learnmech_core.cli:main"
    assert project["requires-python"] == ">=3.11"


def test_version_has_one_source():
    import learnmech_core

    setuptools_conf = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert setuptools_conf["dynamic"]["version"] == {"attr": "learnmech_core.version.__version__"}
    assert re.fullmatch(r"\d+\.\d+\.\d+", learnmech_core.__version__)


def test_gallery_is_package_data_with_an_override(monkeypatch, tmp_path):
    from importlib import resources

    from learnmech_core.store import gallery_root

    shipped = ROOT / "learnmech_core" / "gallery"
    assert gallery_root() == Path(str(resources.files("learnmech_core") / "gallery")) == shipped
    assert (gallery_root() / "verdicts.json").is_file() and any((gallery_root() / "runs").iterdir())
    monkeypatch.setenv("LEARNMECH_GALLERY", str(tmp_path))
    assert gallery_root() == tmp_path
