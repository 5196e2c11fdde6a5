"""Plugin system: pluggy markers; components are looked up through the registry."""

import pluggy

hookspec = pluggy.HookspecMarker("phijax")
hookimpl = pluggy.HookimplMarker("phijax")
