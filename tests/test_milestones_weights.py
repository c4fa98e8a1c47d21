"""The weights milestones 1 and 2 ship: they load into the programs' architectures, and (with the real
data) give the accuracy we promise."""
from __future__ import annotations

import os

import numpy as np
import pytest

from grading.course import REPO_ROOT
from grading.milestones import ensure_importable

ensure_importable()  # `pytest` (importlib mode) does not put the repository root on sys.path
from milestones import m1_basic_inference as m1, m2_computer_vision as m2, m3_full_training as m3  # noqa: E402
from milestones.common import count_parameters, load_weights, predict_in_batches  # noqa: E402

SHIPPED = [(m1, 0.97), (m2, 0.985)]


@pytest.mark.parametrize("program,promised", SHIPPED, ids=["m1", "m2"])
def test_shipped_weights_match_the_architecture(program, promised):
    path = program.WEIGHTS
    assert path.exists(), f"{path} is missing: run python milestones/train_reference_weights.py"
    assert path.stat().st_size < 1_000_000, "shipped weights must stay small enough to commit"
    model = program.build_model()
    with np.load(path) as archive:
        stored = {k: archive[k] for k in archive.files}
    own = model.state_dict()
    assert set(stored) == set(own)
    for key, value in stored.items():
        assert value.shape == own[key].shape and value.dtype == np.float32, key
    load_weights(model, path)  # the student's load_state_dict, strict
    for key, value in model.state_dict().items():
        np.testing.assert_array_equal(value, stored[key])


def test_milestone_2_has_far_fewer_parameters_than_milestone_1():
    assert count_parameters(m1.build_model()) == m2.mlp_parameters()
    assert m2.mlp_parameters() > 5 * count_parameters(m2.build_model())


def test_milestone_3_state_dict_keeps_batch_norm_statistics():
    """Reloading must restore running mean/var too, or eval-mode predictions would change."""
    keys = m3.build_model(m3.TINY_WIDTHS).state_dict()
    assert any(k.endswith("running_mean") for k in keys) and any(k.endswith("running_var") for k in keys)


def test_accuracy_rises_rule():
    from grading.judge import accuracy_rises   # the judge applies it to the held-out accuracies it computed
    assert accuracy_rises([0.4, 0.5, 0.6])
    assert accuracy_rises([0.4, 0.55, 0.548, 0.6])      # a dip within noise
    assert not accuracy_rises([0.6])                    # one epoch proves nothing
    assert not accuracy_rises([0.5, 0.6, 0.55])         # fell at the end
    assert not accuracy_rises([0.5, 0.5])


@pytest.mark.slow
@pytest.mark.skipif(not os.environ.get("TINYTORCH_DATA"), reason="needs the real MNIST (set TINYTORCH_DATA)")
@pytest.mark.parametrize("program,promised", SHIPPED, ids=["m1", "m2"])
def test_shipped_weights_reach_the_promised_accuracy(program, promised):
    from grading.milestone_data import prepare
    split = prepare(1, data_set="mnist", data_dir=os.environ["TINYTORCH_DATA"], download=False)
    x_test, y_test = split.images, split.labels
    model = program.build_model()
    load_weights(model, program.WEIGHTS)
    accuracy = float((predict_in_batches(model, x_test, program.prepare, 1000) == y_test).mean())
    assert accuracy >= promised, f"{program.WEIGHTS.relative_to(REPO_ROOT)} gives {accuracy:.4f} < {promised}"
