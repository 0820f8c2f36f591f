"""Toy classifier and scripted attacks shared by the trainer tests (no tests here)."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import torch


class ShiftAttack:
    """A scripted 'attack': x_adv = x + shift, κ given; records the attributes seen at each call."""

    def __init__(self, shift: float, kappa=None, max_iter: int = 10):
        self.shift = shift
        self.kappa = kappa
        self.max_iter = max_iter
        self.seed = 0
        self.early_stop_tau = None
        self.targeted = False
        self.calls = []

    def attack_tensor(
        self,
        model,
        x,
        y,
        *,
        clip_values=(0, 1),
        y_true=None,
        record=False,
        final_eval=True,
        seed=None,
    ):
        self.calls.append(
            dict(
                seed=self.seed if seed is None else seed,
                tau=self.early_stop_tau,
                targeted=self.targeted,
                y=y.clone(),
                y_true=None if y_true is None else y_true.clone(),
            )
        )
        n = x.shape[0]
        k = torch.zeros(n, dtype=torch.long) if self.kappa is None else self.kappa(x)
        return SimpleNamespace(x_adv=(x + self.shift).detach(), kappa=k, n_forward=0, n_backward=0)


def toy_model(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 3))


def toy_classifier(model=None, lr: float = 0.05):
    from art_spatial.models import make_classifier

    model = toy_model() if model is None else model
    return make_classifier(model, input_shape=(1, 2, 2), nb_classes=3, clip_values=None, lr=lr)


def toy_data(n: int, seed: int = 0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 1, 2, 2)).astype(np.float32)
    y = (np.arange(n) % 3).astype(np.int64)
    return x, y
