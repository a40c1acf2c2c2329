"""``EnvConfig``: everything that defines a driving environment, as one frozen value.

The same ``EnvConfig`` travels unchanged from a recipe's ``model.init_args.env`` block (LightningCLI builds the
dataclass) through the agent into :func:`zoo.envs.make.build_env` and :class:`zoo.envs.driving.DrivingEnv`. A
variant (one env instead of several, another scenario or condition for evaluation) is
``dataclasses.replace(config, ...)``, checked again on creation.

``RenderNeeds`` is what a reward reads that the env must render (frames, a window of frames, the simulator's
objects); :meth:`EnvConfig.rendering` turns a config into one that renders it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from zoo.envs.presets import CONDITIONS, SCENARIOS
from zoo.errors import ZooError
from zoo.registry import check_choice

OBS_MODES = ("kinematics", "bev", "both")
ACTION_MODES = ("continuous", "discrete")
#: the action mode of an env whose config leaves it open (``action: null``) and that no agent chose: meta-actions
DEFAULT_ACTION = "discrete"


@dataclass(frozen=True)
class RenderNeeds:
    """What a reward reads that the environment must render.

    Attributes:
        frames: the BEV frame (``keys.PIXELS``).
        frame_window: BEV frames in ``keys.PIXELS_WINDOW`` (1: no window).
        objects: the simulator's boxes of the other road users (``keys.OBJECTS``: an oracle gate).

    Example:
        >>> RenderNeeds(frames=True) | RenderNeeds(frame_window=4)
        RenderNeeds(frames=True, frame_window=4, objects=False)
    """

    frames: bool = False
    frame_window: int = 1
    objects: bool = False

    def __post_init__(self) -> None:
        if self.frame_window < 1:
            raise ZooError(f"frame_window must be >= 1, got {self.frame_window}")

    def __or__(self, other: RenderNeeds) -> RenderNeeds:
        """What either needs: frames if either reads them, the longer window, objects if either reads them."""
        return RenderNeeds(self.frames or other.frames, max(self.frame_window, other.frame_window),
                           self.objects or other.objects)

    @property
    def any_frame(self) -> bool:
        """Whether anything here needs the BEV rendered (a window and objects are drawn from the frame)."""
        return self.frames or self.frame_window > 1 or self.objects


@dataclass(frozen=True)
class EnvConfig:
    """Everything that defines the environment, as a recipe spells it (``model.init_args.env``).

    Attributes:
        scenario: a name from ``zoo.list_scenarios()``.
        action: ``"continuous"`` or ``"discrete"``; ``None`` lets the agent choose its native one (an env built
            with none gets :data:`DEFAULT_ACTION`).
        obs: ``"kinematics"``, ``"bev"`` or ``"both"``.
        bev_size: side of the square BEV frame in pixels.
        bev_range_m: metres of road across the BEV frame.
        frame_window: BEV frames in ``pixels_window`` (current one last); 1 writes no window.
        num_envs: environments stepped in parallel (separate processes when > 1).
        objects: also write ``keys.OBJECTS`` (boxes of the other road users in the BEV frame; needs a BEV ``obs``).
        condition: ``"default"``, or ``"unseen"`` for the scenario's held-out traffic (:data:`CONDITIONS`).
        config: extra highway-env config overrides.

    Example:
        >>> EnvConfig("merge", action="discrete", obs="both").scenario
        'merge'
    """

    scenario: str = "highway-fast"
    action: str | None = None
    obs: str = "kinematics"
    bev_size: int = 96
    bev_range_m: float = 60.0
    frame_window: int = 1
    num_envs: int = 1
    objects: bool = False
    condition: str = "default"
    config: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        preset = SCENARIOS.get(self.scenario)  # raises with the valid names
        check_choice("obs", self.obs, OBS_MODES)
        check_choice("condition", self.condition, CONDITIONS)
        if self.action is not None:
            check_choice("action", self.action, ACTION_MODES)
            if self.action not in preset.action_modes:
                raise ZooError(f"scenario {self.scenario!r} supports action modes {list(preset.action_modes)}, "
                               f"not {self.action!r}")
        for name in ("bev_size", "frame_window", "num_envs"):
            if getattr(self, name) < 1:
                raise ZooError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.bev_range_m <= 0:
            raise ZooError(f"bev_range_m must be > 0 metres, got {self.bev_range_m}")
        if self.obs == "kinematics" and (self.frame_window > 1 or self.objects):
            what = f"frame_window={self.frame_window}" if self.frame_window > 1 else "objects=True"
            raise ZooError(f"{what} reads BEV frames, so it needs obs 'bev' or 'both', not 'kinematics'")

    @property
    def renders_bev(self) -> bool:
        """Whether the env renders the BEV frame (``obs`` ``"bev"`` or ``"both"``)."""
        return self.obs in ("bev", "both")

    def rendering(self, needs: RenderNeeds) -> EnvConfig:
        """This config, rendering what ``needs`` asks for besides what it renders already.

        Frames turn ``obs`` ``"kinematics"`` into ``"both"`` (the policy keeps its input); the window is the longer
        of the two; objects are written if either asks.

        Example:
            >>> EnvConfig().rendering(RenderNeeds(frame_window=4)).obs
            'both'
        """
        obs = "both" if needs.any_frame and not self.renders_bev else self.obs
        return replace(self, obs=obs, frame_window=max(self.frame_window, needs.frame_window),
                       objects=self.objects or needs.objects)
