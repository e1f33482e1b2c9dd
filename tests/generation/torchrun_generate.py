"""``torchrun --nproc_per_node 2 torchrun_generate.py OUT``: each rank generates for the
same prompt list (it decodes its own share) and writes what ``generate`` returned."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from generation_helpers import build_model, random_prompts  # noqa: E402

from weighted_mtp.generation import GenerationStats, generate  # noqa: E402
from weighted_mtp.runtime import distributed  # noqa: E402

LENGTHS = [4, 17, 1, 9, 12]


def main() -> None:
    distributed.init_distributed(backend="gloo", device_spec="cpu")
    model, prompts, stats = build_model(), random_prompts(LENGTHS), GenerationStats()
    result = {
        "greedy": generate(model, prompts, max_new_tokens=12, stats=stats),
        "sampled": generate(model, prompts, max_new_tokens=12, temperature=1.0, seed=3),
        "speculative": generate(model, prompts, max_new_tokens=12, speculative=True),
        "prefills": stats.prefills,
        "world": distributed.get_world_size(),
    }
    Path(sys.argv[1], f"rank{distributed.get_rank()}.json").write_text(json.dumps(result))
    distributed.shutdown()


if __name__ == "__main__":
    main()
