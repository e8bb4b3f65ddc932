"""The WidowX twin graph on a system ROS 2 Jazzy:  ros2 launch robot_rl widowx_twin_launch.py

Same nodes and parameters as `robot-rl up widowx_twin` (tasks/bringup.py PROFILES["widowx_twin"]):
the MuJoCo WidowX 250 twin node under /widowx and the SpaceMouse teleop node (which exits with
a clear message when no SpaceMouse is attached; the twin runs on). Parameters: widowx_twin.yaml.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def generate_launch_description():
    default_params = os.path.join(get_package_share_directory("robot_rl"), "launch", "widowx_twin.yaml")
    params = LaunchConfiguration("params_file")
    return LaunchDescription([
        DeclareLaunchArgument("params_file", default_value=default_params,
                              description="ROS 2 parameter file of the WidowX twin graph"),
        Node(package="robot_rl", executable="robot-rl-twin", name="twin", namespace="/widowx",
             parameters=[params], output="screen"),
        Node(package="robot_rl", executable="robot-rl-spacemouse", name="spacemouse", namespace="/",
             parameters=[params], output="screen"),
    ])
