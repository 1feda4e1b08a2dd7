"""An estimate of the GPU memory one rank needs for the actor update, the recipe's memory floor: with
``cwgrpo.scope=group`` a micro-batch holds at least one whole prompt group. Its terms, what it leaves out and the table
are in docs/memory.md (an estimate from shapes, not a measurement); it also leaves out the reference model
(forward-only, in its own smaller micro-batches). ``python -m recipe.cwgrpo.memory`` prints the table."""

from __future__ import annotations

import argparse
import logging
import os
from dataclasses import dataclass

GIB = 1024**3
logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelShape:
    """The shape of a decoder-only transformer, as its Hugging Face ``config.json`` gives it."""

    layers: int
    hidden: int
    intermediate: int
    vocab: int
    heads: int
    kv_heads: int
    tied_embeddings: bool = False

    @classmethod
    def from_config(cls, config) -> ModelShape:
        """From a transformers ``PretrainedConfig``."""
        heads = config.num_attention_heads
        return cls(layers=config.num_hidden_layers, hidden=config.hidden_size, intermediate=config.intermediate_size,
                   vocab=config.vocab_size, heads=heads, kv_heads=getattr(config, "num_key_value_heads", None) or heads,
                   tied_embeddings=bool(getattr(config, "tie_word_embeddings", False)))

    @property
    def layer_params(self) -> int:
        head_dim = self.hidden // self.heads
        attention = 2 * self.hidden * self.hidden + 2 * self.hidden * self.kv_heads * head_dim
        return attention + 3 * self.hidden * self.intermediate

    @property
    def embedding_params(self) -> int:
        return self.vocab * self.hidden * (1 if self.tied_embeddings else 2)

    @property
    def params(self) -> int:
        return self.layers * self.layer_params + self.embedding_params


PRESET_MODELS = {  # their config.json: layers, hidden, intermediate, vocabulary, attention and key-value heads
    "DeepSeek-R1-Distill-Qwen-1.5B": ModelShape(28, 1536, 8960, 151936, heads=12, kv_heads=2),
    "Qwen2.5-Math-7B-Instruct": ModelShape(28, 3584, 18944, 152064, heads=28, kv_heads=4),
}


def update_floor(model: ModelShape, *, gpus: int, micro_batch_responses: int, sequence_length: int,
                 sequence_parallel: int = 1, offload_policy: bool = False) -> dict[str, float]:
    """Estimated bytes per GPU for the actor update, term by term (docs/memory.md), and ``total``."""
    tokens = micro_batch_responses * sequence_length / sequence_parallel
    terms = {
        "model states": 0.0 if offload_policy else 16.0 * model.params / gpus,
        "gathered parameters": 2.0 * (2 * model.layer_params + model.embedding_params),
        "checkpointed activations": 2.0 * tokens * model.hidden * model.layers,
        "layer recomputation": 2.0 * 2 * tokens * (4 * model.hidden + 3 * model.intermediate),
        "logits": tokens * model.vocab * (2 + 2 + 4),
    }
    terms["total"] = sum(terms.values())
    return terms


def log_update_floor(config) -> None:
    """Log the estimate for a run's config, where the model's config.json can be read (never a download)."""
    from transformers import AutoConfig

    from recipe.cwgrpo.batching import sequence_parallel_size

    actor, data, path = config.actor_rollout_ref.actor, config.data, str(config.actor_rollout_ref.model.path)
    try:  # a preset, a local model or one in the Hugging Face cache
        shape = PRESET_MODELS.get(os.path.basename(path.rstrip("/"))) or ModelShape.from_config(
            AutoConfig.from_pretrained(path, local_files_only=True))
    except Exception as error:  # noqa: BLE001 - an estimate for the log: never a reason to stop
        logger.info("[cwgrpo] no memory estimate (cannot read the model's config.json: %s)", error)
        return
    length = data.max_prompt_length + data.max_response_length
    responses = (actor.ppo_max_token_len_per_gpu // length if actor.use_dynamic_bsz
                 else actor.ppo_micro_batch_size_per_gpu)
    terms = update_floor(shape, gpus=config.trainer.nnodes * config.trainer.n_gpus_per_node,
                         micro_batch_responses=max(1, responses), sequence_length=length,
                         sequence_parallel=sequence_parallel_size(config),
                         offload_policy=bool((actor.get("fsdp_config") or {}).get("offload_policy", False)))
    logger.info("[cwgrpo] estimated actor-update memory per GPU: %s. Levers: "
                "actor_rollout_ref.actor.fsdp_config.ulysses_sequence_parallel_size (divides activations and logits), "
                "fsdp_config.offload_policy=true (model states on the CPU), more GPUs (shards the model states); "
                "docs/memory.md", ", ".join(f"{name} {value / GIB:.1f} GiB" for name, value in terms.items()))


def table(cards=(40, 80, 141), gpus: int = 4, group: int = 12, sequence_length: int = 4096) -> str:
    """Markdown: the floor of each paper model per GPU with each lever, and which cards it fits (with 10% spare)."""
    lines = [f"| model | levers | per-GPU floor (GiB) | {' | '.join(f'{c} GB card' for c in cards)} |",
             "| --- | --- | --- | " + " | ".join("---" for _ in cards) + " |"]
    levers = {"none": {}, "SP=2": {"sequence_parallel": 2}, "SP=4": {"sequence_parallel": 4},
              "SP=2, offload_policy": {"sequence_parallel": 2, "offload_policy": True}}
    for name, model in PRESET_MODELS.items():
        for label, kwargs in levers.items():
            total = update_floor(model, gpus=gpus, micro_batch_responses=group, sequence_length=sequence_length,
                                 **kwargs)["total"] / GIB
            fits = ["fits" if total * 1.1 <= card * 1e9 / GIB else "no" for card in cards]
            lines.append(f"| {name} | {label} | {total:.1f} | {' | '.join(fits)} |")
    return "\n".join(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m recipe.cwgrpo.memory",
                                     description="The recipe's per-GPU memory floor of the paper models (an estimate)")
    parser.add_argument("--gpus", type=int, default=4, help="GPUs the model states are sharded over (default: 4)")
    parser.add_argument("--group", type=int, default=12, help="responses per micro-batch (default: one group of 12)")
    parser.add_argument("--sequence-length", type=int, default=4096, help="prompt + response tokens (default: 4096)")
    print(table(**vars(parser.parse_args())))
