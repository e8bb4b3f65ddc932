"""The Cartesian impedance law, its safety limits, IK, rotations (numpy only), and the controller node (the one rclpy module)."""
