"""`python -m phijax.cli ARGS`: what the `phijax` console script runs (the recipe's stages use it)."""

import sys

from phijax.cli import main

sys.exit(main())
