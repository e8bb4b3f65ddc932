"""Envs from outside robot_rl: any gymnasium env, mapped onto the agent's inputs (gym_adapter)."""
