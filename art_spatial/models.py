"""Reference models, an ART classifier factory and natural (non-adversarial) training.

Convention:
    Models take float images ``N×C×H×W`` in ``[0, 1]`` and return logits ``N×num_classes``.
    Normalization (mean/std) is part of the model (:class:`Normalize` as a first layer) or of the
    ART estimator's ``preprocessing``; either way it is differentiable, so attacks see the gradient
    with respect to the ``[0, 1]`` input.

Models:
    * :class:`SmallCNN` — the MNIST CNN of TRADES (Zhang et al., "Theoretically Principled Trade-off
      between Robustness and Accuracy", ICML 2019), also used by Pareto AT (Sun, Li & Lin, "Pareto
      Adversarial Robustness: Balancing Spatial Robustness and Sensitivity-based Robustness").
    * :class:`PreActResNet18` — the pre-activation ResNet-18 (He et al., "Identity Mappings in Deep
      Residual Networks", ECCV 2016) with GroupNorm (Wu & He, "Group Normalization", ECCV 2018) in
      place of BatchNorm, the CIFAR-10 model of the Pareto AT paper.

Example:
    >>> import torch
    >>> model = build_model("smallcnn")
    >>> model(torch.zeros(2, 1, 28, 28)).shape
    torch.Size([2, 10])
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ._checks import check_int

__all__ = [
    "CIFAR10_MEAN",
    "CIFAR10_STD",
    "MODEL_REGISTRY",
    "Normalize",
    "PreActResNet18",
    "SmallCNN",
    "accuracy",
    "build_model",
    "make_classifier",
    "predict_logits",
    "train_natural",
]

logger = logging.getLogger(__name__)

#: Per-channel statistics of the CIFAR-10 training set (for :class:`Normalize`).
CIFAR10_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR10_STD = (0.2471, 0.2435, 0.2616)


class Normalize(nn.Module):
    """Differentiable per-channel normalization ``(x - mean) / std`` with mean/std as buffers.

    Put it first in a model so that the model takes ``[0, 1]`` images (RobustBench zoo models do
    the same). The buffers move with ``.to(device)`` and are saved in the ``state_dict``.

    Args:
        mean: per-channel means (length C) or a scalar.
        std: per-channel standard deviations (length C) or a scalar, all > 0.

    Raises:
        ValueError: ``std`` has a non-positive entry, or ``mean`` and ``std`` lengths differ.

    Example:
        >>> norm = Normalize(CIFAR10_MEAN, CIFAR10_STD)
        >>> model = nn.Sequential(norm, PreActResNet18())
        >>> model(torch.rand(1, 3, 32, 32)).shape
        torch.Size([1, 10])
    """

    def __init__(self, mean: float | Sequence[float], std: float | Sequence[float]) -> None:
        super().__init__()
        mean_t = torch.as_tensor(mean, dtype=torch.float32).flatten()
        std_t = torch.as_tensor(std, dtype=torch.float32).flatten()
        if mean_t.numel() != std_t.numel() and 1 not in (mean_t.numel(), std_t.numel()):
            raise ValueError(
                f"`mean` and `std` must have the same length, got {mean_t.numel()} and {std_t.numel()}"
            )
        if not bool(torch.all(std_t > 0)):
            raise ValueError(f"`std` must be positive, got {std_t.tolist()}")
        self.register_buffer("mean", mean_t.view(1, -1, 1, 1))
        self.register_buffer("std", std_t.view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``(x - mean) / std`` for ``x`` of shape ``N×C×H×W``."""
        return (x - self.mean.to(x.dtype)) / self.std.to(x.dtype)

    def extra_repr(self) -> str:
        """Show the statistics in ``repr(module)``."""
        return f"mean={self.mean.flatten().tolist()}, std={self.std.flatten().tolist()}"


class SmallCNN(nn.Module):
    """The MNIST CNN of TRADES (Zhang et al., ICML 2019), used by Pareto AT on MNIST.

    ``conv3×3(32) - ReLU - conv3×3(32) - ReLU - maxpool2 - conv3×3(64) - ReLU - conv3×3(64) - ReLU -
    maxpool2 - fc(200) - ReLU - [dropout] - fc(200) - ReLU - fc(num_classes)``. Initialization as in
    the TRADES code: Kaiming-normal convolutions, zero conv biases, zero last layer.

    Args:
        in_channels: image channels (1 for MNIST).
        num_classes: number of logits.
        input_size: square image side (28 for MNIST); fixes the size of the first dense layer.
        drop_rate: dropout after the first dense layer. TRADES used 0.5; the default 0 keeps training
            and attacks free of extra randomness.

    Raises:
        ValueError: a non-positive size, ``input_size`` too small (< 12), or ``drop_rate`` not in
            ``[0, 1)``.

    Example:
        >>> SmallCNN()(torch.zeros(3, 1, 28, 28)).shape
        torch.Size([3, 10])
    """

    def __init__(
        self,
        in_channels: int = 1,
        num_classes: int = 10,
        input_size: int = 28,
        drop_rate: float = 0.0,
    ) -> None:
        super().__init__()
        in_channels = check_int("in_channels", in_channels, minimum=1)
        num_classes = check_int("num_classes", num_classes, minimum=1)
        input_size = check_int("input_size", input_size, minimum=1)
        if input_size < 12:
            raise ValueError(f"`input_size` must be at least 12, got {input_size}")
        if not 0.0 <= float(drop_rate) < 1.0:
            raise ValueError(f"`drop_rate` must be in [0, 1), got {drop_rate!r}")
        side = ((input_size - 4) // 2 - 4) // 2
        self.input_shape = (in_channels, input_size, input_size)
        self.num_classes = num_classes
        self.features = nn.Sequential(
            OrderedDict(
                [
                    ("conv1", nn.Conv2d(in_channels, 32, 3)),
                    ("relu1", nn.ReLU()),
                    ("conv2", nn.Conv2d(32, 32, 3)),
                    ("relu2", nn.ReLU()),
                    ("pool1", nn.MaxPool2d(2, 2)),
                    ("conv3", nn.Conv2d(32, 64, 3)),
                    ("relu3", nn.ReLU()),
                    ("conv4", nn.Conv2d(64, 64, 3)),
                    ("relu4", nn.ReLU()),
                    ("pool2", nn.MaxPool2d(2, 2)),
                ]
            )
        )
        self.classifier = nn.Sequential(
            OrderedDict(
                [
                    ("fc1", nn.Linear(64 * side * side, 200)),
                    ("relu1", nn.ReLU()),
                    ("drop", nn.Dropout(float(drop_rate))),
                    ("fc2", nn.Linear(200, 200)),
                    ("relu2", nn.ReLU()),
                    ("fc3", nn.Linear(200, num_classes)),
                ]
            )
        )
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight)
                nn.init.zeros_(module.bias)
        nn.init.zeros_(self.classifier.fc3.weight)
        nn.init.zeros_(self.classifier.fc3.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``N×num_classes`` of images ``N×C×H×W``."""
        return self.classifier(torch.flatten(self.features(x), 1))


class PreActBlock(nn.Module):
    """Pre-activation basic block (He et al., ECCV 2016) with GroupNorm.

    ``out = conv(relu(gn(conv(relu(gn(x)))))) + shortcut``, the shortcut being a strided 1×1
    convolution of ``relu(gn(x))`` when the shape changes, else ``x``.

    Args:
        in_planes: input channels.
        planes: output channels.
        stride: stride of the first convolution.
        num_groups: GroupNorm groups (must divide ``in_planes`` and ``planes``).
    """

    expansion = 1

    def __init__(self, in_planes: int, planes: int, stride: int = 1, num_groups: int = 32) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(num_groups, in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.norm2 = nn.GroupNorm(num_groups, planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.shortcut: nn.Module | None = None
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Apply the block."""
        out = F.relu(self.norm1(x))
        shortcut = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.norm2(out)))
        return out + shortcut


class PreActResNet18(nn.Module):
    """Pre-activation ResNet-18 with GroupNorm — the CIFAR-10 model of Pareto AT (Sun et al.).

    Architecture of He et al. (ECCV 2016) for 32×32 inputs: a 3×3 stem (64 channels), four stages of
    two :class:`PreActBlock` (64, 128, 256, 512 channels; strides 1, 2, 2, 2), a final
    GroupNorm-ReLU, global average pooling and a linear layer. GroupNorm (Wu & He, ECCV 2018) makes
    the output of an example independent of the rest of the batch, also in training mode.

    Args:
        in_channels: image channels.
        num_classes: number of logits.
        num_groups: GroupNorm groups; must divide 64.

    Raises:
        ValueError: a non-positive argument or ``num_groups`` not dividing 64.

    Example:
        >>> PreActResNet18(num_groups=8)(torch.zeros(2, 3, 32, 32)).shape
        torch.Size([2, 10])
    """

    def __init__(self, in_channels: int = 3, num_classes: int = 10, num_groups: int = 32) -> None:
        super().__init__()
        in_channels = check_int("in_channels", in_channels, minimum=1)
        num_classes = check_int("num_classes", num_classes, minimum=1)
        num_groups = check_int("num_groups", num_groups, minimum=1)
        if 64 % num_groups:
            raise ValueError(f"`num_groups` must divide 64, got {num_groups}")
        self.input_shape = (in_channels, 32, 32)
        self.num_classes = num_classes
        self.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
        in_planes = 64
        stages = []
        for planes, stride in ((64, 1), (128, 2), (256, 2), (512, 2)):
            blocks = []
            for block_stride in (stride, 1):
                blocks.append(PreActBlock(in_planes, planes, block_stride, num_groups))
                in_planes = planes
            stages.append(nn.Sequential(*blocks))
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.norm = nn.GroupNorm(num_groups, 512)
        self.linear = nn.Linear(512, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Logits ``N×num_classes`` of images ``N×C×H×W`` (any H, W ≥ 8; 32 as designed)."""
        out = self.conv1(x)
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        out = F.relu(self.norm(out))
        out = F.adaptive_avg_pool2d(out, 1).flatten(1)
        return self.linear(out)


#: Name → constructor, for :func:`build_model` and the command line.
MODEL_REGISTRY: dict[str, Callable[..., nn.Module]] = {
    "smallcnn": SmallCNN,
    "preactresnet18": PreActResNet18,
}


def build_model(name: str, **kwargs) -> nn.Module:
    """Build a registered model by (case-insensitive) name.

    Args:
        name: a key of :data:`MODEL_REGISTRY` — ``"smallcnn"`` or ``"preactresnet18"``.
        **kwargs: passed to the constructor.

    Raises:
        ValueError: unknown ``name``.

    Example:
        >>> build_model("PreActResNet18", num_groups=16).num_classes
        10
    """
    key = str(name).lower().replace("-", "").replace("_", "")
    if key not in MODEL_REGISTRY:
        raise ValueError(f"`name` must be one of {sorted(MODEL_REGISTRY)}, got {name!r}")
    return MODEL_REGISTRY[key](**kwargs)


def _infer_input_shape(model: nn.Module) -> tuple[int, ...] | None:
    """The ``input_shape`` attribute of ``model`` or of its first submodule that has one."""
    for module in model.modules():
        shape = getattr(module, "input_shape", None)
        if shape is not None:
            return tuple(int(s) for s in shape)
    return None


def _check_clip_values(clip_values) -> tuple[float, float] | None:
    """``clip_values`` as a float pair ``(min, max)`` with ``min < max`` (or ``None``)."""
    if clip_values is None:
        return None
    if len(clip_values) != 2 or not float(clip_values[0]) < float(clip_values[1]):
        raise ValueError(f"`clip_values` must be (min, max) with min < max, got {clip_values!r}")
    return (float(clip_values[0]), float(clip_values[1]))


def _classifier_input_shape(model: nn.Module, input_shape: Sequence[int] | None) -> tuple[int, ...]:
    """``input_shape`` checked, or inferred from the model when ``None``."""
    if input_shape is None:
        input_shape = _infer_input_shape(model)
        if input_shape is None:
            raise ValueError(
                "`input_shape` must be given: the model has no `input_shape` attribute to infer it from"
            )
    return tuple(check_int("input_shape", s, minimum=1) for s in input_shape)


def _build_optimizer(
    model: nn.Module,
    optimizer: str | torch.optim.Optimizer | None,
    lr: float,
    momentum: float,
    weight_decay: float,
) -> torch.optim.Optimizer:
    """The optimizer named by ``optimizer`` (Adam by default, ``"sgd"``) or ``optimizer`` itself."""
    if optimizer is None or optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    if optimizer == "sgd":
        return torch.optim.SGD(
            model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay
        )
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise ValueError(
            f"`optimizer` must be None, 'adam', 'sgd' or a torch optimizer, got {optimizer!r}"
        )
    return optimizer


def make_classifier(
    model: nn.Module,
    input_shape: Sequence[int] | None = None,
    nb_classes: int = 10,
    clip_values: tuple[float, float] | None = (0.0, 1.0),
    lr: float = 1e-3,
    optimizer: str | torch.optim.Optimizer | None = None,
    preprocessing: tuple | None = None,
    device_type: str = "cpu",
    *,
    momentum: float = 0.9,
    weight_decay: float = 0.0,
):
    """Wrap a PyTorch model in an ART :class:`~art.estimators.classification.PyTorchClassifier`.

    The loss is cross-entropy on logits. The optimizer is Adam (``lr``) by default, ``"sgd"`` gives
    SGD with ``momentum`` and ``weight_decay``, or pass any optimizer built on ``model``'s parameters.

    Args:
        model: module mapping ``N×C×H×W`` images to logits.
        input_shape: ``(C, H, W)``; inferred from an ``input_shape`` attribute of the model or a
            submodule (:class:`SmallCNN`: ``(1, 28, 28)``, :class:`PreActResNet18`: ``(3, 32, 32)``).
        nb_classes: number of classes.
        clip_values: ``(min, max)`` of valid inputs; ``None`` disables clipping.
        lr: learning rate of the default optimizer.
        optimizer: ``None``/``"adam"``, ``"sgd"`` or an optimizer instance.
        preprocessing: ART ``preprocessing=(mean, std)`` applied (differentiably) before the model;
            ``None`` means no normalization.
        device_type: ``"cpu"`` or ``"gpu"`` (ART's names).
        momentum: SGD momentum (``optimizer="sgd"`` only).
        weight_decay: weight decay of the built-in optimizers.

    Returns:
        The ART classifier.

    Raises:
        ValueError: a parameter is invalid (the message names it).

    Example:
        >>> clf = make_classifier(SmallCNN())
        >>> clf.input_shape, clf.nb_classes
        ((1, 28, 28), 10)
    """
    from art.estimators.classification import PyTorchClassifier

    if not isinstance(model, nn.Module):
        raise ValueError(f"`model` must be a torch.nn.Module, got {type(model).__name__}")
    input_shape = _classifier_input_shape(model, input_shape)
    nb_classes = check_int("nb_classes", nb_classes, minimum=1)
    clip_values = _check_clip_values(clip_values)
    if not float(lr) > 0:
        raise ValueError(f"`lr` must be positive, got {lr!r}")
    if device_type not in ("cpu", "gpu"):
        raise ValueError(f"`device_type` must be 'cpu' or 'gpu', got {device_type!r}")
    optimizer = _build_optimizer(model, optimizer, lr, momentum, weight_decay)
    kwargs = {}
    if preprocessing is not None:
        kwargs["preprocessing"] = preprocessing
    return PyTorchClassifier(
        model=model,
        loss=nn.CrossEntropyLoss(),
        input_shape=input_shape,
        nb_classes=nb_classes,
        optimizer=optimizer,
        clip_values=clip_values,
        device_type=device_type,
        **kwargs,
    )


@torch.no_grad()
def predict_logits(
    model: nn.Module, x, batch_size: int = 256, device: torch.device | str | None = None
) -> torch.Tensor:
    """Logits of ``model`` on ``x`` (numpy array or tensor), in eval mode, batch by batch.

    The model's training/eval mode is restored afterwards.

    Returns:
        A float tensor ``N×num_classes`` on the CPU.
    """
    batch_size = check_int("batch_size", batch_size, minimum=1)
    if device is None:
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
    x_t = x if isinstance(x, torch.Tensor) else torch.as_tensor(np.asarray(x, dtype=np.float32))
    was_training = model.training
    model.eval()
    try:
        outputs = [
            model(x_t[i : i + batch_size].to(device=device, dtype=torch.float32)).cpu()
            for i in range(0, len(x_t), batch_size)
        ]
    finally:
        model.train(was_training)
    if not outputs:
        return torch.empty(0, 0)
    return torch.cat(outputs)


def accuracy(model: nn.Module, x, y, batch_size: int = 256) -> float:
    """Fraction of ``x`` that ``model`` classifies as ``y`` (int labels or one-hot), in ``[0, 1]``.

    Example:
        >>> accuracy(SmallCNN(), np.zeros((4, 1, 28, 28), np.float32), np.zeros(4, np.int64))
        1.0
    """
    y_arr = np.asarray(y)
    if y_arr.ndim == 2:
        y_arr = y_arr.argmax(axis=1)
    if len(y_arr) == 0:
        raise ValueError("`y` must not be empty")
    pred = predict_logits(model, x, batch_size=batch_size).argmax(dim=1).numpy()
    return float(np.mean(pred == y_arr))


def _natural_epoch(
    model: nn.Module, loader, optimizer, loss_fn, device, bar, epoch: int
) -> tuple[float, int, int]:
    """One pass of cross-entropy steps over ``loader``; returns ``(loss sum, correct, seen)``."""
    loss_sum, correct, seen = 0.0, 0, 0
    for xb, yb in loader:
        xb, yb = xb.to(device), yb.to(device)
        optimizer.zero_grad(set_to_none=True)
        logits = model(xb)
        loss = loss_fn(logits, yb)
        loss.backward()
        optimizer.step()
        loss_sum += float(loss.detach()) * len(yb)
        correct += int((logits.detach().argmax(dim=1) == yb).sum())
        seen += len(yb)
        bar.update(1)
        bar.set_postfix(
            epoch=epoch + 1,
            loss=f"{loss_sum / seen:.3f}",
            acc=f"{correct / seen:.3f}",
            refresh=False,
        )
    return loss_sum, correct, seen


def train_natural(
    model: nn.Module,
    x: np.ndarray,
    y: np.ndarray,
    epochs: int = 10,
    batch_size: int = 128,
    lr: float = 1e-3,
    seed: int = 0,
    verbose: bool = True,
    *,
    optimizer: torch.optim.Optimizer | None = None,
    device: torch.device | str | None = None,
) -> nn.Module:
    """Train ``model`` with plain (natural) cross-entropy — the reference "Natural" model.

    Mini-batch training with Adam (``lr``) unless an ``optimizer`` is given; batches are shuffled by
    a generator seeded with ``seed`` (for full determinism also seed the model's initialization,
    e.g. ``torch.manual_seed(seed)`` before building it). Progress through tqdm (``verbose``), the
    per-epoch loss and accuracy through :mod:`logging`.

    Args:
        model: module mapping images to logits; trained in place and returned in eval mode.
        x: images ``N×C×H×W`` in ``[0, 1]`` (not modified).
        y: int labels ``N``.
        epochs: passes over the data.
        batch_size: examples per step.
        lr: learning rate of the default Adam optimizer.
        seed: seed of the batch order.
        verbose: show a progress bar.
        optimizer: optimizer over ``model``'s parameters (e.g. an ART classifier's ``_optimizer``).
        device: where to train; default the device of the model's parameters.

    Returns:
        ``model`` (same object), in eval mode.

    Raises:
        ValueError: non-positive ``epochs``/``batch_size``/``lr`` or mismatched ``x``/``y``.

    Example:
        >>> from art_spatial.data import load_mnist5k
        >>> x, y = load_mnist5k("train")
        >>> model = train_natural(SmallCNN(), x[:256], y[:256], epochs=1, verbose=False)
    """
    from tqdm.auto import tqdm

    from art_spatial.data import make_loader

    epochs = check_int("epochs", epochs, minimum=1)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    if not float(lr) > 0:
        raise ValueError(f"`lr` must be positive, got {lr!r}")
    if device is None:
        device = next((p.device for p in model.parameters()), torch.device("cpu"))
    loader = make_loader(x, y, batch_size=batch_size, shuffle=True, seed=seed)
    if optimizer is None:
        optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    loss_fn = nn.CrossEntropyLoss()
    total_steps = epochs * len(loader)
    model.train()
    with tqdm(
        total=total_steps,
        disable=not verbose,
        desc="natural training",
        unit="batch",
        mininterval=0.5,
    ) as bar:
        for epoch in range(epochs):
            loss_sum, correct, seen = _natural_epoch(
                model, loader, optimizer, loss_fn, device, bar, epoch
            )
            logger.info(
                "epoch %d/%d: loss %.4f, train accuracy %.4f",
                epoch + 1,
                epochs,
                loss_sum / seen,
                correct / seen,
            )
    model.eval()
    return model
