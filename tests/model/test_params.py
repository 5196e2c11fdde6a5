"""Parameter counts from shapes alone."""

from phijax.cli import main
from phijax.model.config import PRESETS, preset_config
from phijax.model.params import count_parameters


def closed_form(v, d, layers, h, kv, hd, f, **_):
    per_layer = d * (h + 2 * kv) * hd + h * hd * d + 3 * d * f + 2 * d
    return layers * per_layer + 2 * v * d + d


def test_phi4_14b_cli_prints_the_published_total(capsys):
    assert main(["params", "--preset", "phi4-14b"]) == 0
    out = capsys.readouterr().out
    assert "14,659,507,200" in out.splitlines()[-1]


def test_every_preset_count_matches_the_closed_form():
    for name, p in PRESETS.items():
        counts = count_parameters(preset_config(name))
        expected = closed_form(
            p["vocab_size"],
            p["hidden_size"],
            p["num_layers"],
            p["num_heads"],
            p["num_kv_heads"],
            p["head_dim"],
            p["intermediate_size"],
        )
        assert counts["total"] == expected, name
        assert counts["total"] == sum(v for k, v in counts.items() if k != "total")


def test_unknown_preset_is_one_line_with_a_suggestion(capsys):
    assert main(["params", "--preset", "phi4-14"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "did you mean `phi4-14b`" in err
