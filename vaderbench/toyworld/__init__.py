"""The embedded toy world: procedural videos with captions, a tiny text-to-video model, toy reward models."""
