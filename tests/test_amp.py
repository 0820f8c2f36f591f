"""GPU-ready code paths: device and dtype follow the model, mixed precision keeps the attack in float32.

Parametrised over device (cpu; cuda where a GPU exists — reported as skipped, i.e. not run, otherwise)
and autocast dtype (None = float32, bfloat16, float16).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

CUDA = pytest.mark.skipif(
    not torch.cuda.is_available(), reason="CUDA case: no GPU on this machine (not run)"
)
DEVICES = ["cpu", pytest.param("cuda", marks=CUDA)]
DTYPES = [None, "bfloat16", "float16"]


def _clf(device):
    from art_spatial.models import SmallCNN, make_classifier

    torch.manual_seed(0)
    return make_classifier(
        SmallCNN(), lr=0.05, optimizer="sgd", device_type="gpu" if device == "cuda" else "cpu"
    )


def _data(n=16):
    from art_spatial.data import load_mnist5k

    x, y = load_mnist5k("train", seed=0)
    return x[:n], y[:n]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("device", DEVICES)
def test_training_step_under_autocast(device, dtype):
    from art_spatial.attacks import FlowAttack, PixelAttack
    from art_spatial.trainers import ParetoAdversarialTrainer
    from art_spatial.trainers.base import BatchContext

    clf = _clf(device)
    atk = [
        PixelAttack(clf, eps=0.3, eps_step=0.1, max_iter=2, verbose=False),
        FlowAttack(clf, eps=0.3, eps_step=0.05, max_iter=2, verbose=False),
    ]
    t = ParetoAdversarialTrainer(clf, atk, r=0.5, r_mode="relative", verbose=False, amp_dtype=dtype)
    x, y = _data()
    x0 = x.copy()
    t.fit(x, y, batch_size=8, nb_epochs=1)
    assert np.array_equal(x, x0)  # input not modified
    h = t.history[0]
    assert np.isfinite(h["loss"]) and len(h["alpha"]) == 3
    # parameters stay float32 on the model's device
    for p in clf.model.parameters():
        assert p.dtype == torch.float32 and p.device.type == device
    # the attack runs on the model's device; its parameters and output are float32 and within budget
    xb = t._as_batch(x[:8])
    yb = torch.as_tensor(y[:8], device=xb.device)
    res = t.run_attack(atk[0], xb, yb, BatchContext(0, 0, 0))
    assert res.x_adv.dtype == torch.float32 and res.x_adv.device.type == device
    assert float((res.x_adv - xb).abs().max()) <= 0.3 + 1e-6
    logits = t.logits(xb)
    assert logits.dtype == torch.float32
    if dtype == "float16":
        assert t._scaler is None or isinstance(t._scaler, torch.amp.GradScaler)


@pytest.mark.parametrize("device", DEVICES)
def test_channels_last_gives_the_same_training(device):
    from art_spatial.attacks import PixelAttack
    from art_spatial.trainers import PGDAdversarialTrainer

    x, y = _data()
    hist = []
    for cl in (False, True):
        clf = _clf(device)
        t = PGDAdversarialTrainer(
            clf,
            PixelAttack(clf, eps=0.3, eps_step=0.1, max_iter=2, verbose=False),
            verbose=False,
            channels_last=cl,
        )
        t.fit(x, y, batch_size=8, nb_epochs=1)
        hist.append(t.history[0]["loss"])
        if cl:
            w = clf.model.features.conv1.weight
            assert w.is_contiguous(memory_format=torch.channels_last)
    assert hist[1] == pytest.approx(hist[0], rel=1e-4)


@pytest.mark.parametrize("device", DEVICES)
def test_bf16_attack_success_close_to_fp32(device, trained_smallcnn):
    import copy

    from art_spatial.amp import AutocastModule
    from art_spatial.attacks import PixelAttack
    from art_spatial.data import load_mnist5k
    from art_spatial.models import make_classifier

    x, y = load_mnist5k("test", seed=0)
    x, y = x[:64], y[:64]
    rates = {}
    for amp in (None, "bfloat16"):
        model = copy.deepcopy(trained_smallcnn).to(device)
        if amp:
            model = AutocastModule(model, amp)
        clf = make_classifier(
            model, input_shape=(1, 28, 28), device_type="gpu" if device == "cuda" else "cpu"
        )
        adv = PixelAttack(
            clf, eps=0.15, eps_step=0.03, max_iter=10, verbose=False, seed=0
        ).generate(x, y=y)
        assert adv.dtype == np.float32 and np.abs(adv - x).max() <= 0.15 + 1e-6
        with torch.no_grad():
            pred = (
                trained_smallcnn.to(device)(torch.as_tensor(adv, device=device))
                .argmax(1)
                .cpu()
                .numpy()
            )
        rates[amp] = float((pred != y).mean())
    # the measured gap is in benchmarks/results/ddp_amp.json; here: same attack, not a different one
    assert abs(rates["bfloat16"] - rates[None]) <= 0.1, rates


def test_bad_amp_and_channels_last_are_refused():
    from art_spatial.amp import AutocastModule
    from art_spatial.trainers import NaturalTrainer

    with pytest.raises(ValueError, match="amp_dtype"):
        NaturalTrainer(_clf("cpu"), amp_dtype="int8")
    with pytest.raises(ValueError, match="channels_last"):
        NaturalTrainer(_clf("cpu"), channels_last="yes")
    with pytest.raises(ValueError, match="dtype"):
        AutocastModule(torch.nn.Linear(2, 2), None)
