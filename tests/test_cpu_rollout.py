"""The CPU backend's "hf" rollout keeps vLLM's contracts where verl's trainer sees them: sampling parameters, the
response cap, log-probs as ``rollout.logprobs_mode`` defines them, and a session that fails on request."""

import asyncio

import pytest
import torch

from tools.cpu import tiny
from tools.cpu.rollout import HFServer, InjectedRolloutFailure

from helpers import compose

PROMPT = list(range(40, 52))


@pytest.fixture(scope="module")
def model_path(tmp_path_factory):
    return tiny.build_model(tmp_path_factory.mktemp("tiny") / "model")


def server(model_path, **rollout):
    overrides = [f"actor_rollout_ref.model.path={model_path}", "actor_rollout_ref.rollout.name=hf",
                 "actor_rollout_ref.rollout.prompt_length=64", "actor_rollout_ref.rollout.response_length=16",
                 *(f"{'+' if k == 'engine_kwargs.hf.fail_session' else ''}actor_rollout_ref.rollout.{k}={v}"
                   for k, v in rollout.items())]
    cfg = compose(overrides)
    return HFServer(cfg.actor_rollout_ref.rollout, cfg.actor_rollout_ref.model, replica_rank=0)


def generate(srv, **params):
    params = {"temperature": srv.config.temperature, "logprobs": True, **params}
    return asyncio.run(srv.generate(PROMPT, params, request_id="r"))


def expected_logprobs(srv, tokens, temperature=1.0, top_k=-1, top_p=1.0):
    """Recompute each sampled token's log-prob from one forward pass over prompt + response (no KV cache)."""
    with torch.no_grad():
        logits = srv.model(input_ids=torch.tensor([PROMPT + tokens])).logits[0, len(PROMPT) - 1 : -1].float()
    out = []
    for row, token in zip(logits, tokens):
        out.append(float(torch.log_softmax(srv._process(row, temperature, top_k, top_p), -1)[token]))
    return out


@pytest.mark.parametrize("mode", ["raw_logprobs", "processed_logprobs"])
def test_log_probs_follow_the_logprobs_mode(model_path, mode):
    """raw: the model's own distribution; processed: after temperature and top-k/top-p, as vLLM returns them."""
    srv = server(model_path, logprobs_mode=mode, temperature=0.7, top_k=50, top_p=0.9)
    out = generate(srv, top_k=50, top_p=0.9)
    processed = expected_logprobs(srv, out.token_ids, 0.7, 50, 0.9)
    raw = expected_logprobs(srv, out.token_ids)
    torch.testing.assert_close(out.log_probs, processed if mode == "processed_logprobs" else raw, rtol=1e-4, atol=1e-4)
    assert not torch.allclose(torch.tensor(processed), torch.tensor(raw), atol=1e-3)  # the modes differ here


def test_sampling_keeps_to_the_top_k(model_path):
    srv = server(model_path, logprobs_mode="raw_logprobs", temperature=1.0, top_k=3)
    out = generate(srv, top_k=3)
    with torch.no_grad():
        logits = srv.model(input_ids=torch.tensor([PROMPT + out.token_ids])).logits[0, len(PROMPT) - 1 : -1]
    top3 = logits.topk(3, -1).indices
    assert all(token in top3[i].tolist() for i, token in enumerate(out.token_ids))


def test_the_response_is_capped_at_max_model_len(model_path):
    srv = server(model_path, max_model_len=len(PROMPT) + 5, temperature=1.0)
    assert len(generate(srv, max_tokens=100).token_ids) <= 5


def test_a_session_fails_on_request_at_its_step_only(model_path):
    """``engine_kwargs.hf.fail_session=[1,1]``: the second training request of step 1 fails; validation requests
    (another temperature) do not count, and the next step is served."""
    srv = server(model_path, temperature=0.7, **{"engine_kwargs.hf.fail_session": "[1,1]"})
    generate(srv, temperature=0.6)  # a validation request
    generate(srv)
    with pytest.raises(InjectedRolloutFailure):
        generate(srv)
    generate(srv)
    srv.global_steps = 1  # the weights of step 1 arrive: step 2 begins
    generate(srv), generate(srv)
