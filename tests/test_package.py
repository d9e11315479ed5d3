"""The package's shape: the spec checks without an import circle, the version, the shipped gallery."""

import subprocess
import sys

import pytest


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
