"""Perception for the dynamic pathway: detectors of road users in BEV frames and the attention gate.

See docs/perception.md. ``AttentionGate("bev-detector-tiny.sim")`` gates on the zoo's shipped detector,
``AttentionGate("oracle")`` on the simulator's own boxes (``make_env(..., objects=True)``).
"""

from zoo.perception.centernet import BEVCenterNet, CenterNetConfig
from zoo.perception.detector import BUILT_IN, Detections, Detector, OracleDetector, load_detector
from zoo.perception.gate import DEFAULT_DETECTOR, DEFAULT_ROI, AttentionGate

__all__ = ["BUILT_IN", "DEFAULT_DETECTOR", "DEFAULT_ROI", "AttentionGate", "BEVCenterNet", "CenterNetConfig",
           "Detections", "Detector", "OracleDetector", "load_detector"]
