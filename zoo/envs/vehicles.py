"""Vehicle classes the presets hand to highway-env."""

from highway_env.vehicle.behavior import IDMVehicle


class IntersectionIDMVehicle(IDMVehicle):
    """IDM traffic for the intersection preset.

    highway-env's intersection env tunes the class attributes (jam distance, comfort accelerations) of
    whatever traffic class it is given, on every reset. Handing it this subclass keeps that tuning on
    the intersection's own traffic, instead of changing ``IDMVehicle`` for every later env in the process.
    """
