"""A tiny Qwen2 policy (random init from a seed) and the two things RL needs from it: sampling and log-probs.

The architecture is the real ``Qwen2ForCausalLM`` (the family the paper trains), shrunk until a step of
64 responses takes tens of milliseconds on two CPU cores.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import Qwen2Config, Qwen2ForCausalLM


def build_model(tokenizer, seed: int, hidden: int = 64, layers: int = 2) -> Qwen2ForCausalLM:
    torch.manual_seed(seed)  # the only global-RNG use: weight init
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=4 * hidden,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
        bos_token_id=tokenizer.eos_token_id,
    )
    return Qwen2ForCausalLM(config).float()


@torch.no_grad()
def sample(
    model, prompt_ids: torch.Tensor, max_new: int, eos_id: int, pad_id: int,
    generator: torch.Generator | None, greedy: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Sample responses at temperature 1 (or greedily) with a KV cache.

    Returns (responses, mask): (B, max_new) ids, ``pad`` after the first eos, and the mask of valid tokens
    (up to and including eos). Prompts have equal length, so no attention mask is needed; tokens produced
    after eos only ever attend backwards and are masked out.
    """
    model.eval()
    out = model(input_ids=prompt_ids, use_cache=True)
    past, logits = out.past_key_values, out.logits[:, -1]
    tokens, done = [], torch.zeros(prompt_ids.shape[0], dtype=torch.bool)
    for _ in range(max_new):
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
    """Log-prob of each response token and the policy's entropy at that position, both (B, T).

    Logits are not divided by a temperature (sampling is at temperature 1, as in the authors' code).
    """
    ids = torch.cat([prompt_ids, responses], 1)
    logits = model(input_ids=ids).logits[:, prompt_ids.shape[1] - 1 : -1].float()
    logp_all = F.log_softmax(logits, -1)
    logp = logp_all.gather(-1, responses.unsqueeze(-1)).squeeze(-1)
    entropy = -(logp_all.exp() * logp_all).sum(-1)
    return logp, entropy
