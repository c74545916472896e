"""Errors that are the user's to fix, reported as one sentence without a traceback."""


class ServesimError(Exception):
    """Base class for errors servesim reports to users."""


class ConfigError(ServesimError, ValueError):
    """A scenario value is invalid. The message names the key and what is allowed."""
