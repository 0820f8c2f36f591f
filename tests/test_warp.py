"""The coordinate convention of :mod:`art_spatial.warp`: identity, unit translations, rotation sign,
agreement with kornia, unit conversions, gradients."""

from __future__ import annotations

import math

import pytest
import torch
from kornia.geometry.transform import rotate, translate

from art_spatial import warp as W

pytestmark = pytest.mark.usefixtures("one_thread")


def _smooth(n=2, c=1, h=21, w=25, dtype=torch.float32):
    """Smooth test images (bilinear interpolation of them is accurate, so comparisons are tight)."""
    yy, xx = torch.meshgrid(
        torch.linspace(0, 1, h, dtype=dtype), torch.linspace(0, 1, w, dtype=dtype), indexing="ij"
    )
    imgs = []
    for i in range(n):
        imgs.append(torch.stack([torch.sin(3 * xx + 2 * yy + i + k) * 0.5 + 0.5 for k in range(c)]))
    return torch.stack(imgs)


def _marker(h, w, r, c):
    x = torch.zeros(1, 1, h, w)
    x[0, 0, r, c] = 1.0
    return x


# ------------------------------------------------------------------------------------------ identity
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("shape", [(2, 1, 28, 28), (3, 3, 32, 32), (1, 2, 7, 11), (64, 1, 28, 28)])
def test_zero_parameters_reproduce_input(shape, dtype):
    """Zero flow / zero increment / zero RT reproduce the input: <= 1e-6 in float64 at every size.

    float32: grid_sample's unnormalization ``((g + 1) / 2) (W - 1)`` is not exact when ``W - 1`` is not
    a power of two; measured max error 0 at 32 px, 1.0e-6 (N=2) and 1.4e-6
    (N=64) at 28 px, 1.6e-6 at N=256 — float32 rounding, far below 1/255.
    """
    torch.manual_seed(0)
    x = torch.rand(shape, dtype=dtype)
    n, _, h, w = shape
    zf, za = torch.zeros(n, h, w, 2, dtype=dtype), torch.zeros(n, 2, 3, dtype=dtype)
    z = torch.zeros(n, dtype=dtype)
    tol = 1e-6 if dtype == torch.float64 or (h, w) == (32, 32) else 3e-6
    for out in (
        W.warp(x),
        W.warp(x, flow=zf),
        W.warp(x, affine=za),
        W.warp(x, affine=za, flow=zf),
        W.warp(x, flow=zf, flow_units="pixels"),
        W.warp(x, affine=za, padding_mode="border"),
        W.warp_rt(x, z, z, z),
    ):
        assert out.shape == x.shape and out.dtype == dtype
        assert float((out - x).abs().max()) <= tol
    assert torch.equal(W.make_grid(shape)[0:1], W.identity_grid(h, w))
    grid = W.make_grid(shape, affine=W.affine_matrix(za), flow=zf)
    assert float(W.displacement_pixels(grid).max()) <= 1e-5


def test_identity_grid_align_corners():
    g = W.identity_grid(3, 5)
    assert g.shape == (1, 3, 5, 2)
    assert g[0, 0, :, 0].tolist() == [-1.0, -0.5, 0.0, 0.5, 1.0]  # x along columns, pixel centres
    assert g[0, :, 0, 1].tolist() == [-1.0, 0.0, 1.0]  # y along rows
    assert W.ALIGN_CORNERS is True


# ------------------------------------------------------------------------------- unit translations
H, WD, R, C = 9, 11, 4, 5


def _moved(out, dr, dc):
    expected = _marker(H, WD, R + dr, C + dc)
    return float((out - expected).abs().max())


@pytest.mark.parametrize("axis", ["x", "y"])
@pytest.mark.parametrize("sign", [1, -1])
def test_one_pixel_translation_flow_pixels_and_normalized(axis, sign):
    x = _marker(H, WD, R, C)
    flow_px = torch.zeros(1, H, WD, 2)
    k = 0 if axis == "x" else 1
    # backward map: output (u, v) reads input (u - dx, v - dy), so content moves by +1 px when the
    # flow is -1 px
    flow_px[..., k] = -float(sign)
    dr, dc = (0, sign) if axis == "x" else (sign, 0)
    assert _moved(W.warp(x, flow=flow_px, flow_units="pixels"), dr, dc) <= 1e-6
    flow_n = W.pixels_to_normalized(flow_px, H, WD)
    assert _moved(W.warp(x, flow=flow_n), dr, dc) <= 1e-6
    # the same shift as an affine increment (translation column) in normalized units
    inc = torch.zeros(1, 2, 3)
    inc[0, k, 2] = flow_n[0, 0, 0, k]
    assert _moved(W.warp(x, affine=inc), dr, dc) <= 1e-6
    # realised displacement is exactly one pixel everywhere
    grid = W.make_grid(x.shape, flow=flow_px, flow_units="pixels")
    assert torch.allclose(W.displacement_pixels(grid), torch.ones(1, H, WD), atol=1e-5)


@pytest.mark.parametrize("tx,ty", [(1.0, 0.0), (0.0, 1.0), (-1.0, 0.0), (0.0, -1.0), (2.0, -1.0)])
def test_one_pixel_translation_rt(tx, ty):
    x = _marker(H, WD, R, C)
    out = W.warp_rt(x, torch.tensor([0.0]), torch.tensor([tx]), torch.tensor([ty]))
    # tx > 0: content moves right (column + tx); ty > 0: content moves down (row + ty)
    assert _moved(out, int(ty), int(tx)) <= 1e-6
    rt = torch.tensor([[0.0, tx, ty]])
    assert torch.allclose(W.affine_to_rt(W.rt_to_affine(rt, H, WD), H, WD), rt, atol=1e-5)


# ---------------------------------------------------------------------------------------- rotation
def test_rotation_direction_counter_clockwise_on_screen():
    h = w = 15
    c = 7
    x = _marker(h, w, c, c + 4)  # 4 px right of the centre
    out = W.warp_rt(x, torch.tensor([90.0]), torch.tensor([0.0]), torch.tensor([0.0]))
    r_max, c_max = divmod(int(out.flatten().argmax()), w)
    # counter-clockwise as displayed (rows grow downwards): right of centre -> above the centre
    assert (r_max, c_max) == (c - 4, c)
    assert float(out[0, 0, c - 4, c]) > 0.99


@pytest.mark.parametrize("angle", [-30.0, -7.5, 12.0, 30.0])
def test_rotation_matches_kornia_rotate(angle):
    x = _smooth(2, 3, 21, 25)
    a = torch.full((2,), angle)
    ours = W.warp_rt(x, a, torch.zeros(2), torch.zeros(2))
    ref = rotate(x, a, align_corners=True)
    inner = (slice(None), slice(None), slice(4, -4), slice(4, -4))
    assert float((ours - ref)[inner].abs().max()) <= 1e-5


@pytest.mark.parametrize("angle,tx,ty", [(20.0, 2.0, -1.0), (-15.0, -3.0, 2.0), (0.0, 1.0, 3.0)])
def test_rt_equals_translate_after_rotate(angle, tx, ty):
    """``warp_rt`` = kornia ``translate(rotate(x))`` (integer shifts: kornia's second resampling is exact)."""
    x = _smooth(1, 1, 21, 25)
    a, t = torch.tensor([angle]), torch.tensor([[tx, ty]])
    ours = W.warp_rt(x, a, t[:, 0], t[:, 1])
    ref = translate(rotate(x, a, align_corners=True), t, align_corners=True)
    inner = (slice(None), slice(None), slice(6, -6), slice(6, -6))
    assert float((ours - ref)[inner].abs().max()) <= 1e-5
    # and the opposite composition order is a different map (the test can tell them apart)
    other = rotate(translate(x, t, align_corners=True), a, align_corners=True)
    if angle != 0.0:
        assert float((ours - other)[inner].abs().max()) > 1e-2


# ------------------------------------------------------------------------------ unit conversions
def test_pixel_normalized_conversions():
    h, w = 28, 32
    flow = torch.randn(2, h, w, 2, dtype=torch.float64)
    n = W.pixels_to_normalized(flow, h, w)
    assert torch.allclose(n[..., 0], flow[..., 0] * 2 / (w - 1))
    assert torch.allclose(n[..., 1], flow[..., 1] * 2 / (h - 1))
    assert torch.allclose(W.normalized_to_pixels(n, h, w), flow)
    assert W.pixel_scale(h, w).tolist() == pytest.approx([2 / 31, 2 / 27])
    with pytest.raises(ValueError, match="2x2"):
        W.pixel_scale(1, 5)


@pytest.mark.parametrize("h,w", [(28, 28), (32, 32), (17, 40)])
def test_affine_to_rt_inverts_rt_to_affine(h, w):
    g = torch.Generator().manual_seed(h * w)
    rt = torch.stack(
        [
            torch.empty(16).uniform_(-170, 170, generator=g),
            torch.empty(16).uniform_(-5, 5, generator=g),
            torch.empty(16).uniform_(-5, 5, generator=g),
        ],
        dim=1,
    ).double()
    A = W.rt_to_affine(rt, h, w)
    assert A.shape == (16, 2, 3)
    assert torch.allclose(W.affine_to_rt(A, h, w), rt, atol=1e-9)
    assert torch.allclose(W.rt_to_affine(torch.zeros(1, 3), h, w), torch.eye(2, 3)[None])


def test_rt_affine_moves_marker_as_affine_to_rt_says():
    """A general small affine increment: the image centre moves by the reported translation."""
    h = w = 21
    inc = torch.tensor([[[0.05, -0.02, 0.2], [0.03, -0.04, -0.1]]])
    rt = W.affine_to_rt(W.affine_matrix(inc), h, w)
    x = _marker(h, w, 10, 10)
    out = W.warp(x, affine=inc)
    yy, xx = torch.meshgrid(torch.arange(h).float(), torch.arange(w).float(), indexing="ij")
    m = out[0, 0] / out[0, 0].sum()
    centre = torch.stack([(m * xx).sum() - 10, (m * yy).sum() - 10])
    assert torch.allclose(centre, rt[0, 1:], atol=0.15)


# ------------------------------------------------------------------------------------- gradients
def test_gradcheck_flow_and_affine_float64():
    g = torch.Generator().manual_seed(0)
    x = torch.rand(2, 2, 5, 6, generator=g, dtype=torch.float64)
    flow = (0.1 * torch.randn(2, 5, 6, 2, generator=g, dtype=torch.float64)).requires_grad_()
    aff = (0.05 * torch.randn(2, 2, 3, generator=g, dtype=torch.float64)).requires_grad_()
    xg = x.clone().requires_grad_()
    assert torch.autograd.gradcheck(
        lambda f, a, im: W.warp(im, affine=a, flow=f), (flow, aff, xg), eps=1e-6, atol=1e-5
    )
    flow_px = (0.4 * torch.randn(2, 5, 6, 2, generator=g, dtype=torch.float64)).requires_grad_()
    assert torch.autograd.gradcheck(
        lambda f: W.warp(x, flow=f, flow_units="pixels", padding_mode="border"),
        (flow_px,),
        eps=1e-6,
        atol=1e-5,
    )
    rt = torch.tensor(
        [[7.0, 0.3, -0.2], [-11.0, -0.45, 0.15]], dtype=torch.float64, requires_grad=True
    )
    assert torch.autograd.gradcheck(
        lambda p: W.warp(x, affine=W.rt_to_affine(p, 5, 6), affine_is_increment=False),
        (rt,),
        eps=1e-6,
        atol=1e-5,
    )


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_grid_and_its_gradient_do_not_depend_on_the_batch_size(dtype):
    """Each example's grid, warped image and gradients (affine matrix, rotation-translation) are the
    same floats in a batch of 1, 5, 24 or 128 (``torch.equal``; the batched einsum was not)."""
    g = torch.Generator().manual_seed(0)
    n, h, w = 128, 28, 28
    x = torch.rand(n, 1, h, w, generator=g, dtype=dtype)
    aff = 0.3 * (torch.rand(n, 2, 3, generator=g, dtype=dtype) * 2 - 1)
    rt = (torch.rand(n, 3, generator=g, dtype=dtype) * 2 - 1) * torch.tensor(
        [30.0, 3.0, 3.0], dtype=dtype
    )
    flow = 0.1 * torch.randn(n, h, w, 2, generator=g, dtype=dtype)
    weight = torch.rand(n, 1, h, w, generator=g, dtype=dtype)

    def run(sl):
        a, r = aff[sl].clone().requires_grad_(), rt[sl].clone().requires_grad_()
        grid = W.make_grid(x[sl].shape, affine=W.affine_matrix(a), flow=flow[sl])
        grid_rt = W.make_grid(x[sl].shape, affine=W.rt_to_affine(r, h, w))
        out = W.sample(x[sl], grid) + W.sample(x[sl], grid_rt)
        (out * weight[sl]).sum().backward()
        return grid.detach(), grid_rt.detach(), out.detach(), a.grad, r.grad

    full = run(slice(0, n))
    for bs in (1, 5, 24):
        parts = [run(slice(s, s + bs)) for s in range(0, n, bs)]
        for i, ref in enumerate(full):
            assert torch.equal(torch.cat([p[i] for p in parts]), ref), (bs, i)


# ------------------------------------------------------------------------------------ validation
def test_bad_shapes_and_options_raise():
    x = torch.rand(2, 1, 6, 6)
    with pytest.raises(ValueError, match="flow"):
        W.warp(x, flow=torch.zeros(2, 5, 6, 2))
    with pytest.raises(ValueError, match="affine"):
        W.warp(x, affine=torch.zeros(2, 3, 3))
    with pytest.raises(ValueError, match="affine"):
        W.make_grid(x.shape, affine=torch.zeros(1, 2, 3))
    with pytest.raises(ValueError, match="flow_units"):
        W.warp(x, flow=torch.zeros(2, 6, 6, 2), flow_units="cm")
    with pytest.raises(ValueError, match="padding_mode"):
        W.warp(x, padding_mode="wrap")
    with pytest.raises(ValueError, match="rotation-translation"):
        W.rt_to_affine(torch.zeros(2, 2), 6, 6)


def test_padding_modes_fill():
    x = torch.ones(1, 1, 5, 5)
    flow = torch.zeros(1, 5, 5, 2)
    flow[..., 0] = -1.0  # content moves one pixel right: the first column is read from outside
    zeros = W.warp(x, flow=flow, flow_units="pixels", padding_mode="zeros")
    border = W.warp(x, flow=flow, flow_units="pixels", padding_mode="border")
    assert float(zeros[0, 0, :, 0].abs().max()) <= 1e-6
    assert torch.allclose(zeros[0, 0, :, 1:], x[0, 0, :, 1:])
    assert torch.allclose(border, x)
    grid = W.make_grid(x.shape, flow=flow, flow_units="pixels")
    assert math.isclose(float(W.displacement_pixels(grid).mean()), 1.0, rel_tol=1e-6)
