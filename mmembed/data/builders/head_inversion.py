"""Class prototypes in an image tower's pooled-feature space, by inverting its linear ImageNet head.

The head's rows W[c] (1000 x 1280) live in the same space as the pooled features f, but they are
not features: about half their entries are negative while f = mean over positions of ReLU6(...)
is in [0, 6]. A prototype is instead a feature vector the head classifies as c with high
confidence while staying near a typical ImageNet feature:

    maximise  log p(c | f) - lam * ||f - f0||^2   over f in [0, 6]^1280

by projected gradient ascent from f0. f0 is the expected pooled feature of ImageNet images,
read off the tower's last BatchNorm: its running statistics were measured on ImageNet training
data, so before the affine part the activation is ~N(0, 1) per channel, after it ~N(beta, gamma^2),
and the pooled ReLU6 output has mean E[clip(z, 0, 6)], in closed form. No image is needed, the
result depends on the weights only, and float64 steps make it reproducible bit for bit.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

STEPS = 300
STEP_SIZE = 1.0
PENALTY = 0.01  # lam: p(c | prototype) ~0.96 on average; lower gives larger, more saturated vectors
ACT_MAX = 6.0  # ReLU6


@dataclass(frozen=True)
class InversionSettings:
    steps: int = STEPS
    step_size: float = STEP_SIZE
    penalty: float = PENALTY


def _normal_pdf(x: torch.Tensor) -> torch.Tensor:
    return torch.exp(-0.5 * x * x) / math.sqrt(2 * math.pi)


def _normal_cdf(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * (1 + torch.erf(x / math.sqrt(2)))


def expected_relu6(mean: torch.Tensor, std: torch.Tensor) -> torch.Tensor:
    """E[clip(z, 0, 6)] for z ~ N(mean, std^2), per channel: (c,) -> (c,)."""
    a, b = (0 - mean) / std, (ACT_MAX - mean) / std
    inside = mean * (_normal_cdf(b) - _normal_cdf(a)) + std * (_normal_pdf(a) - _normal_pdf(b))
    return inside + ACT_MAX * (1 - _normal_cdf(b))


def imagenet_prior(bn_weight: torch.Tensor, bn_bias: torch.Tensor) -> torch.Tensor:
    """(c,) expected pooled feature of ImageNet images, from the last BatchNorm's affine parameters."""
    return expected_relu6(bn_bias.double(), bn_weight.double().abs())


def invert_head(weight: torch.Tensor, bias: torch.Tensor, classes: torch.Tensor, prior: torch.Tensor,
                settings: InversionSettings = InversionSettings()) -> torch.Tensor:
    """(n,) class indices -> (n, c) float32 prototypes in [0, 6] (see the module docstring).

    weight (k, c), bias (k,): the linear head; prior (c,): the start and anchor f0. Every row is
    optimised on its own (the objective is a sum over rows), so a subset gives the same rows.
    """
    w, b, f0 = weight.double(), bias.double(), prior.double()
    f = f0.expand(len(classes), -1).clone()  # (n, c)
    own = w[classes]  # (n, c)
    for _ in range(settings.steps):
        p = torch.softmax(f @ w.T + b, dim=1)  # (n, k)
        # d/df log p(c|f) = W[c] - sum_j p_j W[j]; the penalty's gradient is -2 lam (f - f0)
        grad = own - p @ w - 2 * settings.penalty * (f - f0)
        f = (f + settings.step_size * grad).clamp(0, ACT_MAX)
    return f.float()


def head_report(weight: torch.Tensor, bias: torch.Tensor, features: torch.Tensor, classes: torch.Tensor) -> dict:
    """How the head sees features (n, c) meant to be classes (n,): top-1, p(own class), norms."""
    with torch.no_grad():
        p = torch.softmax(features.double() @ weight.double().T + bias.double(), dim=1)
        own = p[torch.arange(len(classes)), classes]
        norms = features.norm(dim=1)
        return {
            "top1": round(float((p.argmax(1) == classes).double().mean()), 4),
            "p_own_mean": round(float(own.mean()), 4),
            "p_own_min": round(float(own.min()), 4),
            "norm_mean": round(float(norms.mean()), 3),
            "norm_min": round(float(norms.min()), 3),
            "norm_max": round(float(norms.max()), 3),
            "nonzero_fraction": round(float((features > 0).double().mean()), 4),
        }
