"""BlockingClient in a fresh process (pytest's own reactor runs in the test thread, which is exactly the
thread a blocking call must refuse): the reactor runs in a background thread, calls return plain values."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

SCRIPT = r"""
import json
from twisted.internet.threads import blockingCallFromThread
from pegasus_node.client import BlockingClient, ReactorThreadError, TableNotFoundError
from pegasus_node.client.blocking import running_reactor
from tests.client.mini_cluster import MiniCluster

reactor = running_reactor()

def start_cluster():
    mini = MiniCluster(reactor).start(metas=1, replicas=3)
    mini.create_table("t", partition_count=4)
    return mini

mini = blockingCallFromThread(reactor, start_cluster)
out = {}
with BlockingClient(mini.meta_list, timeout=3.0) as client:
    table = client.open_table("t", backup_request_delay_ms=0)
    table.set("h", "a", "1")
    table.multi_set(b"h", {b"b": b"2", b"c": b"3"})
    out["get"] = table.get(b"h", b"a").decode()
    out["missing"] = table.get(b"h", b"zz")
    values, complete = table.multi_get(b"h")
    out["multi_get"] = {k.decode(): v.decode() for k, v in values.items()}
    out["incr"] = table.incr(b"h", b"n", 3)
    out["scan"] = [sk.decode() for _, sk, _ in table.get_scanner(b"h", batch_size=2)]
    out["full"] = sum(len(list(s)) for s in table.get_unordered_scanners(2, batch_size=1))
    out["apps"] = [a["name"] for a in client.admin.list_apps()["apps"]]
    try:
        client.open_table("nope")
    except TableNotFoundError as e:
        out["not_found"] = str(e)
    try:
        blockingCallFromThread(reactor, lambda: table.get(b"h", b"a"))
    except ReactorThreadError as e:
        out["reactor_thread"] = str(e)
    # a second client reuses the running reactor
    with BlockingClient(mini.meta_list) as second:
        out["second"] = second.open_table("t").get(b"h", b"b").decode()
blockingCallFromThread(reactor, mini.stop)
print(json.dumps(out))
"""


def test_blocking_client_in_a_script() -> None:
    result = subprocess.run(
        [sys.executable, "-c", SCRIPT], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["get"] == "1" and out["missing"] is None
    assert out["multi_get"] == {"a": "1", "b": "2", "c": "3"}
    assert out["incr"] == 3
    assert out["scan"] == ["a", "b", "c", "n"]
    assert out["full"] == 4
    assert out["apps"] == ["t"]
    assert "table 'nope' does not exist" in out["not_found"]
    assert "reactor thread" in out["reactor_thread"]
    assert out["second"] == "2"
