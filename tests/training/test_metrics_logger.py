"""The metrics logger: console block format, backends, rank awareness."""

from __future__ import annotations

import json
import logging

from weighted_mtp.training.metrics_logger import ConsoleBackend, HistoryBackend, MetricsLogger

STAGE2_ROW = {
    "stage2/epoch": 0.41, "stage2/lr": 9.8e-06,
    "stage2/train/head0_loss": 2.3456, "stage2/train/head1_loss": 2.4123,
    "stage2/train/head2_loss": 2.5678, "stage2/train/head3_loss": 2.3890,
    "stage2/train/mtp_loss": 2.4287, "stage2/train/value_loss": 0.1234, "stage2/train/loss": 1.2761,
    "stage2/weights/mean": 1.02, "stage2/weights/std": 0.71,
    "stage2/weights/clipped_low": 0.031, "stage2/weights/clipped_high": 0.004,
    "stage2/tokens_per_s": 5200.0, "stage2/grad_norm": 0.3,
}

EXPECTED_BLOCK = """\
[Stage 2] Step 100  epoch 0.41  lr 9.8e-06
  Head 0 loss: 2.3456   Head 1 loss: 2.4123   Head 2 loss: 2.5678   Head 3 loss: 2.3890
  Avg MTP loss: 2.4287   Value loss: 0.1234   Total loss: 1.2761
  weights: mean 1.02  std 0.71  clipped low 3.1%  high 0.4%   tokens/s 5200"""


def test_console_block_format(caplog):
    caplog.set_level(logging.INFO, logger="weighted_mtp.training")
    MetricsLogger([ConsoleBackend()]).log_metrics(STAGE2_ROW, step=100)
    assert [r.getMessage() for r in caplog.records] == [EXPECTED_BLOCK]


def test_console_leaves_out_what_a_stage_does_not_have(caplog):
    caplog.set_level(logging.INFO, logger="weighted_mtp.training")
    row = {"stage1/epoch": 0.5, "stage1/lr": 1e-4, "stage1/train/value_loss": 0.25,
           "stage1/train/loss": 0.25, "stage1/tokens_per_s": 10.0}
    val = {"stage1/val_loss": 0.2, "stage1/val_value_loss": 0.2,
           "stage1/val_value_explained_variance": 0.1}
    logger = MetricsLogger([ConsoleBackend()])
    logger.log_metrics(row, step=3)
    logger.log_metrics(val, step=3)
    assert [r.getMessage() for r in caplog.records] == [
        "[Stage 1] Step 3  epoch 0.50  lr 1.0e-04\n  Value loss: 0.2500   Total loss: 0.2500\n"
        "  tokens/s 10",
        "[Stage 1] Step 3  validation  loss 0.2000  value 0.2000  expl.var 0.1000",
    ]


class _Recorder:
    def __init__(self) -> None:
        self.calls: list = []

    def log_metrics(self, metrics, step):
        self.calls.append(("metrics", dict(metrics), step))

    def log_params(self, params):
        self.calls.append(("params", dict(params)))

    def close(self):
        self.calls.append(("close",))


def test_composite_forwards_to_every_backend_and_a_new_one_is_one_call(tmp_path):
    history, recorder = HistoryBackend(), _Recorder()
    logger = MetricsLogger([history])
    logger.add_backend(recorder)
    logger.log_params({"stage2/total_steps": 10})
    logger.log_metrics({"stage2/train/loss": 1.0}, step=1)
    logger.log_metrics({"stage2/train/loss": 0.5, "stage2/val_loss": 0.7}, step=2)
    logger.close()
    assert recorder.calls[0] == ("params", {"stage2/total_steps": 10})
    assert recorder.calls[-1] == ("close",)
    assert logger.history() == [{"step": 1, "stage2/train/loss": 1.0},
                                {"step": 2, "stage2/train/loss": 0.5, "stage2/val_loss": 0.7}]
    assert history.latest() == {"stage2/train/loss": 0.5, "stage2/val_loss": 0.7}
    written = json.loads(history.write_json(tmp_path / "metrics.json").read_text())
    assert written["final"]["stage2/val_loss"] == 0.7 and len(written["history"]) == 2


def test_non_main_rank_logs_nothing():
    recorder = _Recorder()
    logger = MetricsLogger([recorder], is_main=False)
    logger.log_metrics({"stage2/train/loss": 1.0}, step=1)
    logger.log_params({"a": 1})
    assert recorder.calls == []
