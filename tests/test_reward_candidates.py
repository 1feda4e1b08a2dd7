"""The candidate search of evaluation mode: the same matches as a plain scan, in linear time.

``candidate_groups`` runs lighteval's patterns on same-length copies of the text (unclosable openers masked,
long expression runs cut) and tries boxed environments only where a box can be. Below, its matches are
compared with a plain ``finditer`` of the very same patterns over the original text, and adversarial inputs
that make the plain scan quadratic or worse must finish quickly.
"""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cwgrpo_verl.reward.scoring import candidates as C
from cwgrpo_verl.reward.scoring import eval_prediction

TOKENS = ["$", "$$", "\\[", "\\]", "\\(", "\\)", " [", "] ", "\\boxed{", "{", "}", "\\frac{1}{2}", "%", "\\%", "\n",
          " and ", " or ", ", ", "final answer is ", "The final answer is: ", " I hope", "answer: ", "answer ",
          " = ", "x", "12", "3.5", "-4", " ", "1/2", "(", ")", "+", "**", "\\"]


def _plain(text: str, patterns) -> list:
    """The reference: every pattern's finditer over the original text, grouped and sorted as lighteval."""
    out = []
    for prio in sorted({p.priority for p in patterns}):
        found = [(m, p.kind) for p in patterns if p.priority == prio for m in p.regex.finditer(text)]
        found.sort(key=lambda x: (x[0].end(), -x[0].start()), reverse=True)
        out.append(found)
    return out


def _describe(text: str, groups) -> list:
    return [
        [(m.span(), kind, {n: C.group_text(text, m, n) for n in m.re.groupindex}) for m, kind in group]
        for group in groups
    ]


@settings(max_examples=300, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(st.sampled_from(TOKENS), max_size=40).map("".join))
def test_same_matches_as_a_plain_scan(text):
    for patterns in (C.PRED_TARGETS, C.GOLD_TARGETS["latex"], C.GOLD_TARGETS["expr"]):
        assert _describe(text, C.candidate_groups(text, patterns)) == _describe(text, _plain(text, patterns))


def test_masking_and_cutting_keep_positions():
    text = "\\[ a \\] then \\[ b and \\( c \\) and \\( d\n" + "1+" * 150 + "x \\[ e \\\\] \\( f \\\\) g \\)"
    masked = C._mask_unclosable(text)
    assert len(masked) == len(text)
    # the "\[" after the last "\]", the "\(" with no "\)" on its line, and the two whose first close is escaped
    assert [i for i, c in enumerate(masked) if c == C._MASK] == [
        text.index(opener) for opener in ("\\[ b", "\\( d", "\\[ e", "\\( f")]
    cut = C._cut_long_runs(text)
    assert len(cut) == len(text) and cut.count(C._MASK) == 300 // C.MAX_EXPR_RUN


ADVERSARIAL = {
    "unclosed \\[": "\\[ a " * 40_000,
    "unclosed \\( on one line": "\\( a " * 40_000,
    "expression run": " " + "1+" * 100_000 + "x",
    "digits and spaces": " " + "1 " * 100_000 + "x",
    "display dollars": "$$ a " * 40_000,
    "answer words": "answer " * 30_000 + "1",
    "final answer words": "final answer is " * 12_000,
    "boxed environments without box": "\\[ x \\] $y$ " * 20_000 + "\\boxed{3}",
    "nested braces": "\\boxed{" + "{" * 200_000 + "1" + "}" * 200_000 + "}",
    # boxes without a closing brace inside one environment (each opener and each box once cost a scan to its end)
    "unclosed boxes in one \\[ environment": "\\[\n\\boxed{x\n" * 10_000 + "\\]",
    "unclosed boxes in one \\( environment": "\\(\\boxed{" * 10_000 + "\\)",
    "unclosed boxes between dollars": "$" + "\\boxed{" * 30_000 + "$ }",
    "closed boxes, escaped close": "\\[\\boxed{x}" * 10_000 + "\\\\]",
    "boxes after the last brace": "\\boxed{1} " + "\\boxed{" * 30_000,
}


@pytest.mark.parametrize("name", list(ADVERSARIAL))
def test_adversarial_texts_are_scanned_quickly(name):
    text = ADVERSARIAL[name]
    t0 = time.perf_counter()
    for group in C.candidate_groups(text, C.PRED_TARGETS):
        pass  # every priority group, as for a response with no parsable answer
    elapsed = time.perf_counter() - t0
    assert elapsed < 3.0, f"{name}: {len(text)} characters scanned in {elapsed:.1f} s"


def test_long_response_with_an_early_box_is_found_without_reading_to_the_end():
    filler = "we check the case $x = 2$ and the sum 3 + 4 = 7 again. " * 4000
    text = "<think>\nso it is $\\boxed{42}$.\n" + filler
    assert len(text) > 200_000
    t0 = time.perf_counter()
    preds = eval_prediction(text)
    assert time.perf_counter() - t0 < 3.0
    assert str(preds[0]) == "42"
