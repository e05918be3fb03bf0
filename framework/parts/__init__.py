"""The parts and what they declare: registries, plugin loading, kinds of input, tasks, objectives
and the settings parts declare with their ranges. Imports only ``framework.errors``."""
