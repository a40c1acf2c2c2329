"""Datasets the zoo makes from the simulator."""
