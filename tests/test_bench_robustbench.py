"""RobustBench offline loading: a locally created checkpoint of a registered small architecture."""

from __future__ import annotations

import pickle

import numpy as np
import pytest
import torch

NAME, THREAT = "Hendrycks2020AugMix_WRN", "corruptions"  # WRN-40-2, 2.2 M parameters


def test_missing_checkpoint_names_the_expected_path(tmp_path):
    from art_spatial.bench.robustbench import load_robustbench_model

    with pytest.raises(FileNotFoundError) as err:
        load_robustbench_model(NAME, tmp_path, dataset="cifar10", threat_model=THREAT)
    assert str(tmp_path / "cifar10" / THREAT / f"{NAME}.pt") in str(err.value)
    with pytest.raises(ValueError, match="name"):
        load_robustbench_model("NoSuchModel2099", tmp_path)
    with pytest.raises(ValueError, match="threat_model"):
        load_robustbench_model(NAME, tmp_path, threat_model="Lzero")


def test_load_local_checkpoint_weights_only(tmp_path):
    from art_spatial._compat import import_robustbench
    from art_spatial.bench.robustbench import load_robustbench_model

    zoo = import_robustbench("model_zoo")
    enums = import_robustbench("model_zoo.enums")
    torch.manual_seed(0)
    original = zoo.model_dicts[enums.BenchmarkDataset.cifar_10][enums.ThreatModel(THREAT)][NAME][
        "model"
    ]()
    folder = tmp_path / "cifar10" / THREAT
    folder.mkdir(parents=True)
    # RobustBench checkpoints often carry a 'state_dict' key and a 'module.' prefix
    torch.save(
        {"state_dict": {f"module.{k}": v for k, v in original.state_dict().items()}},
        folder / f"{NAME}.pt",
    )
    model = load_robustbench_model(NAME, tmp_path, dataset="cifar10", threat_model=THREAT)
    assert not model.training
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.allclose(model(x), original.eval()(x))
    # a pickled object that is not plain tensors is refused (weights_only=True)
    torch.save({"state_dict": {"w": torch.zeros(1)}, "evil": _Opaque()}, folder / f"{NAME}.pt")
    with pytest.raises(pickle.UnpicklingError):
        load_robustbench_model(NAME, tmp_path, dataset="cifar10", threat_model=THREAT)


class _Opaque:
    pass


def test_cifar10_through_robustbench_loader(tmp_path, monkeypatch):
    from torchvision.datasets import CIFAR10

    from art_spatial.bench.robustbench import load_cifar10_robustbench

    with pytest.raises(FileNotFoundError, match="cifar-10-batches-py"):
        load_cifar10_robustbench(tmp_path)
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    rng = np.random.default_rng(0)
    data = rng.integers(0, 256, size=(12, 3072), dtype=np.uint8)
    labels = list(range(10)) + [3, 4]
    with open(folder / "test_batch", "wb") as fh:
        pickle.dump({"data": data, "labels": labels}, fh)
    with open(folder / "batches.meta", "wb") as fh:
        pickle.dump({"label_names": [str(i) for i in range(10)]}, fh)
    # our 12-image copy has not the official md5 sums: accept it for the test only
    import torchvision.datasets.cifar as tv_cifar

    monkeypatch.setattr(CIFAR10, "_check_integrity", lambda self: True)
    monkeypatch.setattr(tv_cifar, "check_integrity", lambda *args, **kwargs: True)
    x, y = load_cifar10_robustbench(tmp_path, n_examples=5)
    assert x.shape == (5, 3, 32, 32) and y.tolist() == [0, 1, 2, 3, 4]
    assert torch.allclose(
        x[1], torch.as_tensor(data[1].reshape(3, 32, 32) / 255.0, dtype=torch.float32)
    )
