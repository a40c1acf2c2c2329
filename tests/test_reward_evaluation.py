"""``zoo reward evaluate`` (docs/rewards.md#does-the-dynamic-pathway-see-danger-zoo-reward-evaluate): the episode
bootstrap resamples whole episodes, the oracle describer returns the recorded ground truth, and the command runs end to
end on tiny recordings with the shipped models, writing its JSON, its table and a card's metrics."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from zoo.data.bev_captions import DYNAMIC_CAPTIONS
from zoo.errors import ZooError
from zoo.evaluation.reward_evaluation import METRICS, QUICK, STATIC, VARIANTS, recording
from zoo.evaluation.reward_quality import episode_bootstrap
from zoo.hub.cards import read_card
from zoo.hub.resolve import resolve_model
from zoo.rewards.oracle import OracleDescriber


def test_the_bootstrap_draws_whole_episodes_within_each_stratum():
    strata = [[np.arange(0, 3), np.arange(3, 8)], [np.arange(8, 10)]]
    seen = []
    draws = episode_bootstrap(lambda index: seen.append(index) or len(index), strata, 40, seed=1)
    assert draws.shape == (40,)
    for index in seen:
        first = index[index < 8]
        # two episodes of the first scenario (3 or 5 frames each) and the one of the second, every time
        assert len(first) in (6, 8, 10) and sorted(index[index >= 8].tolist()) == [8, 9]
        assert {tuple(first[:3])} <= {(0, 1, 2), (3, 4, 5)}  # an episode is drawn whole, from its start
    assert len({len(i) for i in seen}) > 1  # and the draws differ
    again = episode_bootstrap(lambda index: len(index), strata, 40, seed=1)
    np.testing.assert_array_equal(draws, again)  # seeded


def test_the_bootstrap_refuses_an_empty_stratum():
    with pytest.raises(ZooError, match=r"episodes per stratum \[1, 0\]"):
        episode_bootstrap(len, [[np.arange(2)], []], 10)


def _windows(n: int) -> torch.Tensor:
    windows = torch.zeros(n, 2, 3, 8, 8, dtype=torch.uint8)
    windows[:, -1, 0, 0, 0] = torch.arange(n, dtype=torch.uint8)
    return windows


def test_the_oracle_describer_returns_the_recorded_descriptions():
    cut_in, clear = DYNAMIC_CAPTIONS["cut_in"], DYNAMIC_CAPTIONS["clear"]
    oracle = OracleDescriber()
    oracle.remember(_windows(3), [cut_in[0], clear[0], cut_in[1]])
    oracle.remember(_windows(1), [cut_in[2]])  # the same window, a paraphrase: the first description stays
    assert oracle.describe(_windows(3)[[2, 0]]) == [cut_in[1], cut_in[0]]
    assert oracle.stats() == {"calls": 2.0}
    with pytest.raises(ZooError, match="1 of 1 windows are not among the 3 remembered"):
        oracle.describe(_windows(4)[3:])
    with pytest.raises(ZooError, match="one risk type"):
        oracle.remember(_windows(2)[1:], [cut_in[0]])  # window 1 was a clear road


def test_held_out_recordings_refuse_training_seeds():
    with pytest.raises(ZooError, match="seed 999999 is a training seed"):
        recording("data", "merge", 10, 999_999, 5.0, 4)
    assert recording("data", "merge", 10, 1_000_000, 5.0, 4).path == "data/merge-10f-5hz-w4-seed1000000"


def test_quick_evaluation_writes_json_table_and_card(tmp_path, capsys):
    from zoo.cli import main

    folder = tmp_path / "drive-clip-bev-tiny.copy"
    shutil.copytree(resolve_model("drive-clip-bev-tiny").card_folder, folder)
    out = tmp_path / "evaluation.json"
    torch.manual_seed(0)
    assert main(["reward", "evaluate", "--quick", "--model", str(folder), "--out", str(out), "--write-card"]) == 0
    result = json.loads(out.read_text(), parse_constant=pytest.fail)  # strict JSON
    scenarios = QUICK["scenarios"]
    assert list(result["scenarios"]) == [*scenarios, "all"]
    assert result["scenarios"]["merge"]["trained_on"] is True
    assert result["scenarios"]["roundabout"]["trained_on"] is False  # the card's training data: highway-fast, merge
    assert result["bootstrap"]["replicates"] == QUICK["replicates"]
    measured = 0
    for group in result["scenarios"].values():
        assert list(group["variants"]) == list(VARIANTS)
        assert group["frames"] >= QUICK["frames"] and group["episodes"] >= 1
        for name, values in group["variants"].items():
            for metric in METRICS:
                interval = values[metric]
                if interval["value"] is None:  # an AUROC of frames without a collision ahead is undefined
                    continue
                measured += 1
                assert interval["low"] - 1e-9 <= interval["value"] <= interval["high"] + 1e-9
                assert -1 <= interval["value"] <= 1
                if name != STATIC:  # the difference is paired: the variant's value minus the static one's
                    static = group["variants"][STATIC][metric]["value"]
                    difference = group["differences"][f"{name} - {STATIC}"][metric]["value"]
                    assert difference == pytest.approx(interval["value"] - static)
        for name in ("dual", "dual-oracle"):
            rates = group["variants"][name]
            assert 0 <= rates["dynamic_rate"] <= rates["gate_rate"] <= 1
    assert measured, "nothing was measured"
    for name in VARIANTS:  # "all": each measure the mean of the scenarios' (defined only where each is)
        values = [result["scenarios"][s]["variants"][name]["spearman_ttc"]["value"] for s in scenarios]
        assert result["scenarios"]["all"]["variants"][name]["spearman_ttc"]["value"] == pytest.approx(np.mean(values))
    table = capsys.readouterr().out
    rows = [line for line in table.splitlines() if line.startswith("| ")]
    assert len(rows) == 1 + len(VARIANTS) * len(result["scenarios"])  # the header, a row per variant and group
    assert "merge (trained on;" in table and "roundabout (never trained on;" in table
    card = read_card(folder)["metrics"]["reward_evaluation"]
    assert card["scenarios"] == result["scenarios"] and card["command"].startswith("zoo reward evaluate --quick")
    assert "seconds" not in card and "machine" not in card and card["date"] == result["date"]
