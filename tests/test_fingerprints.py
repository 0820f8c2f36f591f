"""Behaviour must not move under a refactor: the fingerprints of tests/fingerprints.py (every attack,
a two-epoch run of every trainer, a pareto-mnist evaluation, at fixed seeds on one thread) equal the
recorded ones in tests/data/fingerprints.json.

On the recording platform (same torch version and CPU capability) the exact hashes must match; on
another platform (other CPU kernels) the float summaries must match to 1e-4. A deliberate numeric
change re-records them (``.venv/bin/python tests/fingerprints.py --record``) in its own commit.
"""

from __future__ import annotations

import json

import fingerprints as F
import numpy as np
import pytest


@pytest.fixture(scope="module")
def recorded():
    return json.loads(F.RECORD.read_text())


@pytest.fixture(scope="module")
def now():
    return F.compute()


def test_every_fingerprint_is_unchanged(recorded, now):
    exact = recorded["platform"] == F.platform_signature()
    moved = F.compare(recorded["fingerprints"], now, exact=exact)
    assert not moved, (
        ("behaviour moved (exact hashes)" if exact else "behaviour moved (summaries)")
        + ":\n"
        + "\n".join(moved)
    )


def test_fingerprints_cover_every_attack_trainer_and_the_harness(recorded):
    names = set(recorded["fingerprints"])
    from art_spatial import trainers as T

    trainer_classes = {
        c
        for c in T.__all__
        if c.endswith("Trainer")
        and c not in ("AdversarialTrainerBase", "SingleAttackTrainer", "MultiAttackTrainer")
    }
    assert len([n for n in names if n.startswith("trainer/")]) >= len(trainer_classes)
    assert {
        "advertorch/flow",
        "advertorch/affine",
        "advertorch/integrated",
        "advertorch/pixel",
        "advertorch/joint",
        "advertorch/grid",
        "harness/pareto-mnist",
    } <= names


def test_fingerprint_sees_a_one_ulp_change():
    a = np.linspace(0, 1, 10, dtype=np.float32)
    b = a.copy()
    b[3] = np.nextafter(b[3], np.float32(2))
    assert F.fingerprint({"x": a})["sha256"] != F.fingerprint({"x": b})["sha256"]
    assert F.fingerprint({"x": a})["sha256"] == F.fingerprint({"x": a.copy()})["sha256"]
