"""Risk describers: a tiny random chat VLM and tiny captioners run the real loading and generation paths;
the shipped ``risk-describer-tiny`` describes recorded simulator windows."""

from __future__ import annotations

import pytest
import torch

from zoo.data.bev_captions import DYNAMIC_CAPTIONS, parse_dynamic_risk, record_episode
from zoo.errors import ZooError
from zoo.vlm.describer import RiskDescriber, fallback_reason, load_describer


@pytest.fixture(scope="module")
def chat_vlm(tmp_path_factory):
    from zoo.hub.random_models import build_random_chat_vlm

    return build_random_chat_vlm(tmp_path_factory.mktemp("llava") / "tiny-llava")


def _windows(n: int, frames: int = 4, side: int = 48, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, frames, 3, side, side), dtype=torch.uint8, generator=generator)


def test_fallback_rules():
    assert fallback_reason("A car is cutting in just ahead") is None
    assert fallback_reason("  \n") == "empty"
    assert fallback_reason("## 12 34 !!") == "garbled"
    assert fallback_reason("road road road road car") == "garbled"


def test_chat_vlm_describes_windows_with_a_multi_image_message_and_caches_them(chat_vlm):
    describer = load_describer(chat_vlm, device="cpu", max_new_tokens=6)
    assert describer.backend == "chat"
    prompt = describer.processor.apply_chat_template(
        [{"role": "user", "content": [{"type": "image"}] * 4 + [{"type": "text", "text": "risk ?"}]}],
        add_generation_prompt=True, tokenize=False)
    assert prompt.count("<image>") == 4  # one image per frame of the window
    windows = _windows(3)
    windows[2] = windows[0]  # same content: generated once
    first = describer.describe(windows)
    assert len(first) == 3 and all(d is None or (isinstance(d, str) and d) for d in first)
    assert first[2] == first[0]
    assert describer.describe(windows[:2]) == first[:2]
    stats = describer.stats()
    assert stats["calls"] == 5 and stats["generated"] == 2 and stats["cache_hits"] == 3


def test_chat_vlm_loads_8_bit_quantized_and_with_lora(chat_vlm):
    from bitsandbytes.nn import Linear8bitLt

    quantized = load_describer(chat_vlm, device="cpu", quantization={"bits": 8}, max_new_tokens=4)
    assert any(isinstance(m, Linear8bitLt) for m in quantized.model.modules())
    assert len(quantized.describe(_windows(2))) == 2
    adapted = load_describer(chat_vlm, device="cpu", lora={"r": 4, "towers": ["text"]}, max_new_tokens=4)
    adapted_names = [n for n, _ in adapted.model.named_modules() if n.endswith("lora_A")]
    assert adapted_names and all("language_model" in n for n in adapted_names)
    assert len(adapted.describe(_windows(1))) == 1


def test_a_timed_out_call_falls_back_and_is_not_cached(chat_vlm):
    describer = load_describer(chat_vlm, device="cpu", timeout_s=1e-6, max_new_tokens=8)
    windows = _windows(2)
    assert describer.describe(windows) == [None, None]
    assert describer.describe(windows) == [None, None]
    stats = describer.stats()
    assert stats["fallback_timeout"] == 4 and stats["cache_hits"] == 0


class _Scripted(RiskDescriber):
    """A describer whose model 'writes' given texts: the fallback bookkeeping without a model."""

    def __init__(self, texts, cache_size=10):
        super().__init__(torch.nn.Linear(1, 1), None, "captioner", prompt="", max_new_tokens=8, timeout_s=None,
                         cache_size=cache_size)
        self.texts = texts

    def _generate(self, windows):
        return self.texts[:len(windows)], [False] * len(windows)


def test_empty_and_garbled_outputs_fall_back_and_are_counted():
    describer = _Scripted(["The car ahead is braking hard", "", "%% 1 2 3 %%"])
    assert describer.describe(_windows(3)) == ["The car ahead is braking hard", None, None]
    stats = describer.stats()
    assert stats["fallback_empty"] == 1 and stats["fallback_garbled"] == 1 and stats["fallback_timeout"] == 0
    assert describer.describe(_windows(3))[1:] == [None, None] and describer.stats()["cache_hits"] == 3


def test_a_cached_window_is_read_before_the_batch_s_new_descriptions_can_evict_it():
    windows = _windows(3)
    describer = _Scripted(["A car is cutting in", "The road is clear", "A truck brakes ahead"], cache_size=2)
    assert describer.describe(windows[:1]) == ["A car is cutting in"]
    describer.texts = ["The road is clear", "A truck brakes ahead"]
    assert describer.describe(windows) == ["A car is cutting in", "The road is clear", "A truck brakes ahead"]
    assert describer.stats()["cache_hits"] == 1 and describer.stats()["generated"] == 3


def _save_captioner(folder, frames: int):
    from zoo.vlm.architectures import risk_describer_parts

    model, tokenizer, processor = risk_describer_parts([c for t in DYNAMIC_CAPTIONS.values() for c in t], frames)
    for part in (model, tokenizer, processor):
        part.save_pretrained(folder)
    return folder


@pytest.mark.parametrize("encoder_frames", [4, 1], ids=["stacked", "tiled"])
def test_captioner_takes_the_window_stacked_or_tiled(tmp_path, encoder_frames):
    describer = load_describer(_save_captioner(tmp_path / "ved", encoder_frames), device="cpu", max_new_tokens=5)
    assert describer.backend == "captioner"
    out = describer.describe(_windows(2, frames=4))
    assert len(out) == 2 and all(d is None or isinstance(d, str) for d in out)
    with pytest.raises(ZooError, match="takes no prompt"):
        load_describer(tmp_path / "ved", prompt="what is the risk?")


def test_bad_windows_are_refused(chat_vlm):
    describer = load_describer(chat_vlm, device="cpu")
    with pytest.raises(ZooError, match="uint8"):
        describer.describe(torch.zeros(1, 4, 3, 8, 8))
    with pytest.raises(ZooError, match=r"\[N, K\+1, 3, H, W\]"):
        describer.describe(torch.zeros(4, 3, 8, 8, dtype=torch.uint8))


def test_shipped_describer_describes_recorded_windows_as_known_risk_types():
    import numpy as np

    describer = load_describer("risk-describer-tiny", device="cpu")
    assert describer.backend == "captioner"
    rows = record_episode("highway-fast", seed=1_000_003, policy="reckless", window=4, bev_size=96)
    windows = torch.from_numpy(np.stack([np.stack(r["window"]) for r in rows])).permute(0, 1, 4, 2, 3).contiguous()
    descriptions = describer.describe(windows)
    assert len(descriptions) == len(rows)
    types = [parse_dynamic_risk(d) for d in descriptions]
    assert all(t in DYNAMIC_CAPTIONS for t in types), descriptions


def test_window_data_refuses_a_dataset_without_the_dynamic_columns(tmp_path):
    import datasets

    from zoo.data.datamodule import CaptionDataset, WindowCaptionsData

    columns = ("image", "caption", "risk", "collision_within_horizon", "crashed", "time_to_collision")
    split = datasets.Dataset.from_dict({c: [0, 1] for c in columns})
    datasets.DatasetDict({"train": split, "validation": split}).save_to_disk(str(tmp_path / "old"))
    with pytest.raises(ZooError, match="lacks column.*window, dynamic_caption, dynamic_risk"):
        WindowCaptionsData(CaptionDataset(str(tmp_path / "old"))).setup()
