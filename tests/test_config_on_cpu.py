"""The README's flags compose with verl's real ppo_trainer config and pass the driver's checks; bad values fail there."""

import re

import pytest
from helpers import BASE_OVERRIDES, REPO, compose, validate

from cwgrpo_verl.config import CWGRPOPolicyLossConfig

PL = "actor_rollout_ref.actor.policy_loss"


def readme_main_ppo_flags():
    text = (REPO / "README.md").read_text()
    block = re.search(r"<!-- main_ppo-flags -->\s*```bash\n(.*?)```", text, re.S).group(1)
    return [tok for tok in block.replace("\\\n", " ").split() if "=" in tok]


def test_readme_flags_compose_and_validate():
    flags = readme_main_ppo_flags()
    assert f"{PL}.loss_mode=cw_grpo" in flags and "algorithm.adv_estimator=cw_grpo" in flags
    actor, rollout, algorithm = validate(compose(BASE_OVERRIDES + flags))
    assert isinstance(actor.policy_loss, CWGRPOPolicyLossConfig)
    assert actor.policy_loss.loss_mode == "cw_grpo" and actor.policy_loss.cw_normalizer == "padded"
    assert algorithm.adv_estimator == "cw_grpo" and rollout.n == 12


def test_paper_text_variant_and_estimator_epsilon():
    flags = readme_main_ppo_flags() + [
        f"+{PL}.cw_logp_center=batch",
        f"+{PL}.cw_normalizer=valid_tokens",
        f"+{PL}.cw_detach_weights=true",
        f"+{PL}.cw_bandwidth_scale=2.0",
        "algorithm._target_=cwgrpo_verl.config.CWAlgoConfig",
        "+algorithm.cw_adv_epsilon=1e-6",
    ]
    # later duplicates of a `+key` are refused by Hydra, so keep the last occurrence of each key
    last = {f.lstrip("+").split("=")[0]: f for f in flags}
    actor, _, algorithm = validate(compose(BASE_OVERRIDES + list(last.values())))
    pl = actor.policy_loss
    assert (pl.cw_logp_center, pl.cw_normalizer, pl.cw_detach_weights, pl.cw_bandwidth_scale) == ("batch", "valid_tokens", True, 2.0)
    assert algorithm.cw_adv_epsilon == 1e-6


def test_flag_only_switch_without_target_uses_defaults():
    actor, _, _ = validate(compose(BASE_OVERRIDES + [f"{PL}.loss_mode=cw_grpo", "algorithm.adv_estimator=cw_grpo"]))
    assert actor.policy_loss.loss_mode == "cw_grpo"


TARGET = f"{PL}._target_=cwgrpo_verl.config.CWGRPOPolicyLossConfig"


@pytest.mark.parametrize(
    "override, message",
    [
        (f"+{PL}.cw_logp_center=token", r"cw_logp_center must be one of \['sequence', 'batch'\]"),
        (f"+{PL}.cw_normalizer=sum", r"cw_normalizer must be one of \['padded', 'valid_tokens'\]"),
        (f"+{PL}.cw_detach_weights=maybe", r"cw_detach_weights must be true or false"),
        (f"+{PL}.cw_bandwidth_scale=0", r"cw_bandwidth_scale must be a finite float > 0"),
        (f"+{PL}.cw_bandwidth_scale=-1.5", r"cw_bandwidth_scale must be a finite float > 0"),
        (f"+{PL}.cw_scope=group", r"cw_scope"),  # not an option of the loss: the recipe's cwgrpo.scope
        (f"+{PL}.cw_bandwith_scale=1.0", r"cw_bandwith_scale"),  # a misspelt key
    ],
)
def test_invalid_values_fail_at_startup_naming_the_key(override, message):
    cfg = compose(BASE_OVERRIDES + [TARGET, f"{PL}.loss_mode=cw_grpo", override])
    with pytest.raises(Exception, match=message):
        validate(cfg)


def test_invalid_estimator_epsilon_fails_at_startup():
    cfg = compose(BASE_OVERRIDES + ["algorithm._target_=cwgrpo_verl.config.CWAlgoConfig", "+algorithm.cw_adv_epsilon=-1"])
    with pytest.raises(Exception, match="algorithm.cw_adv_epsilon"):
        validate(cfg)
