"""highway-env's kinematics observation without pandas: the same array, a fraction of the cost.

``KinematicObservation.observe`` builds a pandas ``DataFrame`` from the vehicles' dicts on every step, which is a
quarter of a ``highway-fast`` step (``benchmarks/env_profile.py``, docs/performance.md). :class:`FastKinematics`
computes the same float32 array with numpy — the same vehicles, features, normalisation (``utils.lmap`` then
clip, in float64), zero rows and shuffle — bit for bit (tests/test_envs.py compares the two on every scenario).
:func:`use_fast_kinematics` makes an env use it from then on, across its resets.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from highway_env import utils
from highway_env.envs.common.observation import KinematicObservation


class FastKinematics(KinematicObservation):
    """:class:`highway_env.envs.common.observation.KinematicObservation` with a numpy ``observe``."""

    @classmethod
    def like(cls, observation: KinematicObservation) -> FastKinematics:
        """The same observation (same env, features, ranges, options), observed with numpy."""
        fast = cls.__new__(cls)
        fast.__dict__.update(observation.__dict__)
        return fast

    def observe(self) -> np.ndarray:
        if not self.env.road:
            return np.zeros(self.space().shape)
        rows = [self.observer_vehicle.to_dict()]
        close = self.env.road.close_objects_to(self.observer_vehicle, self.env.PERCEPTION_DISTANCE,
                                               count=self.vehicles_count - 1, see_behind=self.see_behind,
                                               sort=self.order == "sorted", vehicles_only=not self.include_obstacles)
        if close:
            origin = self.observer_vehicle if not self.absolute else None
            rows += [v.to_dict(origin, observe_intentions=self.observe_intentions)
                     for v in close[-self.vehicles_count + 1:]]
        obs = np.array([[row.get(feature, np.nan) for feature in self.features] for row in rows], dtype=np.float64)
        if self.normalize:
            self._normalize(obs)
        if obs.shape[0] < self.vehicles_count:
            obs = np.concatenate([obs, np.zeros((self.vehicles_count - obs.shape[0], len(self.features)))])
        if self.order == "shuffled":
            self.env.np_random.shuffle(obs[1:])
        return obs.astype(self.space().dtype)

    def _normalize(self, obs: np.ndarray) -> None:
        """:meth:`KinematicObservation.normalize_obs` on the array, in place (its default ranges set the same way)."""
        if not self.features_range:
            self.normalize_obs(pd.DataFrame(columns=self.features))  # sets the default ranges, as highway-env does
        for feature, (low, high) in self.features_range.items():
            if feature in self.features:
                column = self.features.index(feature)
                obs[:, column] = utils.lmap(obs[:, column], [low, high], [-1, 1])
                if self.clip:
                    obs[:, column] = np.clip(obs[:, column], -1, 1)


def use_fast_kinematics(env: Any) -> None:
    """Make the highway-env ``env`` (unwrapped) observe kinematics with :class:`FastKinematics`, now and after each
    reset (highway-env rebuilds its observation type in ``define_spaces`` on every reset). Other observation types
    are left alone."""
    define_spaces = type(env).define_spaces

    def define_spaces_fast() -> None:
        define_spaces(env)
        if type(env.observation_type) is KinematicObservation:
            env.observation_type = FastKinematics.like(env.observation_type)

    env.define_spaces = define_spaces_fast
    if type(env.observation_type) is KinematicObservation:
        env.observation_type = FastKinematics.like(env.observation_type)
