"""tsuba: the guard between the people, services and agents that use AI and what they use."""

__version__ = "0.1.0"
