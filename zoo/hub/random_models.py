"""Randomly initialised dual encoders built from configs and saved in Hugging Face format.

They exercise the real loading path (config, safetensors, tokenizer, image processor) with no
download: the tests use them, the speed benchmark uses a CLIP ViT-B/32-sized one, and recipes may
use one until a trained reward model is shipped. Their rewards carry no meaning.
"""

from __future__ import annotations

from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers

from zoo.registry import check_choice

FAMILIES = ("clip", "siglip", "vision-text")
SIZES = ("tiny", "vit-b-32")
_WORDS = ("the road is clear with no car accidents two cars have collided each other on a driving safely "
          "ahead obstacles pedestrian crossing vehicle lane highway merge fast slow stopped").split()


def _tokenizer(folder: Path, max_length: int):
    from transformers import BertTokenizerFast  # lazy: transformers is slow to import

    vocab = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *sorted(set(_WORDS)),
             *"abcdefghijklmnopqrstuvwxyz0123456789.,", *(f"##{c}" for c in "abcdefghijklmnopqrstuvwxyz")]
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.txt").write_text("\n".join(vocab))
    return BertTokenizerFast(str(folder / "vocab.txt"), model_max_length=max_length), len(vocab)


def build_random_dual_encoder(folder: str | Path, family: str = "clip", size: str = "tiny", seed: int = 0) -> Path:
    """Save a random dual encoder of ``family`` (clip, siglip, vision-text) and ``size`` to ``folder``.

    ``tiny``: 2 layers of width 64 per tower, 32×32 images (widths are multiples of 64 so that
    bitsandbytes' 4-bit CPU kernels accept them). ``vit-b-32``: CLIP ViT-B/32's architecture.

    Example:
        >>> path = build_random_dual_encoder(tmp_path / "clip")  # doctest: +SKIP
        >>> encoder = zoo.vlm.load_dual_encoder(path)  # doctest: +SKIP
    """
    from transformers import (  # lazy: transformers is slow to import
        BertConfig,
        CLIPConfig,
        CLIPImageProcessor,
        CLIPModel,
        SiglipConfig,
        SiglipImageProcessor,
        SiglipModel,
        VisionTextDualEncoderConfig,
        VisionTextDualEncoderModel,
        ViTConfig,
        ViTImageProcessor,
    )

    check_choice("family", family, FAMILIES)
    check_choice("size", size, SIZES)
    folder = Path(folder)
    big = size == "vit-b-32"
    text_len = 77 if big else 16
    tokenizer, vocab_size = _tokenizer(folder, text_len)
    vision = dict(hidden_size=768 if big else 64, intermediate_size=3072 if big else 128,
                  num_hidden_layers=12 if big else 2, num_attention_heads=12 if big else 2,
                  image_size=224 if big else 32, patch_size=32 if big else 8)
    text = dict(vocab_size=vocab_size, hidden_size=512 if big else 64, intermediate_size=2048 if big else 128,
                num_hidden_layers=12 if big else 2, num_attention_heads=8 if big else 2,
                max_position_embeddings=text_len)
    projection = 512 if big else 64
    image = vision["image_size"]
    torch.manual_seed(seed)
    if family == "clip":
        model = CLIPModel(CLIPConfig(text_config={**text, "pad_token_id": 0, "bos_token_id": 2, "eos_token_id": 3},
                                     vision_config=vision, projection_dim=projection))
        processor = CLIPImageProcessor(size={"shortest_edge": image}, crop_size={"height": image, "width": image})
    elif family == "siglip":
        model = SiglipModel(SiglipConfig(text_config={**text, "pad_token_id": 0, "bos_token_id": 2, "eos_token_id": 3},
                                         vision_config=vision))
        processor = SiglipImageProcessor(size={"height": image, "width": image})
    else:
        config = VisionTextDualEncoderConfig.from_vision_text_configs(
            ViTConfig(**{**vision, "num_channels": 3}),
            BertConfig(**{k: v for k, v in text.items()}, pad_token_id=0), projection_dim=projection)
        model = VisionTextDualEncoderModel(config)
        processor = ViTImageProcessor(size={"height": image, "width": image})
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder


CHAT_TEMPLATE = ("{% for message in messages %}{{ message['role'] }} : {% if message['content'] is string %}"
                 "{{ message['content'] }}{% else %}{% for item in message['content'] %}{% if item['type'] == 'image' %}"
                 "<image> {% else %}{{ item['text'] }} {% endif %}{% endfor %}{% endif %}[EOS] {% endfor %}"
                 "{% if add_generation_prompt %}assistant : {% endif %}")


def word_level_tokenizer(words: list[str], *, max_length: int = 64, extra_tokens: tuple[str, ...] = (),
                         chat_template: str | None = None):
    """A lower-casing word-level ``PreTrainedTokenizerFast`` over ``words`` (built offline with ``tokenizers``).

    Special tokens: ``[PAD]`` (id 0), ``[UNK]``, ``[BOS]``, ``[EOS]``; ``extra_tokens`` (e.g. ``<image>``) follow.
    Punctuation splits into its own tokens; decoding joins words with spaces.

    Example:
        >>> tok = word_level_tokenizer(["the", "road", "is", "clear"])
        >>> tok.decode(tok("The road is clear")["input_ids"])
        'the road is clear'
    """
    from transformers import PreTrainedTokenizerFast  # lazy: transformers is slow to import

    specials = ["[PAD]", "[UNK]", "[BOS]", "[EOS]", *extra_tokens]
    vocab = {token: i for i, token in enumerate(dict.fromkeys([*specials, *sorted({w.lower() for w in words})]))}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    backend.add_special_tokens(specials)  # matched whole before splitting, so "<image><image>" is two tokens
    backend.decoder = decoders.WordPiece(prefix="##", cleanup=False)
    return PreTrainedTokenizerFast(tokenizer_object=backend, pad_token="[PAD]", unk_token="[UNK]",
                                   bos_token="[BOS]", eos_token="[EOS]", extra_special_tokens=None,
                                   model_max_length=max_length, chat_template=chat_template)


#: sizes of the random chat VLM: (vision width, vision layers, image, patch, text width, text layers)
CHAT_SIZES = {"tiny": (64, 2, 32, 8, 64, 2), "small": (256, 4, 96, 16, 512, 6)}


def build_random_chat_vlm(folder: str | Path, seed: int = 0, size: str = "tiny") -> Path:
    """Save a random LLaVA chat VLM (CLIP vision tower, Llama text model, word-level tokenizer) to ``folder``.

    It runs :func:`zoo.vlm.describer.load_describer`'s chat path for real (chat template, multi-image
    message, processor, generation); its descriptions mean nothing. ``size``: ``"tiny"`` for tests,
    ``"small"`` (~25 M parameters) for speed benchmarks of a describer that costs as much as the simulator.
    Widths are multiples of 64 so that bitsandbytes' CPU kernels accept them.

    Example:
        >>> describer = zoo.vlm.load_describer(build_random_chat_vlm(tmp_path / "llava"))  # doctest: +SKIP
    """
    from transformers import (  # lazy: transformers is slow to import
        CLIPImageProcessor,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    prompt_words = ("these are consecutive frames of driving scene oldest first ego drives to right in one short "
                    "sentence what main risk user assistant . , ? ' s - :")
    words = [*_WORDS, *prompt_words.split()]
    tokenizer = word_level_tokenizer(words, extra_tokens=("<image>",), max_length=512, chat_template=CHAT_TEMPLATE)
    vision_width, vision_layers, image, patch, text_width, text_layers = CHAT_SIZES[check_choice(
        "chat VLM size", size, list(CHAT_SIZES))]
    config = LlavaConfig(
        vision_config={"model_type": "clip_vision_model", "hidden_size": vision_width,
                       "intermediate_size": 2 * vision_width, "num_hidden_layers": vision_layers,
                       "num_attention_heads": 2, "image_size": image, "patch_size": patch,
                       "projection_dim": vision_width},
        text_config={"model_type": "llama", "vocab_size": len(tokenizer), "hidden_size": text_width,
                     "intermediate_size": 2 * text_width, "num_hidden_layers": text_layers,
                     "num_attention_heads": 2, "num_key_value_heads": 2,
                     "max_position_embeddings": 512, "pad_token_id": tokenizer.pad_token_id,
                     "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id},
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"), image_seq_length=(image // patch) ** 2,
        vision_feature_select_strategy="default", vision_feature_layer=-2)
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    processor = LlavaProcessor(CLIPImageProcessor(size={"shortest_edge": image}, crop_size={"height": image, "width": image}),
                               tokenizer, patch_size=patch, vision_feature_select_strategy="default",
                               chat_template=CHAT_TEMPLATE, image_token="<image>", num_additional_image_tokens=1)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return Path(folder)
