"""The subspace behind every Lanczos process here: float64, fully orthogonalised, with its images kept.

``KrylovBasis`` holds an orthonormal basis V (rows), the images W = A V of its vectors and the
projection T = V A V^T, so a Ritz pair (theta, y) of T has the exact residual
``y W - theta y V`` (explicit, not the three-term recurrence's |beta y_m|, so it stays right after
restarts and when the basis was seeded with several vectors). New directions queue in ``pending``
until the caller multiplies them (``expand``); ``propose`` orthogonalises a candidate against the
basis and the queue first. Products run in the operator's dtype; the basis is float64. It knows no
stopping rule (see ``eigensolver.py``) and never calls the operator itself.
"""

from __future__ import annotations

import math

import numpy as np
import torch

BREAKDOWN_RTOL = 1e-10  # a candidate direction that keeps less than this share of its norm is not new
DGKS_ETA = 1 / math.sqrt(2)  # orthogonalise again when one Gram-Schmidt pass removed more than this share


def basis_device(device: torch.device) -> torch.device:
    """Where the float64 basis lives (MPS has no float64, so the CPU there)."""
    return torch.device("cpu") if device.type == "mps" else device


def random_vector(n: int, generator: torch.Generator, device: torch.device, rademacher: bool = False) -> torch.Tensor:
    """A float64 Gaussian (or Rademacher) vector drawn from generator, moved to device."""
    if rademacher:
        v = torch.randint(0, 2, (n,), generator=generator, device=generator.device).to(torch.float64) * 2 - 1
    else:
        v = torch.randn(n, generator=generator, dtype=torch.float64, device=generator.device)
    return v.to(device)


def small_eigh(T: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Eigen-decomposition (ascending) of a small symmetric projected matrix, through torch's LAPACK.

    Not numpy's: with numpy's multi-threaded OpenBLAS, an eigh of a 30 x 30 matrix right after torch
    work took 20-40 ms on a busy 2-core machine (its threads contend with torch's OpenMP pool), as long
    as a Hessian-vector product; torch's takes ~0.3 ms.
    """
    theta, Y = torch.linalg.eigh(torch.from_numpy(np.ascontiguousarray(T, dtype=np.float64)))
    return theta.numpy(), Y.numpy()


class KrylovBasis:
    """Orthonormal basis V, images W = A V and projection T = V W^T of up to ``capacity`` vectors."""

    def __init__(self, n: int, capacity: int, device: torch.device) -> None:
        """An empty basis for vectors of length n on device (float64)."""
        self.n, self.capacity = n, capacity
        self.V = torch.zeros(capacity, n, dtype=torch.float64, device=device)
        self.W = torch.zeros_like(self.V)
        self.m = 0
        self.T = np.zeros((0, 0))
        self.queue: list[torch.Tensor] = []

    @property
    def exhausted(self) -> bool:
        """The basis spans the whole space: its Ritz pairs are exact."""
        return self.m >= self.n

    @property
    def pending(self) -> torch.Tensor | None:
        """The next vector to multiply by A (None when no direction is queued)."""
        return self.queue[0] if self.queue else None

    def propose(self, r: torch.Tensor) -> bool:
        """Queue r orthogonalised against the basis and the queue (classical Gram-Schmidt, DGKS); False if not new.

        A second pass is made only when the first removed most of r (its norm fell below DGKS_ETA of
        the original), the criterion of Daniel, Gragg, Kaufman & Stewart (1976).
        """
        if self.m + len(self.queue) >= min(self.n, self.capacity):
            return False
        r = r.to(device=self.V.device, dtype=torch.float64)
        norm0 = float(r.norm())
        if not math.isfinite(norm0) or norm0 == 0.0:
            return False
        others = torch.cat([self.V[: self.m], *[q[None] for q in self.queue]]) if self.queue else self.V[: self.m]
        for _ in range(2):
            before = float(r.norm())
            r = r - others.T @ (others @ r)
            if float(r.norm()) >= DGKS_ETA * before:
                break
        norm = float(r.norm())
        if norm <= BREAKDOWN_RTOL * norm0:
            return False
        self.queue.append(r / norm)
        return True

    def expand(self, w: torch.Tensor) -> None:
        """Add the pending vector with its image w = A @ pending (float64, on the basis device)."""
        m = self.m
        self.V[m] = self.queue.pop(0)
        self.W[m] = w
        column = (self.V[: m + 1] @ w).cpu().numpy()  # V_{m+1} A v_m: the new row and column of T
        T = np.zeros((m + 1, m + 1))
        T[:m, :m] = self.T
        T[:m, m] = T[m, :m] = column[:m]
        T[m, m] = column[m]
        self.T = T
        self.m = m + 1

    def ritz(self) -> tuple[np.ndarray, np.ndarray]:
        """Ritz values (ascending) and coefficient vectors (m x m) of the projection."""
        return small_eigh(self.T)

    def vectors(self, Y: np.ndarray, idx: np.ndarray) -> torch.Tensor:
        """Ritz vectors V^T Y[:, idx] as rows (float64)."""
        Yi = torch.from_numpy(np.ascontiguousarray(Y[:, idx].T)).to(self.V.device)
        return Yi @ self.V[: self.m]

    def residuals(self, theta: np.ndarray, Y: np.ndarray, idx: np.ndarray) -> torch.Tensor:
        """Residual vectors A x_i - theta_i x_i of the Ritz pairs idx, as rows (exact: from the kept images)."""
        Yi = torch.from_numpy(np.ascontiguousarray(Y[:, idx].T)).to(self.V.device)
        t = torch.from_numpy(np.ascontiguousarray(theta[idx])).to(self.V.device)
        return Yi @ self.W[: self.m] - t[:, None] * (Yi @ self.V[: self.m])

    def restart(self, keep: np.ndarray, Y: np.ndarray, theta: np.ndarray) -> None:
        """Thick restart: keep the Ritz vectors Y[:, keep] with their images (no products); the queue stays."""
        p = len(keep)
        Yk = torch.from_numpy(np.ascontiguousarray(Y[:, keep].T)).to(self.V.device)
        self.V[:p] = Yk @ self.V[: self.m]
        self.W[:p] = Yk @ self.W[: self.m]
        self.T = np.diag(theta[keep])
        self.m = p

    def add_random_direction(self, generator: torch.Generator) -> bool:
        """Queue a random direction orthogonal to the basis (after a breakdown); False if none is left."""
        return any(self.propose(random_vector(self.n, generator, self.V.device)) for _ in range(3))
