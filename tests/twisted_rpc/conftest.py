from __future__ import annotations

from collections.abc import AsyncIterator, Callable

import pytest_twisted

from pegasus_node.twisted_rpc import RpcClientPool, RpcServer


@pytest_twisted.async_yield_fixture
async def make_server() -> AsyncIterator[Callable[..., tuple[RpcServer, int]]]:
    """``make_server(role="test", port=0, **options) -> (server, port)``, listening on 127.0.0.1."""
    servers: list[RpcServer] = []

    def make(role: str = "test", port: int = 0, **options) -> tuple[RpcServer, int]:
        server = RpcServer(role, **options)
        servers.append(server)
        listening = server.listen(port)
        return server, listening.getHost().port

    yield make
    for server in servers:
        await server.stop()


@pytest_twisted.async_yield_fixture
async def make_pool() -> AsyncIterator[Callable[..., RpcClientPool]]:
    pools: list[RpcClientPool] = []

    def make(**options) -> RpcClientPool:
        pool = RpcClientPool(**options)
        pools.append(pool)
        return pool

    yield make
    for pool in pools:
        await pool.close()


@pytest_twisted.async_yield_fixture
async def pool() -> AsyncIterator[RpcClientPool]:
    pool = RpcClientPool()
    yield pool
    await pool.close()
