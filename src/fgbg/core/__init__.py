"""The core beneath every stage: params, errors, registries, image files, progress, metrics, plots,
the model, its checkpoints and how it runs. Nothing here imports a stage folder."""
