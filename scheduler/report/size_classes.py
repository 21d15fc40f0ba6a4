"""AI Energy Score's size classes for text generation and reasoning: by memory footprint, not parameter count.

index.md, "Text Generation Model Classes" (Table 2): class A fits a single consumer GPU (24 GB), B a single
cloud GPU (80 GB), C needs several. The footprint is its formula M(GB) = (P x B / (32 / Q)) x 1.2, P the
parameters in billions, B = 2 bytes, Q the bits a weight takes ("Assumes FP16 precision": Q = 16, so 1.2 GB per
billion parameters; a model measured in another precision uses that one's bits, as its README says classes
depend "on quantization and precision settings"). Where AI Energy Score's own data names a model's class, that
class wins: its data is what its stars were computed over (oct_2025_models.csv puts granite-4.0-h-small, 32B
parameters and 38 GB by the formula, in class C).
"""

from __future__ import annotations

import math

CLASSED_TASKS = frozenset({"text-generation", "reasoning"})
CLASS_LIMITS_GB = (("A", 24.0), ("B", 80.0), ("C", math.inf))  # index.md Table 2, total memory
OVERHEAD = 1.2  # "Assumes 20% overhead for framework and other memory requirements"
BITS = {"float32": 32, "float16": 16, "bfloat16": 16, "int8": 8, "int4": 4}

# The classes AI Energy Score's data gives (oct_2025_models.csv, December 2025; "Class" column), by Hub name.
PUBLISHED: dict[str, str] = {
    "openai/gpt-oss-20b": "B", "google/gemma-3-4b-pt": "A", "HuggingFaceTB/SmolLM3-3B": "A",
    "microsoft/Phi-4-reasoning-plus": "A", "Qwen/Qwen2.5-Coder-14B": "A", "mistralai/Mistral-Nemo-Instruct-2407": "A",
    "mistralai/Mistral-Small-3.1-24B-Instruct-2503": "B", "Qwen/Qwen3-30B-A3B": "B", "openai/gpt-oss-120b": "C",
    "deepseek-ai/DeepSeek-R1": "C", "deepseek-ai/DeepSeek-V3.2-Exp": "C", "Qwen/Qwen3-Next-80B-A3B-Thinking": "C",
    "Qwen/Qwen3-Next-80B-A3B-Instruct": "C", "zai-org/GLM-4.6": "C", "ibm-granite/granite-4.0-micro": "A",
    "ibm-granite/granite-4.0-h-tiny": "A", "ibm-granite/granite-4.0-h-small": "C", "moonshotai/Kimi-K2-Instruct": "C",
    "swiss-ai/Apertus-8B-Instruct-2509": "A", "swiss-ai/Apertus-70B-Instruct-2509": "C", "Qwen/Qwen3-235B-A22B": "C",
    "zai-org/GLM-4.5": "C", "MiniMaxAI/MiniMax-M1-80k": "C", "google/gemma-3-270m": "A", "google/gemma-3-1b-pt": "A",
    "tencent/Hunyuan-1.8B-Instruct": "A", "LGAI-EXAONE/EXAONE-4.0-32B": "B", "mistralai/Magistral-Small-2507": "B",
    "deepseek-ai/DeepSeek-V3": "C", "zai-org/GLM-4.5-Air": "C", "Qwen/Qwen3-0.6B": "A",
    "nvidia/Llama-3_3-Nemotron-Super-49B-v1_5": "B", "google/gemma-3-27b-pt": "B", "deepseek-ai/DeepSeek-R1-0528": "C",
    "deepseek-ai/DeepSeek-R1-Distill-Llama-70B": "C", "deepseek-ai/DeepSeek-R1-Distill-Qwen-32B": "C",
    "google/gemma-3-270m-it": "A", "google/gemma-3-1b-it": "A", "google/gemma-3-12b-it": "A",
    "google/gemma-3-27b-it": "B",
}


def hub_name(model: str | None) -> str:
    """`hub:org/name@rev` (or a bare `org/name`) as the Hub name AI Energy Score's files use."""
    return (model or "").removeprefix("hub:").partition("@")[0].strip()


def footprint_gb(num_parameters: int, dtype: str | None = None) -> float:
    """index.md's M(GB) = (P x 2 / (32 / Q)) x 1.2, Q the bits of `dtype` (FP16 where unknown, as it assumes)."""
    bits = BITS.get(dtype or "", 16)
    return num_parameters / 1e9 * 2 / (32 / bits) * OVERHEAD


def size_class(task: str, num_parameters: int | None, model: str | None = None, dtype: str | None = None
               ) -> str | None:
    """"A" / "B" / "C" for text generation and reasoning, "" for other tasks (one class), None if unknown."""
    if task not in CLASSED_TASKS:
        return ""
    published = PUBLISHED.get(hub_name(model))
    if published:
        return published
    if not num_parameters:
        return None
    memory = footprint_gb(num_parameters, dtype)
    return next(name for name, limit in CLASS_LIMITS_GB if memory <= limit)
