"""robot_rl.controllers.limits without ROS: which way is tighter for every field, and the box checks.
(The same rules over the real parameter services: tests/security/test_params.py.)"""
from __future__ import annotations

import math
from dataclasses import asdict, fields

import pytest

from robot_rl.controllers.impedance import ImpedanceConfig
from robot_rl.controllers.limits import SafetyBox, loosenings


def test_every_impedance_field_has_a_tighter_direction():
    start = ImpedanceConfig(translational_ki=1.0, rotational_ki=1.0)   # room to move both ways
    for f in fields(ImpedanceConfig):
        value = getattr(start, f.name)
        up = tuple(v * 1.5 for v in value) if isinstance(value, tuple) else value * 1.5
        down = tuple(v * 0.5 for v in value) if isinstance(value, tuple) else value * 0.5
        if f.name == "filter_factor":
            up = min(up, 1.0)
        looser_up, looser_down = bool(loosenings(start, start.replace(**{f.name: up}))), \
            bool(loosenings(start, start.replace(**{f.name: down})))
        if f.name == "dt":
            assert looser_up and looser_down, "dt is fixed"
        elif f.name == "nullspace_pinv_damping":
            assert looser_down and not looser_up, f.name
        else:
            assert looser_up and not looser_down, f.name
    assert loosenings(start, start) == []


def test_box_directions_and_nominal_quat():
    start = SafetyBox.checked()
    assert loosenings(start, SafetyBox.checked(box_low=[0.35, -0.3, 0.0], box_high=[0.7, 0.25, 0.5],
                                               rpy_low=[-0.4, -0.5, -3.2], rpy_high=[0.5, 0.1, 3.0],
                                               command_timeout=0.2, nominal_quat=[-1.0, 0.0, 0.0, 0.0])) == []
    found = loosenings(start, SafetyBox.checked(box_low=[0.3, -0.3, -0.1], box_high=[0.8, 0.3, 0.5],
                                                command_timeout=1.0, nominal_quat=[0.0, 0.0, 0.0, 1.0]))
    assert [line.split(" ")[0] for line in found] == ["box_low[2]", "box_high[0]", "nominal_quat", "command_timeout"]
    with pytest.raises(TypeError):
        loosenings(start, ImpedanceConfig())


@pytest.mark.parametrize("values, message", [
    (dict(box_high=[math.nan, 0.3, 0.5]), "box_high is not finite"),
    (dict(box_low=[0.3, 0.0]), "box_low must be 3 numbers"),
    (dict(box_low="low"), "box_low must be 3 numbers"),
    (dict(box_low=[0.8, -0.3, 0.0]), "box_low must be < box_high"),
    (dict(rpy_high=[0.5, 0.5, 4.0]), "rpy_high must be within [-3.2, 3.2]"),
    (dict(nominal_quat=[0.0, 0.0, 0.0, 0.0]), "nominal_quat must be a unit quaternion"),
    (dict(command_timeout=True), "command_timeout must be a number"),
    (dict(command_timeout=0.0), "command_timeout must be in (0, 60]"),
])
def test_bad_boxes_are_refused_with_the_field_named(values, message):
    with pytest.raises(ValueError, match="^" + message.replace("[", r"\[").replace("(", r"\(")):
        SafetyBox.checked(**values)


def test_nominal_quat_is_normalised_within_the_tolerance():
    box = SafetyBox.checked(nominal_quat=[1.0005, 0.0, 0.0, 0.0])
    assert box.nominal_quat == (1.0, 0.0, 0.0, 0.0)
    assert asdict(SafetyBox.checked(**asdict(box))) == asdict(box)
