"""Duplication (seed 002): a table's writes shipped asynchronously to the same table on another cluster.

- ``entry.py``: a duplication as the meta server keeps it (status, fail mode, each partition's confirmed
  decree), shared by the meta server, the replica servers and the shell.
- ``duplicator.py``: on a partition's primary, ships committed mutations after the confirmed decree to the
  remote cluster through the normal client, each write carrying its source timetag (last writer wins there).
- The meta side is ``meta/duplications.py``; the receiving side is ``rrdb.duplicate`` (replica/data_handlers.py).

Only incremental duplication is built: the remote table must exist, and the writes from the moment of
``dup add`` on are shipped. Full duplication (``dup add -p``, copying a checkpoint first) is not.
"""
