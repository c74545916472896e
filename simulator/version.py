"""servesim's version, at the bottom of the import graph so every layer may name it."""

__version__ = "0.1.0"
