"""A tiny random-weight causal LM (Qwen2 architecture) with a locally trained byte-level BPE tokenizer,
built fully offline in a few seconds: the model for unit tests and the smoke profile.

CLI: ``python -m selfdebug.generate.tiny OUT_DIR [--seed N] [--no-chat-template]``."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

log = logging.getLogger(__name__)

SPECIAL_TOKENS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
# Qwen-style (ChatML) template, so the tiny model exercises the same path as the embedded model.
CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
MARKER = "selfdebug_tiny.json"

_CORPUS = [
    "def add(a, b):\n    return a + b\n",
    "def is_prime(n):\n    if n < 2:\n        return False\n    for i in range(2, int(n ** 0.5) + 1):\n"
    "        if n % i == 0:\n            return False\n    return True\n",
    "def fib(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n",
    "class Stack:\n    def __init__(self):\n        self.items = []\n\n    def push(self, x):\n"
    "        self.items.append(x)\n\n    def pop(self):\n        return self.items.pop()\n",
    "import math\n\ndef area(r):\n    return math.pi * r * r\n",
    "def reverse_words(s: str) -> str:\n    return ' '.join(reversed(s.split()))\n",
    "def count_vowels(text):\n    return sum(1 for c in text.lower() if c in 'aeiou')\n",
    "assert add(1, 2) == 3\nassert is_prime(7) is True\nassert fib(10) == 55\n",
    "for i in range(10):\n    if i % 2 == 0:\n        print(i)\n    else:\n        continue\n",
    "def max_subarray(nums):\n    best = cur = nums[0]\n    for x in nums[1:]:\n        cur = max(x, cur + x)\n"
    "        best = max(best, cur)\n    return best\n",
    "try:\n    value = int(input())\nexcept ValueError as e:\n    print('error:', e)\n",
    "with open('data.txt') as f:\n    lines = [line.strip() for line in f]\n",
    "Write a Python function to check whether a number is even.\n",
    "The code above is wrong because it returns None when the list is empty.\n",
    "Traceback (most recent call last):\nAssertionError: expect f(3) == 9, but was 6\n",
    "```python\ndef solve(xs):\n    return sorted(set(xs))\n```\n",
]


def _train_tokenizer(vocab_size: int):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(_CORPUS * 4, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        padding_side="left",
        clean_up_tokenization_spaces=False,
    )


def build_tiny_model(
    path: str | Path,
    seed: int = 0,
    chat_template: bool = True,
    hidden_size: int = 64,
    num_layers: int = 2,
    num_heads: int = 4,
    vocab_size: int = 512,
) -> Path:
    """Create the tiny model folder at ``path`` (overwriting files there) and return it.
    Deterministic for a given seed. ``chat_template=False`` gives a "base model" that uses StarChat."""
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    tok = _train_tokenizer(vocab_size)
    if chat_template:
        tok.chat_template = CHAT_TEMPLATE
    eos_ids = [tok.convert_tokens_to_ids("<|im_end|>"), tok.convert_tokens_to_ids("<|endoftext|>")]
    config = Qwen2Config(
        vocab_size=len(tok),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=num_layers,
        num_attention_heads=num_heads,
        num_key_value_heads=max(1, num_heads // 2),
        max_position_embeddings=4096,
        tie_word_embeddings=False,
        bos_token_id=None,
        eos_token_id=eos_ids,
        pad_token_id=tok.pad_token_id,
    )
    torch.manual_seed(seed)
    model = Qwen2ForCausalLM(config).to(torch.float32).eval()
    # A random init gives near-uniform logits: scale the output so sampling is not pure noise and
    # greedy decoding is stable across batch layouts (ties would make batched vs alone differ).
    with torch.no_grad():
        model.model.embed_tokens.weight.mul_(15.0)
    model.generation_config = GenerationConfig(
        eos_token_id=eos_ids, pad_token_id=tok.pad_token_id, do_sample=False
    )
    model.save_pretrained(path, safe_serialization=True)
    tok.save_pretrained(path)
    (path / MARKER).write_text(json.dumps({"seed": seed, "chat_template": chat_template}) + "\n")
    log.info("tiny model (%d params) written to %s", sum(p.numel() for p in model.parameters()), path)
    return path


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description="Build the tiny random-weight test model.")
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-chat-template", action="store_true", help="a base model (StarChat format)")
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    print(build_tiny_model(args.out_dir, seed=args.seed, chat_template=not args.no_chat_template))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
