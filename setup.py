"""One setup for both installers: `pip install -e .` and colcon on a system ROS 2 Jazzy."""
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "robot_rl"
# The design card's top-level folders beside robot_rl/ install under the package's own name
# (robot_rl.tasks, robot_rl.sim, ...), so they never collide with another distribution's
# `tasks` or `sim` in a user's env. From a source checkout the same names resolve through
# robot_rl/__init__.py.
NAMESPACED = ["controllers", "drivers", "tasks", "sim", "bench"]
PACKAGE_DIR = {PACKAGE: PACKAGE, **{f"{PACKAGE}.{folder}": folder for folder in NAMESPACED}}
PACKAGES = find_packages(include=[PACKAGE, f"{PACKAGE}.*"]) + [
    f"{PACKAGE}.{folder}{sub}" for folder in NAMESPACED
    for sub in ["", *(f".{p}" for p in find_packages(where=folder))]]

# What `pip install robot_rl` (or its wheel) brings into a user's env, beside LeRobot or gym-hil
# say: the direct dependencies of training in the twin, as compatible ranges. The exact lock
# that `make` installs and tests is constraints.txt (docs/install.md). mujoco: 3.8.1 (what
# gym-hil 0.1.14 needs) through 4.x; the WidowX twin's servos differ below 4.0 (sim/widowx.py).
INSTALL_REQUIRES = [
    "torch>=2.4,<3",
    "numpy>=1.26,<3",
    "gymnasium>=1.0,<2",
    "mujoco>=3.8.1,<5",
    "franky-sim>=1.0,<2",     # the FR3's MJCF model and meshes (sim/scene.py), for the FR3 twin
    "safetensors>=0.4,<1",
    "tensorboard>=2.14,<3",
    "tqdm>=4.60,<5",
    "matplotlib>=3.7,<4",
    "PyYAML>=6.0,<7",
    "pillow>=10,<14",
    "pyarrow>=15",            # LeRobot datasets (robot_rl/datasets); no upper cap: majors are frequent
]
EXTRAS_REQUIRE = {
    # The ROS 2 graph without a system ROS: distributed training, nodes, drivers, `robot-rl up`.
    "ros": ["ros-jazzy-rclpy[fastrtps]>=7.1,<8", "ros-jazzy-std-msgs>=5.3,<6",
            "ros-jazzy-sensor-msgs>=5.3,<6", "ros-jazzy-geometry-msgs>=5.3,<6",
            "ros-jazzy-std-srvs>=5.3,<6"],
    # Real devices and the protocol peers their tests use.
    "hardware": ["pylibfranka>=0.21,<1", "pyrealsense2>=2.55,<3",
                 "pymodbus>=3.6,<4", "pyserial>=3.5,<4", "dynamixel-sdk>=4.1,<5", "hidapi>=0.14,<1"],
    "test": ["pytest>=8,<10", "pytest-timeout>=2.3,<3", "pytest-rerunfailures>=14"],
}
EXTRAS_REQUIRE["all"] = sorted({r for reqs in EXTRAS_REQUIRE.values() for r in reqs})

setup(
    name=PACKAGE,
    version="0.1.0",
    description="Real-world robot RL on ROS 2 and PyTorch, with a MuJoCo twin",
    license="Apache-2.0",
    python_requires=">=3.10",
    install_requires=INSTALL_REQUIRES,
    extras_require=EXTRAS_REQUIRE,
    packages=PACKAGES,
    package_dir=PACKAGE_DIR,
    package_data={"robot_rl": ["configs/*.yaml"], "robot_rl.tasks": ["task_files/*.yaml"]},   # sim: the FR3 model comes from franky-sim
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*_launch.py") + glob("launch/*.yaml")),
    ],
    zip_safe=False,
    entry_points={
        "console_scripts": [
            "robot-rl = robot_rl.cli:main",
            "robot-rl-realsense = robot_rl.drivers.realsense_node:main",
            "robot-rl-robotiq = robot_rl.drivers.robotiq_node:main",
            "robot-rl-ft = robot_rl.drivers.ft_node:main",
            "robot-rl-spacemouse = robot_rl.drivers.spacemouse_node:main",
            "robot-rl-keyboard = robot_rl.drivers.keyboard_node:main",
            "robot-rl-franka = robot_rl.drivers.franka_node:main",
            "robot-rl-franka-sim = robot_rl.drivers.franka_sim:main",
            "robot-rl-widowx = robot_rl.drivers.widowx_node:main",
            "robot-rl-twin = robot_rl.sim.twin_node:main",
            "robot-rl-controller = robot_rl.controllers.node:main",
            "robot-rl-actor = robot_rl.tasks.ros.actor_node:main",
            "robot-rl-learner = robot_rl.tasks.ros.learner_node:main",
        ],
        # The twin tasks, found by robot_rl.run_env.task_provider (the core never imports tasks/).
        "robot_rl.task_providers": ["twin = robot_rl.tasks.provider"],
    },
)
