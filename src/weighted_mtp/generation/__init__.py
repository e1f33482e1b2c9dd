"""Code generation from a trained MTP model: KV cache, batched prompts, sampling and
self-speculative decoding with the MTP heads (Kedro-free). See docs/GENERATION.md.
"""

from weighted_mtp.generation.api import generate
from weighted_mtp.generation.decode import GenerationStats
from weighted_mtp.generation.sampling import SamplingConfig
from weighted_mtp.generation.text import generate_text

__all__ = ["GenerationStats", "SamplingConfig", "generate", "generate_text"]
