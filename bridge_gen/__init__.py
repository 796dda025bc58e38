"""bridge-gen: Mosquitto bridges from a YAML spec."""

__version__ = "0.1.0"
