"""Training: loader from shards, the omni model, stages and launch."""
