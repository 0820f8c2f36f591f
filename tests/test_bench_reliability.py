"""Bad input to the harness (``art_spatial.bench.evaluate``) gets a clear error, never a silent wrong answer.

The rows of the "Harness" table in docs/reliability.md: labels and images are checked before any
forward pass (float, out-of-range, flattened one-hot labels; NaN / Inf images, images outside
``clip_values``, integer images, channels-last data), one-hot labels equal index labels, and an ART
classifier with ``channels_first=False`` gets the report of its channels-first twin.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from art_spatial.bench import evaluate
from art_spatial.models import SmallCNN

pytestmark = pytest.mark.usefixtures("one_thread")

#: two short attacks and two CuSP profiles (the profiles are covered by the same up-front checks)
SUITE = {
    "name": "tiny-checks",
    "attacks": [
        {
            "name": "pgd",
            "attack": "pgd",
            "category": "sensitivity",
            "params": {"eps": 0.3, "eps_step": 0.1, "random_init": True},
            "iterations": [1, 2],
        },
        {
            "name": "rt",
            "attack": "affine",
            "category": "global",
            "params": {"eps": 0.3, "eps_step": 0.1},
            "iterations": [1, 2],
        },
    ],
    "profiles": [
        {"name": "rotation", "kind": "rotation", "values": [0, 90]},
        {
            "name": "robustness",
            "kind": "robustness",
            "values": [0, 0.1],
            "params": {"max_iter": 2, "eps_step": 0.05},
        },
    ],
}
PROFILES_ONLY = {"name": "profiles-only", "profiles": SUITE["profiles"][:1]}


class _Counting(torch.nn.Module):
    """``net`` with a count of its forward passes."""

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = net
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return self.net(x)


class _NHWC(torch.nn.Module):
    """A channels-last model: takes N x H x W x C and runs ``net`` (channels-first) on it."""

    def __init__(self, net: torch.nn.Module):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(x.permute(0, 3, 1, 2))


def _cnn(seed: int = 0) -> torch.nn.Module:
    torch.manual_seed(seed)
    return SmallCNN().eval()


def _digits(n: int = 6, seed: int = 0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 1, 28, 28), dtype=np.float32), (np.arange(n) % 10).astype(np.int64)


def _classifier(model, input_shape=(1, 28, 28), channels_first=True):
    from art.estimators.classification import PyTorchClassifier

    return PyTorchClassifier(
        model=model,
        loss=torch.nn.CrossEntropyLoss(),
        input_shape=input_shape,
        nb_classes=10,
        clip_values=(0.0, 1.0),
        channels_first=channels_first,
    )


def _counts(rep):
    return {a["name"]: [s["n_robust"] for s in a["strengths"]] for a in rep.attacks}


def _misclassified(model, x, y) -> int:
    with torch.no_grad():
        pred = model(torch.as_tensor(x)).argmax(1).numpy()
    return int(np.flatnonzero(pred != y)[0])


# ------------------------------------------------------------------------------------------- labels
BAD_LABELS = [
    (
        lambda y: y.astype(np.float64) + 0.5,
        r"^y must hold integer class indices, got 0\.5 at index 0 "
        r"\(float labels are never truncated\)",
    ),
    (
        lambda y: np.where(np.arange(len(y)) == 3, 12, y),
        r"^y has labels outside \[0, 10\): 12 at index 3",
    ),
    (
        lambda y: np.where(np.arange(len(y)) == 1, -1, y),
        r"^y has (negative labels|labels outside \[0, 10\))",
    ),
    (
        lambda y: np.eye(10, dtype=np.float32)[y].reshape(-1),
        r"^y must have one label per example: 60 labels "
        r"for 6 images \(flattened one-hot labels\?",
    ),
    (lambda y: y % 2 == 0, r"^y has dtype bool"),
    (lambda y: np.zeros((len(y), 10)), r"^y \(one-hot\) row 0 has no single largest entry"),
]


LABEL_IDS = ["float", "too-large", "negative", "flattened-one-hot", "bool", "one-hot-no-largest"]


@pytest.mark.parametrize("bad, message", BAD_LABELS, ids=LABEL_IDS)
@pytest.mark.parametrize("wrapped", [False, True], ids=["module", "art-classifier"])
def test_evaluate_refuses_bad_labels_naming_y(bad, message, wrapped):
    """Was: float labels truncated, bool labels taken as 0 / 1, labels >= 10 torch's IndexError,
    flattened one-hot labels 'y must have one label per image: 60 labels for 6 images'."""
    x, y = _digits()
    net = _Counting(_cnn())
    model = _classifier(net) if wrapped else net
    with pytest.raises(ValueError, match=message):
        evaluate(model, x, bad(y), SUITE)
    assert net.calls <= (0 if wrapped else 1)  # at most the forward pass that counts the classes


def test_evaluate_takes_one_hot_labels_as_class_indices():
    """Was: ValueError 'y must have one label per image: 60 labels for 6 images'."""
    x, y = _digits()
    rep = evaluate(_cnn(), x, y, SUITE, batch_size=4)
    hot = evaluate(_cnn(), x, np.eye(10, dtype=np.float32)[y], SUITE, batch_size=4)
    assert _counts(hot) == _counts(rep) and hot.n_clean_correct == rep.n_clean_correct
    assert hot.meta["data_fingerprint"] == rep.meta["data_fingerprint"]


# ------------------------------------------------------------------------------------------- images
def _nan_in_a_misclassified_point(x, y):
    x = x.copy()
    x[_misclassified(_cnn(), x, y), 0, 3, 3] = np.nan
    return x


BAD_IMAGES = {
    # skipped by the default attack_misclassified=False: scores were returned without a word
    "nan-misclassified": (
        _nan_in_a_misclassified_point,
        r"^x contains 1 non-finite value\(s\) \(NaN or Inf\), the first nan at index "
        r"\(\d, 0, 3, 3\); images must be finite",
    ),
    "inf": (
        lambda x, y: np.where(np.arange(x.size).reshape(x.shape) == 5, np.inf, x).astype(
            np.float32
        ),
        r"^x contains 1 non-finite value\(s\).*the first inf at index \(0, 0, 0, 5\)",
    ),
    "0-255": (
        lambda x, y: x * 255,
        r"^x has values in \[0\.\d+, 25\d\.\d+\], outside clip_values \[0, 1\] "
        r"\(this looks like 0-255 data: divide by 255\)",
    ),
    "normalized": (
        lambda x, y: (x - 0.5) / 0.3,
        r"^x has values in \[-1\.6\d+, 1\.6\d+\], outside "
        r"clip_values \[0, 1\] \(negative values: is x already "
        r"normalized\?",
    ),
    "uint8": (
        lambda x, y: (x * 255).astype(np.uint8),
        r"^x has dtype uint8; images must be floats scaled "
        r"to clip_values \[0, 1\]",
    ),
    "3-d": (
        lambda x, y: x[:, 0],
        r"^x must be a batch of images N x C x H x W, got shape \(6, 28, 28\)",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_IMAGES))
@pytest.mark.parametrize("wrapped", [False, True], ids=["module", "art-classifier"])
def test_evaluate_refuses_bad_images_before_any_forward_pass(case, wrapped):
    """Was: a NaN image the model misclassifies was skipped and scores returned; 0-255, normalized
    and uint8 images ran the clean pass and the checks before an attack refused them."""
    x, y = _digits()
    bad, message = BAD_IMAGES[case]
    net = _Counting(_cnn())
    model = _classifier(net) if wrapped else net
    with pytest.raises(ValueError, match=message):
        evaluate(model, bad(x, y), y, SUITE)
    assert net.calls == 0


def test_evaluate_checks_images_for_a_profiles_only_suite():
    """The CuSP profiles get the same up-front checks (was: rates computed on NaN images)."""
    x, y = _digits()
    x[2, 0, 0, 0] = np.nan
    with pytest.raises(ValueError, match=r"^x contains 1 non-finite value\(s\)"):
        evaluate(_cnn(), x, y, PROFILES_ONLY)


def test_evaluate_refuses_channels_last_data_naming_the_layout():
    """Was: torch's RuntimeError from the first convolution."""
    x, y = _digits()
    nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    with pytest.raises(
        ValueError,
        match=r"^x has shape \(6, 28, 28, 1\): it looks channels-last "
        r"\(N x H x W x C\).*permute\(0, 3, 1, 2\)",
    ):
        evaluate(_cnn(), nhwc, y, SUITE)
    with pytest.raises(
        ValueError,
        match=r"^x has shape \(6, 28, 28, 1\) but the estimator expects "
        r"N x 1 x 28 x 28 \(channels first\).*transpose\(0, 3, 1, 2\)",
    ):
        evaluate(_classifier(_cnn()), nhwc, y, SUITE)
    cl = _classifier(_NHWC(_cnn()), (28, 28, 1), channels_first=False)
    with pytest.raises(
        ValueError,
        match=r"^x has shape \(6, 1, 28, 28\) but the estimator expects "
        r"N x 28 x 28 x 1 \(channels last\).*transpose\(0, 2, 3, 1\)",
    ):
        evaluate(cl, x, y, SUITE)


def test_channels_last_classifier_gets_the_report_of_its_channels_first_twin():
    """channels_first=False: x (N x H x W x C) is transposed for the attacks and profiles (was: the
    logits function permuted it as if it were N x C x H x W, and the model failed)."""
    x, y = _digits(8)
    kw = dict(batch_size=3, seed=1)
    cf = evaluate(_classifier(_cnn()), x, y, SUITE, **kw)
    cl = evaluate(
        _classifier(_NHWC(_cnn()), (28, 28, 1), channels_first=False),
        np.ascontiguousarray(x.transpose(0, 2, 3, 1)),
        y,
        SUITE,
        **kw,
    )
    assert _counts(cl) == _counts(cf) and cl.n_clean_correct == cf.n_clean_correct
    assert cl.profiles == {
        k: {**v, "wall_time_s": cl.profiles[k]["wall_time_s"]} for k, v in cf.profiles.items()
    }
    assert [a["perturbation"] for a in cl.attacks] == [a["perturbation"] for a in cf.attacks]
    assert cl.meta["data_fingerprint"] == cf.meta["data_fingerprint"]
    assert cl.meta["clean_correct_examples"] == cf.meta["clean_correct_examples"]


# -------------------------------------------------------------------------- unreadable files (item 9)
def _damage(path, how: str, good: bytes) -> None:
    """Replace ``path`` by a damaged copy of ``good`` (or a directory)."""
    if path.exists():
        path.unlink()
    if how == "directory":
        path.mkdir()
        return
    path.write_bytes(
        {
            "truncated": good[: len(good) // 2],
            "garbage": b"\x80\x04\x95garbage\xff",
            "empty": b"",
            "json-list": b"[1, 2, 3]\n",
            "other-json": b'{"model": "not this file"}\n',
        }[how]
    )


DAMAGE = ["truncated", "garbage", "empty", "directory", "json-list", "other-json"]


@pytest.mark.parametrize("how", DAMAGE)
def test_unreadable_state_file_names_the_file_and_the_remedy(tmp_path, how):
    """Was json's JSONDecodeError / UnicodeDecodeError without the file, IsADirectoryError, or an
    AttributeError / KeyError for JSON that is not a state file."""
    x, y = _digits()
    state = tmp_path / "state.json"
    evaluate(_cnn(), x, y, PROFILES_ONLY, state_path=state)
    good = state.read_bytes()
    _damage(state, how, good)
    with pytest.raises(
        ValueError,
        match=r"the evaluation state file \(state_path\) '[^']*state\.json' "
        r".*delete it \(or move it away\) to start the evaluation over.*"
        r"--overwrite",
    ):
        evaluate(_cnn(), x, y, PROFILES_ONLY, state_path=state)


@pytest.mark.parametrize("how", DAMAGE)
def test_unreadable_reference_or_report_file_names_the_file(tmp_path, how):
    """Was JSONDecodeError / UnicodeDecodeError without the file, IsADirectoryError, TypeError."""
    from art_spatial.bench import RobustnessReport

    x, y = _digits()
    path = tmp_path / "natural.json"
    evaluate(_cnn(), x, y, {"name": "one", "attacks": SUITE["attacks"][:1]}, n_examples=2).save(
        path
    )
    good = path.read_bytes()
    _damage(path, how, good)
    remedy = (
        r"categories .* got keys \['model'\]"
        if how == "other-json"
        else r"pass a natural model's report\.json"
    )
    with pytest.raises(ValueError, match=r"the reference file '[^']*natural\.json'.*" + remedy):
        evaluate(_cnn(), x, y, PROFILES_ONLY, reference=path)
    with pytest.raises(
        ValueError, match=r"the report file '[^']*natural\.json' .*rerun the evaluation"
    ):
        RobustnessReport.load(path)
