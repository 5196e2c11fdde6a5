"""Tokenizers and the training data pipeline: sources → mixture → tokenize → pack → global batch."""

from phijax.data.tokenizer import Tokenizer, load_tokenizer

__all__ = ["Tokenizer", "load_tokenizer"]
