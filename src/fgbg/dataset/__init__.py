"""The composed dataset as the stages after compose see it: the store (shards, index, meta), its
torch view, the grouped split, the normalisation stats and the plain-file export."""
