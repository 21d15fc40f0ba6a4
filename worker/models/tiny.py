"""`tiny:<family>`: small random-weight models of real architectures, built in code, offline, in seconds.

For tests and the demo. Energy of an architecture does not depend on its weight
values when output lengths are fixed, so random weights (seeded: the same
model on every machine) are enough to exercise the whole measurement path.
Tokenizers and image processors are built in code as well (a WordPiece
vocabulary from the builtin datasets' words plus single characters), so no
file is ever downloaded. Everything `build_tiny` returns can `save_pretrained`.

The table of families is `worker.contract.catalog.TINY_FAMILIES` (light: the scheduler
reads it); torch and transformers are imported inside the builders only.
"""

from __future__ import annotations

import string

from worker.contract.catalog import TASK_MODEL_CLASSES, TINY_CHAT_TEMPLATES, TINY_FAMILIES
from worker.contract.words import VOCABULARY
from worker.models.loaded_model import LoadedModel

SEED = 0
WEIGHT_STD = 0.02  # every drawn weight ~ N(0, 0.02), as BERT and GPT-2 initialise theirs
IMAGE_SIZE_PX = 32  # tiny vision models read 32x32 images (processors resize the 64x64 builtin images)
LABELS = ("circle", "square", "triangle", "stripe", "dot", "cloud", "tree", "car", "cat", "boat")
NER_LABELS = ("O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC")


def _tokenizer(specials: dict[str, str], template: str | None = None, pair: str | None = None,
               inputs: tuple[str, ...] = ("input_ids", "attention_mask"), **extra):
    """A lower-casing WordPiece tokenizer; `specials` maps a role (pad_token, ...) to its token, ids in order.

    `inputs` are what it hands the model, as the real tokenizer of the family declares them: token type ids for
    BERT only (transformers 4 gave every tokenizer built like this one token type ids, which GPT-2 adds to its
    embeddings; transformers 5 gives none, which BERT reads as one segment).
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast


    vocab: dict[str, int] = {}
    for token in [*specials.values(), *string.ascii_lowercase, *string.digits, *string.punctuation]:
        vocab.setdefault(token, len(vocab))
    for token in [f"##{c}" for c in string.ascii_lowercase + string.digits] + list(VOCABULARY):
        vocab.setdefault(token, len(vocab))
    backend = Tokenizer(models.WordPiece(vocab, unk_token=specials["unk_token"]))
    backend.normalizer = normalizers.Sequence([normalizers.NFD(), normalizers.Lowercase(), normalizers.StripAccents()])
    backend.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    backend.decoder = decoders.WordPiece()
    if template:  # wrap inputs in special tokens the way the real tokenizer does
        used = [token for token in dict.fromkeys(specials.values()) if token in f"{template} {pair}"]
        backend.post_processor = processors.TemplateProcessing(
            single=template, pair=pair, special_tokens=[(token, vocab[token]) for token in used]
        )
    return PreTrainedTokenizerFast(tokenizer_object=backend, model_max_length=512, model_input_names=list(inputs),
                                   **specials, **extra)


def _bert_tokenizer():
    specials = {"pad_token": "[PAD]", "unk_token": "[UNK]", "cls_token": "[CLS]", "sep_token": "[SEP]",
                "mask_token": "[MASK]"}
    return _tokenizer(specials, "[CLS] $A [SEP]", "[CLS] $A [SEP] $B:1 [SEP]:1",
                      inputs=("input_ids", "token_type_ids", "attention_mask"))


def _gpt2_tokenizer():
    # GPT-2 has one special token; it pads (on the left, for batched generation) with it too.
    specials = {"eos_token": "<|endoftext|>", "bos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
                "pad_token": "<|endoftext|>"}
    return _tokenizer(specials, padding_side="left")


def _vit_config(**extra):
    from transformers import ViTConfig

    return ViTConfig(image_size=IMAGE_SIZE_PX, patch_size=8, hidden_size=32, num_hidden_layers=2,
                     num_attention_heads=2, intermediate_size=64, **extra)


def _gpt2_config(vocab_size: int, n_positions: int = 512, **extra):
    from transformers import GPT2Config

    return GPT2Config(vocab_size=vocab_size, n_embd=32, n_layer=2, n_head=2, n_positions=n_positions,
                      bos_token_id=0, eos_token_id=0, pad_token_id=0, **extra)


def _vit_processor():
    from transformers import ViTImageProcessor

    return ViTImageProcessor(size={"height": IMAGE_SIZE_PX, "width": IMAGE_SIZE_PX})


def _labels(names: tuple[str, ...]) -> dict:
    return {"id2label": dict(enumerate(names)), "label2id": {name: i for i, name in enumerate(names)}}


def _build_bert(task: str) -> LoadedModel:
    import transformers

    tokenizer = _bert_tokenizer()
    labels = {"text-classification": _labels(("NEGATIVE", "POSITIVE")),
              "token-classification": _labels(NER_LABELS)}.get(task, {})
    config = transformers.BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2,
                                     num_attention_heads=2, intermediate_size=64, pad_token_id=0, **labels)
    model = getattr(transformers, TASK_MODEL_CLASSES[task]).from_config(config)
    return LoadedModel(model, tokenizer)


def _build_gpt2(task: str) -> LoadedModel:
    from transformers import GPT2LMHeadModel

    tokenizer = _gpt2_tokenizer()
    if task != "reasoning":
        return LoadedModel(GPT2LMHeadModel(_gpt2_config(len(tokenizer))), tokenizer)
    # A chat model: its template reads the reasoning switches, and its context holds the default 8,192 new tokens.
    tokenizer.chat_template = TINY_CHAT_TEMPLATES["gpt2"]
    return LoadedModel(GPT2LMHeadModel(_gpt2_config(len(tokenizer), n_positions=8192 + 512)), tokenizer)


def _build_ministral3(task: str) -> LoadedModel:
    """Ministral 3 (Mistral, December 2025): an architecture only transformers 5 has (its YaRN rope included)."""
    from transformers import Ministral3Config, Ministral3ForCausalLM

    tokenizer = _gpt2_tokenizer()
    config = Ministral3Config(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                              num_attention_heads=2, num_key_value_heads=1, head_dim=16, max_position_embeddings=4096,
                              bos_token_id=0, eos_token_id=0, pad_token_id=0)
    tokenizer.chat_template = TINY_CHAT_TEMPLATES["ministral3"]  # an instruct model: prompts can be chats
    return LoadedModel(Ministral3ForCausalLM(config), tokenizer)


def _build_llama(task: str) -> LoadedModel:
    """A Llama small enough to serve on two CPU cores in seconds, shaped as vLLM's kernels need (head size 64)."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = _tokenizer({"bos_token": "<s>", "eos_token": "</s>", "unk_token": "<unk>", "pad_token": "<pad>"},
                           padding_side="left")
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=256, intermediate_size=512, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=4, max_position_embeddings=1024,
                         bos_token_id=0, eos_token_id=1, pad_token_id=3, tie_word_embeddings=True)
    return LoadedModel(LlamaForCausalLM(config), tokenizer)


def _build_t5(task: str) -> LoadedModel:
    from transformers import T5Config, T5ForConditionalGeneration

    tokenizer = _tokenizer({"pad_token": "<pad>", "eos_token": "</s>", "unk_token": "<unk>"}, "$A </s>")
    config = T5Config(vocab_size=len(tokenizer), d_model=32, d_kv=16, d_ff=64, num_layers=2, num_heads=2,
                      pad_token_id=0, eos_token_id=1, decoder_start_token_id=0)
    return LoadedModel(T5ForConditionalGeneration(config), tokenizer)


def _build_vit(task: str) -> LoadedModel:
    from transformers import ViTForImageClassification

    return LoadedModel(ViTForImageClassification(_vit_config(**_labels(LABELS))), image_processor=_vit_processor())


def _build_yolos(task: str) -> LoadedModel:
    from transformers import YolosConfig, YolosForObjectDetection, YolosImageProcessor

    config = YolosConfig(image_size=[IMAGE_SIZE_PX, IMAGE_SIZE_PX], patch_size=8, hidden_size=32,
                         num_hidden_layers=2, num_attention_heads=2, intermediate_size=64, num_detection_tokens=10,
                         **_labels(LABELS))
    processor = YolosImageProcessor(size={"shortest_edge": IMAGE_SIZE_PX, "longest_edge": IMAGE_SIZE_PX})
    return LoadedModel(YolosForObjectDetection(config), image_processor=processor)


def _build_vit_gpt2(task: str) -> LoadedModel:
    from transformers import VisionEncoderDecoderConfig, VisionEncoderDecoderModel

    tokenizer = _gpt2_tokenizer()
    decoder = _gpt2_config(len(tokenizer), add_cross_attention=True, is_decoder=True)
    config = VisionEncoderDecoderConfig.from_encoder_decoder_configs(_vit_config(), decoder)
    config.decoder_start_token_id = config.pad_token_id = config.eos_token_id = 0
    return LoadedModel(VisionEncoderDecoderModel(config), tokenizer, _vit_processor())


def _build_stable_diffusion(task: str) -> LoadedModel:
    import warnings

    from transformers import CLIPTextConfig, CLIPTextModel

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # diffusers warns about CUDA autocast at import on CPU-only hosts
        from diffusers import AutoencoderKL, PNDMScheduler, StableDiffusionPipeline, UNet2DConditionModel

    specials = {"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
                "pad_token": "<|endoftext|>"}
    tokenizer = _tokenizer(specials, "<|startoftext|> $A <|endoftext|>")
    tokenizer.model_max_length = 32  # the pipeline pads every prompt to this length, as CLIP does to 77
    text_encoder = CLIPTextModel(CLIPTextConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=2,
        max_position_embeddings=32, bos_token_id=0, eos_token_id=1, pad_token_id=1))
    # A VAE scale factor of 8 as in real Stable Diffusion (four levels), so the default image is 64x64 (8x8 latents).
    unet = UNet2DConditionModel(
        sample_size=8, in_channels=4, out_channels=4, layers_per_block=1, block_out_channels=(32, 64),
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D"), up_block_types=("CrossAttnUpBlock2D", "UpBlock2D"),
        cross_attention_dim=32, attention_head_dim=8, norm_num_groups=8)
    vae = AutoencoderKL(
        in_channels=3, out_channels=3, down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4, block_out_channels=(8, 16, 16, 16), latent_channels=4,
        norm_num_groups=8, sample_size=64)
    scheduler = PNDMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", skip_prk_steps=True,
                              steps_offset=1)  # the Stable Diffusion v1 scheduler settings
    pipe = StableDiffusionPipeline(vae=vae, text_encoder=text_encoder, tokenizer=tokenizer, unet=unet,
                                   scheduler=scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)
    return LoadedModel(pipe)


WHISPER_SPECIALS = ("<|endoftext|>", "<|startoftranscript|>", "<|en|>", "<|translate|>", "<|transcribe|>",
                    "<|startoflm|>", "<|startofprev|>", "<|nocaptions|>", "<|notimestamps|>")
WHISPER_WINDOW_S = 5  # the tiny feature extractor's window (real Whisper: 30 s); builtin:speech fits in it


def _build_whisper(task: str) -> LoadedModel:
    """An English-only Whisper: byte-level BPE tokenizer (the 256 bytes, no merges) written to a scratch folder
    and read back, a 5 s log-mel feature extractor, and a 2-layer encoder-decoder."""
    import json
    import tempfile
    from pathlib import Path

    from transformers import (
        GenerationConfig,
        WhisperConfig,
        WhisperFeatureExtractor,
        WhisperForConditionalGeneration,
        WhisperTokenizer,
    )
    from transformers.convert_slow_tokenizer import bytes_to_unicode  # where transformers 4 and 5 both keep it

    with tempfile.TemporaryDirectory(prefix="wattsweep-tiny-whisper-") as folder:
        vocab, merges = Path(folder) / "vocab.json", Path(folder) / "merges.txt"
        vocab.write_text(json.dumps({c: i for i, c in enumerate(bytes_to_unicode().values())}))
        merges.write_text("#version: 0.2\n")
        end = WHISPER_SPECIALS[0]
        tokenizer = WhisperTokenizer(str(vocab), str(merges), unk_token=end, bos_token=end, eos_token=end,
                                     pad_token=end)
    tokenizer.add_special_tokens({"additional_special_tokens": list(WHISPER_SPECIALS[1:])})
    ids = dict(zip(WHISPER_SPECIALS, tokenizer.convert_tokens_to_ids(list(WHISPER_SPECIALS)), strict=True))
    features = WhisperFeatureExtractor(feature_size=80, chunk_length=WHISPER_WINDOW_S)
    special = dict(decoder_start_token_id=ids["<|startoftranscript|>"], eos_token_id=ids[end],
                   pad_token_id=ids[end], bos_token_id=ids[end])
    config = WhisperConfig(vocab_size=len(tokenizer), num_mel_bins=80, d_model=32, encoder_layers=2,
                           decoder_layers=2, encoder_attention_heads=2, decoder_attention_heads=2, encoder_ffn_dim=64,
                           decoder_ffn_dim=64, max_source_positions=features.nb_max_frames // 2,
                           max_target_positions=448, begin_suppress_tokens=None, suppress_tokens=None, **special)
    model = WhisperForConditionalGeneration(config)
    model.generation_config = GenerationConfig(max_length=448, no_timestamps_token_id=ids["<|notimestamps|>"],
                                               is_multilingual=False,
                                               forced_decoder_ids=[[1, ids["<|notimestamps|>"]]], **special)
    return LoadedModel(model, tokenizer, feature_extractor=features)


def _build_sentence_bert(task: str) -> LoadedModel:
    """sentence-transformers over a tiny BERT: the encoder saved to a scratch folder, read back by the library's
    Transformer module, then mean pooling (as all-MiniLM-L6-v2 does)."""
    import tempfile

    from sentence_transformers import SentenceTransformer, models
    from transformers import BertConfig, BertModel

    tokenizer = _bert_tokenizer()
    encoder = BertModel(BertConfig(vocab_size=len(tokenizer), hidden_size=32, num_hidden_layers=2,
                                   num_attention_heads=2, intermediate_size=64, pad_token_id=0))
    with tempfile.TemporaryDirectory(prefix="wattsweep-tiny-sbert-") as folder:
        encoder.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
        transformer = models.Transformer(folder, max_seq_length=128)
    pooling = models.Pooling(encoder.config.hidden_size, pooling_mode="mean")
    model = SentenceTransformer(modules=[transformer, pooling], device="cpu")
    return LoadedModel(model, model.tokenizer)


_BUILDERS = {"bert": _build_bert, "gpt2": _build_gpt2, "llama": _build_llama, "t5": _build_t5, "vit": _build_vit,
             "yolos": _build_yolos,
             "vit-gpt2": _build_vit_gpt2, "stable-diffusion": _build_stable_diffusion, "whisper": _build_whisper,
             "sentence-bert": _build_sentence_bert, "ministral3": _build_ministral3}


def build_tiny(family: str, task: str) -> LoadedModel:
    """The tiny `family` model for `task`, on CPU in eval mode; weights seeded so every build is identical."""
    if family not in TINY_FAMILIES:
        raise KeyError(f"unknown tiny model family {family!r}: allowed are {', '.join(sorted(TINY_FAMILIES))}")
    if task not in TINY_FAMILIES[family].tasks:
        raise ValueError(f"tiny family {family!r} supports {', '.join(TINY_FAMILIES[family].tasks)}, not {task!r}")
    import torch

    with torch.random.fork_rng(devices=[]):  # seed the build without disturbing the caller's random state
        torch.manual_seed(SEED)
        loaded = _BUILDERS[family](task)
    parts = ([loaded.model.components[name] for name in ("text_encoder", "unet", "vae")]
             if family == "stable-diffusion" else [loaded.model])
    modules = [part for part in parts if isinstance(part, torch.nn.Module)]
    _draw_weights(modules)
    for module in modules:  # built models start in training mode: dropout on
        module.eval()
    return loaded


def _draw_weights(modules: list) -> None:
    """Draw the weights ourselves, so that a tiny model is the same whatever library version built it.

    Libraries change how they initialise (transformers 5 draws T5's and BERT's MLM head differently, diffusers
    0.42 consumes the random stream differently) and rename and reorder parameters (transformers 5's ViT), so each
    weight is drawn from a generator seeded by its shape and its place among the weights of that shape: the same
    values however the modules are named or ordered. Constant vectors (norm scales, zero biases) keep their value.
    Outputs recorded on one stack can then be compared with another's (tests/stack_outputs.py).
    """
    import zlib

    import torch

    seen: dict[tuple[int, ...], int] = {}
    with torch.no_grad():
        for module in modules:
            for parameter in module.parameters():  # tied weights come once
                if not parameter.is_floating_point():
                    continue
                if parameter.ndim <= 1 and bool((parameter == parameter.flatten()[0]).all()):
                    continue
                shape = tuple(parameter.shape)
                place = seen.get(shape, 0)
                seen[shape] = place + 1
                generator = torch.Generator().manual_seed(zlib.crc32(repr((SEED, shape, place)).encode()))
                parameter.copy_(torch.randn(shape, generator=generator, dtype=torch.float32) * WEIGHT_STD)
