"""The "hf" rollout: a Ray actor that samples with transformers on a CPU, serving verl's agent loop as a vLLM server
would (the contracts: docs/cpu_backend.md), and the trainer worker's adapter that pushes it the trained weights.

Each request samples from its own generator, seeded by the rollout seed, the replica, the step, the prompt and how
often the replica has seen that prompt in the step: a resumed run samples what the uninterrupted run sampled (vLLM
gives no such guarantee; the tests need it).

For tests: ``CWGRPO_CPU_EVENTS=<file>`` appends every weight load to it as a JSON line;
``CWGRPO_CPU_ANSWERS=<file>`` (JSON ``{text: response}``) makes a validation request whose prompt contains ``text``
return ``response`` (forced decoding, log-probs as sampled), so a test can check that validation scores a right
answer; ``rollout.engine_kwargs.hf.fail_session=[step, k]`` makes the k-th (from 0) training request of that step to
the first replica fail, as a rollout session that dies would.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
from typing import Any

import torch
from verl.workers.rollout import base as rollout_base
from verl.workers.rollout.base import BaseRollout
from verl.workers.rollout.replica import RolloutReplica, RolloutReplicaRegistry, TokenOutput

NAME = "hf"
EVENTS_ENV = "CWGRPO_CPU_EVENTS"
ANSWERS_ENV = "CWGRPO_CPU_ANSWERS"


LOGPROBS_MODES = ("raw_logprobs", "processed_logprobs", "raw_logits", "processed_logits")


async def _nothing(self, *_args, **_kwargs):  # a no-op actor method (Ray reads the signature without ``self``)
    return None


def server_name(replica_rank: int) -> str:
    return f"cwgrpo_hf_cpu_server_{replica_rank}"


class InjectedRolloutFailure(RuntimeError):
    """``engine_kwargs.hf.fail_session``: the session this request belongs to fails, as on a crashed server."""


class HFServer:
    """One request at a time, KV-cached sampling; honours max_tokens, temperature, top_k, top_p and, like verl's
    vLLM server, caps prompt + response at ``max_model_len``."""

    def __init__(self, config, model_config, replica_rank: int):
        from transformers import AutoModelForCausalLM
        from verl.utils.config import omega_conf_to_dataclass

        torch.set_num_threads(1)
        self.config = omega_conf_to_dataclass(config)
        self.model_config = omega_conf_to_dataclass(model_config)
        self.name = server_name(replica_rank)
        self.model = AutoModelForCausalLM.from_pretrained(self.model_config.local_path, dtype=torch.float32).eval()
        eos = self.model.generation_config.eos_token_id
        self.eos_ids = {eos} if isinstance(eos, int) else set(eos or [])
        self.eos_ids.add(getattr(self.model_config.tokenizer, "eos_token_id", None))
        positions = getattr(self.model.config, "max_position_embeddings", None)
        self.max_model_len = self.config.max_model_len or positions or self.config.prompt_length + self.config.response_length
        self.seed = (int(self.config.seed or 0), replica_rank)
        self.seen: dict[tuple, int] = {}  # (step, prompt) -> requests so far this step
        answers = os.environ.get(ANSWERS_ENV)
        self.answers = json.loads(open(answers, encoding="utf-8").read()) if answers else {}
        self.lock, self.weight_version, self.global_steps = asyncio.Lock(), 0, None
        self.logprobs_mode = self.config.logprobs_mode or "raw_logprobs"
        if self.logprobs_mode not in LOGPROBS_MODES:
            raise ValueError(f"rollout.logprobs_mode={self.logprobs_mode!r}: vLLM's modes are {list(LOGPROBS_MODES)}")
        fail = ((self.config.engine_kwargs or {}).get(NAME) or {}).get("fail_session")
        # one failure per run: the first replica's requests only
        self.fail_session = tuple(int(v) for v in fail) if fail and replica_rank == 0 else None
        self.training_requests: dict[int, int] = {}

    def ready(self) -> bool:
        return True

    def load_weights(self, state_dict: dict[str, torch.Tensor], global_steps=None) -> dict[str, Any]:
        own = self.model.state_dict()
        if unexpected := sorted(set(state_dict) - set(own)):
            raise KeyError(f"{self.name}: weights for unknown parameters {unexpected[:5]}")
        change = 0.0  # from the weights the server held: > 0 shows that the trained weights arrived
        with torch.no_grad():
            for key, value in state_dict.items():
                value = value.to(own[key].dtype)
                change = max(change, float((value - own[key]).abs().max()))
                own[key].copy_(value)
        self.weight_version += 1
        if global_steps is not None:
            self.global_steps = global_steps
        self.seen.clear()  # counts are per step
        event = {"event": "weights", "server": self.name, "version": self.weight_version, "tensors": len(state_dict),
                 "global_steps": global_steps, "max_abs_change": change}
        if path := os.environ.get(EVENTS_ENV):
            with open(path, "a", encoding="utf-8") as events:
                events.write(json.dumps(event) + "\n")
        print(f"[cwgrpo-cpu] {json.dumps(event)}", flush=True)
        return event

    async def generate(self, prompt_ids, sampling_params: dict[str, Any], request_id: str, **_kwargs) -> TokenOutput:
        async with self.lock:
            self._maybe_fail(sampling_params)
            prompt_ids, params = list(prompt_ids), dict(sampling_params)
            forced = self._answer(prompt_ids) if self._is_validation(params) else None
            return self._generate(prompt_ids, params, self._generator(prompt_ids), forced)

    def _is_validation(self, params: dict[str, Any]) -> bool:
        """Training requests sample at ``rollout.temperature``; validation uses ``val_kwargs``."""
        return float(params.get("temperature", 1.0)) != float(self.config.temperature)

    def _generator(self, prompt_ids: list[int]) -> torch.Generator:
        key = (self.global_steps, tuple(prompt_ids))
        self.seen[key] = count = self.seen.get(key, 0) + 1
        digest = hashlib.sha256(repr((self.seed, key, count)).encode()).digest()
        return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & (2**63 - 1))

    def _answer(self, prompt_ids: list[int]) -> list[int] | None:
        if not self.answers:
            return None
        tokenizer = self.model_config.tokenizer
        prompt = tokenizer.decode(prompt_ids)
        response = next((r for text, r in self.answers.items() if text in prompt), None)
        return None if response is None else tokenizer.encode(response, add_special_tokens=False)

    def _maybe_fail(self, params: dict[str, Any]) -> None:
        """Training requests are counted per step: the rollout of step s runs on the weights of step s - 1."""
        if self._is_validation(params):
            return
        step = (self.global_steps or 0) + 1
        index = self.training_requests.get(step, 0)
        self.training_requests[step] = index + 1
        if self.fail_session == (step, index):
            print(f"[cwgrpo-cpu] {self.name}: injected failure of training request {index} at step {step}", flush=True)
            raise InjectedRolloutFailure(f"engine_kwargs.{NAME}.fail_session={list(self.fail_session)}")

    def _max_tokens(self, prompt_len: int, params: dict[str, Any]) -> int:
        room = self.max_model_len - prompt_len
        if room < 1:
            raise ValueError(f"prompt of {prompt_len} tokens leaves no room within max_model_len={self.max_model_len}")
        wanted = params.pop("max_tokens", params.pop("max_new_tokens", None))
        if wanted is None:
            budget = self.config.prompt_length + self.config.response_length - prompt_len
            wanted = min(self.config.response_length, budget)
        return max(1, min(int(wanted), room))

    @torch.no_grad()
    def _generate(self, prompt_ids: list[int], params: dict[str, Any], generator: torch.Generator,
                  forced: list[int] | None = None) -> TokenOutput:
        max_tokens = self._max_tokens(len(prompt_ids), params)
        if forced is not None:
            max_tokens = min(max_tokens, len(forced))
        temperature = float(params.get("temperature", 1.0) or 0.0)
        top_k = int(params.get("top_k", -1) or -1)
        top_p = float(params.get("top_p", 1.0) or 1.0)
        out = self.model(input_ids=torch.tensor([prompt_ids]), use_cache=True)
        tokens, log_probs = [], []
        for _ in range(max_tokens):
            logits = out.logits[0, -1].float()
            processed = self._process(logits, temperature, top_k, top_p)
            if forced is not None:
                token = forced[len(tokens)]
            elif temperature <= 0:
                token = int(logits.argmax())
            else:
                token = int(torch.multinomial(torch.softmax(processed, -1), 1, generator=generator))
            tokens.append(token)
            log_probs.append(self._logprob(logits, processed, token, greedy=temperature <= 0))
            if token in self.eos_ids:
                break
            out = self.model(input_ids=torch.tensor([[token]]), past_key_values=out.past_key_values, use_cache=True)
        return TokenOutput(token_ids=tokens, log_probs=log_probs if params.get("logprobs") else None,
                           stop_reason="completed", extra_fields={"global_steps": self.global_steps})

    @staticmethod
    def _process(logits: torch.Tensor, temperature: float, top_k: int, top_p: float) -> torch.Tensor:
        """vLLM's logits processing for sampling: divide by the temperature, then keep the top-k tokens and the
        smallest set whose probability reaches top-p (the rest -inf)."""
        if temperature <= 0:
            return logits
        scaled = logits / temperature
        if top_k > 0:
            scaled = scaled.masked_fill(scaled < torch.topk(scaled, min(top_k, scaled.numel())).values[-1], -torch.inf)
        if top_p < 1.0:
            ordered, index = torch.softmax(scaled, -1).sort(descending=True)
            outside = ordered.cumsum(0) - ordered > top_p  # the mass before this token already reaches top-p
            scaled = scaled.masked_fill(torch.zeros_like(outside).scatter(0, index, outside), -torch.inf)
        return scaled

    def _logprob(self, logits: torch.Tensor, processed: torch.Tensor, token: int, greedy: bool) -> float:
        """The sampled token's value as vLLM's ``logprobs_mode`` defines it: raw = from the model's logits,
        processed = after temperature and top-k/top-p (a greedy request has nothing processed: vLLM returns the raw
        values); ``*_logits`` return the logit itself."""
        values = logits if greedy or self.logprobs_mode.startswith("raw") else processed
        if self.logprobs_mode.endswith("logits"):
            return float(values[token])
        return float(torch.log_softmax(values, -1)[token])

    # the control surface verl's replica and checkpoint manager call: nothing to do on a CPU
    wake_up = sleep = clear_kv_cache = release_kv_cache = resume_kv_cache = _nothing
    resume_generation = start_profile = stop_profile = wait_for_requests_to_drain = _nothing

    async def abort_all_requests(self, reset_prefix_cache: bool = True, reject_request: bool = False):
        return {"aborted_count": 0, "request_ids": []}

    async def set_global_steps(self, global_steps: int):
        self.global_steps = global_steps


class HFReplica(RolloutReplica):
    async def launch_servers(self):
        import ray

        server = ray.remote(HFServer).options(  # by the name the adapter looks up
            name=server_name(self.replica_rank), num_cpus=0, max_concurrency=self.max_concurrency,
        ).remote(self.config, self.model_config, self.replica_rank)
        await server.ready.remote()
        self.servers, self._server_handle = [server], server
        self._server_address = f"hf-cpu-{self.replica_rank}"


class HFServerAdapter(BaseRollout):
    """Lives in the trainer worker: gathers the trained weights and sends them to its replica's server."""

    def __init__(self, config, model_config, device_mesh, replica_rank: int = -1):
        super().__init__(config, model_config, device_mesh)
        rank = int(os.environ.get("RANK", 0))
        world = config.tensor_model_parallel_size * config.data_parallel_size * config.pipeline_model_parallel_size
        self.replica_rank = rank // world if replica_rank == -1 else replica_rank
        self.is_leader = rank % world == 0

    resume = release = _nothing

    async def update_weights(self, weights, wire_format: str = "named_tensors", **kwargs):
        import ray

        state = {}
        for name, tensor in weights:  # every rank takes part: full_tensor() is a collective
            if hasattr(tensor, "full_tensor"):
                tensor = tensor.full_tensor()
            state[name] = tensor.detach().to("cpu", copy=True)
        if self.is_leader:
            server = ray.get_actor(server_name(self.replica_rank))
            await server.load_weights.remote(state, kwargs.get("global_steps"))


RolloutReplicaRegistry.register(NAME, lambda: HFReplica)
# verl has no public hook for the worker-side adapter: its registry maps (name, mode) to a class path
rollout_base._ROLLOUT_REGISTRY[(NAME, "async")] = f"{__name__}.HFServerAdapter"
