"""A tiny random Qwen2 with a miniature byte-level Qwen2 tokenizer, and the smoke run's data sets.

verl's agent loop needs a real tokenizer family: transformers 5 loads a qwen2 model's tokenizer as
``Qwen2Tokenizer`` (byte-level BPE), and verl's Qwen token builder needs "\\n" as one token and ``<|im_end|>``.
So the tokenizer is a real one with the 256 byte symbols, no merges and Qwen's ChatML special tokens.
Everything is built offline, deterministically, in about a second.
"""

from __future__ import annotations

import random
from pathlib import Path

# imported here, not in build_model: the tests build models from several threads, and transformers' lazy
# import is not thread-safe ("cannot import name 'AutoTokenizer'")
import torch
from tokenizers import pre_tokenizers
from transformers import AutoTokenizer, Qwen2Config, Qwen2ForCausalLM
from transformers.models.qwen2.tokenization_qwen2 import Qwen2Tokenizer

SMOKE_SOURCE = "cwgrpo/smoke"  # training rows: tools.cpu.smoke_reward adds a reward with spread
CHATML = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_model(path: Path, seed: int = 0) -> Path:
    """Write a 2-layer, width-64 Qwen2 (about 0.1M parameters) and its tokenizer to ``path``."""
    path = Path(path)
    vocab = {symbol: i for i, symbol in enumerate(sorted(pre_tokenizers.ByteLevel.alphabet()))}
    for special in ("<|endoftext|>", "<|im_start|>", "<|im_end|>"):
        vocab[special] = len(vocab)
    tokenizer = Qwen2Tokenizer(
        vocab=vocab, merges=[], eos_token="<|im_end|>", pad_token="<|endoftext|>", unk_token="<|endoftext|>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
    )
    tokenizer.chat_template = CHATML
    tokenizer.save_pretrained(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    if len(tokenizer.encode("\n", add_special_tokens=False)) != 1:
        raise RuntimeError("the tiny tokenizer must encode a newline as one token (verl's agent loop needs it)")
    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=len(vocab), hidden_size=64, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4,
        num_key_value_heads=2, max_position_embeddings=512, tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.eos_token_id,
    )
    model = Qwen2ForCausalLM(config).float()
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.save_pretrained(path)
    return path


def _row(data_source: str, question: str, answer: str, split: str, index: int) -> dict:
    return {
        "data_source": data_source,
        "prompt": [{"role": "user", "content": f"{question} Put the final answer in \\boxed{{}}."}],
        "ability": "math",
        "reward_model": {"style": "rule", "ground_truth": answer},
        "extra_info": {"split": split, "index": index, "answer": answer},
    }


def write_data(directory: Path, train_rows: int = 32, eval_rows: int = 1, seed: int = 0) -> Path:
    """``open_rs.parquet`` (addition problems, source ``cwgrpo/smoke``) and the five evaluation files that
    ``examples/train.sh`` expects, with their real data sources, so validation scores with the project's reward."""
    import pandas as pd

    from cwgrpo_verl import data_sets

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)

    def addition(count):
        pairs = [(rng.randint(10, 49), rng.randint(10, 49)) for _ in range(count)]
        return [(f"What is {a} + {b}?", str(a + b)) for a, b in pairs]

    train = [_row(SMOKE_SOURCE, q, a, "train", i) for i, (q, a) in enumerate(addition(train_rows))]
    pd.DataFrame(train).to_parquet(directory / "open_rs.parquet")
    for dataset in data_sets.EVALUATION:  # what examples/train.sh reads
        rows = [_row(dataset.data_source, q, a, "test", i) for i, (q, a) in enumerate(addition(eval_rows))]
        pd.DataFrame(rows).to_parquet(directory / f"{dataset.key}.parquet")
    return directory
