"""Duplication (seed 002): a table's writes shipped asynchronously to the same table on another cluster.

- ``entry.py``: a duplication as the meta server keeps it (status, fail mode, each partition's confirmed
  decree), shared by the meta server, the replica servers and the shell.
- ``duplicator.py``: on a partition's primary, ships committed mutations after the confirmed decree to the
  remote cluster through the normal client, each write carrying its source timetag (last writer wins there).
- The meta side is ``meta/duplications.py``; the receiving side is ``rrdb.duplicate`` (replica/data_handlers.py).

Incremental duplication ships the writes from the moment of ``dup add`` on to a table that exists on the
remote cluster. Full duplication (``dup add -p``) creates the table there and ships a snapshot of each
partition's records first.
"""
