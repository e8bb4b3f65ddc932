"""One setup for both installers: `pip install -e .` and colcon on a system ROS 2 Jazzy."""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "robot_rl"
TOP_LEVEL = ["robot_rl", "controllers", "drivers", "tasks", "sim", "bench"]

setup(
    name=PACKAGE,
    version="0.1.0",
    description="Real-world robot RL on ROS 2 and PyTorch, with a MuJoCo twin",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=[p for t in TOP_LEVEL for p in (t, t + ".*")]),
    package_data={"sim": ["assets/*"], "robot_rl": ["configs/*.yaml"], "tasks": ["task_files/*.yaml"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*_launch.py") + glob("launch/*.yaml")),
    ],
    zip_safe=False,
    entry_points={
        "console_scripts": [
            "robot-rl = robot_rl.cli:main",
            "robot-rl-realsense = drivers.realsense_node:main",
            "robot-rl-robotiq = drivers.robotiq_node:main",
            "robot-rl-ft = drivers.ft_node:main",
            "robot-rl-spacemouse = drivers.spacemouse_node:main",
            "robot-rl-keyboard = drivers.keyboard_node:main",
            "robot-rl-franka = drivers.franka_node:main",
            "robot-rl-franka-sim = drivers.franka_sim:main",
            "robot-rl-widowx = drivers.widowx_node:main",
            "robot-rl-twin = sim.twin_node:main",
            "robot-rl-controller = controllers.node:main",
            "robot-rl-actor = tasks.actor_node:main",
            "robot-rl-learner = tasks.learner_node:main",
        ],
    },
)
