"""Attacks leave the model exactly as they found it: every submodule's train/eval mode and every
parameter's ``requires_grad`` (a BatchNorm frozen in eval mode inside a model in train mode, a frozen
parameter) after ART ``generate``, the AdverTorch façade's ``perturb``, the trainers' ``run_attack``
and the harness's ``evaluate``."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import art_spatial.attacks.advertorch as adv
from art_spatial.attacks import IntegratedSpatialAttack, PixelAttack, model_eval
from art_spatial.models import make_classifier
from art_spatial.trainers import PGDAdversarialTrainer
from art_spatial.trainers.base import BatchContext


class _PartlyFrozen(torch.nn.Module):
    """Top module in train mode, its BatchNorm frozen in eval mode, the first conv's weight frozen."""

    input_shape = (1, 28, 28)

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = torch.nn.Conv2d(1, 4, 3, stride=2)
        self.bn = torch.nn.BatchNorm2d(4)
        self.head = torch.nn.Sequential(
            torch.nn.ReLU(), torch.nn.Flatten(), torch.nn.Linear(4 * 13 * 13, 10)
        )
        self.modes_seen: list[bool] = []

    def forward(self, x):
        self.modes_seen.append(any(m.training for m in self.modules()))
        return self.head(self.bn(self.conv(x)))


def _frozen_model() -> _PartlyFrozen:
    model = _PartlyFrozen()
    model.train()
    model.bn.eval()
    model.conv.weight.requires_grad_(False)
    return model


def _state(model: torch.nn.Module):
    return (
        [(name, m.training) for name, m in model.named_modules()],
        [(name, p.requires_grad) for name, p in model.named_parameters()],
    )


@pytest.fixture()
def data():
    g = np.random.default_rng(0)
    return g.random((4, 1, 28, 28), dtype=np.float32), np.array([0, 1, 2, 3])


def test_model_eval_restores_every_submodule_and_flag_even_after_an_error():
    model = _frozen_model()
    before = _state(model)
    modes, flags = dict(before[0]), dict(before[1])
    assert modes[""] and modes["head"] and not modes["bn"]  # the mixed state the tests rely on
    assert not flags["conv.weight"] and flags["conv.bias"]
    with pytest.raises(RuntimeError, match="boom"), model_eval(model):
        assert not any(m.training for m in model.modules())
        assert not any(p.requires_grad for p in model.parameters())
        raise RuntimeError("boom")
    assert _state(model) == before


@pytest.mark.parametrize("attack", [PixelAttack, IntegratedSpatialAttack])
def test_art_generate_restores_modes_and_flags(attack, data):
    model = _frozen_model()
    before = _state(model)
    bn_stats = model.bn.running_mean.clone()
    attack(make_classifier(model), max_iter=2, verbose=False).generate(*data)
    assert model.modes_seen and not any(model.modes_seen)  # attacked in eval mode
    assert _state(model) == before
    assert torch.equal(model.bn.running_mean, bn_stats)


@pytest.mark.parametrize("attack", [adv.PixelAttack, adv.IntegratedSpatialAttack])
def test_advertorch_perturb_restores_modes_and_flags(attack, data):
    model = _frozen_model()
    before = _state(model)
    x, y = (torch.as_tensor(a) for a in data)
    attack(model, max_iter=2).perturb(x, y)
    assert model.modes_seen and not any(model.modes_seen)
    assert _state(model) == before


def test_trainer_run_attack_restores_modes_and_flags(data):
    model = _frozen_model()
    clf = make_classifier(model)
    trainer = PGDAdversarialTrainer(clf, PixelAttack(clf, max_iter=2, verbose=False), verbose=False)
    before = _state(model)
    x, y = (torch.as_tensor(a) for a in data)
    trainer.run_attack(trainer.attack, x, y, BatchContext(epoch=0, batch=0, seed=0))
    assert model.modes_seen and not any(model.modes_seen)
    assert _state(model) == before


def test_harness_evaluate_restores_modes_and_flags(data):
    from art_spatial.bench import evaluate

    model = _frozen_model()
    before = _state(model)
    evaluate(model, *data, "smoke-mnist", checks=False)
    assert _state(model) == before
