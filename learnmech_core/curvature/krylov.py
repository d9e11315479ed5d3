"""The subspace behind every Lanczos process here: float64, fully orthogonalised, restartable, seedable.

``KrylovBasis`` keeps an orthonormal basis V (rows) of the space built so far, the projection
T = V A V^T, and the residual space: A V^T = V^T T + Z^T C with Z (rows) an orthonormal basis of
everything the images of V reach outside V, and C its coefficients (at most as many rows as the
space had seeds: band Lanczos bookkeeping, Ruhe 1979). So a Ritz pair (theta, y) of T has the
residual Z^T (C y), of norm |C y|, and the space grows by such residual directions. With one seed
this is exactly Lanczos; with several (the previous measurement's Ritz vectors), every seed and all
of its images stay in reach. Products run in the operator's dtype; the basis is float64. It knows no
stopping rule (see ``eigensolver.py``) and never calls the operator itself: the caller multiplies
``pending`` and hands the image to ``expand``.
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
    """Orthonormal basis V, projection T = V A V^T and residual space Z, C (A V^T = V^T T + Z^T C)."""

    def __init__(self, n: int, capacity: int, device: torch.device) -> None:
        """An empty basis for vectors of length n on device (float64), room for capacity vectors."""
        self.n, self.capacity = n, capacity
        self.V = torch.zeros(capacity, n, dtype=torch.float64, device=device)
        self.m = 0
        self.T = np.zeros((0, 0))
        self.Z = torch.zeros(0, n, dtype=torch.float64, device=device)
        self.C = np.zeros((0, 0))
        self.queue: list[torch.Tensor] = []  # seeds (or a random direction) not yet multiplied
        self._seed_images: list[torch.Tensor] = []
        self._next_row: np.ndarray | None = None  # T's new row for a residual direction in flight

    @property
    def exhausted(self) -> bool:
        """The basis spans the whole space: its Ritz pairs are exact."""
        return self.m >= self.n

    @property
    def pending(self) -> torch.Tensor | None:
        """The next vector to multiply by A (None when nothing is queued)."""
        return self.queue[0] if self.queue else None

    @property
    def seeding(self) -> bool:
        """Seeds are still being multiplied (no Ritz pairs yet)."""
        return bool(self.queue) and self._next_row is None

    def _orthogonalise(self, r: torch.Tensor, against: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """r minus its projection on the rows of `against`, and the coefficients (classical Gram-Schmidt, DGKS).

        A second pass is made only when the first removed most of r (its norm fell below DGKS_ETA of
        the original), the criterion of Daniel, Gragg, Kaufman & Stewart (1976).
        """
        h = against @ r
        out = r - against.T @ h
        if float(out.norm()) < DGKS_ETA * float(r.norm()):
            h2 = against @ out
            out = out - against.T @ h2
            h = h + h2
        return out, h

    def propose(self, r: torch.Tensor) -> bool:
        """Queue a seed (or, after a breakdown, a random direction) orthogonal to the basis; False if not new.

        Seeds are queued before the first product; a random direction only when no residual is left.
        """
        if self.m + len(self.queue) >= min(self.n, self.capacity) or self._next_row is not None:
            return False
        if self.m > 0 and self.queue:
            return False
        r = r.to(device=self.V.device, dtype=torch.float64)
        norm0 = float(r.norm())
        if not math.isfinite(norm0) or norm0 == 0.0:
            return False
        r, _ = self._orthogonalise(r, torch.cat([self.V[: self.m], self.Z, *[q[None] for q in self.queue]]))
        norm = float(r.norm())
        if norm <= BREAKDOWN_RTOL * norm0:
            return False
        self.queue.append(r / norm)
        if self.m > 0:  # after the seeds: orthogonal to V and to everything A V reaches, so its row of T is 0
            self._next_row = np.zeros(self.m)
        return True

    def propose_residual(self, c: np.ndarray) -> bool:
        """Queue the residual direction Z^T c (c: coefficients in the residual space, e.g. C y); False if zero."""
        norm = float(np.linalg.norm(c))
        if self.queue or self.m >= min(self.n, self.capacity) or norm == 0.0 or not math.isfinite(norm):
            return False
        # a Householder reflection H with H c = |c| e_1 turns the residual space so that q is its first row
        u = np.asarray(c, dtype=np.float64) / norm
        u[0] += 1.0 if u[0] >= 0 else -1.0
        H = np.eye(len(c)) - 2.0 * np.outer(u, u) / float(u @ u)
        Zr = torch.from_numpy(H).to(self.Z.device) @ self.Z
        Cr = H @ self.C
        self.queue.append(Zr[0] / Zr[0].norm())
        self._next_row = Cr[0].copy()  # q . (A v_j) for the vectors already in the basis
        self.Z, self.C = Zr[1:], Cr[1:]
        return True

    def expand(self, w: torch.Tensor) -> None:
        """Add the pending vector with its image w = A @ pending (float64, on the basis device)."""
        q = self.queue.pop(0)
        if self._next_row is None:  # a seed: the block is set up once every seed has its image
            self._seed_images.append(w)
            self.V[self.m] = q
            self.m += 1
            if not self.queue:
                self._close_seed_block()
            return
        m = self.m
        self.V[m] = q
        row, self._next_row = self._next_row, None
        # the known part first (the band recurrence: w = sum_j row_j v_j + alpha q + remainder), then one
        # Gram-Schmidt pass over the basis removes what rounding left (a second only on the DGKS criterion)
        alpha = float(q @ w)
        r = w - alpha * q
        coupled = np.flatnonzero(row)
        if len(coupled) > 4:  # after a thick restart the row is dense: one product
            r -= self.V[:m].T @ torch.from_numpy(row).to(r.device)
        for j in coupled if len(coupled) <= 4 else ():
            r.sub_(self.V[j], alpha=float(row[j]))
        r, h = self._orthogonalise(r, self.V[: m + 1])
        T = np.zeros((m + 1, m + 1))
        T[:m, :m] = self.T
        T[m, :m] = T[:m, m] = row
        T[m, m] = alpha + float(h[m])
        self.T = T
        self.m = m + 1
        self._add_residual(r, float(w.norm()))

    def _close_seed_block(self) -> None:
        """T and the residual space of the seed block V[:m] from its images (computed here, once)."""
        m, W = self.m, torch.stack(self._seed_images)
        self._seed_images = []
        T = (self.V[:m] @ W.T).cpu().numpy()
        self.T = (T + T.T) / 2
        self.C = np.zeros((0, m))
        for j in range(m):
            r, _ = self._orthogonalise(W[j], self.V[:m])
            self._add_residual(r, float(W[j].norm()), column=j)

    def _add_residual(self, r: torch.Tensor, scale: float, column: int | None = None) -> None:
        """Record r (already orthogonal to V) as the residual column of basis vector `column` (default: the last)."""
        column = self.m - 1 if column is None else column
        r, a = self._orthogonalise(r, self.Z)
        C = np.zeros((self.Z.shape[0], max(self.m, self.C.shape[1])))
        C[:, : self.C.shape[1]] = self.C
        C[:, column] = a.cpu().numpy()
        norm = float(r.norm())
        if norm > BREAKDOWN_RTOL * scale:  # a new direction: the residual space grows
            self.Z = torch.cat([self.Z, (r / norm)[None]])
            C = np.vstack([C, np.zeros(C.shape[1])])
            C[-1, column] = norm
        self.C = C

    def ritz(self) -> tuple[np.ndarray, np.ndarray]:
        """Ritz values (ascending) and coefficient vectors (m x m) of the projection."""
        return small_eigh(self.T)

    def residual_coefficients(self, Y: np.ndarray, idx: np.ndarray) -> np.ndarray:
        """C Y[:, idx]: the residuals of those Ritz pairs in the residual space (their norms are the residual norms)."""
        return self.C @ Y[:, idx]

    def vectors(self, Y: np.ndarray, idx: np.ndarray) -> torch.Tensor:
        """Ritz vectors V^T Y[:, idx] as rows (float64)."""
        Yi = torch.from_numpy(np.ascontiguousarray(Y[:, idx].T)).to(self.V.device)
        return Yi @ self.V[: self.m]

    def restart(self, keep: np.ndarray, Y: np.ndarray, theta: np.ndarray) -> None:
        """Thick restart: keep the Ritz vectors Y[:, keep]; the residual space carries over (no products)."""
        p = len(keep)
        Yk = torch.from_numpy(np.ascontiguousarray(Y[:, keep].T)).to(self.V.device)
        self.V[:p] = Yk @ self.V[: self.m]
        self.T = np.diag(theta[keep])
        self.C = self.C @ Y[:, keep]
        self.m = p

    def add_random_direction(self, generator: torch.Generator) -> bool:
        """Queue a random direction orthogonal to the basis (when no residual is left); False if none is left."""
        return any(self.propose(random_vector(self.n, generator, self.V.device)) for _ in range(3))
