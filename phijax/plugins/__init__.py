"""Plugin system: pluggy markers; components are looked up through the registry.

- `hookspecs`: the hooks a plugin implements (`phijax_register_<kind>(register)`), documented;
- `protocols`: what each kind of component must provide;
- `manager`: entry-point discovery (group `phijax`), one `try` per plugin, env-var filters;
- `registry`: components by kind and name (`get_registry().create(kind, name, **options)`);
- `cli`: `phijax plugins [--json]` and plugin-added commands;
- `testing`: the `phijax_registry` pytest fixture for plugin authors.

Plugins write `from phijax.plugins import hookimpl` and decorate their hook functions with it.
"""

import pluggy

hookspec = pluggy.HookspecMarker("phijax")
hookimpl = pluggy.HookimplMarker("phijax")
