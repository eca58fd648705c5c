"""Multiplicative angular margins with an annealed blend.

- L-Softmax (Liu et al. 2016, "Large-Margin Softmax Loss for Convolutional
  Neural Networks"): the target score ``|W_y||x| cos t_y`` becomes
  ``|W_y||x| psi(t_y)``, ``psi(t) = (-1)^j cos(m t) - 2j`` for
  ``t in [j pi/m, (j+1) pi/m]``; no bias.
- A-Softmax / SphereFace (Liu et al. 2017, "SphereFace: Deep Hypersphere
  Embedding for Face Recognition"): the same with ``|W| = 1``.

Both papers train through the margin with a blend
``(lambda |W||x| cos t + |W||x| psi(t)) / (1 + lambda)``, lambda annealed per
training step as their code does:
``lambda = max(lambda_min, lambda_base * (1 + lambda_gamma * step) ^ -lambda_power)``.
``cos(m t)`` is the Chebyshev polynomial ``T_m(cos t)``: no arccos in the
gradient, which is infinite at cos t = +-1.
"""

import math

import torch
import torch.nn.functional as F

from lossbench.losses.base import ClassificationLoss, float32_or_wider
from lossbench.losses.owned_classifier import new_class_weight


def chebyshev(cos: torch.Tensor, m: int) -> torch.Tensor:
    """cos(m t) from cos t: T_0 = 1, T_1 = c, T_{n+1} = 2 c T_n - T_{n-1}."""
    previous, current = torch.ones_like(cos), cos
    for _ in range(m - 1):
        previous, current = current, 2 * cos * current - previous
    return current if m >= 1 else previous


def psi(cos: torch.Tensor, m: int) -> torch.Tensor:
    """psi(t) = (-1)^j cos(m t) - 2j, monotone decreasing on [0, pi]."""
    with torch.no_grad():
        theta = torch.arccos(cos.clamp(-1.0, 1.0))
        j = torch.floor(theta * m / math.pi).clamp_(0, m - 1)
    sign = 1.0 - 2.0 * torch.remainder(j, 2)
    return sign * chebyshev(cos, m) - 2.0 * j


class LSoftmax(ClassificationLoss):
    name = "l_softmax"
    description = "large-margin softmax: target score |W||x| psi(t_y), annealed blend"
    formula = "target score (lambda |W_y||x| cos t_y + |W_y||x| psi(t_y)) / (1 + lambda), psi(t) = (-1)^j cos(mt) - 2j"
    paper = "Liu et al. 2016, Large-Margin Softmax Loss for Convolutional Neural Networks"
    conventions = ("lambda counts training steps (the layer's iterations), not epochs",)
    inputs = "embeddings"
    unit_weight = False

    def __init__(self, num_classes=None, embedding_dim=None, **knobs):
        super().__init__(num_classes, **knobs)
        self.weight = new_class_weight(num_classes, embedding_dim, self.name)
        # Training steps seen, which drive the annealing. A tensor on the loss's
        # device, so that counting costs no host sync and a compiled step does
        # not take the count for a constant (and recompile at every step). It is
        # saved as extra state, {"step": int}, as checkpoints always held it.
        self.register_buffer("steps", torch.zeros((), dtype=torch.float64), persistent=False)

    @property
    def step(self) -> int:
        return int(self.steps)

    @step.setter
    def step(self, value: int) -> None:
        self.steps.fill_(value)

    def lam_tensor(self) -> torch.Tensor:
        annealed = self.lambda_base * (1.0 + self.lambda_gamma * self.steps) ** (-self.lambda_power)
        return annealed.clamp_min(self.lambda_min)

    @property
    def lam(self) -> float:
        return float(self.lam_tensor())

    def get_extra_state(self):
        return {"step": self.step}

    def set_extra_state(self, state):
        self.step = int(state["step"])

    def _weight(self) -> torch.Tensor:
        return F.normalize(float32_or_wider(self.weight), dim=1) if self.unit_weight else float32_or_wider(self.weight)

    def logits(self, embeddings: torch.Tensor) -> torch.Tensor:
        with torch.autocast(embeddings.device.type, enabled=False):
            return float32_or_wider(embeddings) @ self._weight().t()

    def margin_logits(self, embeddings: torch.Tensor, target: torch.Tensor, lam) -> torch.Tensor:
        with torch.autocast(embeddings.device.type, enabled=False):
            x, w = float32_or_wider(embeddings), self._weight()
            x_norm = x.norm(dim=1).clamp_min(1e-12)
            w_norm = w.norm(dim=1).clamp_min(1e-12)

            def blend(score, y):
                norms = x_norm * w_norm[y]
                cos = (score / norms).clamp(-1.0, 1.0)
                return (lam * score + norms * psi(cos, self.m)) / (1.0 + lam)

            return self.replace_target_scores(x @ w.t(), target, blend)

    def forward(self, embeddings: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return self.cross_entropy(self.logits(embeddings), target)
        # the k-th training step uses lambda(k), as the authors' layer counts its iterations before use
        self.steps += 1
        return self.cross_entropy(self.margin_logits(embeddings, target, self.lam_tensor().to(float32_or_wider(embeddings).dtype)), target)


class SphereFace(LSoftmax):
    name = "sphereface"
    description = "A-Softmax: L-Softmax with unit-norm class weights, no bias"
    formula = "as l_softmax with |W| = 1: target score (lambda |x| cos t_y + |x| psi(t_y)) / (1 + lambda)"
    paper = "Liu et al. 2017, SphereFace: Deep Hypersphere Embedding for Face Recognition"
    unit_weight = True
