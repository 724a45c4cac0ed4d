"""Training: orchestration, the epoch and step loops, losses, optimisers, augmentation, capture
perturbations and the distributed process group."""
