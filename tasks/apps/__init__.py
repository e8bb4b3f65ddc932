"""The operator tools and apps built on the env and the ROS layer: deploy, demo and label
recording, the setup checks (docs/architecture.md)."""
