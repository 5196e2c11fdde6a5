"""`phijax recipe`'s config root, `Recipe`: an ordered list of stages wired by run directory (pure: no jax).

    root: runs/tiny-recipe
    stages:
      - {name: pretrain, command: train, config: [configs/tiny/pretrain.yaml]}
      - {name: sft, command: train, config: [configs/tiny/sft.yaml]}            # starts from pretrain
      - {name: pts, command: pts, config: [configs/tiny/pts.yaml]}              # samples the sft model
      - {name: dpo, command: dpo, config: [configs/tiny/dpo.yaml]}              # sft model, pts pairs
      - {name: eval-dpo, command: eval, config: [configs/tiny/recipe-eval.yaml]}

Each stage runs in its own run directory `<root>/<name>`; `phijax.recipe.run.wiring` turns the stage
order into the overrides that connect them. Overrides and args may name `${root}`, `${run_dir}` (this
stage's directory) and `${stages.NAME}` (another stage's directory).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from phijax.errors import ConfigError

COMMANDS = ("synth", "decontam", "train", "dpo", "pts", "eval")
"""Stage commands, as `phijax <command>` spells them (`decontam` is `phijax data decontam`)."""

MODEL_COMMANDS = ("train", "dpo")
"""Commands whose run directory holds a model the next stages start from or sample."""

PREVIOUS = "previous"
NONE = "none"


@dataclass(frozen=True)
class StageSpec:
    """One stage: a phijax command, its configs and overrides, and what it reads from earlier stages."""

    name: str = field(metadata={"help": "the stage's name: its run dir is <root>/<name>; `--redo NAME` reruns it"})
    command: str = field(metadata={"help": "synth, decontam, train, dpo, pts or eval (`phijax <command>`)"})
    config: tuple[str, ...] = field(default=(), metadata={"help": "YAML files of the command, layered in order"})
    overrides: tuple[str, ...] = field(
        default=(), metadata={"help": "the command's key.sub=value overrides (after the wiring; may use ${root})"}
    )
    args: tuple[str, ...] = field(
        default=(), metadata={"help": "other command-line arguments, e.g. decontam's --input/--benchmark flags"}
    )
    after: str = field(
        default=PREVIOUS,
        metadata={
            "help": "the stage whose model this one starts from (train, dpo) or samples (pts, eval, synth): "
            "`previous` = the nearest earlier train/dpo stage, `none` = no model, or a stage name"
        },
    )
    pairs_from: str = field(
        default=PREVIOUS,
        metadata={"help": "dpo: the pts stage whose pairs it trains on (`previous` = the nearest earlier pts)"},
    )


@dataclass(frozen=True)
class Recipe:
    """`phijax recipe`: the stages of a whole training recipe, run in order, resumable, with a summary."""

    root: str = field(default="runs/recipe", metadata={"help": "directory holding every stage's run dir"})
    stages: tuple[StageSpec, ...] = field(default=(), metadata={"help": "the stages, run in order (see StageSpec)"})
    plot: bool = field(default=True, metadata={"help": "draw <root>/recipe.png at the end (needs phijax[plot])"})

    def __post_init__(self) -> None:
        if not self.stages:
            raise ConfigError("the recipe has no stages: add `stages: [{name: ..., command: ..., config: [...]}]`")
        names: set[str] = set()
        for i, stage in enumerate(self.stages):
            if stage.command not in COMMANDS:
                raise ConfigError(
                    f"stages[{i}] ({stage.name}): unknown command `{stage.command}`; "
                    f"choose one of {', '.join(COMMANDS)}"
                )
            if not stage.name or "/" in stage.name or stage.name.startswith("."):
                raise ConfigError(f"stages[{i}]: name {stage.name!r} must be a plain directory name")
            if stage.name in names:
                raise ConfigError(f"stages[{i}] repeats the name `{stage.name}`: stage names must be unique")
            for ref, key in ((stage.after, "after"), (stage.pairs_from, "pairs_from")):
                if ref not in (PREVIOUS, NONE) and ref not in names:
                    raise ConfigError(
                        f"stages[{i}] ({stage.name}): {key} `{ref}` is not an earlier stage; "
                        f"earlier stages: {', '.join(sorted(names)) or 'none'}"
                    )
            names.add(stage.name)

    def stage(self, name: str) -> StageSpec:
        """The stage called `name`; ConfigError listing the names otherwise."""
        for stage in self.stages:
            if stage.name == name:
                return stage
        raise ConfigError(f"no stage `{name}` in the recipe: choose one of {', '.join(s.name for s in self.stages)}")
