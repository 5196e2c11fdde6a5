"""Exceptions of the plugin system; each is a `PhijaxError`, so the CLI prints one line and exits 2."""

from __future__ import annotations

from phijax.errors import PhijaxError


class PluginError(PhijaxError):
    """A problem with a plugin or with a component that a plugin registered."""


class PluginValidationError(PluginError):
    """A plugin object that cannot be registered: unknown hook name, bad hook signature, bad name."""


class UnknownComponentError(PluginError):
    """A config names a component that no loaded plugin registered."""


class DuplicateComponentError(PluginError):
    """Two plugins registered the same name for the same kind of component."""


class ComponentError(PluginError):
    """A component failed when it was built or used; the message names its plugin."""
