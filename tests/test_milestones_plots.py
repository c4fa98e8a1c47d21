"""grading/plots.py: dependency-free SVG plots of milestone histories."""
from __future__ import annotations

import math
import xml.etree.ElementTree as ET

from grading.plots import history_svg, pick_x_key

NS = "{http://www.w3.org/2000/svg}"


def parse(svg: str):
    return ET.fromstring(svg)


def test_training_history_has_two_panels_and_a_threshold_line():
    history = [{"epoch": e, "train_loss": 2.0 / e, "test_accuracy": 0.3 + 0.1 * e} for e in (1, 2, 3)]
    root = parse(history_svg(history, title="Milestone 3 <Full & Training>", thresholds={"test_accuracy": 0.6}))
    assert len(root.findall(f"{NS}polyline")) == 2
    texts = [t.text for t in root.iter(f"{NS}text")]
    assert "train_loss" in texts and "test_accuracy" in texts and "target 0.6" in texts
    assert "Milestone 3 <Full & Training>" in texts  # escaped in the file, intact after parsing
    assert any(line.get("stroke-dasharray") for line in root.iter(f"{NS}line"))


def test_x_axis_falls_back_from_a_constant_epoch_to_the_batch_number():
    history = [{"epoch": 1, "batch": b, "test_accuracy": 0.9} for b in (1, 2, 3)]
    assert pick_x_key(history) == "batch"
    parse(history_svg(history))  # constant y must not divide by zero


def test_degenerate_histories_still_give_valid_svg():
    for history in ([], [{"epoch": 1}], [{"epoch": 1, "loss": float("nan")}], [{"epoch": 1, "loss": 1.0}],
                    [{"x": "text"}], None):
        root = parse(history_svg(history))
        assert root.tag == f"{NS}svg"
    svg = history_svg([{"epoch": 1, "loss": math.inf}, {"epoch": 2, "loss": 1.0}])
    assert "inf" not in svg.lower()


def test_bookkeeping_numbers_are_not_plotted_next_to_accuracies():
    history = [{"epoch": e, "test_accuracy": 0.5 + e / 10, "images_per_second": 250.0 + e, "train_seconds": 90.0}
               for e in (1, 2)]
    texts = [t.text for t in parse(history_svg(history)).iter(f"{NS}text")]
    assert "test_accuracy" in texts and "images_per_second" not in texts and "train_seconds" not in texts
