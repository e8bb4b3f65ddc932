"""The real WidowX graph on a system ROS 2 Jazzy:  ros2 launch robot_rl widowx_launch.py

Same nodes and parameters as `robot-rl up widowx` (tasks/bringup.py PROFILES["widowx"]):
the WidowX driver and the controller node under /widowx, the RealSense camera and the
SpaceMouse teleop node. Parameters: widowx.yaml.
"""
import os

from ament_index_python.packages import get_package_share_directory
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def generate_launch_description():
    default_params = os.path.join(get_package_share_directory("robot_rl"), "launch", "widowx.yaml")
    params = LaunchConfiguration("params_file")
    return LaunchDescription([
        DeclareLaunchArgument("params_file", default_value=default_params,
                              description="ROS 2 parameter file of the WidowX graph"),
        # The driver takes the controller node's validated, box-clipped target.
        Node(package="robot_rl", executable="robot-rl-widowx", name="widowx", namespace="/widowx",
             parameters=[params], output="screen",
             remappings=[("equilibrium_pose", "controller/equilibrium_pose")]),
        Node(package="robot_rl", executable="robot-rl-controller", name="controller", namespace="/widowx",
             parameters=[params], output="screen"),
        Node(package="robot_rl", executable="robot-rl-realsense", name="realsense_camera", namespace="/",
             parameters=[params], output="screen"),
        Node(package="robot_rl", executable="robot-rl-spacemouse", name="spacemouse", namespace="/",
             parameters=[params], output="screen"),
    ])
