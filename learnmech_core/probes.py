"""Probes: measurements the trainer calls on a schedule. A probe knows nothing of the trainer.

Each probe has a `name`, the history `columns` it fills, a cadence (`due(step, last)`) and
`measure(ctx) -> (scalars: dict, spectra_rows: list[(kind, layer, index, value)])`. The context holds
the model at theta_t (gradients of the step's batch in `.grad`, except at the final step), the loss,
the probe batch, the test set and the optimiser. Measurement probes import their instrument on first
use, so a run without them pays nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from .config import ProbeSpec


@dataclass
class ProbeContext:
    """What a probe may look at (read-only by convention; probes must not change weights or .grad)."""

    model: torch.nn.Module
    loss_fn: object
    inputs: torch.Tensor
    targets: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    optimizer: torch.optim.Optimizer
    spec: object
    generator: torch.Generator
    init_params: list
    init_norm: float
    classification: bool
    step: int = 0
    lr: float = 0.0
    last: bool = False
    state: dict = field(default_factory=dict)  # per-probe memory, e.g. warm-start vectors


class Probe:
    """Base: measure every `every` steps (0 = never) and at the final step."""

    name = "probe"
    columns: tuple[str, ...] = ()
    needs_finite = True

    def __init__(self, every: int):
        self.every = every

    def due(self, step: int, last: bool) -> bool:
        return self.every > 0 and (step % self.every == 0 or last)

    def measure(self, ctx: ProbeContext):
        raise NotImplementedError


class NormsProbe(Probe):
    """Gradient norm, parameter norm and relative weight change ||theta - theta_0|| / ||theta_0||."""

    name = "norms"
    columns = ("grad_norm", "param_norm", "weight_change")
    needs_finite = False

    def measure(self, ctx):
        params = list(ctx.model.parameters())
        grads = [p.grad for p in params if p.grad is not None]
        out = {}
        if grads and not ctx.last:
            out["grad_norm"] = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads))).item()
        with torch.no_grad():
            out["param_norm"] = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(params))).item()
            diffs = torch._foreach_sub(params, ctx.init_params)
            change = torch.linalg.vector_norm(torch.stack(torch._foreach_norm(diffs))).item()
        out["weight_change"] = change / ctx.init_norm if ctx.init_norm > 0 else float("nan")
        return out, []


class LayerNormsProbe(Probe):
    """Squared Frobenius norm of each weight layer and differences of consecutive layers.

    For bias-free homogeneous nets (ReLU / linear) under gradient flow, ||W_{l+1}||^2 - ||W_l||^2 is
    conserved (Du et al. 2018): columns `wnorm2_<l>` and `balance_<l>` = wnorm2_{l+1} - wnorm2_l.
    """

    name = "layer_norms"
    needs_finite = False

    def measure(self, ctx):
        from .models import weight_layers

        norms = [float(layer.weight.detach().double().pow(2).sum()) for _, layer in weight_layers(ctx.model)]
        out = {f"wnorm2_{i}": v for i, v in enumerate(norms)}
        out.update({f"balance_{i}": norms[i + 1] - norms[i] for i in range(len(norms) - 1)})
        return out, []


def sharpness_columns(res) -> dict:
    """History columns of one sharpness measurement (an EigResult): value, HVPs spent, whether certified.

    `sharpness` is the top Ritz value even when Lanczos stopped at its product cap before the residual
    certified it; `sharpness_converged` says which (1.0 certified, 0.0 not; missing where nothing was
    measured; a number, so histories stay numeric for the store): figures draw uncertified values
    hollow, and analyses that need certified numbers drop the rows where it is 0.
    """
    return {"sharpness": float(res.values[0]), "sharpness_hvps": res.n_hvp, "sharpness_converged": float(res.converged)}


def precond_sharpness_columns(res) -> dict:
    """History columns of the sharpness in the optimiser's geometry (an EigResult), as `sharpness_columns`."""
    return {"precond_sharpness": float(res.values[0]), "precond_sharpness_converged": float(res.converged)}


def sgd_geometry_shift(lr_mults, weight_decays) -> float | None:
    """precond_sharpness - sharpness for an SGD-like optimiser, when no second eigensolve is needed.

    With every lr multiplier 1 the optimiser's matrix is H + wd I, whose top eigenvalue is exactly
    lambda_max(H) + wd for one weight decay wd: the shift (0: plain GD, nothing to record). Per-group
    multipliers (muP away from its base width) or mixed decays: None, the operator must be solved.
    """
    mults, decays = set(lr_mults), set(weight_decays)
    if mults <= {1.0} and len(decays) <= 1:
        return float(next(iter(decays), 0.0))
    return None


class SharpnessProbe(Probe):
    """Top Hessian eigenvalue of the training loss, warm-started from the previous measurement's Ritz vectors.

    Under SGD-like optimisers whose geometry is not plain GD (per-group lr multipliers, weight decay) it
    also records `precond_sharpness`, the top eigenvalue of P^-1 (H + wd I) that `stability_threshold`
    (2/eta, (2+2 mu)/eta) refers to (`curvature.optimizer_top_eigenvalues`), unless a
    PrecondSharpnessProbe runs too (`precond=False`).
    """

    name = "sharpness"
    columns = ("sharpness", "sharpness_hvps", "sharpness_converged")

    def __init__(self, every: int, tol: float, precond: bool = True):
        super().__init__(every)
        self.tol = tol
        self.precond = precond

    def measure(self, ctx):
        from .curvature import SGD_LIKE, optimizer_top_eigenvalues, top_eigenvalues

        res = top_eigenvalues(ctx.model, ctx.loss_fn, ctx.inputs, ctx.targets, k=1, tol=self.tol,
                              v0=ctx.state.get("sharpness_prev"), generator=ctx.generator)
        ctx.state["sharpness_prev"] = res
        out = sharpness_columns(res)
        if self.precond and isinstance(ctx.optimizer, SGD_LIKE):
            groups = [g for g in ctx.optimizer.param_groups if g["params"]]
            shift = sgd_geometry_shift([g.get("lr_mult", 1.0) for g in groups], [g["weight_decay"] for g in groups])
            if shift is None:
                pre = optimizer_top_eigenvalues(ctx.model, ctx.loss_fn, ctx.inputs, ctx.targets, ctx.optimizer,
                                                tol=self.tol, v0=ctx.state.get("precond_prev"), generator=ctx.generator)
                ctx.state["precond_prev"] = pre
                out.update(precond_sharpness_columns(pre))
            elif shift:
                out.update({"precond_sharpness": out["sharpness"] + shift,
                            "precond_sharpness_converged": out["sharpness_converged"]})
        return out, []


class TopKProbe(Probe):
    """Top-k Hessian eigenvalues (largest algebraic) as spectra rows of kind `hessian_topk` (NaN: not certified)."""

    name = "hessian_topk"

    def __init__(self, every: int, k: int):
        super().__init__(every)
        self.k = k

    def measure(self, ctx):
        from .curvature import top_eigenvalues

        res = top_eigenvalues(ctx.model, ctx.loss_fn, ctx.inputs, ctx.targets, k=self.k, tol=1e-3,
                              v0=ctx.state.get("topk_v"), generator=ctx.generator)
        ctx.state["topk_v"] = res  # its Ritz vectors seed the next measurement
        values = np.where(res.errors <= 1e-3, res.values, np.nan)
        return {}, [("hessian_topk", "all", i, float(v)) for i, v in enumerate(values)]


class GaussNewtonProbe(Probe):
    """At the last step only: the Hessian's top-k eigenpairs split into G = J^T H_l J and the residual R.

    Spectra rows (index i = rank - 1): `gn_hessian` (H's top-k), `gn_gauss_newton` (G's top-k),
    `gn_residual` (R's k largest in magnitude) and `gn_share` (v_i^T G v_i / lambda_i for H's i-th top
    eigenvector). Lanczos starts from a fixed seed, so the numbers are a function of the final weights:
    `gauss_newton.curvature_split(model, loss_fn, inputs, targets, k)` on them gives the same.
    """

    name = "gauss_newton"
    columns = ("gn_converged", "gn_products")

    def __init__(self, k: int):
        super().__init__(1)
        self.k = k

    def due(self, step: int, last: bool) -> bool:
        return last

    def measure(self, ctx):
        from .gauss_newton import curvature_split

        split = curvature_split(ctx.model, ctx.loss_fn, ctx.inputs, ctx.targets, k=self.k)
        rows = [(kind, "all", i, float(v)) for kind, values in (
            ("gn_hessian", split.hessian), ("gn_gauss_newton", split.gauss_newton), ("gn_residual", split.residual),
            ("gn_share", split.gauss_newton_share)) for i, v in enumerate(values)]
        return {"gn_converged": float(split.converged), "gn_products": float(split.n_products)}, rows


class PrecondSharpnessProbe(Probe):
    """Top eigenvalue of the optimiser's P^-1 (H + wd I): Adam's preconditioner (Cohen et al. 2022), or SGD's
    per-group lr multipliers; the quantity `universality.stability_threshold` is the threshold of."""

    name = "precond_sharpness"
    columns = ("precond_sharpness", "precond_sharpness_converged")

    def __init__(self, every: int, tol: float = 1e-3):
        super().__init__(every)
        self.tol = tol

    def measure(self, ctx):
        from .curvature import ADAM_LIKE, optimizer_top_eigenvalues

        if isinstance(ctx.optimizer, ADAM_LIKE) and not ctx.optimizer.state:
            return {"precond_sharpness": float("nan")}, []  # no Adam statistics before the first update
        res = optimizer_top_eigenvalues(ctx.model, ctx.loss_fn, ctx.inputs, ctx.targets, ctx.optimizer, tol=self.tol,
                                        v0=ctx.state.get("precond_prev"), generator=ctx.generator)
        ctx.state["precond_prev"] = res
        return precond_sharpness_columns(res), []


class DensityProbe(Probe):
    """Hessian spectral density by stochastic Lanczos quadrature: rows (hessian_density_x/_y)."""

    name = "hessian_density"

    def measure(self, ctx):
        from .curvature import spectral_density

        grid, density = spectral_density(ctx.model, ctx.loss_fn, ctx.inputs, ctx.targets, generator=ctx.generator,
                                         n_grid=400)
        rows = [("hessian_density_x", "all", i, float(v)) for i, v in enumerate(grid)]
        rows += [("hessian_density_y", "all", i, float(v)) for i, v in enumerate(density)]
        return {}, rows


class WeightSpectraProbe(Probe):
    """Per-layer weight ESD (rows `weight_esd`) and summaries: alpha, MP fit (columns per layer)."""

    name = "weight_spectra"
    needs_finite = True

    def measure(self, ctx):
        from .spectra import esd_rows, layer_summaries

        summary = layer_summaries(ctx.model)
        scalars = {}
        for _, r in summary.iterrows():
            scalars[f"alpha_{r['layer']}"] = float(r["alpha"])
            scalars[f"mp_ks_{r['layer']}"] = float(r["mp_ks"])
        alphas = summary["alpha"].to_numpy(dtype=float) if len(summary) else np.array([])
        scalars["alpha_mean"] = float(np.nanmean(alphas)) if np.isfinite(alphas).any() else float("nan")
        table = esd_rows(ctx.model, ctx.step)
        rows = [(r.kind, r.layer, int(r.index), float(r.value)) for r in table.itertuples()]
        return scalars, rows


class NTKProbe(Probe):
    """Empirical NTK on the first `points` examples: top eigenvalues and distance from the initial NTK."""

    name = "ntk"
    columns = ("ntk_top", "ntk_trace", "ntk_distance")

    def __init__(self, every: int, points: int):
        super().__init__(every)
        self.points = points

    def measure(self, ctx):
        from .ntk import empirical_ntk, kernel_distance

        kernel = empirical_ntk(ctx.model, ctx.inputs[: self.points])
        ctx.state.setdefault("ntk_0", kernel)
        evals = np.sort(np.linalg.eigvalsh(kernel))[::-1]
        rows = [("ntk_eig", "all", i, float(v)) for i, v in enumerate(evals[:32])]
        return {"ntk_top": float(evals[0]), "ntk_trace": float(np.trace(kernel)),
                "ntk_distance": float(kernel_distance(ctx.state["ntk_0"], kernel))}, rows


class NoiseProbe(Probe):
    """Gradient noise scale B_simple = tr(Sigma) / |G|^2 on the probe batch (McCandlish et al. 2018)."""

    name = "noise_scale"
    columns = ("noise_scale",)

    def measure(self, ctx):
        from .noise import noise_scale

        return {"noise_scale": float(noise_scale(ctx.model, ctx.loss_fn, ctx.inputs, ctx.targets).b_simple)}, []


class CollapseProbe(Probe):
    """Neural-collapse metrics NC1-NC4 of the penultimate features on the probe batch."""

    name = "collapse"
    columns = ("nc1", "nc2_equinorm", "nc2_equiangle", "nc3", "nc4")

    def measure(self, ctx):
        if not ctx.classification:
            raise ValueError("neural-collapse metrics need a classification dataset")
        from .collapse import classifier_layer, neural_collapse, penultimate_features

        feats = penultimate_features(ctx.model, ctx.inputs)
        readout = classifier_layer(ctx.model).weight.detach().cpu()
        labels = ctx.targets.argmax(dim=1) if ctx.targets.ndim > 1 else ctx.targets
        m = neural_collapse(feats, labels.cpu().numpy(), classifier_weight=readout)
        return {"nc1": m.nc1, "nc2_equinorm": m.nc2_equinorm, "nc2_equiangle": m.nc2_equiangle,
                "nc3": m.nc3, "nc4": m.nc4_ncc_agreement}, []


class SnapshotProbe(Probe):
    """Flattened trainable weights (float32, `named_parameters` order) kept for the trajectory's PCA.

    Rows go to `ctx.state["snapshots"]` as (step, vector); `collected_snapshots` stacks them for the Run.
    Memory is bounded: past `MAX_SNAPSHOTS` rows or `MAX_SNAPSHOT_VALUES` numbers, every other kept row
    is dropped (the first stays) and the interval doubles, so the trajectory stays evenly sampled.
    The last step is always kept. Like every measurement, it runs on logged steps only.
    """

    name = "snapshots"

    def measure(self, ctx):
        params = [p for p in ctx.model.parameters() if p.requires_grad]
        n = sum(p.numel() for p in params)
        if 2 * n > MAX_SNAPSHOT_VALUES:
            raise ValueError(f"weight snapshots need at most {MAX_SNAPSHOT_VALUES // 2:,} parameters (got {n:,})")
        rows = ctx.state.setdefault("snapshots", [])
        stride = ctx.state.setdefault("snapshot_stride", 1)
        if not ctx.last and (ctx.step // self.every) % stride:
            return {}, []
        rows.append((ctx.step, torch.cat([p.detach().reshape(-1) for p in params]).to("cpu", torch.float32).numpy()))
        while len(rows) > MAX_SNAPSHOTS or len(rows) * n > MAX_SNAPSHOT_VALUES:
            newest = rows.pop() if ctx.last else None  # the last step stays whatever the grid
            rows[:] = rows[::2]
            if newest is not None:
                rows.append(newest)
            stride = ctx.state["snapshot_stride"] = stride * 2
        return {}, []


MAX_SNAPSHOTS = 200
MAX_SNAPSHOT_VALUES = 16_000_000  # 64 MB of float32 per run


def collected_snapshots(state: dict) -> dict[str, np.ndarray] | None:
    """{"step": (T,) int64, "weights": (T, n) float32} from a SnapshotProbe's state, or None."""
    rows = state.get("snapshots")
    if not rows:
        return None
    return {"step": np.array([s for s, _ in rows], dtype=np.int64), "weights": np.stack([w for _, w in rows])}


def build_probes(spec: ProbeSpec) -> list[Probe]:
    """The probes a ProbeSpec asks for, cheapest first."""
    probes: list[Probe] = [NormsProbe(spec.log_every)] if spec.norms else []
    if spec.layer_norms:
        probes.append(LayerNormsProbe(spec.log_every))
    if spec.sharpness_every:
        probes.append(SharpnessProbe(spec.sharpness_every, spec.sharpness_tol,
                                     precond=not spec.precond_sharpness_every))
    if spec.topk_every:
        probes.append(TopKProbe(spec.topk_every, spec.topk))
    if spec.gauss_newton_k:
        probes.append(GaussNewtonProbe(spec.gauss_newton_k))
    if spec.precond_sharpness_every:
        probes.append(PrecondSharpnessProbe(spec.precond_sharpness_every, spec.sharpness_tol))
    if spec.density_every:
        probes.append(DensityProbe(spec.density_every))
    if spec.esd_every:
        probes.append(WeightSpectraProbe(spec.esd_every))
    if spec.ntk_every:
        probes.append(NTKProbe(spec.ntk_every, spec.ntk_points))
    if spec.noise_every:
        probes.append(NoiseProbe(spec.noise_every))
    if spec.collapse_every:
        probes.append(CollapseProbe(spec.collapse_every))
    for path in spec.extra:
        probes.append(load_probe_class(path)(spec.extra_every or spec.log_every))
    if spec.snapshot_every:
        probes.append(SnapshotProbe(spec.snapshot_every))
    return probes


def load_probe_class(path: str) -> type[Probe]:
    """Import 'learnmech_core.module:ProbeClass' (only inside this package; must subclass Probe)."""
    import importlib

    module_name, _, attr = path.partition(":")
    if not module_name.startswith("learnmech_core."):
        raise ValueError(f"probes.extra must name a probe inside learnmech_core (got {path!r})")
    cls = getattr(importlib.import_module(module_name), attr, None)
    if not (isinstance(cls, type) and issubclass(cls, Probe)):
        raise ValueError(f"probes.extra {path!r} is not a Probe class")
    return cls
