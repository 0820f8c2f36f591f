"""Training-time augmentation (art_spatial.augment.CropFlip) and its use by the trainers and recipes."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from art_spatial import trainers as T
from art_spatial.augment import CropFlip, get_augmentation
from art_spatial.models import make_classifier
from art_spatial.recipes import get_recipe


def test_crop_flip_hand_computed():
    x = torch.arange(2 * 1 * 3 * 3, dtype=torch.float32).reshape(2, 1, 3, 3)
    aug = CropFlip(padding=1)
    # example 0: offsets (x 0, y 2) -> content moves right by 1 and up by 1; example 1: centre, flipped
    draws = torch.tensor([[0.0, 0.9, 0.1], [0.5, 0.5, 0.7]])
    out = aug(x, draws)
    assert out[0, 0].tolist() == [[0.0, 3.0, 4.0], [0.0, 6.0, 7.0], [0.0, 0.0, 0.0]]
    assert out[1, 0].tolist() == [[11.0, 10.0, 9.0], [14.0, 13.0, 12.0], [17.0, 16.0, 15.0]]
    assert x[0, 0, 0].tolist() == [0.0, 1.0, 2.0]  # input untouched
    assert torch.equal(CropFlip(padding=0, flip=False)(x, draws), x)


def test_crop_flip_statistics_and_errors():
    x = torch.rand(4000, 1, 8, 8)
    draws = torch.rand(4000, 3, generator=torch.Generator().manual_seed(0))
    out = CropFlip(padding=4)(x, draws)
    assert out.shape == x.shape and out.dtype == x.dtype
    assert out.min() >= 0 and out.max() <= x.max()
    flipped = (draws[:, 2] >= 0.5).float().mean()
    assert 0.45 < flipped < 0.55
    with pytest.raises(ValueError, match="draws"):
        CropFlip()(x[:2], draws[:3])
    with pytest.raises(ValueError, match="padding"):
        CropFlip(padding=-1)
    with pytest.raises(ValueError, match="augment"):
        get_augmentation("mixup")
    assert get_augmentation("none") is None and get_augmentation(None) is None


def _toy():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 3))
    return make_classifier(model, input_shape=(1, 8, 8), nb_classes=3)


def test_trainer_augment_is_seeded_resumable_and_changes_training(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.random((48, 1, 8, 8)).astype(np.float32)
    y = rng.integers(0, 3, 48)
    x_before = x.copy()

    def run(augment, seed=0, ckpt=None, epochs=2, resume=False):
        clf = _toy()
        t = T.NaturalTrainer(
            clf, seed=seed, verbose=False, augment=augment, checkpoint_dir=ckpt, resume=resume
        )
        t.fit(x, y, nb_epochs=epochs, batch_size=16)
        return {k: v.clone() for k, v in clf.model.state_dict().items()}

    a, b = run(CropFlip(padding=2)), run(CropFlip(padding=2))
    plain = run(None)
    assert all(torch.equal(a[k], b[k]) for k in a)  # reproducible under the seed
    assert not all(torch.equal(a[k], plain[k]) for k in a)  # the batches were augmented
    assert not all(torch.equal(a[k], run(CropFlip(padding=2), seed=1)[k]) for k in a)
    assert np.array_equal(x, x_before)
    # resume: one epoch, then the second from the checkpoint, equals two epochs in one go
    run(CropFlip(padding=2), ckpt=tmp_path, epochs=1)
    resumed = run(CropFlip(padding=2), ckpt=tmp_path, epochs=2, resume=True)
    assert all(torch.equal(a[k], resumed[k]) for k in a)
    with pytest.raises(ValueError, match="augment"):
        T.NaturalTrainer(_toy(), augment="crop-flip")


def test_recipes_augment_cifar10_and_not_mnist():
    assert get_recipe("pareto-cifar10").augment == "crop-flip"
    assert all(
        get_recipe(n).augment == "crop-flip"
        for n in ("joint-cifar10", "cusp-cifar10", "fat-cifar10", "gairat-cifar10")
    )
    assert get_recipe("pareto-mnist").augment is None
    assert get_recipe("pareto-cifar10", augment="none").augment == "none"
    with pytest.raises(ValueError, match="augment"):
        get_recipe("pareto-cifar10", augment="mixup")
    r = get_recipe("pareto-cifar10")
    assert type(r).from_dict(copy.deepcopy(r.to_dict())) == r
