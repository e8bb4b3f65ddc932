"""The ROS layer of the tasks: the env's ROS backend, the actor and learner nodes, the
process launcher and `robot-rl up` bring-up (docs/architecture.md)."""
