"""Any rig on a system ROS 2 Jazzy:  ros2 launch robot_rl rig_launch.py rig:=/path/to/my_rig.yaml

The same nodes, names, namespaces, remappings and parameters as `robot-rl up my_rig.yaml`:
both read the rig file through tasks.ros.rig. The profiles' launch files (twin_launch.py, ...)
are this one with their shipped rig file as the default.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def rig_nodes(context, *args, **kwargs):
    from robot_rl.tasks.ros.rig import load_rig

    rig = load_rig(LaunchConfiguration("rig").perform(context))
    return [Node(package="robot_rl", executable=spec.executable, name=spec.name, namespace=spec.namespace,
                 parameters=[dict(spec.parameters)], remappings=list(spec.remappings), output="screen")
            for spec in rig.nodes]


def rig_launch_description(default_rig: str = "") -> LaunchDescription:
    return LaunchDescription([
        DeclareLaunchArgument("rig", default_value=default_rig, description="rig file (tasks/ros/rig.py)"),
        OpaqueFunction(function=rig_nodes),
    ])


def generate_launch_description():
    return rig_launch_description()


def shipped_rig(profile: str) -> str:
    return os.path.join(get_package_share_directory("robot_rl"), "launch", f"{profile}.yaml")
