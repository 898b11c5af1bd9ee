"""Hardware models. Each owns its state and counts every access it serves."""
