"""The token-weight report: one coloured span per response token, with the numbers the
weighting module gives on the same batch, on a tiny model and tokenizer."""

from __future__ import annotations

import io
import math
from html.parser import HTMLParser

import pytest
import torch

from weighted_mtp.data import (
    MTPCollator,
    encode_records,
    resolve_pad_token_id,
    tokenizer_training_texts,
    train_bpe_tokenizer,
)
from weighted_mtp.models import create_micro_model
from weighted_mtp.reporting import (
    render_token_report,
    select_records,
    token_weight_rows,
    value_figures,
    weight_colour,
)
from weighted_mtp.reporting.report import correct_responses, with_bug_spans
from weighted_mtp.reporting.token_html import HIGH, LOW
from weighted_mtp.config.schema import Stage2Config
from weighted_mtp.value_weighting import build_weights, compute_gae_advantages, compute_td_errors

MAX_LENGTH = 256
PROGRAMS = {
    True: ["n = int(input())\nprint(n * 2)\n", "print(2 * int(input()))\n", "x = int(input())\nprint(x + x)\n"],
    False: ["n = int(input())\nprint(n * 3)\n", "print(int(input()))\n", "x = input()\nprint(x + x)\n"],
}


def _records() -> list[dict]:
    records = []
    for problem in range(3):
        for is_correct in (True, False):
            records.append({
                "instruction": f"Read n and print twice n. Case {problem}.", "input": "",
                "output": PROGRAMS[is_correct][problem], "is_correct": is_correct,
                "problem_id": f"double_{problem}",
                "task_id": f"double_{problem}/{'correct' if is_correct else 'incorrect'}/0",
            })
    return records


@pytest.fixture(scope="module")
def records() -> list[dict]:
    return _records()


@pytest.fixture(scope="module")
def tokenizer(records):
    return train_bpe_tokenizer(tokenizer_training_texts(records), vocab_size=300)


@pytest.fixture(scope="module")
def model(tokenizer, tmp_path_factory):
    directory = tmp_path_factory.mktemp("micro")
    return create_micro_model(directory, vocab_size=len(tokenizer), seed=3, dim=32, n_layers=5,
                              n_heads=2, n_kv_heads=1, max_seq_len=MAX_LENGTH)


def _settings(td_lambda: float = 0.0) -> Stage2Config:
    return Stage2Config(beta=0.9, gamma=1.0, td_lambda=td_lambda, initial_value=0.5,
                        weight_clip_min=0.1, weight_clip_max=5.0, normalize_mean=False)


class _Spans(HTMLParser):
    """Collects every ``span.tok``'s data attributes, grouped by ``section``."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: list[list[dict[str, str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {key: value or "" for key, value in attrs}
        if tag == "section":
            self.sections.append([])
        elif tag == "span" and attributes.get("class", "").split()[:1] == ["tok"]:
            self.sections[-1].append(attributes)


def _expected(model, tokenizer, records, td: Stage2Config) -> tuple[torch.Tensor, dict]:
    """The weighting module applied directly to the collated batch of ``records``."""
    batch = MTPCollator(resolve_pad_token_id(tokenizer))(encode_records(records, tokenizer, MAX_LENGTH))
    with torch.no_grad():
        values = model.eval()(batch["input_ids"], return_logits=False).values
    deltas = compute_td_errors(values, batch["rewards"], batch["loss_mask"], gamma=td.gamma,
                               initial_value=td.initial_value, truncated=batch["truncated"])
    x = compute_gae_advantages(deltas, batch["loss_mask"], gamma=td.gamma, lam=td.td_lambda) if td.td_lambda else deltas
    weights = build_weights(x, batch["loss_mask"], td.beta, td.weight_clip_min, td.weight_clip_max)
    return weights, {"batch": batch, "values": values, "deltas": deltas}


@pytest.mark.parametrize("td_lambda", [0.0, 0.95])
def test_page_has_one_span_per_response_token_with_the_module_weights(model, tokenizer, records, td_lambda):
    td = _settings(td_lambda)
    rows = token_weight_rows(model, tokenizer, records, td, MAX_LENGTH)
    page = render_token_report(rows, td, "Token weights: test")
    parser = _Spans()
    parser.feed(page)
    weights, parts = _expected(model, tokenizer, records, td)
    mask = parts["batch"]["loss_mask"].bool()
    assert len(parser.sections) == len(records) == 6
    for b, spans in enumerate(parser.sections):
        assert len(spans) == int(mask[b].sum())  # one span per response token, EOS included
        shown = torch.tensor([float(span["data-w"]) for span in spans], dtype=torch.float64)
        torch.testing.assert_close(shown, weights[b][mask[b]].double(), rtol=1e-6, atol=1e-7)
        deltas = torch.tensor([float(span["data-delta"]) for span in spans], dtype=torch.float64)
        torch.testing.assert_close(deltas, parts["deltas"][b][mask[b]].double(), rtol=1e-6, atol=1e-7)
        values = torch.tensor([float(span["data-v"]) for span in spans], dtype=torch.float64)
        torch.testing.assert_close(values, parts["values"][b][mask[b]].double(), rtol=1e-6, atol=1e-7)
        for span in spans:
            assert span["style"] == f"background:{weight_colour(float(span['data-w']), 0.1, 5.0)}"
            assert "V_t = " in span["title"] and "δ_t = " in span["title"] and "w_t = " in span["title"]


def test_tokens_read_back_as_the_response(model, tokenizer, records):
    rows = token_weight_rows(model, tokenizer, records, _settings(), MAX_LENGTH)
    for row, record in zip(rows, records):
        assert "".join(row.tokens) == record["output"] + "</s>"
        assert row.is_correct == record["is_correct"] and row.task_id == record["task_id"]


def test_page_is_self_contained(model, tokenizer, records):
    page = render_token_report(token_weight_rows(model, tokenizer, records, _settings(), MAX_LENGTH),
                               _settings(), "Token weights: <test>", notes=["a & b"])
    assert page.startswith("<!DOCTYPE html>")
    for external in ("<script", "<link", "src=", "http://", "https://", "@import"):
        assert external not in page
    assert "&lt;test&gt;" in page and "a &amp; b" in page  # text is escaped
    assert page.count('class="correct"') == 3 and page.count('class="incorrect"') == 3


def test_colours_diverge_around_one():
    hex_of = "#{:02x}{:02x}{:02x}".format
    assert weight_colour(1.0, 0.1, 5.0) == "#ffffff"
    assert weight_colour(5.0, 0.1, 5.0) == hex_of(*HIGH) == weight_colour(50.0, 0.1, 5.0)
    assert weight_colour(0.1, 0.1, 5.0) == hex_of(*LOW) == weight_colour(0.0, 0.1, 5.0)
    greens = [int(weight_colour(w, 0.1, 5.0)[3:5], 16) for w in (0.1, 0.3, 1.0, 2.0, 5.0)]
    assert greens[0] < greens[1] < greens[2] and greens[2] > greens[3] > greens[4]
    # Log-symmetric: w = 1/√10 is as pale blue as w = √5 is pale orange (halfway to each bound).
    half_low, half_high = weight_colour(10 ** -0.5, 0.1, 5.0), weight_colour(math.sqrt(5), 0.1, 5.0)
    assert abs(int(half_low[1:3], 16) - (255 + 0.5 * (LOW[0] - 255))) <= 0.5
    assert abs(int(half_high[5:7], 16) - (255 + 0.5 * (HIGH[2] - 255))) <= 0.5


def test_select_prefers_correct_incorrect_pairs_of_one_problem():
    records = _records()
    lonely = {**records[0], "problem_id": "alone", "task_id": "alone/correct/0"}
    chosen = select_records([lonely, *records], n_correct=2, n_incorrect=2)
    assert [r["task_id"] for r in chosen] == [
        "double_0/correct/0", "double_0/incorrect/0", "double_1/correct/0", "double_1/incorrect/0"]
    only_correct = [r for r in records if r["is_correct"]]
    assert select_records(only_correct, 2, 2) == only_correct[:2]


def test_value_figures_render_to_png(model, tokenizer, records):
    rows = token_weight_rows(model, tokenizer, records, _settings(), MAX_LENGTH)
    figures = value_figures(rows, 0.1, 5.0)
    assert list(figures)[0] == "00_overview.png"
    assert list(figures)[1] == "01_correct_double_0_correct_0.png"
    assert len(figures) == len(rows) + 1
    buffer = io.BytesIO()
    figures["01_correct_double_0_correct_0.png"].savefig(buffer, format="png")
    assert buffer.getvalue()[:8] == b"\x89PNG\r\n\x1a\n"


def test_model_mode_is_restored(model, tokenizer, records):
    model.train()
    token_weight_rows(model, tokenizer, records[:2], _settings(), MAX_LENGTH)
    assert model.training


def test_incorrect_solutions_underline_where_they_differ_from_the_correct_one(model, tokenizer, records):
    rows = token_weight_rows(model, tokenizer, records, _settings(), MAX_LENGTH)
    rows = with_bug_spans(rows, correct_responses(records, tokenizer, MAX_LENGTH))
    page = render_token_report(rows, _settings(), "Token weights: test")
    parser = _Spans()
    parser.feed(page)
    for row, spans in zip(rows, parser.sections):
        underlined = {t for t, span in enumerate(spans) if "bug" in span["class"].split()}
        if row.is_correct:
            assert underlined == set() and row.bug_span == frozenset()
            continue
        assert underlined == set(row.bug_span) and 0 < len(underlined) < len(spans)
        # the tokens left plain are common to both programs, in order
        plain = "".join(row.tokens[t] for t in range(len(spans)) if t not in underlined)
        correct = PROGRAMS[True][PROGRAMS[False].index("".join(row.tokens).removesuffix("</s>"))]
        assert _is_subsequence(plain, correct + "</s>")
        if row.problem_id == "double_0":  # n * 3 instead of n * 2
            assert "3" in "".join(row.tokens[t] for t in underlined)
    assert page.count("the most negative δ is") == 3


def _is_subsequence(short: str, long: str) -> bool:
    rest = iter(long)
    return all(ch in rest for ch in short)
