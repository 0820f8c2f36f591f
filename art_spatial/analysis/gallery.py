"""Gallery of clean and adversarial examples with predictions and realised displacements (Fig. 1).

Paper: Pareto Adversarial Robustness (journal), Figure 1 / Appendix A (flow, RT and integrated spatial
adversarial examples); Joint AT (joint spatial + pixel examples).

:func:`adversarial_gallery` attacks a batch with each attack's tensor API
(``attack.attack_tensor(model, x, y)``) and writes one PNG: one row per example, one column per attack
(first column clean). Each panel is labelled with the predicted class (✓ correct / ✗ wrong) and the
realised perturbation: maximum grid displacement in pixels, the rotation / translation implied by the
affine part, and the pixel ℓ∞ change of the joint attack.

:func:`default_gallery_attacks` builds the Pareto paper's MNIST attacks (Appendix E: flow ε_F = 0.3,
step 0.01; affine ε_RT = 0.3, step 0.1; integrated = both) and, if
:mod:`art_spatial.attacks.joint` can be imported, the joint spatial + pixel attack at an MNIST scale
(ℓ2,∞ flow of 0.3 px as the Joint AT paper, pixel ε = 0.1, step 0.02); otherwise the joint column is
left out and a warning is logged.

Example:
    >>> import torch, tempfile, os
    >>> from art_spatial.models import SmallCNN
    >>> out = os.path.join(tempfile.mkdtemp(), "g.png")
    >>> path, summary = adversarial_gallery(SmallCNN(), torch.rand(2, 1, 28, 28), torch.tensor([1, 2]),
    ...                                     out, max_iter=1)
    >>> os.path.exists(path), "integrated" in summary["attacks"]
    (True, True)
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from ..attacks.base import model_eval
from ._common import check_xy, classifier_for
from ._figures import class_label, hide_ticks, pyplot, save_figure, show_image

logger = logging.getLogger(__name__)

__all__ = ["default_gallery_attacks", "adversarial_gallery", "load_or_train_smallcnn"]


def default_gallery_attacks(
    classifier, max_iter: int = 20, seed: int = 0, include_joint: bool = True
) -> dict:
    """The gallery's attacks around an ART classifier: flow, affine, integrated (+ joint if importable).

    Args:
        classifier: ART ``PyTorchClassifier``.
        max_iter: iterations of every attack.
        seed: attack seed.
        include_joint: try to add the joint spatial + pixel attack.

    Returns:
        Ordered dict column title -> attack object (with ``attack_tensor``).
    """
    from ..attacks import AffineAttack, FlowAttack, IntegratedSpatialAttack

    common = dict(max_iter=max_iter, seed=seed, verbose=False)
    attacks = {
        "flow": FlowAttack(classifier, eps=0.3, eps_step=0.01, **common),
        "affine": AffineAttack(classifier, eps=0.3, eps_step=0.1, **common),
        "integrated": IntegratedSpatialAttack(
            classifier,
            eps_flow=0.3,
            eps_affine=0.3,
            eps_step_flow=0.01,
            eps_step_affine=0.1,
            **common,
        ),
    }
    if include_joint:
        try:
            from ..attacks.joint import JointSpatialPixelAttack

            attacks["joint"] = JointSpatialPixelAttack(
                classifier, spatial="flow", eps_pixel=0.1, eps_step_pixel=0.02, **common
            )
        except (ImportError, AttributeError, TypeError, ValueError) as err:
            logger.warning(
                "joint spatial+pixel attack unavailable, gallery shows the others (%s)", err
            )
    return attacks


def adversarial_gallery(
    model,
    x,
    y,
    path,
    attacks: Mapping[str, object] | None = None,
    *,
    max_iter: int = 20,
    seed: int = 0,
    clip_values=(0.0, 1.0),
    class_names: Sequence[str] | None = None,
    dpi: int = 120,
):
    """Write a gallery PNG of clean and adversarial examples (Pareto AT Fig. 1); return (path, summary).

    Args:
        model: ``nn.Module`` mapping images in ``clip_values`` to logits.
        x, y: images ``N x C x H x W`` and labels ``N`` (tensors or arrays; not modified).
        path: output PNG path (parent folders created).
        attacks: ordered mapping column title -> attack with ``attack_tensor`` (default:
            :func:`default_gallery_attacks` around ``model``).
        max_iter, seed: used by the default attacks.
        clip_values: image range.
        class_names: optional class names.
        dpi: resolution.

    Returns:
        ``(path, summary)`` with ``summary = {"n": N, "clean_correct": [...], "attacks": {name:
        {"correct": [...], "accuracy", "max_displacement_px": [...], "rotation_deg": [...],
        "translation_px": [...], "pixel_linf": [...]}}}``.
    """
    x, y = check_xy(x, y)
    x = x.detach().float()
    if not isinstance(model, torch.nn.Module):
        raise ValueError(f"model must be an nn.Module, got {type(model).__name__}")
    if attacks is None:
        clf = classifier_for(model, x, clip_values)
        attacks = default_gallery_attacks(clf, max_iter=max_iter, seed=seed)
    if not attacks:
        raise ValueError("attacks must not be empty")
    columns, summary = _attack_columns(model, x, y, attacks, clip_values)
    fig = _draw_gallery(columns, y, clip_values, class_names)
    path = save_figure(fig, path, dpi)
    logger.info("gallery written to %s", path)
    return path, summary


def _predict(model: torch.nn.Module, x: torch.Tensor) -> torch.Tensor:
    """Predicted classes ``N`` of ``model`` in eval mode, without gradients."""
    with torch.no_grad(), model_eval(model):
        return model(x).argmax(1)


def _attack_columns(model, x, y, attacks: Mapping[str, object], clip_values):
    """Run every attack on ``(x, y)``: the gallery columns ``(title, images, predictions, result)``
    (the clean column first, its result ``None``) and the summary of :func:`adversarial_gallery`."""
    clean_pred = _predict(model, x)
    columns = [("clean", x, clean_pred, None)]
    summary = {"n": int(x.shape[0]), "clean_correct": (clean_pred == y).tolist(), "attacks": {}}
    for name, attack in attacks.items():
        res = attack.attack_tensor(model, x, y, clip_values=clip_values)
        pred = _predict(model, res.x_adv)
        columns.append((name, res.x_adv.detach(), pred, res))
        summary["attacks"][name] = {
            "correct": (pred == y).tolist(),
            "accuracy": float((pred == y).float().mean()),
            "max_displacement_px": res.max_displacement_px.tolist(),
            "rotation_deg": res.rotation_deg.tolist(),
            "translation_px": res.translation_px.tolist(),
            "pixel_linf": res.pixel_linf.tolist(),
        }
        logger.info(
            "gallery %s: accuracy %.2f on %d examples",
            name,
            summary["attacks"][name]["accuracy"],
            x.shape[0],
        )
    return columns, summary


def _draw_gallery(columns: list, y: torch.Tensor, clip_values, class_names):
    """The gallery figure: one row per example, one column per ``columns`` entry."""
    num, cols = y.shape[0], len(columns)
    fig, axes = pyplot().subplots(num, cols, figsize=(1.9 * cols, 2.05 * num + 0.4), squeeze=False)
    for j, (name, imgs, pred, res) in enumerate(columns):
        axes[0, j].set_title(name, fontsize=11, fontweight="bold")
        for i in range(num):
            ax = axes[i, j]
            show_image(ax, imgs[i].detach().cpu().permute(1, 2, 0).numpy(), *clip_values)
            ok = int(pred[i]) == int(y[i])
            lines = [f"pred {class_label(class_names, int(pred[i]))} {'✓' if ok else '✗'}"]
            if res is not None:
                lines += _perturbation_lines(res, i)
            ax.set_xlabel("\n".join(lines), fontsize=7.5, color="green" if ok else "red")
            hide_ticks(ax)
            if j == 0:
                ax.set_ylabel(f"y = {class_label(class_names, int(y[i]))}", fontsize=9)
    fig.suptitle(
        "Clean and spatial adversarial examples (prediction, realised displacement)", fontsize=10
    )
    return fig


def _perturbation_lines(res, i: int) -> list[str]:
    """Caption lines of example ``i``'s realised perturbation (only the parts that are non-zero)."""
    lines = []
    disp = float(res.max_displacement_px[i])
    if disp > 0:
        lines.append(f"max disp {disp:.2f}px")
    rot = float(res.rotation_deg[i])
    tx, ty = (float(v) for v in res.translation_px[i])
    if abs(rot) > 1e-3 or abs(tx) > 1e-3 or abs(ty) > 1e-3:
        lines.append(f"rot {rot:+.1f}° t({tx:+.1f},{ty:+.1f})")
    plinf = float(res.pixel_linf[i])
    if plinf > 0:
        lines.append(f"pixel ℓ∞ {plinf:.2f}")
    return lines


def load_or_train_smallcnn(model_path=None, epochs: int = 1, seed: int = 0, verbose: bool = False):
    """A SmallCNN from a ``state_dict`` file, or (``model_path=None``) trained naturally on MNIST-5k.

    Training uses :func:`art_spatial.models.train_natural` on the 4000 embedded training digits
    (``epochs`` passes, batch 64, Adam 1e-3, ``seed``); about 20 s per epoch on one CPU core.

    Returns:
        The model in eval mode.
    """
    from ..models import SmallCNN, train_natural

    torch.manual_seed(seed)
    model = SmallCNN()
    if model_path is not None:
        path = Path(model_path)
        if not path.is_file():
            raise ValueError(f"model must be an existing state_dict file, got {str(path)!r}")
        state = torch.load(path, map_location="cpu", weights_only=True)
        if isinstance(state, dict) and "state_dict" in state:
            state = state["state_dict"]
        model.load_state_dict(state)
    else:
        from ..data import load_mnist5k

        x, y = load_mnist5k("train", seed=seed)
        train_natural(
            model, x, y, epochs=epochs, batch_size=64, lr=1e-3, seed=seed, verbose=verbose
        )
    return model.eval()
