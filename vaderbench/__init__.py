"""vaderbench: benchmark reward-gradient, policy-gradient and preference alignment of video diffusion models."""

__version__ = "0.1.0"
