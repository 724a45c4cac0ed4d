"""The Dask cluster that composes: a LocalCluster of worker processes on this machine, or a
running cluster given by its scheduler's address, checked so that a wrong address is one
clear error within about 2 x CLUSTER_TIMEOUT_S rather than a hang or a traceback."""

from __future__ import annotations

import logging

from fgbg.core.errors import InputError

CLUSTER_TIMEOUT_S = 20.0  # to reach a scheduler given by address, and then for it to have a worker


def client_of(workers: int, scheduler: str | None):
    """A Dask client: of the cluster at `scheduler`, else of a LocalCluster of `workers` processes."""
    from distributed import Client, LocalCluster

    logging.getLogger("distributed").setLevel(logging.WARNING)  # its start-up and shutdown chatter
    if scheduler:
        return connect(scheduler)
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None,
                           host="127.0.0.1", silence_logs=logging.WARNING)
    return Client(cluster)


def connect(address: str):
    """A client of the Dask scheduler at `address` once it has a worker; else, within about
    2 x CLUSTER_TIMEOUT_S, an InputError that names the address and what to check."""
    from distributed import Client
    from distributed.exceptions import WorkerStartTimeoutError

    seconds = CLUSTER_TIMEOUT_S
    wrong = f"the Dask scheduler address {address} (--scheduler or FGBG_DASK_SCHEDULER)"
    fix = ("check that `dask scheduler` runs there and that this is the address it prints (port 8786 by default, "
           "not the dashboard's 8787), or leave the address unset to compose on local worker processes")
    try:
        handshake(address, seconds)
    except TimeoutError:  # before OSError, its base class
        raise InputError(f"{wrong}: it accepted a connection but did not answer as Dask does within {seconds:g} s; "
                         f"{fix}") from None
    except OSError:  # nothing listens there, or the host is unknown or unreachable
        raise InputError(f"{wrong}: could not connect within {seconds:g} s; {fix}") from None
    except ValueError as e:  # a malformed address
        raise InputError(f"{wrong}: {e}; {fix}") from None
    try:
        client = Client(address, timeout=f"{seconds}s")
    except Exception as e:  # it speaks Dask but is no scheduler: a worker's address, say
        raise InputError(f"{wrong}: what answers there is not a Dask scheduler ({type(e).__name__}: {e}); "
                         f"{fix}") from None
    try:
        client.wait_for_workers(1, timeout=seconds)
    except WorkerStartTimeoutError:
        client.close()
        raise InputError(f"the Dask scheduler at {address} has no workers: none joined within {seconds:g} s; start "
                         f"some (`dask worker {address}` on each machine), or leave --scheduler and "
                         "FGBG_DASK_SCHEDULER unset to compose on local worker processes") from None
    return client


def handshake(address: str, seconds: float) -> None:
    """Open a Dask connection to `address` and close it: Dask's own connect waits forever for
    the answer of a server that accepts and never speaks (an HTTP server, say), hence the bound."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    from distributed.comm import connect as dask_connect
    from distributed.security import Security

    async def open_and_close() -> None:
        comm = await dask_connect(address, timeout=seconds, **Security().get_connection_args("client"))
        await comm.close()

    bounded = asyncio.wait_for(open_and_close(), seconds + 1)  # + 1: connect's own timeout comes first
    with ThreadPoolExecutor(1) as thread:  # a loop of its own, also where one runs already (a notebook)
        thread.submit(asyncio.run, bounded).result()
