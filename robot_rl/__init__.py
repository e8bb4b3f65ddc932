"""robot_rl: real-world robot RL on ROS 2 + PyTorch, with a MuJoCo twin.

One package. The learning core is this folder; the design card's other Python folders
(controllers/, drivers/, sim/, tasks/, bench/) are its subpackages robot_rl.controllers,
robot_rl.drivers, ... An install (pip, a wheel, colcon) puts them there (setup.py
package_dir). In a source checkout they sit beside this folder, and a finder added below maps
exactly those five names to them, so `PYTHONPATH=. python -m robot_rl.tasks.ros.bringup` works
with no install. It is added only in a checkout (package.xml beside this folder), never for an
installed copy, and it maps nothing else (no robot_rl.setup, robot_rl.tests).
"""
from __future__ import annotations

import importlib.util
import os
import sys

__version__ = "0.1.0"

CHECKOUT_FOLDERS = ("controllers", "drivers", "sim", "tasks", "bench")


def checkout_root() -> str | None:
    """The source checkout this package runs from (the folder holding package.xml and the
    folders beside robot_rl/), or None for an installed copy: a child process started from a
    checkout may run there; an installed one must not (its folder would shadow site-packages)."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    beside = all(os.path.isfile(os.path.join(root, f, "__init__.py")) for f in CHECKOUT_FOLDERS)
    return root if beside and os.path.isfile(os.path.join(root, "package.xml")) else None


class CheckoutFolders:
    """Import finder: robot_rl.<folder> -> <checkout>/<folder>/ for the five folders only; their
    submodules then resolve through the package's own __path__, as for any package. The same
    mapping an editable install writes (and which finds them first when there is one)."""

    def __init__(self, root: str):
        self.root = root

    def find_spec(self, fullname: str, path=None, target=None):
        package, _, name = fullname.partition(".")
        if package != __name__ or name not in CHECKOUT_FOLDERS:
            return None
        folder = os.path.join(self.root, name)
        return importlib.util.spec_from_file_location(fullname, os.path.join(folder, "__init__.py"),
                                                      submodule_search_locations=[folder])


_root = checkout_root()
if _root is not None and not any(isinstance(f, CheckoutFolders) and f.root == _root for f in sys.meta_path):
    sys.meta_path.append(CheckoutFolders(_root))
