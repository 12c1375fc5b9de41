"""pegasus-py server side: meta server, replica servers, storage engine, replication, RPC and client."""

__version__ = "0.1.0"
