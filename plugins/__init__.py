"""phijax's built-in plugins, installed under the import name `phijax_plugins`.

Each module here is an entry point of the `phijax` distribution in the `phijax` group (see
pyproject.toml), loaded the same way as a third-party plugin. The core never imports these modules:
it reaches their components through `phijax.plugins.registry`.
"""
