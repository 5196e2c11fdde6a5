"""Package layout that pyproject.toml cannot express: the `plugins/` folder installs as `phijax_plugins`.

A top-level `plugins` package would collide with other projects' `plugins`; setuptools' `find`
cannot rename a folder, so the mapping is added here. Everything else is in pyproject.toml.
`plugins/template/` is a separate, separately installable package and is not included.
"""

from setuptools import find_namespace_packages, setup

setup(
    packages=find_namespace_packages(include=["phijax", "phijax.*"], exclude=["*.__pycache__"])
    + ["phijax_plugins", "phijax_plugins.evaluators", "phijax_plugins.generators"],
    package_dir={"phijax_plugins": "plugins"},
    package_data={"phijax_plugins.generators": ["templates/*.txt"]},  # the prompt templates
)
