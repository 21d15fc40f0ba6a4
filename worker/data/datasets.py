"""Query sets: builtin (generated here, deterministic), `file:<path>.jsonl`, and `hf:` (worker.data.hf_datasets).

Builtin sets need no network and no data files: item i of a set is generated
from a `random.Random` seeded with the set's name and i, so a set is the same
on every machine and a run of n queries does not depend on how many were asked
before. Each set holds `BUILTIN_SIZE` distinct items (the study used 1,000
queries a dataset); asking for more cycles through them in order.

Module level stays light (no PIL, numpy, torch); the names and kinds of the
sets are `worker.contract.catalog.BUILTIN_DATASETS`.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

from worker.contract.catalog import BUILTIN_DATASETS
from worker.contract.refs import DatasetRef, OutsideDataRoots, ReferenceError, check_data_path, parse_dataset_ref
from worker.contract.words import (
    ADJECTIVES,
    ASPECTS,
    FEELINGS,
    LIGHTS,
    NAMES,
    NOUNS,
    PLACES,
    QUALITIES,
    STYLES,
    TOPICS,
    VERBS,
)
from worker.errors import DatasetLoadError

BUILTIN_SIZE = 1000
IMAGE_SIZE_PX = 64
SAMPLE_RATE_HZ = 16_000  # speech: the rate Whisper-style feature extractors read
SPEECH_SECONDS = (0.5, 4.0)  # shortest and longest builtin utterance: varied lengths, under a 5 s model window




def _sentence(rng: random.Random) -> str:
    return (f"The {rng.choice(ADJECTIVES)} {rng.choice(NOUNS)} {rng.choice(VERBS)} the "
            f"{rng.choice(ADJECTIVES)} {rng.choice(NOUNS)} near {rng.choice(PLACES)}.")


def _texts(rng: random.Random) -> str:
    return " ".join(_sentence(rng) for _ in range(rng.randint(1, 3)))


def _reviews(rng: random.Random) -> str:
    first, second = rng.sample(ASPECTS, 2)
    parts = [f"I {rng.choice(FEELINGS)} this film.",
             f"The {first} was {rng.choice(QUALITIES)} and the {second} was {rng.choice(QUALITIES)}.",
             f"{rng.choice(NAMES)} plays a {rng.choice(ADJECTIVES)} {rng.choice(NOUNS)} from {rng.choice(PLACES)}.",
             f"Overall it is {rng.choice(QUALITIES)}, {rng.randint(1, 10)} out of 10."]
    return " ".join(parts[: rng.randint(2, 4)])


def _squad_like(rng: random.Random) -> dict[str, str]:
    place, river, year = rng.choice(PLACES), rng.choice(PLACES), rng.randint(1100, 1950)
    people, noun = rng.randint(2, 900) * 1000, rng.choice(NOUNS)
    context = (f"{place} is a {rng.choice(ADJECTIVES)} town on the {river} river. It was founded in {year} "
               f"around an old {noun}. Today {people} people live there, and its {rng.choice(TOPICS)} "
               f"is known across the region. {_sentence(rng)}")
    question = rng.choice([f"When was {place} founded?", f"On which river is {place}?",
                           f"How many people live in {place}?", f"Around what was {place} founded?"])
    return {"question": question, "context": context}


def _trivia(rng: random.Random) -> dict[str, str]:
    name, job, place = f"{rng.choice(NAMES)} {rng.choice(PLACES)}", rng.choice(NOUNS), rng.choice(PLACES)
    year = rng.randint(1700, 1990)
    context = (f"{name} was a {rng.choice(ADJECTIVES)} {job} born in {year} in {place}. {name} "
               f"{rng.choice(VERBS)} the {rng.choice(NOUNS)} of {rng.choice(PLACES)} and wrote about "
               f"{rng.choice(TOPICS)}.")
    question = rng.choice([f"When was {name} born?", f"Where was {name} born?", f"What was {name}?"])
    return {"question": question, "context": context}


def _document(rng: random.Random, opener: str) -> str:
    topic, place = rng.choice(TOPICS), rng.choice(PLACES)
    lines = [opener.format(topic=topic, place=place, name=rng.choice(NAMES), n=rng.randint(3, 95))]
    lines += [_sentence(rng) for _ in range(rng.randint(3, 6))]
    lines.append(f"{rng.choice(NAMES)} said the {topic} plan for {place} would change after {rng.randint(2, 12)} "
                 f"years.")
    return " ".join(lines)


def _news(rng: random.Random) -> str:
    return _document(rng, "Officials in {place} announced a new {topic} plan on Monday, {name} reported.")


def _reports(rng: random.Random) -> str:
    return _document(rng, "This report on {topic} in {place} covers {n} sites visited by {name} and the team.")


def _prompts(rng: random.Random) -> str:
    adjective, noun, place, name = rng.choice(ADJECTIVES), rng.choice(NOUNS), rng.choice(PLACES), rng.choice(NAMES)
    return rng.choice([f"Once upon a time in {place}, a {adjective} {noun}",
                       f"The report on {rng.choice(TOPICS)} in {place} said that the {noun}",
                       f"{name} opened the door of the {adjective} {noun} and",
                       f"Here is how {name} repaired the {adjective} {noun}:",
                       f"In {rng.randint(1800, 2030)}, the people of {place} {rng.choice(VERBS)} a {noun} that"])


def _image_prompts(rng: random.Random) -> str:
    return (f"a {rng.choice(STYLES)} of a {rng.choice(ADJECTIVES)} {rng.choice(NOUNS)} near a "
            f"{rng.choice(NOUNS)} {rng.choice(LIGHTS)}")


def _shapes(rng: random.Random) -> Any:
    from PIL import Image, ImageDraw

    def color() -> tuple[int, int, int]:
        return rng.randrange(256), rng.randrange(256), rng.randrange(256)

    image = Image.new("RGB", (IMAGE_SIZE_PX, IMAGE_SIZE_PX), color())
    draw = ImageDraw.Draw(image)
    for _ in range(rng.randint(1, 4)):
        x0, y0 = rng.randrange(IMAGE_SIZE_PX - 8), rng.randrange(IMAGE_SIZE_PX - 8)
        box = (x0, y0, rng.randint(x0 + 6, IMAGE_SIZE_PX), rng.randint(y0 + 6, IMAGE_SIZE_PX))
        shape = rng.choice(("ellipse", "rectangle", "triangle"))
        if shape == "triangle":
            draw.polygon([(box[0], box[3]), (box[2], box[3]), ((box[0] + box[2]) // 2, box[1])], fill=color())
        else:
            getattr(draw, shape)(box, fill=color())
    return image


def _noise(rng: random.Random) -> Any:
    import numpy as np
    from PIL import Image

    generator = np.random.default_rng(rng.getrandbits(64))
    coarse = generator.integers(0, 256, size=(8, 8, 3), dtype=np.uint8)  # smooth blobs plus fine grain
    image = Image.fromarray(coarse).resize((IMAGE_SIZE_PX, IMAGE_SIZE_PX), Image.Resampling.BILINEAR)
    grain = generator.integers(-24, 25, size=(IMAGE_SIZE_PX, IMAGE_SIZE_PX, 3))
    return Image.fromarray(np.clip(np.asarray(image, dtype=np.int16) + grain, 0, 255).astype(np.uint8))


def _speech(rng: random.Random) -> dict[str, Any]:
    """A speech-like waveform: voiced "syllables" (a fundamental with formant-like harmonics under an envelope),
    pauses and a little noise, float32 mono at 16 kHz, 0.5 to 4 s long."""
    import numpy as np

    generator = np.random.default_rng(rng.getrandbits(64))
    n = int(SAMPLE_RATE_HZ * rng.uniform(*SPEECH_SECONDS))
    t = np.arange(n) / SAMPLE_RATE_HZ
    wave = np.zeros(n)
    start = 0
    while start < n:
        length = int(SAMPLE_RATE_HZ * rng.uniform(0.12, 0.35))
        stop = min(n, start + length)
        pitch = rng.uniform(90, 240)
        segment = t[start:stop]
        envelope = np.sin(np.pi * np.linspace(0, 1, stop - start)) ** 2
        for harmonic, weight in ((1, 1.0), (2, 0.5), (3, rng.uniform(0.1, 0.4)), (5, rng.uniform(0.05, 0.2))):
            wave[start:stop] += weight * envelope * np.sin(2 * np.pi * pitch * harmonic * segment)
        start = stop + int(SAMPLE_RATE_HZ * rng.uniform(0.02, 0.15))  # a pause between syllables
    wave += generator.normal(0, 0.01, n)
    wave *= 0.3 / max(1e-9, float(np.abs(wave).max()))
    return {"array": wave.astype(np.float32), "sampling_rate": SAMPLE_RATE_HZ}


def _sentence_pairs(rng: random.Random) -> dict[str, str]:
    """Two sentences: a near paraphrase of the first (an adjective and verb changed) or an unrelated one."""
    first = _sentence(rng)
    if rng.random() < 0.5:
        words = first.split()
        words[1], words[3] = rng.choice(ADJECTIVES), rng.choice(VERBS)
        second = " ".join(words)
    else:
        second = _sentence(rng)
    return {"sentence1": first, "sentence2": second}


_GENERATORS = {"texts": _texts, "reviews": _reviews, "squad-like": _squad_like, "trivia": _trivia,
               "news": _news, "reports": _reports, "prompts": _prompts, "image-prompts": _image_prompts,
               "shapes": _shapes, "noise": _noise, "speech": _speech, "sentence-pairs": _sentence_pairs}


def builtin_item(name: str, index: int) -> Any:
    """Item `index` of builtin set `name`: the same on every machine and in every run."""
    return _GENERATORS[name](random.Random(f"wattsweep:{name}:{index % BUILTIN_SIZE}"))


def _kind_of(value: Any) -> str:
    if isinstance(value, dict):
        return "pair" if "sentence1" in value else "audio" if "array" in value else "qa"
    return "image" if not isinstance(value, str) else "text"


def _file_item(line: str, where: str, folder: Path) -> Any:
    try:
        value = json.loads(line)
    except json.JSONDecodeError as exc:
        raise DatasetLoadError(f"{where}: not JSON ({exc.msg}); each line must be a JSON string or object") from exc
    if isinstance(value, str):
        return value
    if not isinstance(value, dict):
        raise DatasetLoadError(f"{where}: expected a JSON string or object, got {type(value).__name__}")
    if isinstance(value.get("question"), str) and isinstance(value.get("context"), str):
        return {"question": value["question"], "context": value["context"]}
    if isinstance(value.get("sentence1"), str) and isinstance(value.get("sentence2"), str):
        return {"sentence1": value["sentence1"], "sentence2": value["sentence2"]}
    if isinstance(value.get("audio"), str):  # a sound file beside the .jsonl, decoded as hf: audio columns are
        from worker.data.audio import decode_audio

        return decode_audio({"path": str(folder / value["audio"]), "bytes": None}, where)
    for key in ("text", "prompt"):
        if isinstance(value.get(key), str):
            return value[key]
    if isinstance(value.get("image"), str):
        from PIL import Image

        try:
            path = check_data_path(folder / value["image"], f"{where}: image")
        except OutsideDataRoots as exc:
            raise DatasetLoadError(str(exc)) from None
        try:
            with Image.open(path) as image:
                return image.convert("RGB")
        except OSError as exc:
            raise DatasetLoadError(f"{where}: cannot read image {str(path)!r}: {exc}") from exc
    raise DatasetLoadError(f'{where}: expected a "text", "prompt", "question"+"context", "sentence1"+"sentence2", '
                           '"image" (path) or "audio" (path) field')


def _read_file(name: str, limit: int | None) -> list[Any]:
    try:
        path = check_data_path(name, "dataset file")
    except OutsideDataRoots as exc:
        raise DatasetLoadError(str(exc)) from None
    if not path.is_file():
        raise DatasetLoadError(f"dataset file {str(path)!r} does not exist (file: paths are read on the worker)")
    items: list[Any] = []
    with path.open(encoding="utf-8") as lines:
        for number, line in enumerate(lines, start=1):
            if line.strip():
                items.append(_file_item(line, f"{path}:{number}", path.parent))
                if _kind_of(items[-1]) != _kind_of(items[0]):
                    raise DatasetLoadError(f"{path}:{number}: mixes query kinds; one file holds one kind")
                if limit is not None and len(items) >= limit:
                    break
    if not items:
        raise DatasetLoadError(f"dataset file {str(path)!r} holds no queries")
    return items


def _parse(ref: str) -> DatasetRef:
    try:
        return parse_dataset_ref(ref)
    except ReferenceError as exc:
        raise DatasetLoadError(str(exc)) from exc


def dataset_kind(ref: str) -> str:
    """The input kind of the queries `ref` names (one of INPUT_KINDS; a file of plain strings reads as "text").

    An `hf:` set has columns of several kinds: the task's input kind picks the column, so it has no kind of its own.
    """
    parsed = _parse(ref)
    if parsed.kind == "builtin":
        return BUILTIN_DATASETS[parsed.name]
    if parsed.kind == "hf":
        raise DatasetLoadError(f"dataset {ref!r}: an hf: set's kind is the task's (its input kind picks the column)")
    return _kind_of(_read_file(parsed.name, limit=1)[0])


def load_queries(ref: str, n: int, input_kind: str | None = None) -> list[Any]:
    """Exactly `n` queries from dataset reference `ref`, cycling in order through a smaller set.

    `input_kind` is the kind the task reads: an `hf:` set needs it to pick its column.
    """
    if n < 0:
        raise ValueError(f"n must be >= 0, got {n}")
    parsed = _parse(ref)
    if parsed.kind == "builtin":
        return [builtin_item(parsed.name, i) for i in range(n)]
    if parsed.kind == "hf":
        if input_kind is None:
            raise DatasetLoadError(f"dataset {ref!r}: hf: sets need the task's input kind to pick their column")
        from worker.data.hf_datasets import load_hf_queries

        return load_hf_queries(parsed.name, n, input_kind)
    items = _read_file(parsed.name, limit=n)
    return [items[i % len(items)] for i in range(n)]
