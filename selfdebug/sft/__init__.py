"""Supervised fine-tuning (LeDex §2.2): examples from a collection, the loss mask, the trainer."""

from selfdebug.sft.examples import KINDS, Example, ExampleError, build_examples, example_counts
from selfdebug.sft.tokenize import masked_text, tokenize_example, tokenize_examples, unmasked_text

__all__ = ["KINDS", "Example", "ExampleError", "build_examples", "example_counts", "masked_text",
           "tokenize_example", "tokenize_examples", "unmasked_text"]
