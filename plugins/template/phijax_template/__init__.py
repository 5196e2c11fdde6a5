"""Example phijax plugin: the `sums` data source and the `sums_exact_match` evaluator."""
