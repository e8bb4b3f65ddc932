"""Agents: SAC/RLPD with the HIL-SERL grasp critic, and behaviour cloning."""
from robot_rl.agents.bc import BCAgent, BCConfig
from robot_rl.agents.sac import SACAgent, SACConfig

__all__ = ["BCAgent", "BCConfig", "SACAgent", "SACConfig"]
