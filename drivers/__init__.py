"""One module per device (the library's wrapper, no ROS) and its ROS 2 node (`*_node.py`); peers/ holds the protocol peers tests use."""
