"""A Dask worker preload for the cluster tests: each shard takes 0.3 s longer, so that a
worker can be killed while shards are still being made (`dask worker --preload`)."""

import time

import fgbg.composing.shard


def dask_setup(worker) -> None:
    real = fgbg.composing.shard.make_shard

    def slow(k, job):
        time.sleep(0.3)
        return real(k, job)

    fgbg.composing.shard.make_shard = slow  # the client's tasks name this function; the worker resolves it here
