"""The robot contract's old address: robot_rl.robot holds RobotState and RobotInterface now (the
bottom layer). Kept for tasks/spec.py, scene_task.py and ros_backend.py until they import robot_rl.robot."""
from robot_rl.robot import RobotInterface, RobotState

__all__ = ["RobotInterface", "RobotState"]
