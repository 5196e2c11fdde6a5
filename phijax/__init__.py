"""phijax: the Phi-4 training recipe in JAX (pretraining, midtraining, SFT, DPO on PTS pairs)."""

__version__ = "0.1.0"
