"""A risk describer's prior over risk types, corrected on validation windows and stored in its generation config.

A describer trained on class-balanced batches (``balance_power``) believes rare risks are common: it calls
many clear windows a risk. The correction (logit adjustment, Menon et al. 2021) adds a bias per risk type
to the decoder's logit of the token at which a description commits to that type, chosen on the validation
split:

1. :func:`type_log_likelihoods`: each window's log-likelihood of each type (its most likely template of
   ``DYNAMIC_CAPTIONS``, teacher-forced: what beam search finds), one encoder pass per window;
2. :func:`choose_type_biases`: the biases that maximise the balanced accuracy of ``argmax(score + bias)``
   among those whose accuracy beats always answering the majority type (coordinate ascent on a grid; types
   with fewer than :data:`MIN_WINDOWS` validation windows keep 0);
3. :func:`sequence_bias`: the biases as transformers' ``sequence_bias`` (the token that commits a
   template to its type, after the prefix it shares with other types' templates, anchored at the decoder's
   start token). Saved in ``generation_config.json``, it applies wherever the model generates, with no zoo
   code: decoding with it is what the card's scores measure.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch

#: the bias values tried per type (log-odds; the majority type's stays 0)
BIAS_GRID = np.round(np.arange(-4.0, 4.01, 0.25), 2)
#: fewest validation windows of a type for it to get a bias
MIN_WINDOWS = 30


@torch.no_grad()
def type_log_likelihoods(model, tokenizer, pixels: torch.Tensor, templates: Mapping[str, Sequence[str]],
                         batch_size: int = 256) -> np.ndarray:
    """``[N, types]`` log-likelihood of each type's description for each window (its most likely template, each
    ending with ``[EOS]`` as in training), in the order of ``templates``."""
    flat = [(t, text) for t, texts in enumerate(templates.values()) for text in texts]
    tokens = tokenizer([text + " [EOS]" for _, text in flat], padding=True, return_tensors="pt")
    ids, mask = tokens["input_ids"].to(pixels.device), tokens["attention_mask"].to(pixels.device)
    start = torch.full_like(ids[:, :1], model.config.decoder_start_token_id)
    decoder_inputs = torch.cat([start, ids[:, :-1]], dim=1)
    scores = []
    for chunk in pixels.split(batch_size):
        encoded = model.encoder(pixel_values=chunk).last_hidden_state
        hidden = model.enc_to_dec_proj(encoded) if hasattr(model, "enc_to_dec_proj") else encoded
        per_template = []
        for j in range(len(flat)):  # one template for every window of the chunk
            n = chunk.shape[0]
            logits = model.decoder(input_ids=decoder_inputs[j:j + 1].expand(n, -1),
                                   attention_mask=mask[j:j + 1].expand(n, -1),
                                   encoder_hidden_states=hidden).logits
            logp = logits.log_softmax(-1).gather(-1, ids[j:j + 1].expand(n, -1).unsqueeze(-1)).squeeze(-1)
            per_template.append((logp * mask[j:j + 1]).sum(-1))
        scores.append(torch.stack(per_template, dim=1))
    by_template = torch.cat(scores).cpu()
    kinds = torch.tensor([t for t, _ in flat])
    return torch.stack([by_template[:, kinds == t].amax(1) for t in range(len(templates))], dim=1).numpy()


def _scores(predicted: np.ndarray, truth: np.ndarray) -> tuple[float, float]:
    """(accuracy, balanced accuracy over the types present in ``truth``)."""
    recalls = [float((predicted[truth == t] == t).mean()) for t in np.unique(truth)]
    return float((predicted == truth).mean()), float(np.mean(recalls))


def choose_type_biases(log_likelihoods: np.ndarray, truth: np.ndarray, majority: int, passes: int = 3,
                       min_windows: int = MIN_WINDOWS) -> np.ndarray:
    """Per-type biases (0 for ``majority``) maximising the balanced accuracy of ``argmax(log_likelihoods + bias)``
    among biases whose accuracy is above always answering ``majority``; the most accurate biases when none is.
    A type with fewer than ``min_windows`` windows in ``truth`` keeps 0: its recall would be fitted to a handful
    of windows (a cut-in bias chosen on 7 validation windows called 3 % of the held-out clear windows a cut-in).

    Example:
        >>> ll = np.log([[0.6, 0.4], [0.6, 0.4], [0.45, 0.55], [0.55, 0.45]])
        >>> choose_type_biases(ll, np.array([0, 0, 1, 1]), majority=0, min_windows=2).tolist()
        [0.0, 0.25]
    """
    majority_accuracy = float((truth == majority).mean())

    def objective(bias: np.ndarray) -> tuple[bool, float, float]:
        accuracy, balanced = _scores((log_likelihoods + bias).argmax(1), truth)
        beats = accuracy > majority_accuracy
        return (beats, balanced, accuracy) if beats else (beats, accuracy, balanced)

    bias = np.zeros(log_likelihoods.shape[1])
    best = objective(bias)
    for _ in range(passes):
        improved = False
        for t in range(len(bias)):
            if t == majority or (truth == t).sum() < min_windows:
                continue
            for value in BIAS_GRID:
                trial = bias.copy()
                trial[t] = value
                score = objective(trial)
                if score > best:
                    best, bias, improved = score, trial, True
        if not improved:
            break
    return bias


def committing_prefixes(tokenizer, templates: Mapping[str, Sequence[str]]) -> dict[str, list[list[int]]]:
    """Per type, the token prefixes at which its templates commit to it: the shortest prefix of each template
    that no other type's template starts with."""
    encoded = {t: [tokenizer(text, add_special_tokens=False)["input_ids"] for text in texts]
               for t, texts in templates.items()}
    prefixes: dict[str, list[list[int]]] = {}
    for t, sequences in encoded.items():
        others = [s for u, seqs in encoded.items() if u != t for s in seqs]
        found = []
        for seq in sequences:
            length = next((k for k in range(1, len(seq) + 1) if all(o[:k] != seq[:k] for o in others)), len(seq))
            if seq[:length] not in found:
                found.append(seq[:length])
        prefixes[t] = found
    return prefixes


def sequence_bias(tokenizer, start_token_id: int, templates: Mapping[str, Sequence[str]],
                  biases: Mapping[str, float]) -> list[list]:
    """transformers' ``sequence_bias`` (``[[token ids], bias]`` pairs) adding each type's bias to the token at
    which its templates commit to it, anchored at the decoder's start token (types with a zero bias left out)."""
    prefixes = committing_prefixes(tokenizer, templates)
    return [[[start_token_id, *prefix], float(biases[t])] for t, found in prefixes.items() if biases.get(t)
            for prefix in found]
