"""Tests of art_spatial.analysis (SmoothGrad, skewness, landscape, gallery) and ``art-spatial show``.

Tiny randomly initialised CNNs keep these fast (an untrained SmallCNN has all-zero logits, so its
gradients would be zero); real digits come from the embedded MNIST-5k.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats
import torch
import torch.nn.functional as F

from art_spatial.analysis.gallery import adversarial_gallery
from art_spatial.analysis.landscape import landscape_before_after, loss_landscape, plot_landscapes
from art_spatial.analysis.saliency import (
    normalize_saliency,
    pixel_skewness,
    saliency_figure,
    saliency_skewness,
    smoothgrad,
)


def tiny_cnn(seed: int = 0, size: int = 28) -> torch.nn.Module:
    torch.manual_seed(seed)
    model = torch.nn.Sequential(
        torch.nn.Conv2d(1, 4, 3, stride=2),
        torch.nn.Tanh(),
        torch.nn.Flatten(),
        torch.nn.Linear(4 * ((size - 3) // 2 + 1) ** 2, 10),
    )
    return model.eval()


@pytest.fixture(scope="module")
def digits(mnist_test):
    x, y = mnist_test
    return torch.as_tensor(x[:6]), torch.as_tensor(y[:6])


def plain_gradient(model, x, y):
    xg = x.clone().requires_grad_(True)
    model(xg).gather(1, y[:, None]).sum().backward()
    return xg.grad


# ------------------------------------------------------------------------------------- SmoothGrad
def test_smoothgrad_is_plain_gradient_without_noise(digits):
    model = tiny_cnn()
    x, y = digits
    x0 = x.clone()
    g = plain_gradient(model, x, y)
    assert g.abs().max() > 0
    assert torch.allclose(smoothgrad(model, x, y, n=1, sigma=0.0), g, atol=1e-6)
    # σ → 0: continuity of the (smooth) model's gradient
    assert torch.allclose(smoothgrad(model, x, y, n=1, sigma=1e-6), g, atol=1e-4)
    assert torch.equal(x, x0)  # input untouched


def test_smoothgrad_default_sigma_is_per_image_and_batch_independent():
    # logit_k = w_k · x², so ∂f_y/∂x = 2 w_y ⊙ x_noisy and S = 2 w_y ⊙ (x + σ · mean noise)
    torch.manual_seed(1)
    w = torch.randn(3, 1, 4, 4)

    def model(x):
        return torch.einsum("kchw,nchw->nk", w, x**2)

    x = torch.stack([torch.rand(1, 4, 4), 5 * torch.rand(1, 4, 4) - 2])
    y = torch.tensor([2, 0])
    n = 7
    s = smoothgrad(model, x, y, n=n, seed=3, batch_size=5)
    gen = torch.Generator().manual_seed(3)
    expected = []
    for i in range(2):
        noise = torch.randn((n, 1, 4, 4), generator=gen)
        sigma = 0.1 * (x[i].max() - x[i].min())
        expected.append((2 * w[y[i]] * (x[i] + sigma * noise)).mean(0))
    assert torch.allclose(s, torch.stack(expected), atol=1e-5)
    assert torch.equal(s, smoothgrad(model, x, y, n=n, seed=3, batch_size=64))
    assert not torch.equal(s, smoothgrad(model, x, y, n=n, seed=4))


def test_smoothgrad_through_art_classifier_equals_module(digits):
    from art_spatial.models import make_classifier

    model = tiny_cnn()
    x, y = digits
    clf = make_classifier(model, input_shape=(1, 28, 28))
    x, y = x[:2], y[:2]
    assert torch.allclose(smoothgrad(clf, x, y, n=3), smoothgrad(model, x, y, n=3), atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, name", [({"n": 0}, "n"), ({"sigma": -1.0}, "sigma"), ({"batch_size": 0}, "batch_size")]
)
def test_smoothgrad_rejects_bad_arguments(kwargs, name):
    model = tiny_cnn(size=8)
    with pytest.raises(ValueError, match=name):
        smoothgrad(model, torch.rand(1, 1, 8, 8), torch.tensor([0]), **kwargs)


# --------------------------------------------------------------------------------------- skewness
def test_pixel_skewness_matches_scipy():
    rng = np.random.default_rng(0)
    data = np.concatenate(
        [rng.standard_normal((3, 2, 5, 5)) ** 3, rng.exponential(size=(2, 2, 5, 5))]
    )
    ours = pixel_skewness(data)
    ref = scipy.stats.skew(data.reshape(5, -1), axis=1, bias=True)
    np.testing.assert_allclose(ours, ref, rtol=1e-12, atol=1e-12)
    assert np.isnan(pixel_skewness(np.full((1, 9), 0.5))[0])  # zero variance: nan, as scipy


def test_saliency_skewness_matches_scipy_on_the_maps(digits):
    a, b = tiny_cnn(0), tiny_cnn(1)
    x, y = digits
    med, per, (s_a, s_b) = saliency_skewness(a, b, x, y, n=4, return_maps=True)
    diff = (normalize_saliency(s_b) - normalize_saliency(s_a)).double().numpy().reshape(len(x), -1)
    ref = scipy.stats.skew(diff, axis=1)
    np.testing.assert_allclose(per, ref, rtol=1e-9)
    assert med == pytest.approx(float(np.median(ref)))
    # raw signed maps, no normalization
    _, per_raw, _ = saliency_skewness(
        a, b, x, y, n=4, absolute=False, normalize="none", return_maps=True
    )
    raw = (s_b - s_a).double().numpy().reshape(len(x), -1)
    np.testing.assert_allclose(per_raw, scipy.stats.skew(raw, axis=1), rtol=1e-9)
    # a model compared with itself: zero difference everywhere -> nan (scipy's convention)
    med_self, per_self = saliency_skewness(a, a, x, y, n=2)
    assert np.isnan(med_self) and np.all(np.isnan(per_self))


def test_saliency_skewness_sign_follows_sparsity():
    # model a looks at 2 pixels (sparse map), model b at all 16 (dense): S_b - S_a has a heavy lower
    # tail, negative skewness, as the paper's reading "negative = the first model is sparser".
    wa = torch.zeros(2, 16)
    wa[1, [3, 9]] = 1.0
    wb = torch.zeros(2, 16)
    wb[1] = torch.linspace(0.5, 1.0, 16)
    a = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2, bias=False))
    b = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 2, bias=False))
    a[1].weight.data, b[1].weight.data = wa, wb
    med, _ = saliency_skewness(a, b, torch.rand(3, 1, 4, 4), torch.tensor([1, 1, 1]), n=2)
    assert med < -1.0
    med_rev, _ = saliency_skewness(b, a, torch.rand(3, 1, 4, 4), torch.tensor([1, 1, 1]), n=2)
    assert med_rev > 1.0


def test_saliency_figure_writes_png(tmp_path, digits):
    import matplotlib.image

    x, y = digits
    path = saliency_figure(
        {"a": tiny_cnn(0), "b": tiny_cnn(1)}, x[:2], y[:2], tmp_path / "s.png", n=2
    )
    img = matplotlib.image.imread(path)
    assert img.ndim == 3 and img.shape[0] > 100 and img.shape[1] > 200


# -------------------------------------------------------------------------------------- landscape
def test_landscape_at_origin_is_the_clean_loss(digits):
    model = tiny_cnn()
    x, y = digits
    res = loss_landscape(model, x, y, steps=5, span=0.5)
    with torch.no_grad():
        clean = F.cross_entropy(model(x), y, reduction="none").double().numpy()
    assert res.alphas[2] == 0.0 and res.betas[2] == 0.0
    np.testing.assert_allclose(res.losses[:, 2, 2], clean, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(res.center_loss, clean, rtol=1e-5, atol=1e-6)
    assert res.losses.shape == (6, 5, 5)
    # away from the origin the warped images give different losses
    assert np.abs(res.losses - clean[:, None, None]).max() > 1e-3
    # at the origin both blocks are scaled to the budget corner (our documented choice)
    assert set(res.reference["flow"]) == {"budget"} and set(res.reference["affine"]) == {"budget"}
    d1 = res.directions[0]
    np.testing.assert_allclose(
        np.linalg.norm(d1["flow"].reshape(6, -1), axis=1), 0.3 * np.sqrt(2 * 28 * 28), rtol=1e-4
    )
    np.testing.assert_allclose(
        np.linalg.norm(d1["affine"].reshape(6, -1), axis=1), 0.3 * np.sqrt(6), rtol=1e-4
    )
    # reproducible under the seed
    np.testing.assert_array_equal(loss_landscape(model, x, y, steps=5, span=0.5).losses, res.losses)


def test_landscape_after_attack_is_centred_on_the_attack(digits):
    model = tiny_cnn()
    x, y = digits
    before, after, result = landscape_before_after(model, x, y, steps=3, max_iter=3)
    with torch.no_grad():
        adv_loss = F.cross_entropy(model(result.x_adv), y, reduction="none").double().numpy()
        clean = F.cross_entropy(model(x), y, reduction="none").double().numpy()
    np.testing.assert_allclose(after.center_loss, adv_loss, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(before.center_loss, clean, rtol=1e-5, atol=1e-6)
    assert after.center_loss.mean() > before.center_loss.mean()
    # filter normalization at w*: each block scaled to the norm of the same block of w*
    flow_norm = np.linalg.norm(result.params["flow"].reshape(len(x), -1).numpy(), axis=1)
    np.testing.assert_allclose(after.scale["flow"], flow_norm, rtol=1e-5)
    assert set(after.reference["flow"]) == {"point"}


def test_landscape_rejects_bad_arguments(digits):
    model = tiny_cnn()
    x, y = digits
    with pytest.raises(ValueError, match="steps"):
        loss_landscape(model, x, y, steps=1)
    with pytest.raises(ValueError, match="span"):
        loss_landscape(model, x, y, span=0)
    with pytest.raises(ValueError, match="center"):
        loss_landscape(model, x, y, center={"flow": torch.zeros(1, 2, 2, 2)})


def test_plot_landscapes_writes_png(tmp_path, digits):
    import matplotlib.image

    x, y = digits
    res = loss_landscape(tiny_cnn(), x[:2], y[:2], steps=3)
    path = plot_landscapes([("a", res), ("b", res)], tmp_path / "l.png")
    assert matplotlib.image.imread(path).shape[1] > 300


# ---------------------------------------------------------------------------------- gallery, show
def test_gallery_writes_png_and_reports(tmp_path, digits):
    import matplotlib.image

    x, y = digits
    path, summary = adversarial_gallery(tiny_cnn(), x[:2], y[:2], tmp_path / "g.png", max_iter=2)
    assert matplotlib.image.imread(path).shape[0] > 100
    assert {"flow", "affine", "integrated"} <= set(summary["attacks"])
    for name, info in summary["attacks"].items():
        assert len(info["correct"]) == 2
        if name != "joint":
            assert max(info["max_displacement_px"]) > 0  # the spatial attacks moved the grid


def test_show_cli_writes_png(tmp_path, capsys):
    import matplotlib.image

    from art_spatial.cli import main
    from art_spatial.models import SmallCNN

    torch.manual_seed(0)
    model = SmallCNN()
    with torch.no_grad():  # SmallCNN's last layer starts at zero: give it non-trivial logits
        for p in model.parameters():
            if p.ndim == 2 and p.abs().max() == 0:
                p.normal_(0, 0.1)
    weights = tmp_path / "m.pt"
    torch.save(model.state_dict(), weights)
    out = tmp_path / "show" / "gallery.png"
    assert (
        main(
            [
                "show",
                "--model",
                str(weights),
                "--n",
                "2",
                "--max-iter",
                "1",
                "--out",
                str(out),
                "-q",
            ]
        )
        == 0
    )
    assert matplotlib.image.imread(out).shape[0] > 100
    printed = capsys.readouterr().out
    assert "integrated" in printed and str(out) in printed
