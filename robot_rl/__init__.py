"""robot_rl: real-world robot RL on ROS 2 + PyTorch, with a MuJoCo twin."""
__version__ = "0.1.0"
