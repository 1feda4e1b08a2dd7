"""The CW-GRPO recipe: the paper's settings on verl's ppo_trainer config, and a trainer with exact group statistics."""
