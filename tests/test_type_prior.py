"""The risk describer's prior correction: biases chosen on validation scores, written as transformers'
``sequence_bias`` into the generation config, and applied where a loaded describer generates."""

from __future__ import annotations

import numpy as np
import torch

from zoo.data.bev_captions import DYNAMIC_CAPTIONS
from zoo.train.type_prior import choose_type_biases, committing_prefixes, sequence_bias, type_log_likelihoods
from zoo.vlm.architectures import risk_describer_parts
from zoo.vlm.describer import load_describer

TYPES = list(DYNAMIC_CAPTIONS)


def test_biases_beat_the_majority_and_raise_the_balanced_accuracy():
    """Scores that favour type 0 too much: the chosen bias lifts type 1's recall while accuracy stays above
    always answering type 0 (the majority)."""
    rng = np.random.default_rng(0)
    truth = np.array([0] * 70 + [1] * 30)
    scores = np.stack([rng.normal(1.0, 0.5, 100), rng.normal(0.0, 0.5, 100) + 1.2 * truth], axis=1)
    plain = (scores.argmax(1) == truth)
    bias = choose_type_biases(scores, truth, majority=0)
    corrected = (scores + bias).argmax(1)
    assert bias[0] == 0 and bias[1] > 0
    assert (corrected == truth).mean() > 0.7
    assert (corrected[truth == 1] == 1).mean() > plain[truth == 1].mean()


def test_each_prefix_commits_to_its_type_alone():
    model, tokenizer, _ = risk_describer_parts([c for texts in DYNAMIC_CAPTIONS.values() for c in texts])
    prefixes = committing_prefixes(tokenizer, DYNAMIC_CAPTIONS)
    for risk, found in prefixes.items():
        assert found, risk
        for prefix in found:
            starts = {t for t, texts in DYNAMIC_CAPTIONS.items() for text in texts
                      if tokenizer(text, add_special_tokens=False)["input_ids"][:len(prefix)] == prefix}
            assert starts == {risk}


def test_a_bias_in_the_saved_generation_config_steers_a_loaded_describer(tmp_path):
    """A large bias on a type makes beam search commit to it wherever it can, after save and load (no zoo code
    applies it: transformers reads it from generation_config.json). `clear` commits at the first word of one of
    its templates ("Traffic ahead flows ..."), so an untrained describer starts every description with it."""
    model, tokenizer, processor = risk_describer_parts([c for texts in DYNAMIC_CAPTIONS.values() for c in texts])
    windows = torch.randint(0, 256, (6, 4, 3, 48, 48), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    model.generation_config.num_beams = 3
    model.generation_config.sequence_bias = sequence_bias(tokenizer, model.config.decoder_start_token_id,
                                                          DYNAMIC_CAPTIONS, {"clear": 50.0})
    for part in (model, tokenizer, processor):
        part.save_pretrained(tmp_path)
    describer = load_describer(tmp_path, device="cpu", cache_size=0)
    assert describer.model.generation_config.sequence_bias == model.generation_config.sequence_bias
    assert {text.split()[0].lower() for text in describer.describe(windows)} == {"traffic"}
    pixels = describer._captioner_inputs(windows)["pixel_values"]
    scores = type_log_likelihoods(describer.model, describer.tokenizer, pixels, DYNAMIC_CAPTIONS)
    assert scores.shape == (6, len(TYPES)) and np.all(scores < 0)
