"""A Dask worker preload for the cluster tests: each shard takes 0.3 s longer, so that a
worker can be killed while shards are still being made (`dask worker --preload`)."""

import time

import fgbg.composing.build


def dask_setup(worker) -> None:
    real = fgbg.composing.build._shard_bytes

    def slow(k, job):
        time.sleep(0.3)
        return real(k, job)

    fgbg.composing.build._shard_bytes = slow  # the client's tasks name this function; the worker resolves it here
