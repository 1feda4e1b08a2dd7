"""``python -m cwgrpo_verl.evaluate``: one model on the evaluation sets with the paper's protocol, into one log.

    python -m cwgrpo_verl.evaluate --model MODEL --data data/ --out evals/step_100.t0.6-p0.95-n1-len32768.jsonl \
        --step 100 [--max-new-tokens 32768] [--temperature 0.6] [--top-p 0.95] [--samples 1] [--seed 2025]

Protocol, log format (one verl file-logger record with the settings under ``"evaluation"``, the responses in
``<log>.generations.jsonl``, both renamed into place when complete) and backends: docs/report.md, "Evaluations".
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from cwgrpo_verl import argtypes, data_sets

REWARD_MODE = "eval: lighteval ed084813 extractive_match (cwgrpo_verl.reward)"
#: the settings two evaluations must share to be compared in one table
COMPARED = ("max_new_tokens", "temperature", "top_p", "samples", "reward")


def load_problems(data_dir: Path, sets) -> list[dict]:
    """The rows of ``<data_dir>/<set>.parquet`` (data_prep's output), in order."""
    import pandas as pd

    rows = []
    for name in sets:
        path = Path(data_dir) / f"{name}.parquet"
        if not path.is_file():
            raise SystemExit(f"error: --data {data_dir}: no {path.name} (write it with examples/prepare_data.sh)")
        rows += [{"set": name, "data_source": row["data_source"], "prompt": list(row["prompt"]),
                  "ground_truth": row["reward_model"]["ground_truth"]}
                 for row in pd.read_parquet(path).to_dict("records")]
    return rows


def _generate_hf(args, prompts: list[list[int]], eos: list[int]) -> list[list[list[int]]]:
    """transformers' sampling, one prompt at a time (the CPU stand-in for vLLM: same contract, other streams)."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32).eval()
    out = []
    for i, ids in enumerate(prompts):
        torch.manual_seed(args.seed + i)
        with torch.no_grad():
            prompt = torch.tensor([ids])
            generated = model.generate(
                prompt, attention_mask=torch.ones_like(prompt), do_sample=True, temperature=args.temperature,
                top_p=args.top_p, top_k=0, max_new_tokens=args.max_new_tokens, num_return_sequences=args.samples,
                eos_token_id=eos, pad_token_id=eos[0])
        rows = [row[len(ids):].tolist() for row in generated]
        out.append([row[:next((j for j, t in enumerate(row) if t in eos), len(row))] for row in rows])
    return out


def _generate_vllm(args, prompts: list[list[int]], eos: list[int]) -> list[list[list[int]]]:
    """vLLM's offline engine: every prompt at once, ``samples`` completions each."""
    from vllm import LLM, SamplingParams

    llm = LLM(model=args.model, tensor_parallel_size=args.tensor_parallel_size, seed=args.seed,
              max_model_len=max(len(p) for p in prompts) + args.max_new_tokens)
    params = SamplingParams(n=args.samples, temperature=args.temperature, top_p=args.top_p,
                            max_tokens=args.max_new_tokens, seed=args.seed)
    outputs = llm.generate([{"prompt_token_ids": ids} for ids in prompts], params)
    return [[list(o.token_ids) for o in out.outputs] for out in outputs]


def evaluate(args) -> dict:
    from transformers import AutoTokenizer

    from cwgrpo_verl.reward import compute_score

    problems = load_problems(args.data, args.sets)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    prompts = [tokenizer.apply_chat_template(p["prompt"], add_generation_prompt=True, tokenize=True, return_dict=False)
               for p in problems]
    eos = [tokenizer.eos_token_id] + ([tokenizer.pad_token_id] if tokenizer.pad_token_id is not None else [])
    completions = (_generate_vllm if args.backend == "vllm" else _generate_hf)(args, prompts, eos)
    texts = [[tokenizer.decode(c, skip_special_tokens=True) for c in row] for row in completions]
    jobs = [(p, text) for p, row in zip(problems, texts) for text in row]
    with ThreadPoolExecutor(max_workers=max(1, os.cpu_count() or 1)) as pool:  # the reward scores in its own pool
        scores = list(pool.map(lambda job: compute_score(job[0]["data_source"], job[1], job[0]["ground_truth"]), jobs))
    generations, accuracy = [], {}
    for (problem, text), score in zip(jobs, scores):
        generations.append({"set": problem["set"], "data_source": problem["data_source"], "response": text,
                            "ground_truth": problem["ground_truth"], **score})
        accuracy.setdefault(problem["data_source"], []).append(score["acc"])
    data = {f"val-core/{source}/acc/mean@{args.samples}": sum(v) / len(v) for source, v in accuracy.items()}
    settings = {"model": str(args.model), "step": args.step, "max_new_tokens": args.max_new_tokens,
                "temperature": args.temperature, "top_p": args.top_p, "samples": args.samples, "seed": args.seed,
                "reward": REWARD_MODE, "backend": args.backend, "sets": list(args.sets),
                "problems": {name: sum(p["set"] == name for p in problems) for name in args.sets}}
    _write_atomically(args.out, [{"step": args.step, "data": data, "evaluation": settings}])
    _write_atomically(generations_path(args.out), generations)
    return data


def generations_path(log: Path) -> Path:
    return log.with_name(log.name.removesuffix(".jsonl") + ".generations.jsonl")


def _write_atomically(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    with open(partial, "w", encoding="utf-8") as out:
        out.writelines(json.dumps(record, ensure_ascii=False) + "\n" for record in records)
    os.replace(partial, path)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m cwgrpo_verl.evaluate", description=__doc__.split("\n\n")[0])
    p.add_argument("--model", required=True, help="a Hugging Face model: hub name or folder (a merged checkpoint)")
    p.add_argument("--data", type=Path, required=True, help="the folder examples/prepare_data.sh wrote")
    p.add_argument("--out", type=Path, required=True, help="the log to write (its generations go beside it)")
    p.add_argument("--step", type=int, default=0, help="the training step of the model (0: the base model)")
    sets = data_sets.evaluation_keys()
    p.add_argument("--sets", type=argtypes.names(sets), default=list(sets), help="comma-separated (default: all)")
    p.add_argument("--max-new-tokens", type=argtypes.integer(), default=32768,
                   help="the paper: 32768 (1.5B), 4096 (7B)")
    p.add_argument("--temperature", type=argtypes.real(), default=0.6)
    p.add_argument("--top-p", type=argtypes.real(high=1), default=0.95)
    p.add_argument("--samples", type=argtypes.integer(), default=1, help="responses per problem (mean@N; the paper: 1)")
    p.add_argument("--seed", type=int, default=2025)
    p.add_argument("--backend", choices=("vllm", "hf"), default="vllm", help="vllm on GPUs; hf: transformers")
    p.add_argument("--tensor-parallel-size", type=argtypes.integer(), default=1, help="vLLM's, per model")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    data = evaluate(args)
    for key, value in data.items():
        print(f"{key}: {value:.4f}")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
