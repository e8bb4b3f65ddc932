"""robot_rl: real-world robot RL on ROS 2 + PyTorch, with a MuJoCo twin.

One package. The learning core is this folder; the design card's other top-level folders
(controllers/, drivers/, sim/, tasks/, bench/) are its subpackages robot_rl.controllers,
robot_rl.drivers, ... An install (pip, a wheel, colcon) puts them there (setup.py
package_dir). In a source checkout they sit beside this folder, and the line below lets the
same names resolve there, so `PYTHONPATH=. python -m robot_rl.tasks.ros.bringup` works with
no install. Only a checkout (package.xml beside this folder) is searched, never site-packages.
"""
import os as _os

__version__ = "0.1.0"

_checkout = _os.path.dirname(_os.path.dirname(_os.path.abspath(__file__)))
if (_os.path.isfile(_os.path.join(_checkout, "package.xml"))
        and _os.path.isfile(_os.path.join(_checkout, "tasks", "__init__.py"))
        and _checkout not in __path__):
    __path__.append(_checkout)
