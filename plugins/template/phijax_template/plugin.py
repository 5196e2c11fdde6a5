"""The plugin module named by the `phijax` entry point: hook implementations only.

Keep this module cheap to import (phijax imports it whenever it loads plugins): register factories,
and leave heavy imports and file I/O to the factories and the components they build.
"""

from phijax.plugins import hookimpl
from phijax_template.sums import SumsEvaluator, SumsSource


@hookimpl
def phijax_register_data_sources(register):
    register("sums", SumsSource)


@hookimpl
def phijax_register_evaluators(register):
    register("sums_exact_match", SumsEvaluator)
