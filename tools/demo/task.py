"""The synthetic verifiable task: two-digit addition answered in ``\\boxed{}``, and its offline tokenizer.

A prompt is ``"07+45="`` (operands zero-padded so every prompt has the same length: no left padding, so the
sampler and the update need no attention mask). The reference response is a short think block that restates
the problem, then the boxed sum::

    <think>\\n07+45\\n</think>\\n\\boxed{52}<eos>

so the authors' format reward (``"\\n</think>\\n"`` exactly once) and math-verify's boxed extraction both apply
to it unchanged. Carries make the answer digits the hard, "forking" tokens; the rest is near-deterministic,
which is the shape of a real reasoning trace at toy scale (many confident tokens, a few uncertain ones).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast

DATA_SOURCE = "cwgrpo/demo_addition"  # not an evaluation set: scored in training mode (mode="train")
PAD, EOS = "<pad>", "<eos>"
WORDS = ["\\boxed{", "<think>", "</think>"]
CHARS = list("0123456789+=}\n")
MAX_OPERAND = 49  # 0..49: a tiny model reaches moderate accuracy after a few hundred supervised steps


def build_tokenizer() -> PreTrainedTokenizerFast:
    """A word-level tokenizer built in memory (no hub download): the multi-character tags are single tokens."""
    vocab = {tok: i for i, tok in enumerate([PAD, EOS, *WORDS, *CHARS])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token=PAD))
    pattern = "|".join(w.replace("\\", "\\\\").replace("{", "\\{") for w in WORDS) + "|[\\s\\S]"
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(pattern), behavior="isolated")
    tok.decoder = decoders.Fuse()  # concatenate tokens back without spaces
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token=PAD, eos_token=EOS)


@dataclass(frozen=True)
class Problem:
    a: int
    b: int

    @property
    def prompt(self) -> str:
        return f"{self.a:02d}+{self.b:02d}="

    @property
    def answer(self) -> str:
        return str(self.a + self.b)

    @property
    def response(self) -> str:
        """The reference completion used for the supervised warm start (without the eos token)."""
        return f"<think>\n{self.a:02d}+{self.b:02d}\n</think>\n\\boxed{{{self.answer}}}"


def sample_problems(n: int, generator: torch.Generator) -> list[Problem]:
    ab = torch.randint(0, MAX_OPERAND + 1, (n, 2), generator=generator).tolist()
    return [Problem(a, b) for a, b in ab]


def encode_prompts(tokenizer, problems: list[Problem]) -> torch.Tensor:
    """(n, prompt_len) token ids; every prompt has the same length by construction."""
    return torch.tensor([tokenizer.encode(p.prompt) for p in problems], dtype=torch.long)


def encode_sft_batch(tokenizer, problems: list[Problem]) -> tuple[torch.Tensor, torch.Tensor]:
    """Prompt + reference response + eos, and a mask of the response tokens (the only ones trained on)."""
    prompt_len = len(tokenizer.encode(problems[0].prompt))
    rows = [tokenizer.encode(p.prompt + p.response) + [tokenizer.eos_token_id] for p in problems]
    width = max(map(len, rows))
    ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
    mask = torch.zeros(len(rows), width, dtype=torch.bool)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = torch.tensor(row)
        mask[i, prompt_len : len(row)] = True
    return ids, mask


def max_response_tokens(tokenizer) -> int:
    """Longest reference response (+ eos), plus slack so a wrong, longer answer can still close its box."""
    longest = Problem(MAX_OPERAND, MAX_OPERAND).response
    return len(tokenizer.encode(longest)) + 1 + 4
