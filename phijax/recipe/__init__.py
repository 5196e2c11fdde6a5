"""`phijax recipe`: a whole training recipe as stages wired by run directory (see docs/recipe.md).

`config` (the `Recipe` root, pure), `wiring` (how stages connect, pure), `run` (the runner: markers,
resume, --redo), `summary` (the table and recipe.json), `plot` (the figures; matplotlib on demand).
"""
