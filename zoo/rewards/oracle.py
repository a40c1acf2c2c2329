"""``OracleDescriber``: the recorded ground-truth description of each frame window, in the describer's place.

The dynamic pathway's upper bound (``zoo reward evaluate``, docs/rewards.md): with the oracle gate (the
simulator's boxes) and this describer, ``DualPathwayReward`` gets the description a perfect describer would write,
the ``dynamic_caption`` that ``zoo data bev-captions`` records from the simulator
(``zoo.data.bev_captions.DYNAMIC_CAPTIONS``). Windows are matched by content, as the risk describer's cache does.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from zoo.cache import frame_key
from zoo.data.bev_captions import parse_dynamic_risk
from zoo.errors import ZooError
from zoo.vlm.describer import check_windows


class OracleDescriber:
    """Describes each recorded window with its ground-truth description (:meth:`remember` them first).

    Example:
        >>> oracle = OracleDescriber()
        >>> oracle.remember(windows, rows["dynamic_caption"])  # doctest: +SKIP
        >>> DualPathwayReward("drive-clip-bev-tiny", gate=AttentionGate("oracle"), describer=oracle)  # doctest: +SKIP
    """

    def __init__(self) -> None:
        self._truth: dict[bytes, str] = {}
        self.calls = 0

    def remember(self, windows: torch.Tensor, descriptions: Sequence[str]) -> None:
        """Learn the ground truth of ``windows`` (uint8 ``[N, K+1, 3, H, W]``): ``descriptions[i]`` is window i's.

        A window content seen again keeps its first description (captions are drawn among paraphrases).

        Raises:
            ZooError: lengths that differ, or one window content with descriptions of two risk types.
        """

        windows = check_windows(windows)
        if len(windows) != len(descriptions):
            raise ZooError(f"got {len(windows)} windows but {len(descriptions)} descriptions: one each")
        for window, text in zip(windows, descriptions):
            known = self._truth.setdefault(frame_key(window), text)
            if parse_dynamic_risk(known) != parse_dynamic_risk(text):
                raise ZooError(f"one window content was recorded as {known!r} and as {text!r}: the ground truth of a "
                               "window must be one risk type")

    def describe(self, windows: torch.Tensor) -> list[str]:
        """The remembered description of each of ``windows``.

        Raises:
            ZooError: a window it was never given.
        """
        texts = [self._truth.get(frame_key(w)) for w in check_windows(windows)]
        if None in texts:
            raise ZooError(f"{texts.count(None)} of {len(texts)} windows are not among the {len(self._truth)} "
                           "remembered ones: the oracle describer knows only the windows it was given")
        self.calls += len(texts)
        return texts

    def stats(self) -> dict[str, float]:
        """``calls``: windows described so far."""
        return {"calls": float(self.calls)}
