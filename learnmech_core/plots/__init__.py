"""Plotly figure builders: tidy data in, `go.Figure` out. The app, CLI exports and tests draw these.

Submodules: `style` (colours, dashes, layout), `runs` (curves of one or many runs, overlays),
`spectra` (Hessian and weight spectra, landscapes), `phenomena` (each phenomenon's figures).
"""

from .style import ARCH_COLORS, DATASET_DASHES, arch_color, dataset_dash, downsample, layout, reference_line

__all__ = ["ARCH_COLORS", "DATASET_DASHES", "arch_color", "dataset_dash", "downsample", "layout", "reference_line"]
