"""Built-in synthetic-data generators (Phi-4's methods), one module each; prompts under `templates/`.

Registered through `phijax_register_synthetic_generators`. `decontam` is no Phi-4 generation method
but the filter its data passes before training (records overlapping benchmark items are dropped).
"""

from __future__ import annotations

from phijax.plugins import hookimpl


@hookimpl
def phijax_register_synthetic_generators(register) -> None:
    # imported here, not at module top: loading plugins stays cheap (no sandbox, no regex compilation)
    from phijax_plugins.generators.decontam import Decontam
    from phijax_plugins.generators.instruction_reversal import InstructionReversal
    from phijax_plugins.generators.plurality_filter import PluralityFilter
    from phijax_plugins.generators.qa_extraction import QAExtraction
    from phijax_plugins.generators.rewrite import Rewrite
    from phijax_plugins.generators.seed_curation import SeedCuration
    from phijax_plugins.generators.self_revision import SelfRevision
    from phijax_plugins.generators.to_chat import ToChat

    register("seed_curation", SeedCuration)
    register("rewrite", Rewrite)
    register("self_revision", SelfRevision)
    register("instruction_reversal", InstructionReversal)
    register("qa_extraction", QAExtraction)
    register("plurality_filter", PluralityFilter)
    register("to_chat", ToChat)
    register("decontam", Decontam)
