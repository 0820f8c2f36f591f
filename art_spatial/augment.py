"""Training-time data augmentation: the standard CIFAR-10 random crop (zero padding) and horizontal flip.

The CIFAR-10 recipes of the papers this package implements (Pareto Adversarial Robustness,
arXiv:2111.01996, Appendix E; CuSP, arXiv:2002.11318; FAT, arXiv:2002.11242; GAIRAT, arXiv:2010.01736)
train on images padded by 4 pixels, randomly cropped back to 32 × 32 and flipped left-right with
probability 1/2 — torchvision's ``RandomCrop(32, padding=4)`` + ``RandomHorizontalFlip()``. Here the
augmentation runs on a batch tensor with its randomness given as a per-example draw, so the trainers
can draw it for the whole global batch from their ``(seed, epoch, batch)`` generator: a run is
reproducible, resumes identically and gives every example the same crop on any number of ranks.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from .attacks.base import check_bool, check_int

__all__ = ["CropFlip", "AUGMENTATIONS", "get_augmentation"]


class CropFlip:
    """Random crop after zero padding, and a random horizontal flip, of a batch ``N x C x H x W``.

    ``draws`` (``N x 3``, uniform in ``[0, 1)``) fix the randomness of each example: the crop offsets
    ``floor(u · (2·padding + 1))`` in x and y (``padding`` = no shift) and the flip (``u ≥ 0.5``). The
    output has the input's shape, dtype and device; pixels shifted in from outside are 0. The input is
    not modified.

    Example:
        >>> import torch
        >>> x = torch.arange(16.0).reshape(1, 1, 4, 4)
        >>> aug = CropFlip(padding=1)
        >>> torch.equal(aug(x, torch.tensor([[0.5, 0.5, 0.0]])), x)  # centre crop, no flip
        True
        >>> aug(x, torch.tensor([[0.0, 0.5, 0.0]]))[0, 0, 0].tolist()  # content shifted right by 1 px
        [0.0, 0.0, 1.0, 2.0]
        >>> aug(x, torch.tensor([[0.5, 0.5, 0.9]]))[0, 0, 0].tolist()  # flipped
        [3.0, 2.0, 1.0, 0.0]
    """

    #: columns of ``draws`` the augmentation reads
    n_draws = 3

    def __init__(self, padding: int = 4, flip: bool = True):
        check_int("padding", padding, minimum=0)
        check_bool("flip", flip)
        self.padding, self.flip = int(padding), bool(flip)

    def __call__(self, x: torch.Tensor, draws: torch.Tensor) -> torch.Tensor:
        if x.dim() != 4:
            raise ValueError(f"x must be a batch N x C x H x W, got shape {tuple(x.shape)}")
        if draws.shape != (x.shape[0], self.n_draws):
            raise ValueError(
                f"draws must have shape ({x.shape[0]}, {self.n_draws}), got {tuple(draws.shape)}"
            )
        n, _, h, w = x.shape
        p = self.padding
        draws = draws.to(x.device)
        out = x
        if p > 0:
            padded = F.pad(x, (p, p, p, p))
            off = torch.clamp((draws[:, :2] * (2 * p + 1)).floor().long(), 0, 2 * p)
            rows = off[:, 1, None] + torch.arange(h, device=x.device)  # N x H
            cols = off[:, 0, None] + torch.arange(w, device=x.device)  # N x W
            idx = torch.arange(n, device=x.device)[:, None, None]
            out = padded.permute(0, 2, 3, 1)[idx, rows[:, :, None], cols[:, None, :]].permute(
                0, 3, 1, 2
            )
        if self.flip:
            flip = (draws[:, 2] >= 0.5)[:, None, None, None]
            out = torch.where(flip, out.flip(-1), out)
        return out.contiguous()

    def __repr__(self) -> str:
        return f"CropFlip(padding={self.padding}, flip={self.flip})"


#: named augmentations of the training recipes and the CLI (``None`` = train on the arrays as they are)
AUGMENTATIONS = {"crop-flip": lambda: CropFlip(padding=4, flip=True)}


def get_augmentation(name: str | None):
    """The augmentation called ``name`` (``None`` or ``"none"``: None).

    >>> get_augmentation("crop-flip")
    CropFlip(padding=4, flip=True)
    """
    if name is None or name == "none":
        return None
    if name not in AUGMENTATIONS:
        raise ValueError(f"augment must be one of {['none', *AUGMENTATIONS]}, got {name!r}")
    return AUGMENTATIONS[name]()
