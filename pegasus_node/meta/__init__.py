"""The meta server: PacificA's configuration manager (tables, partition configurations, node liveness)."""
