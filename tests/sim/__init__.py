"""Deterministic simulation of the PacificA core (pegasus_node.replication) and the meta server's guardian:
``python -m tests.sim.run --seeds 500`` or ``--seed N`` to replay one."""
