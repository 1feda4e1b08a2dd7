"""The CPU backend's "hf" rollout keeps vLLM's contracts where verl's trainer sees them: sampling parameters, the
response cap, log-probs as ``rollout.logprobs_mode`` defines them, and a session that fails on request."""

import asyncio
import json

import pytest
import torch
from helpers import compose

from tools.cpu import tiny
from tools.cpu.rollout import HFServer, InjectedRolloutFailure

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


def test_a_request_samples_the_same_after_a_restart(model_path):
    """Each request's generator is seeded by (seed, replica, step, prompt, its count): a fresh server, as after a
    resume, samples what the first one did, while the requests of one prompt within a step differ."""
    first, again = server(model_path, seed=7), server(model_path, seed=7)
    for srv in (first, again):
        srv.global_steps = 3
    samples = [generate(first).token_ids for _ in range(3)]
    assert [generate(again).token_ids for _ in range(3)] == samples
    assert len({tuple(s) for s in samples}) > 1
    first.load_weights(first.model.state_dict(), global_steps=4)  # a new step starts the counts again
    assert generate(first).token_ids != samples[0]  # another step, another seed


def test_a_scripted_validation_answer_is_forced(model_path, tmp_path, monkeypatch):
    """CWGRPO_CPU_ANSWERS: a validation request whose prompt holds the text gets the scripted response, with its
    log-probs under the model; training requests (at rollout.temperature) still sample."""
    srv0 = server(model_path)
    prompt_text = srv0.model_config.tokenizer.decode(PROMPT)
    answers = tmp_path / "answers.json"
    answers.write_text(json.dumps({prompt_text[2:8]: "$\\boxed{57}$"}))
    monkeypatch.setenv("CWGRPO_CPU_ANSWERS", str(answers))
    srv = server(model_path, temperature=0.7, logprobs_mode="raw_logprobs")
    out = generate(srv, temperature=0.6)  # validation: val_kwargs' temperature
    assert srv.model_config.tokenizer.decode(out.token_ids) == "$\\boxed{57}$"
    torch.testing.assert_close(out.log_probs, expected_logprobs(srv, out.token_ids), rtol=1e-4, atol=1e-4)
    assert srv.model_config.tokenizer.decode(generate(srv).token_ids) != "$\\boxed{57}$"  # training: sampled
