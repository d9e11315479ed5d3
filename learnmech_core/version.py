"""The version of learnmech: written once, here (pyproject.toml and the package read it)."""

__version__ = "0.1.0"
