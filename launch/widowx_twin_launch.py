"""The WidowX twin graph on a system ROS 2 Jazzy:  ros2 launch robot_rl widowx_twin_launch.py

The nodes and parameters of launch/widowx_twin.yaml, a rig file, as `robot-rl up widowx_twin` starts them
(rig_launch.py does the work; `rig:=FILE` starts another rig).
"""
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from rig_launch import rig_launch_description, shipped_rig  # noqa: E402


def generate_launch_description():
    return rig_launch_description(shipped_rig("widowx_twin"))
