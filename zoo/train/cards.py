"""Write a trained reward model as a zoo model folder whose card states what it was measured to do."""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Any

from zoo.hub.packaging import export_reward_folder, write_model_folder
from zoo.hub.resolve import ARCHITECTURES

METRIC_NAMES = {"auroc_collision_1s": "AUROC, collision within 1 s vs safe", "spearman_ttc": "Spearman with TTC"}


def export_trained(module: Any, results: dict[str, dict[str, dict[str, float]]]) -> None:
    """Save ``module``'s (best) model to ``module.hparams.export.folder`` with ``zoo.json`` and ``README.md``."""
    from transformers import AutoImageProcessor  # lazy: transformers is slow to import

    hp = module.hparams
    export, data = module.export, module.trainer.datamodule
    card: dict[str, Any] = {
        "name": export.name, "kind": "reward", "summary": export.summary,
        "reward": {"head": "clg"},
        "metrics": results,
        "training": {"command": export.command, "model": hp.model, "pretrained": hp.pretrained,
                     "lora": hp.lora, "quantization": hp.quantization, "epochs": module.current_epoch,
                     "best_epoch": module.best["epoch"], "train_data": asdict(data.train_spec),
                     "test_data": asdict(data.test_spec) if data.test_spec else None},
    }
    readme = render_readme(card, export.notes)
    if hp.lora is not None:
        card.update(adapter_of=hp.model, quantization=hp.quantization)
        write_model_folder(export.folder, module.encoder.model.save_pretrained, card, readme)
        return
    base = (module.source.card or {}).get("base")
    family = hp.model.partition(".")[0]
    if base is None and not hp.pretrained and family in ARCHITECTURES:  # trained from the zoo's architecture
        base = ARCHITECTURES.get(family).base
    if base:
        card["base"] = base
    processor = AutoImageProcessor.from_pretrained(str(module.source.path))
    export_reward_folder(module.encoder.model, module.encoder.tokenizer, processor, export.folder, card, readme)


def render_readme(card: dict[str, Any], notes: list[str]) -> str:
    """The human card: what the model is, how it was trained, what it measured (a table per split)."""
    training = card["training"]
    start = "the same architecture untrained" if not training["pretrained"] else f"`{training['model']}` before"
    measured = ("CLG reward with the papers' exact prompts (α = β = 1; docs/method.md#prompts), "
                "measured by `zoo.evaluation.reward_quality`: the test split's episodes (seeds from "
                f"{(training['test_data'] or {}).get('seed', '—')}) were never used for training or model "
                "selection (the validation split selected the epoch).")
    lines = [f"# {card['name']}", "", card["summary"], "", "## Quality", "", measured, "",
             f"| split | metric | trained | {start} |", "|---|---|---|---|"]
    for split, values in card["metrics"]["trained"].items():
        for key, label in METRIC_NAMES.items():
            lines.append(f"| {split} ({int(values['frames'])} frames, {int(values['imminent_frames'])} imminent) "
                         f"| {label} | {values[key]:.3f} | {card['metrics']['start'][split][key]:.3f} |")
    final = list(card["metrics"]["trained"])[-1]
    oracle = card["metrics"]["trained"][final]
    if "oracle_auroc_ttc" in oracle:
        scale = (f"For scale, on the same {final} frames: ranking them by the simulator's true time to collision "
                 f"gives AUROC {oracle['oracle_auroc_ttc']:.3f}, by the true gap to the leader "
                 f"{oracle.get('oracle_auroc_gap', float('nan')):.3f} (collisions from lane changes the policy "
                 "has not made yet cannot be seen in a frame).")
        lines += ["", scale]
    for split, gain in card["metrics"].get("gain", {}).items():
        auroc = gain["auroc_collision_1s"]
        if None in auroc.values():  # no collision ahead in the split: AUROC undefined
            continue
        lines += ["", f"Trained minus before on the same {split} frames: AUROC {auroc['value']:+.3f}, "
                      f"{100 * gain['confidence']:.0f} % interval [{auroc['low']:+.3f}, {auroc['high']:+.3f}] "
                      f"(paired bootstrap of {gain['episodes']} whole episodes); "
                      + ("the interval excludes 0." if auroc["low"] > 0 or auroc["high"] < 0 else
                         "the interval includes 0: no change shown.")]
    data = json.dumps(training["train_data"])
    lines += ["", "## Training", "", f"Train again: `{training['command']}`", "",
              f"Best epoch {training['best_epoch']} of {training['epochs']}; data: `{data}`.", ""]
    lines += [f"{note}\n" for note in notes]
    return "\n".join(lines)


def export_describer(module: Any, results: dict[str, dict[str, Any]]) -> None:
    """Save a trained risk describer (:class:`zoo.train.describer.RiskDescriberTraining`) as a zoo model folder."""
    export, data, hp = module.export, module.trainer.datamodule, module.hparams
    card: dict[str, Any] = {
        "name": export.name, "kind": "describer", "summary": export.summary, "metrics": results,
        "decoding": {"num_beams": hp.num_beams, "type_biases": module.type_biases},
        "training": {"command": export.command, "frames": hp.frames, "size": hp.size, "epochs": module.current_epoch,
                     "best_epoch": module.best["epoch"], "train_data": asdict(data.train_spec),
                     "test_data": asdict(data.test_spec) if data.test_spec else None,
                     "rows": {split: len(rows) for split, rows in data.splits.items()}},
    }

    def save(staging) -> None:
        module.model.save_pretrained(staging)
        module.tokenizer.save_pretrained(staging)
        module.image_processor.save_pretrained(staging)

    write_model_folder(export.folder, save, card, render_describer_readme(card, export.notes))


def render_describer_readme(card: dict[str, Any], notes: list[str]) -> str:
    """The human card of a risk describer: accuracy of the described risk type per type, next to the majority class."""
    training = card["training"]
    decoding = card.get("decoding", {})
    biases = ", ".join(f"{t} {b:+.2f}" for t, b in decoding.get("type_biases", {}).items() if b)
    prior = (f" with the prior over risk types corrected on the validation split (log-odds biases in "
             f"`generation_config.json`: {biases or 'none needed'})" if decoding.get("type_biases") else "")
    measured = (f"Each window is described by beam search ({decoding.get('num_beams', 1)} beams){prior}; the "
                "description is parsed back to a risk type "
                "(`zoo.data.bev_captions.parse_dynamic_risk`) and compared with the simulator's ground truth. The "
                f"test split's episodes (seeds from {(training['test_data'] or {}).get('seed', '—')}) were never used "
                "for training or model selection (the validation split's balanced accuracy selected the epoch). "
                "Baseline: always the training data's most common type.")
    lines = [f"# {card['name']}", "", card["summary"], "", "## Quality", "", measured, ""]
    for split, scores in card["metrics"].items():
        summary = (f"**{split}**: {scores['windows']} windows, accuracy {scores['accuracy']:.3f} (majority class "
                   f"`{scores['majority_class']}`: {scores['majority_baseline']:.3f}), balanced accuracy "
                   f"{scores['balanced_accuracy']:.3f}, unparsed descriptions {scores['unparsed']:.3f}.")
        lines += [summary, "", "| risk type | windows | accuracy | majority baseline |", "|---|---|---|---|"]
        lines += [f"| {risk} | {v['windows']} | {v['accuracy']:.3f} | {v['majority_baseline']:.3f} |"
                  for risk, v in scores["per_type"].items()]
        lines.append("")
    data = f"data: `{json.dumps(training['train_data'])}` (windows per split: {training['rows']})"
    lines += ["## Training", "", f"Train again: `{training['command']}`", "",
              f"Best epoch {training['best_epoch']} of {training['epochs']}; {data}.", ""]
    lines += [f"{note}\n" for note in notes]
    return "\n".join(lines)
