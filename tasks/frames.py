"""The env's rotation names, kept as an import of controllers.rotations (the one rotation helper)
for the tasks modules that still import them from here (spec, ros_backend, record_labels, deploy).
"""
from __future__ import annotations

from controllers.rotations import exp_so3, matrix_to_quat, matrix_to_rpy, rpy_to_matrix
from controllers.rotations import quat_to_matrix as quat_to_rot

__all__ = ["exp_so3", "matrix_to_quat", "matrix_to_rpy", "quat_to_rot", "rpy_to_matrix"]
