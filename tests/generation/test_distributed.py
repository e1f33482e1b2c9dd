"""Under real ``torchrun`` (2 CPU ranks, gloo) prompts are split and every completion
comes back, equal to one process's."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from generation_helpers import build_model, random_prompts
from torchrun_generate import LENGTHS

from weighted_mtp.generation import generate

pytestmark = pytest.mark.slow

HERE = Path(__file__).resolve().parent
SRC = HERE.parents[1] / "src"
TORCHRUN = Path(sys.executable).parent / "torchrun"
NOT_INHERITED = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")


def test_two_ranks_split_the_prompts_and_gather_the_same_completions(tmp_path: Path) -> None:
    env = {key: value for key, value in os.environ.items() if key not in NOT_INHERITED}
    env["PYTHONPATH"] = os.pathsep.join([str(SRC), env.get("PYTHONPATH", "")])
    run = subprocess.run([str(TORCHRUN), "--standalone", "--nproc_per_node", "2",
                          str(HERE / "torchrun_generate.py"), str(tmp_path)],
                         env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stdout + run.stderr
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    model, prompts = build_model(), random_prompts(LENGTHS)
    expected = {
        "greedy": generate(model, prompts, max_new_tokens=12),
        "sampled": generate(model, prompts, max_new_tokens=12, temperature=1.0, seed=3),
        "speculative": generate(model, prompts, max_new_tokens=12, speculative=True),
    }
    for result in ranks:
        assert result["world"] == 2
        assert result["prefills"] == 2  # one batch per rank: each decoded its own share
        assert {key: result[key] for key in expected} == expected
