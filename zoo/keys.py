"""Every TensorDict key shared between components.

Components (envs, reward modules, agents, evaluation) talk only through these keys, TorchRL style.
Import the names from here rather than spelling the strings, so a rename stays one edit.
"""

# Observations written by the environment.
PIXELS = "pixels"  # BEV frame, uint8, C x H x W
PIXELS_WINDOW = "pixels_window"  # the last K+1 BEV frames, uint8, (K+1) x C x H x W, oldest first
OBJECTS = "objects"  # other road users in the BEV frame, float32 [MAX_OBJECTS, 6] (zoo.envs.driving.OBJECT_FIELDS)
OBSERVATION = "observation"  # flattened kinematics (or the scenario's native vector observation)
ACTION = "action"

# Vehicle state of the ego car, a nested TensorDict, each entry float32 of shape [1].
VEHICLE_STATE = "vehicle_state"
SPEED = (VEHICLE_STATE, "speed")  # m/s
LATERAL_OFFSET = (VEHICLE_STATE, "lateral_offset")  # m from the lane centre, signed
HEADING_ERROR = (VEHICLE_STATE, "heading_error")  # rad, ego heading minus lane heading, wrapped to [-pi, pi]
ON_ROAD = (VEHICLE_STATE, "on_road")  # 1.0 on a lane, else 0.0
CRASHED = (VEHICLE_STATE, "crashed")  # 1.0 once the ego car has collided
DISTANCE = (VEHICLE_STATE, "distance")  # m travelled since reset
ROUTE_PROGRESS = (VEHICLE_STATE, "route_progress")  # fraction of the preset's route, may exceed 1
LATERAL_OFFSET_STD = (VEHICLE_STATE, "lateral_offset_std")  # m, std of lateral_offset over the last ~2 s
VEHICLE_STATE_FIELDS = ("speed", "lateral_offset", "heading_error", "on_road", "crashed", "distance", "route_progress",
                        "lateral_offset_std")

# Rewards.
REWARD = "reward"  # what the learner optimises
ENV_REWARD = "env_reward"  # highway-env's own engineered reward, kept for relabelling
REWARD_TERMS = "reward_terms"  # nested TensorDict of logged reward terms, one key per term

# Episode bookkeeping (TorchRL transforms).
DONE = "done"
TERMINATED = "terminated"
TRUNCATED = "truncated"
EPISODE_RETURN = "episode_reward"  # written by torchrl.envs.RewardSum
STEP_COUNT = "step_count"  # written by torchrl.envs.StepCounter

# -- collection --------------------------------------------------------------------------------------------
POLICY_VERSION = "policy_version"  # int64, the learner's update count when the action was chosen (async pipeline)
