"""An estimate of the GPU memory one rank needs for the actor update, the recipe's memory floor: with
``cwgrpo.scope=group`` a micro-batch holds at least one whole prompt group. Its terms, what it leaves out and the table
are in docs/memory.md (an estimate from shapes, not a measurement); it also leaves out the reference model
(forward-only, in its own smaller micro-batches). ``python -m recipe.cwgrpo.memory`` prints the table.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

GIB = 1024**3


@dataclass(frozen=True)
class ModelShape:
    """The shape of a decoder-only transformer, as its Hugging Face ``config.json`` gives it."""

    layers: int
    hidden: int
    intermediate: int
    vocab: int
    heads: int
    kv_heads: int
    tied_embeddings: bool

    @classmethod
    def from_config(cls, config) -> "ModelShape":
        get = config.get if isinstance(config, dict) else lambda key, default=None: getattr(config, key, default)
        heads = get("num_attention_heads")
        return cls(layers=get("num_hidden_layers"), hidden=get("hidden_size"), intermediate=get("intermediate_size"),
                   vocab=get("vocab_size"), heads=heads, kv_heads=get("num_key_value_heads") or heads,
                   tied_embeddings=bool(get("tie_word_embeddings", False)))

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


# config.json of the two paper models (hidden_size, num_hidden_layers, intermediate_size, vocab_size, heads)
PRESET_MODELS = {
    "DeepSeek-R1-Distill-Qwen-1.5B": ModelShape(layers=28, hidden=1536, intermediate=8960, vocab=151936, heads=12,
                                                kv_heads=2, tied_embeddings=False),
    "Qwen2.5-Math-7B-Instruct": ModelShape(layers=28, hidden=3584, intermediate=18944, vocab=152064, heads=28,
                                           kv_heads=4, tied_embeddings=False),
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


def describe(terms: dict[str, float]) -> str:
    return ", ".join(f"{name} {value / GIB:.1f} GiB" for name, value in terms.items())


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


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m recipe.cwgrpo.memory",
                                     description="The recipe's per-GPU memory floor for the paper models (an estimate).")
    parser.add_argument("--gpus", type=int, default=4, help="GPUs the model states are sharded over (default: 4)")
    parser.add_argument("--group", type=int, default=12, help="responses per micro-batch (default: one group of 12)")
    parser.add_argument("--sequence-length", type=int, default=4096, help="prompt + response tokens (default: 4096)")
    args = parser.parse_args(argv)
    print(table(gpus=args.gpus, group=args.group, sequence_length=args.sequence_length))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
