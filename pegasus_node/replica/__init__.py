"""The replica server: hosts partition replicas (a storage engine each) and serves data requests."""
