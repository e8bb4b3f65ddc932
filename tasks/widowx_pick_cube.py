"""widowx_pick_cube: pick_cube for the WidowX 250 6-DoF (the twin in sim/widowx.py, or the real
arm over ROS under /widowx).

The same task as pick_cube (tasks/pick_cube.py: sparse reward for a cube held 10 cm up) scaled to
the WidowX: its table-top workspace lies 0.15-0.42 m in front of the base (the Franka's is
0.35-0.65 m), and its gripper opens 56 mm, so the cube is 4 cm (50 g) instead of 5 cm.
Everything else (action scaling, orientation limits, observation features) is unchanged, so the
same agents, configs and scripted expert apply. The task name selects the robot:
`tasks.make_env("widowx_pick_cube")` builds the WidowX twin.
"""
from __future__ import annotations

from dataclasses import dataclass

from robot_rl.tasks.pick_cube import PickCubeSpec


@dataclass
class WidowXPickCubeSpec(PickCubeSpec):
    name: str = "widowx_pick_cube"
    box_low: tuple[float, float, float] = (0.15, -0.18, 0.015)
    box_high: tuple[float, float, float] = (0.42, 0.18, 0.25)
    tcp_start: tuple[float, float, float] = (0.28, 0.0, 0.14)
    object_xy_center: tuple[float, float] = (0.28, 0.0)
    object_xy_range: float = 0.05
    cube_half_size: float = 0.02          # must match the WidowX twin's scene (it is passed on)

    robot: str = "widowx"                 # which twin tasks.make_twin builds
