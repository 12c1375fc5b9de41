"""Batch, one-shot and --json runs of the real pegasus-shell against a real onebox."""

from __future__ import annotations

import json
import re
import signal
import subprocess

import pytest

from tests.shell.conftest import SHELL
from tests.shell.json_shapes import check_document

SCRIPT = r"""
# create a table, write, read, scan and drop it
create shelltest -p 4
use shelltest
set user1 name "Alice Smith"
set user1 "\x00bin" "\xff\x01"   # binary sort key and value
set user2 name Bob 3600
get user1 name
get user1 "\x00bin"
get user1 nosuch
get --follower_read user2 name   # from a secondary, as fresh as from the primary
multi_set user1 city Paris zip 75001
multi_get --follower-read user1
hash_scan user1 c z
count user1
exist user2 name
ttl user1 name
incr counters hits 3
incr counters hits
check_and_set counters -c hits -t int_equal -o 4 -s flag -v set -r
full_scan
count_data
del user1 city
multi_del user1 zip name
hash_scan user1
drop shelltest
"""

EXPECTED = [
    ">>> create shelltest -p 4",
    re.compile(r'create table "shelltest" succeeded: app_id \d+, 4 partitions, \d replicas; 4/4 partitions healthy'),
    ">>> use shelltest",
    re.compile(r"OK, using table shelltest \(app_id \d+, 4 partitions\)"),
    '>>> set user1 name "Alice Smith"',
    "OK",
    r'>>> set user1 "\x00bin" "\xff\x01"   # binary sort key and value',
    "OK",
    ">>> set user2 name Bob 3600",
    "OK",
    ">>> get user1 name",
    '"Alice Smith"',
    r'>>> get user1 "\x00bin"',
    r'"\xFF\x01"',
    ">>> get user1 nosuch",
    "Not found",
    ">>> get --follower_read user2 name   # from a secondary, as fresh as from the primary",
    '"Bob"',
    ">>> multi_set user1 city Paris zip 75001",
    "OK",
    ">>> multi_get --follower-read user1",
    r'"user1" : "\x00bin" => "\xFF\x01"',
    '"user1" : "city" => "Paris"',
    '"user1" : "name" => "Alice Smith"',
    '"user1" : "zip" => "75001"',
    "4 key-value pairs got.",
    ">>> hash_scan user1 c z",
    '"user1" : "city" => "Paris"',
    '"user1" : "name" => "Alice Smith"',
    "2 key-value pairs got.",
    ">>> count user1",
    "4",
    ">>> exist user2 name",
    "True",
    ">>> ttl user1 name",
    "Infinite",
    ">>> incr counters hits 3",
    "3",
    ">>> incr counters hits",
    "4",
    ">>> check_and_set counters -c hits -t int_equal -o 4 -s flag -v set -r",
    "Set succeed.",
    'Check value: "4"',
    ">>> full_scan",
    "FULL_SCAN",  # the records come partition by partition: checked as a set below
    ">>> count_data",
    "pidx  rows",
    "COUNT_DATA",  # rows per partition depend on the hash: checked below
    ">>> del user1 city",
    "OK",
    ">>> multi_del user1 zip name",
    "OK, 2 sort keys deleted",
    ">>> hash_scan user1",
    r'"user1" : "\x00bin" => "\xFF\x01"',
    "1 key-value pairs got.",
    ">>> drop shelltest",
    re.compile(r'drop table "shelltest" succeeded; "recall \d+" brings it back until \S+'),
]

FULL_SCAN = {
    r'"user1" : "\x00bin" => "\xFF\x01"',
    '"user1" : "city" => "Paris"',
    '"user1" : "name" => "Alice Smith"',
    '"user1" : "zip" => "75001"',
    '"user2" : "name" => "Bob"',
    '"counters" : "hits" => "4"',
    '"counters" : "flag" => "set"',
}


def test_script_creates_writes_reads_scans_and_drops_a_table(onebox, shell, tmp_path):
    script = tmp_path / "script.pegasus"
    script.write_text(SCRIPT)
    run = shell("-m", onebox.meta, "-f", str(script))
    assert (run.code, run.err) == (0, ""), run.out
    lines = iter(run.out_lines)
    for expected in EXPECTED:
        if expected == "FULL_SCAN":
            got = [next(lines) for _ in FULL_SCAN]
            assert set(got) == FULL_SCAN
            assert next(lines) == "7 key-value pairs got."
        elif expected == "COUNT_DATA":
            rows = [next(lines) for _ in range(4)]
            assert [r.split()[0] for r in rows] == ["0", "1", "2", "3"]
            assert sum(int(r.split()[1]) for r in rows) == 7
            assert next(lines) == "Count done, total 7 rows."
        else:
            line = next(lines)
            assert expected.fullmatch(line) if isinstance(expected, re.Pattern) else line == expected, line
    assert next(lines, None) is None
    listed = shell("-m", onebox.meta, "-e", "ls")
    assert listed.code == 0 and "shelltest" not in listed.out


def test_a_failing_command_stops_the_script_with_exit_1(onebox, shell):
    script = "use temp\nset middle a 1\nuse no_such_table\nset middle b 2\n"
    run = shell("-m", onebox.meta, "-f", "-", stdin=script)
    assert run.code == 1
    assert run.out_lines == [">>> use temp", "OK, using table temp (app_id 1, 8 partitions)",
                             ">>> set middle a 1", "OK", ">>> use no_such_table"]
    assert run.err_lines == ['error: table "no_such_table" does not exist ("ls" lists the tables)']
    after = shell("-m", onebox.meta, "-e", "use temp", "-e", "get middle a", "-e", "get middle b")
    assert after.out_lines[-4:] == [">>> get middle a", '"1"', ">>> get middle b", "Not found"]


def test_on_error_continue_runs_everything_and_still_exits_1(onebox, shell):
    script = "use temp\nuse no_such_table\nset carry_on b 2\nget carry_on b\n"
    run = shell("-m", onebox.meta, "--on-error", "continue", stdin=script)  # a piped stdin is a script too
    assert run.code == 1
    assert run.out_lines[-2:] == [">>> get carry_on b", '"2"']
    assert len(run.err_lines) == 1


def test_use_carries_over_between_one_shot_commands(onebox, shell):
    run = shell("-m", onebox.meta, "-e", "use temp", "-e", "set 'one shot' k 'v v'", "-e", "get 'one shot' k")
    assert run.code == 0, run.err
    assert run.out_lines[-2:] == ['>>> get \'one shot\' k', '"v v"']
    single = shell("-m", onebox.meta, "-e", "cluster-info")  # one -e: no echo
    assert single.code == 0 and single.out_lines[0].startswith("cluster ")


def test_json_mode_every_document_has_its_shape(onebox, shell):
    commands = ["ls -d", "nodes -d", "cluster-info", "server-info", "remote-command -t replica-server help",
                "meta-level", "use temp", "partitions", "set j \"\\x00k\" v 100", "get j \"\\x00k\"", "ttl j \"\\x00k\"",
                "multi_set j a 1 b 2", "multi_get j", "multi_get j a nosuch", "incr j n 2", "exist j a",
                "check_and_set j -c a -t bytes_equal -o 1 -v x -s c", "count j", "hash_scan j", "full_scan -n 2",
                "count_data", "multi_del j a b", "del j c", "help get"]
    args = ["-m", onebox.meta, "--json"]
    for command in commands:
        args += ["-e", command]
    run = shell(*args)
    assert (run.code, run.err) == (0, "")
    docs = [json.loads(line) for line in run.out_lines]
    assert [d["input"] for d in docs] == commands
    for doc in docs:
        check_document(doc)
    by_input = {d["input"]: d["data"] for d in docs}
    assert by_input['get j "\\x00k"'] == {"hash_key": "j", "sort_key": "\\x00k", "found": True, "value": "v"}
    assert by_input["full_scan -n 2"]["truncated"] is True
    assert {r["role"] for r in by_input["server-info"]["results"]} == {"meta", "replica"}


def test_interrupt_stops_a_batch_with_exit_130(onebox, shell_env, tmp_path):
    proc = subprocess.Popen([SHELL, "-m", onebox.meta, "-f", "-"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=shell_env, cwd=tmp_path / "cwd")
    try:
        proc.stdin.write("use temp\n")
        proc.stdin.flush()
        assert proc.stdout.readline() == ">>> use temp\n"
        assert proc.stdout.readline().startswith("OK, using table temp")
        proc.send_signal(signal.SIGINT)
        assert proc.wait(20) == 130
        assert proc.stderr.read().strip() == "error: interrupted"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for stream in (proc.stdin, proc.stdout, proc.stderr):
            stream.close()


# ---------------------------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["-e", "bogus"], 2, 'error: unknown command "bogus" ("help" lists the commands)'),
        (["-e", "ls --bogus"], 2, "error: ls: unknown flag --bogus; usage: ls [-d] [--drop]"),
        (["--bogus"], 2, "error: unrecognized arguments: --bogus (see pegasus-shell --help)"),
        (["-e", "use no_such_table"], 1, 'error: table "no_such_table" does not exist ("ls" lists the tables)'),
        (["-e", "partitions no_such_table"], 1,
         'error: table "no_such_table" does not exist ("ls" lists the tables)'),
        (["-e", "get a b"], 1, 'error: get: no table in use; run "use TABLE" first'),
        (["-e", "use temp", "-e", 'set "" sk v'], 2, "error: set: HASH_KEY must not be empty"),
        (["-e", 'get "unbalanced'], 2, "error: unbalanced double quote in the command line"),
        (["-e", "create t -p zero"], 2, "error: create -p must be an integer, not 'zero'"),
    ],
)
def test_bad_input_gives_one_clear_line_and_the_right_exit_code(onebox, shell, args, code, message):
    run = shell("-m", onebox.meta, *args)
    assert run.code == code
    assert run.err_lines == [message]
    assert "Traceback" not in run.out + run.err


def test_bad_input_under_json_is_a_json_error_on_stderr(onebox, shell):
    run = shell("-m", onebox.meta, "--json", "-e", "use temp", "-e", 'set "" sk v')
    assert run.code == 2
    [error] = [json.loads(line) for line in run.err_lines]
    check_document(error)
    assert error["error"] == {"code": "ERR_USAGE", "message": "set: HASH_KEY must not be empty", "exit_code": 2}
    assert json.loads(run.out_lines[0])["command"] == "use"


def test_unreachable_cluster_exits_3(shell):
    from tests.shell.conftest import free_port

    address = f"127.0.0.1:{free_port()}"
    run = shell("-m", address, "-e", "ls")
    assert run.code == 3
    assert run.err_lines == [f"error: cannot reach cluster {address} (meta servers {address}): "
                             "connection refused or timed out"]
    as_json = shell("-m", address, "--json", "-e", "ls")
    assert as_json.code == 3
    assert json.loads(as_json.err_lines[0])["error"]["code"] == "ERR_UNREACHABLE"


def test_commands_that_need_no_cluster_run_without_one(shell):
    run = shell("-m", "127.0.0.1:1", "-e", "help use")
    assert run.code == 0 and run.out_lines[0] == "usage: use TABLE"
