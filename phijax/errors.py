"""Exception types that mean "the user gave bad input".

The CLI turns any `PhijaxError` into one line on stderr and exit status 2; everything else is a bug
and keeps its traceback. Each message names the offending thing and the fix.
"""


class PhijaxError(Exception):
    """Bad input from the user (config, data file, checkpoint, plugin, CLI argument)."""


class ConfigError(PhijaxError):
    """A config file or override that does not match the schema."""


class CheckpointError(PhijaxError):
    """A checkpoint or HF directory that cannot be read or does not match the model."""
