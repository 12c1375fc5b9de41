"""pegasus-bench: load generators on the Twisted client (KV workloads) and on the bare RPC transport
(``ceiling``), sharing one loop runner and one latency report. See :mod:`pegasus_node.bench.cli`."""
