"""Threat models: random start inside the budget, step geometry, projection, sizes, validation."""

from __future__ import annotations

import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from art_spatial.threats import PARAM_SHAPES, L2InfFlowBall, LinfBox

pytestmark = pytest.mark.usefixtures("one_thread")


def _blocks(eps, step):
    return [
        LinfBox("pixel", eps, step, "pixel"),
        LinfBox("flow", eps, step, "flow"),
        LinfBox("affine", eps, step, "affine"),
        LinfBox("rt", (30 * eps, 3 * eps, 3 * eps), (3 * step, 0.3 * step, 0.3 * step), "rt"),
        L2InfFlowBall("flow", eps, step),
    ]


def test_param_shapes():
    assert PARAM_SHAPES["pixel"](3, 5, 7) == (3, 5, 7)
    assert PARAM_SHAPES["flow"](3, 5, 7) == (5, 7, 2)
    assert PARAM_SHAPES["affine"](3, 5, 7) == (2, 3)
    assert PARAM_SHAPES["rt"](3, 5, 7) == (3,)
    box = LinfBox("flow", 0.3, 0.01, "flow")
    assert (
        box.zeros(4, 1, 6, 8).shape == (4, 6, 8, 2)
        and float(box.zeros(4, 1, 6, 8).abs().max()) == 0.0
    )


@settings(max_examples=25, deadline=None)
@given(
    eps=st.floats(0.0, 2.0),
    step=st.floats(1e-3, 1.0),
    n=st.integers(1, 3),
    h=st.integers(2, 6),
    w=st.integers(2, 6),
    seed=st.integers(0, 2**16),
)
def test_projection_idempotent_and_inside(eps, step, n, h, w, seed):
    g = torch.Generator().manual_seed(seed)
    for tm in _blocks(eps, step):
        p = 3.0 * torch.randn((n,) + tm.param_shape(2, h, w), generator=g)
        q = tm.project(p)
        # idempotent up to float32 rounding of the radial rescale (|p| = eps (1 + 1e-7) is rescaled again)
        assert torch.allclose(tm.project(q), q, atol=1e-6 * max(1.0, eps), rtol=0)
        assert bool(tm.within(q).all())
        # points already inside are left alone
        inside = tm.project(0.5 * q)
        assert torch.allclose(tm.project(inside), inside, atol=1e-7)
        # random start inside the budget
        u = torch.rand((n,) + tm.param_shape(2, h, w), generator=g)
        assert bool(tm.within(tm.from_uniform(u)).all())


def test_linf_projection_is_clipping():
    box = LinfBox("rt", (30.0, 3.0, 3.0), (3.0, 0.3, 0.3), "rt")
    p = torch.tensor([[45.0, -4.0, 1.0], [-31.0, 2.5, -3.5]])
    assert box.project(p).tolist() == [[30.0, -3.0, 1.0], [-30.0, 2.5, -3.0]]
    assert box.size(box.project(p)).tolist() == [30.0, 30.0]  # L∞ over raw coordinates
    assert box.within(p).tolist() == [False, False]


def test_linf_sign_step_sizes():
    box = LinfBox("flow", 0.3, 0.01, "flow")
    p = torch.zeros(2, 3, 4, 2)
    grad = torch.randn(2, 3, 4, 2)
    grad[0, 0, 0, 0] = 0.0
    up = box.step(p, grad, ascend=True)
    down = box.step(p, grad, ascend=False)
    assert torch.allclose(up, 0.01 * grad.sign()) and torch.allclose(down, -up)
    assert float(up[0, 0, 0, 0]) == 0.0  # no gradient, no move
    # per-coordinate steps of the rotation-translation box: degrees and pixels
    rt = LinfBox("rt", (30.0, 3.0, 3.0), (3.0, 0.3, 0.3), "rt")
    step = rt.step(torch.zeros(1, 3), torch.tensor([[-2.0, 5.0, -1e-9]]))
    assert torch.allclose(step, torch.tensor([[-3.0, 0.3, -0.3]]))


def test_l2inf_generalized_sign_has_unit_length_per_pixel():
    ball = L2InfFlowBall("flow", eps=0.5, eps_step=0.1)
    g = torch.randn(3, 5, 6, 2, dtype=torch.float64)
    g[0, 0, 0] = 0.0
    g[1, 2, 3] = torch.tensor([1e-30, -1e-30])  # tiny but non-zero: still a unit direction
    p = torch.zeros_like(g)
    d = ball.step(p, g) - p
    lengths = d.norm(dim=-1)
    nonzero = g.norm(dim=-1) > 0
    assert torch.allclose(lengths[nonzero], torch.full_like(lengths[nonzero], 0.1), atol=1e-12)
    assert float(lengths[0, 0, 0]) == 0.0
    # direction: parallel to the gradient (cosine 1)
    cos = (d * g).sum(-1)[nonzero] / (lengths[nonzero] * g.norm(dim=-1)[nonzero])
    assert torch.allclose(cos, torch.ones_like(cos), atol=1e-9)
    assert torch.allclose(ball.step(p, g, ascend=False), -d)


def test_l2inf_projection_is_radial():
    ball = L2InfFlowBall("flow", eps=1.0, eps_step=0.1)
    p = torch.tensor([[[[3.0, 4.0], [0.3, -0.4]]]])  # lengths 5 and 0.5
    q = ball.project(p)
    assert torch.allclose(q[0, 0, 0], torch.tensor([0.6, 0.8]))  # rescaled onto the circle
    assert torch.equal(q[0, 0, 1], p[0, 0, 1])  # inside: unchanged
    assert ball.size(q).tolist() == pytest.approx([1.0])
    assert ball.within(p).tolist() == [False] and ball.within(q).tolist() == [True]


def test_random_start_fills_the_budget():
    """Starts are inside the ball and not degenerate (they reach near the boundary, both signs)."""
    g = torch.Generator().manual_seed(0)
    ball = L2InfFlowBall("flow", eps=0.7, eps_step=0.1)
    u = torch.rand(4, 16, 16, 2, generator=g)
    s = ball.from_uniform(u)
    r = s.norm(dim=-1)
    assert float(r.max()) <= 0.7 + 1e-6 and float(r.max()) > 0.65
    # uniform in the disc: P(r <= eps/2) = 1/4
    assert abs(float((r <= 0.35).float().mean()) - 0.25) < 0.05
    assert float(s[..., 0].min()) < -0.5 and float(s[..., 1].max()) > 0.5
    box = LinfBox("affine", 0.3, 0.1, "affine")
    b = box.from_uniform(torch.rand(500, 2, 3, generator=g))
    assert float(b.abs().max()) <= 0.3 and float(b.abs().max()) > 0.29
    assert abs(float(b.mean())) < 0.02
    assert torch.equal(box.from_uniform(torch.full((1, 2, 3), 0.5)), torch.zeros(1, 2, 3))


@pytest.mark.parametrize(
    "make,needle",
    [
        (lambda: LinfBox("flow", -0.1, 0.01, "flow"), "flow eps"),
        (lambda: LinfBox("flow", 0.1, -0.01, "flow"), "flow eps_step"),
        (lambda: LinfBox("rt", (30.0, math.inf, 3.0), 1.0, "rt"), "rt eps"),
        (lambda: LinfBox("flow", 0.1, 0.01, "voxel"), "shape"),
        (lambda: L2InfFlowBall("flow", -1.0, 0.1), "flow eps"),
        (lambda: L2InfFlowBall("flow", 1.0, math.nan), "flow eps_step"),
    ],
)
def test_invalid_threat_parameters(make, needle):
    with pytest.raises(ValueError, match=needle):
        make()
