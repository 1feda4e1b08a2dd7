"""The synthetic verifiable task (two-digit addition answered in ``\\boxed{}``), its offline tokenizer and a tiny
random-init ``Qwen2ForCausalLM`` (the paper's model family) with the two things RL needs: sampling and log-probs.

A prompt is ``"07+45="`` (zero-padded: all prompts have one length, so no attention mask is needed); the reference
response ``<think>\\n07+45\\n</think>\\n\\boxed{52}<eos>`` fits the authors' format reward and math-verify's boxed
extraction unchanged. Carries make the answer digits the hard, "forking" tokens; the rest is near-deterministic,
the shape of a real reasoning trace at toy scale.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch.nn.utils.rnn import pad_sequence
from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

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


class Problem(NamedTuple):
    prompt: str
    answer: str
    response: str  # the reference completion of the supervised warm start (without eos)


def problem(a: int, b: int) -> Problem:
    return Problem(f"{a:02d}+{b:02d}=", str(a + b), f"<think>\n{a:02d}+{b:02d}\n</think>\n\\boxed{{{a + b}}}")


def sample_problems(n: int, generator: torch.Generator) -> list[Problem]:
    ab = torch.randint(0, MAX_OPERAND + 1, (n, 2), generator=generator).tolist()
    return [problem(a, b) for a, b in ab]


def encode_prompts(tokenizer, problems: list[Problem]) -> torch.Tensor:
    """(n, prompt_len) token ids; every prompt has the same length by construction."""
    return torch.tensor([tokenizer.encode(p.prompt) for p in problems], dtype=torch.long)


def encode_sft_batch(tokenizer, problems: list[Problem]) -> tuple[torch.Tensor, torch.Tensor]:
    """Prompt + reference response + eos, and a mask of the response tokens (the only ones trained on)."""
    prompt_len = len(tokenizer.encode(problems[0].prompt))
    rows = [tokenizer.encode(p.prompt + p.response) + [tokenizer.eos_token_id] for p in problems]
    ids = pad_sequence([torch.tensor(row) for row in rows], batch_first=True, padding_value=tokenizer.pad_token_id)
    positions = torch.arange(ids.shape[1])
    return ids, (positions >= prompt_len) & (positions < torch.tensor([len(row) for row in rows])[:, None])


def max_response_tokens(tokenizer) -> int:
    """Longest reference response (+ eos), plus slack so a wrong, longer answer can still close its box."""
    return len(tokenizer.encode(problem(MAX_OPERAND, MAX_OPERAND).response)) + 1 + 4


def build_model(tokenizer, seed: int, hidden: int = 64, layers: int = 2) -> Qwen2ForCausalLM:
    """Shrunk until a step of 64 responses takes tens of milliseconds on two CPU cores."""
    torch.manual_seed(seed)  # the only global-RNG use: weight init
    config = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=4 * hidden, num_hidden_layers=layers,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64, tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id, bos_token_id=tokenizer.eos_token_id,
    )
    return Qwen2ForCausalLM(config).float()


@torch.no_grad()
def sample(model, tokenizer, prompt_ids: torch.Tensor, generator: torch.Generator | None,
           greedy: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Responses at temperature 1 (or greedy) with a KV cache: (B, max_response_tokens) ids, pad after the first
    eos, and the mask of valid tokens (up to and including eos). Prompts have equal length, so no attention mask
    is needed; tokens produced after eos only ever attend backwards and are masked out."""
    eos_id, pad_id = tokenizer.eos_token_id, tokenizer.pad_token_id
    model.eval()
    out = model(input_ids=prompt_ids, use_cache=True)
    past, logits = out.past_key_values, out.logits[:, -1]
    tokens, done = [], torch.zeros(prompt_ids.shape[0], dtype=torch.bool)
    for _ in range(max_response_tokens(tokenizer)):
        if greedy:
            nxt = logits.argmax(-1)
        else:
            nxt = torch.multinomial(F.softmax(logits.float(), -1), 1, generator=generator).squeeze(-1)
        nxt = torch.where(done, pad_id, nxt)
        tokens.append(nxt)
        done = done | (nxt == eos_id)
        if bool(done.all()):
            break
        out = model(input_ids=nxt.unsqueeze(-1), past_key_values=past, use_cache=True)
        past, logits = out.past_key_values, out.logits[:, -1]
    responses = torch.stack(tokens, 1)
    ended_before = torch.cumsum((responses == eos_id).long(), 1) - (responses == eos_id).long()
    return responses, ended_before == 0


def response_logprobs(model, prompt_ids: torch.Tensor, responses: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-prob of each response token and the policy's entropy there, both (B, T); no temperature (as the authors)."""
    ids = torch.cat([prompt_ids, responses], 1)
    logits = model(input_ids=ids).logits[:, prompt_ids.shape[1] - 1 : -1].float()
    logp_all = F.log_softmax(logits, -1)
    logp = logp_all.gather(-1, responses.unsqueeze(-1)).squeeze(-1)
    entropy = -(logp_all.exp() * logp_all).sum(-1)
    return logp, entropy
