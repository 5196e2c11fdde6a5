"""Training stages. Each is thin: what it checks in the config and how its batches are trained on.

Pretraining and midtraining share the next-token loss and the data pipeline; midtraining differs
by its config (RoPE base 250K, 16K sequences, lr / 10, long-context mixture) and must start from a
pretraining checkpoint.
"""

from __future__ import annotations

from typing import Callable

from phijax.config import Config
from phijax.stages import dpo, midtrain, pretrain, sft

# stage name → validation of a config for that stage (raises ConfigError)
STAGES: dict[str, Callable[[Config], None]] = {
    "pretrain": pretrain.validate,
    "midtrain": midtrain.validate,
    "sft": sft.validate,
    "dpo": dpo.validate,
}
