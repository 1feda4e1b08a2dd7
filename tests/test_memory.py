"""The memory floor's arithmetic (recipe/cwgrpo/memory.py) and the table docs/memory.md shows from it."""

import pytest
from helpers import REPO

from recipe.cwgrpo.memory import GIB, PRESET_MODELS, table, update_floor


def test_parameter_counts_come_out_of_the_shapes():
    assert PRESET_MODELS["DeepSeek-R1-Distill-Qwen-1.5B"].params == pytest.approx(1.777e9, rel=1e-3)
    assert PRESET_MODELS["Qwen2.5-Math-7B-Instruct"].params == pytest.approx(7.615e9, rel=1e-3)


def test_one_group_of_logits_alone_is_about_15_gb_in_bf16():
    terms = update_floor(PRESET_MODELS["DeepSeek-R1-Distill-Qwen-1.5B"], gpus=4, micro_batch_responses=12,
                         sequence_length=4096)
    assert terms["logits"] / 8 * 2 == pytest.approx(12 * 4096 * 151936 * 2)  # the bf16 logits: 14.9 GB
    assert terms["total"] == pytest.approx(sum(v for k, v in terms.items() if k != "total"))


def test_sequence_parallelism_divides_what_a_group_costs_and_more_gpus_only_the_model_states():
    model = PRESET_MODELS["Qwen2.5-Math-7B-Instruct"]
    base = update_floor(model, gpus=4, micro_batch_responses=12, sequence_length=4096)
    sp2 = update_floor(model, gpus=4, micro_batch_responses=12, sequence_length=4096, sequence_parallel=2)
    gpus16 = update_floor(model, gpus=16, micro_batch_responses=12, sequence_length=4096)
    for term in ("logits", "checkpointed activations", "layer recomputation"):
        assert sp2[term] == pytest.approx(base[term] / 2) and gpus16[term] == base[term]
    assert gpus16["model states"] == pytest.approx(base["model states"] / 4)
    assert base["total"] / GIB > 100  # no 80 GB card holds one group of the 7B without a lever


def test_the_docs_table_is_the_commands_output():
    assert table() in (REPO / "docs" / "memory.md").read_text()
