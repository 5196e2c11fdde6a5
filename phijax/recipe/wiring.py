"""How stages are connected: the one table of overrides the runner adds to each stage's command.

A stage runs in `<root>/<name>` and reads what earlier stages wrote there. Each command's row names the
config key (first one its job root accepts, so the table survives a key being renamed) and the value:

| command  | where it writes                  | the model it starts from / samples | more                          |
|----------|----------------------------------|------------------------------------|-------------------------------|
| train    | run_dir=${run_dir}               | checkpoint.init_from=<after>       |                               |
| dpo      | run_dir=${run_dir}               | checkpoint.init_from=<after>       | dpo.pairs=[<pts>/pairs.jsonl] |
| pts      | output=${run_dir}/pairs.jsonl    | policy.checkpoint=<after>          |                               |
| eval     | output_dir=${run_dir}            | policy.checkpoint=<after>          |                               |
| synth    | synth.cache_dir=${run_dir}/cache | policy.checkpoint=<after>, if any  |                               |
| decontam | --out ${run_dir} (an argument)   |                                    |                               |

`<after>` is the stage's `after` (default: the nearest earlier train/dpo stage), `<pts>` its
`pairs_from` (default: the nearest earlier pts stage). Pure: no jax.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from phijax.errors import ConfigError
from phijax.recipe.config import MODEL_COMMANDS, NONE, PREVIOUS, Recipe, StageSpec

PAIRS_FILE = "pairs.jsonl"
"""Where a pts stage writes its pairs, inside its run dir (the summary goes beside: pairs.summary.json)."""

OUTPUT_KEYS: dict[str, tuple[tuple[str, ...], str]] = {
    "train": (("run_dir",), "${run_dir}"),
    "dpo": (("run_dir",), "${run_dir}"),
    "pts": (("output", "pts.output"), "${run_dir}/" + PAIRS_FILE),
    "eval": (("output_dir",), "${run_dir}"),
    "synth": (("synth.cache_dir",), "${run_dir}/cache"),
}
"""command → (candidate keys, value) of where the stage writes."""

MODEL_KEYS: dict[str, tuple[str, ...]] = {
    "train": ("checkpoint.init_from",),
    "dpo": ("checkpoint.init_from",),
    "pts": ("policy.checkpoint", "pts.checkpoint"),
    "eval": ("policy.checkpoint",),
    "synth": ("policy.checkpoint",),
}
"""command → candidate keys of the model it starts from or samples."""

PAIRS_KEYS: tuple[str, ...] = ("dpo.pairs",)
PLACEHOLDER = re.compile(r"\$\{([^}]+)\}")


@dataclass(frozen=True)
class Wiring:
    """What the runner adds to one stage: overrides, arguments, and the stages it reads from."""

    overrides: tuple[str, ...]
    args: tuple[str, ...]
    depends: tuple[str, ...]


def wiring(recipe: Recipe, index: int, accepted: set[str] | None) -> Wiring:
    """The wiring of stage `index`; `accepted`: the keys its job root accepts (None: take the first key)."""
    stage = recipe.stages[index]
    model = model_stage(recipe, index)
    overrides: list[str] = []
    args: list[str] = []
    if stage.command in OUTPUT_KEYS:
        keys, value = OUTPUT_KEYS[stage.command]
        overrides.append(f"{_key(keys, accepted)}={value}")
    else:  # decontam: flags, not a config root
        args += ["--out", "${run_dir}"]
    if model is not None and stage.command in MODEL_KEYS:
        overrides.append(f"{_key(MODEL_KEYS[stage.command], accepted)}=${{stages.{model}}}")
    depends = [model] if model is not None else []
    if stage.command == "dpo":
        pts = pairs_stage(recipe, index)
        overrides.append(f"{_key(PAIRS_KEYS, accepted)}=[${{stages.{pts}}}/{PAIRS_FILE}]")
        depends.append(pts)
    for text in (*stage.overrides, *stage.args):
        depends += [ref.split(".", 1)[1] for ref in PLACEHOLDER.findall(text) if ref.startswith("stages.")]
    return Wiring(tuple(overrides), tuple(args), tuple(dict.fromkeys(depends)))


def model_stage(recipe: Recipe, index: int) -> str | None:
    """The stage whose model stage `index` starts from or samples (None: no model, e.g. pretraining)."""
    stage = recipe.stages[index]
    if stage.after == NONE or stage.command == "decontam":
        return None
    if stage.after != PREVIOUS:
        return stage.after
    earlier = [s.name for s in recipe.stages[:index] if s.command in MODEL_COMMANDS]
    if not earlier and stage.command in ("pts", "eval", "dpo"):
        raise ConfigError(
            f"stage {stage.name} ({stage.command}) needs a model: put a train stage before it or name one with `after`"
        )
    return earlier[-1] if earlier else None


def pairs_stage(recipe: Recipe, index: int) -> str:
    """The pts stage whose pairs DPO stage `index` trains on."""
    stage = recipe.stages[index]
    if stage.pairs_from not in (PREVIOUS, NONE):
        return stage.pairs_from
    earlier = [s.name for s in recipe.stages[:index] if s.command == "pts"]
    if not earlier:
        raise ConfigError(f"dpo stage {stage.name} needs pairs: put a pts stage before it or name one with pairs_from")
    return earlier[-1]


def substitute(text: str, root: str, run_dir: str, names: set[str], where: str) -> str:
    """`text` with `${root}`, `${run_dir}` and `${stages.NAME}` replaced by directories."""

    def value(match: re.Match[str]) -> str:
        ref = match.group(1)
        if ref == "root":
            return root
        if ref == "run_dir":
            return run_dir
        if ref.startswith("stages.") and ref[len("stages.") :] in names:
            return f"{root}/{ref[len('stages.') :]}"
        raise ConfigError(
            f"{where}: unknown placeholder ${{{ref}}} in {text!r}; use ${{root}}, ${{run_dir}} or "
            f"${{stages.NAME}} with NAME one of {', '.join(sorted(names))}"
        )

    return PLACEHOLDER.sub(value, text)


def _key(candidates: tuple[str, ...], accepted: set[str] | None) -> str:
    if accepted is not None:
        for key in candidates:
            if key in accepted:
                return key
    return candidates[0]


def stage_label(stage: StageSpec) -> str:
    """`name (command)` for messages."""
    return f"{stage.name} ({stage.command})"
