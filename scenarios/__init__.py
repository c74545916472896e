"""The hydra scenario tree, shipped in the wheel as ``simulator.scenarios``."""
