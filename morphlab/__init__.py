"""morphlab: make, detect and measure face morphing attacks."""

__version__ = "0.1.0"
