"""The event loop: requests, replicas and the simulation that wires them."""

from simulator.engine.simulation import SimulationOutput, simulate

__all__ = ["SimulationOutput", "simulate"]
