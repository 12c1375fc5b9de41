"""The EDN reader, the two Jepsen history readers and the command line, on small files written here."""

from __future__ import annotations

from pathlib import Path

import pytest

from pegasus_node.checker import UNKNOWN, HistoryError, KvOp, Operation, parse_etcd_log, parse_jepsen_kv_edn
from pegasus_node.checker import edn
from pegasus_node.checker.__main__ import EXIT_ERROR, EXIT_ILLEGAL, EXIT_OK, EXIT_UNKNOWN, main


def write(tmp_path: Path, name: str, lines: list[str]) -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


# --- EDN ----------------------------------------------------------------------------------------------------


def test_edn_reads_a_jepsen_map() -> None:
    value = edn.loads('{:process 3, :type :ok, :f :get, :key "k 1", :value nil}')
    assert value == {
        edn.Keyword("process"): 3,
        edn.Keyword("type"): edn.Keyword("ok"),
        edn.Keyword("f"): edn.Keyword("get"),
        edn.Keyword("key"): "k 1",
        edn.Keyword("value"): None,
    }


@pytest.mark.parametrize(
    "text, expected",
    [
        ("[3 0]", (3, 0)),
        ("(1, -2 +3)", (1, -2, 3)),
        ("#{1 2}", frozenset({1, 2})),
        ('"a\\"b\\\\c\\nd\\u00e9"', 'a"b\\c\ndé'),
        ("12N", 12),
        ("1.5", 1.5),
        ("2.5M", 2.5),
        ("true", True),
        ("false", False),
        ("foo/bar", edn.Symbol("foo/bar")),
        (":timed-out", edn.Keyword("timed-out")),
        ("\\a", "a"),
        ("\\newline", "\n"),
        ("[1 #_ 2 3] ; trailing comment", (1, 3)),
        ('#inst "2024-01-01"', edn.Tagged("inst", "2024-01-01")),
        ("{[1 2] :pair}", {(1, 2): edn.Keyword("pair")}),
    ],
)
def test_edn_values(text: str, expected: object) -> None:
    assert edn.loads(text) == expected


@pytest.mark.parametrize(
    "text, message",
    [
        ("{:a 1", "missing '}'"),
        ("{:a}", "even number"),
        ('"abc', "unterminated string"),
        ('"\\q"', "bad string escape"),
        ("[1 2]]", "unexpected text"),
        ("]", "unbalanced"),
        ("", "unexpected end"),
        ("12abc", "bad number"),
        (":", "empty keyword"),
        ("{{:a 1} 2}", "map key cannot be a dict"),
        ("\\bogus", "unknown character"),
    ],
)
def test_edn_errors_say_what_and_where(text: str, message: str) -> None:
    with pytest.raises(edn.EdnError, match=message):
        edn.loads(text)


# --- etcd logs ----------------------------------------------------------------------------------------------


def etcd(proc: int, type_: str, f: str, value: str, sep: str = "\t") -> str:
    return sep.join([f"INFO  jepsen.util - {proc}", f":{type_}", f":{f}", value])


def test_etcd_log_reading(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "h.log",
        [
            "INFO  jepsen.core - some other logger line, ignored",
            etcd(0, "invoke", "write", "3"),
            etcd(1, "invoke", "read", "nil"),
            etcd(0, "ok", "write", "3"),
            etcd(1, "ok", "read", "3", sep="   "),  # some lines use spaces, not tabs
            etcd(2, "invoke", "cas", "[3 4]"),
            etcd(2, "ok", "cas", "[3 4]"),
            etcd(3, "invoke", "cas", "[1 2]"),
            etcd(3, "fail", "cas", "[1 2]"),
            etcd(4, "invoke", "read", "nil"),
            etcd(4, "fail", "read", ":timed-out"),
            etcd(5, "invoke", "write", "1"),
            etcd(5, "info", "write", ":timed-out"),
            etcd(6, "invoke", "read", "nil"),
            etcd(6, "info", "read", ":timed-out"),
            "INFO  jepsen.util - :nemesis\t:info\t:start\tnil",
            etcd(7, "invoke", "cas", "[4 0]"),
            etcd(8, "invoke", "read", "nil"),
        ],
    )
    ops = parse_etcd_log(path)
    assert ops == [
        Operation(0, 2, 4, KvOp("write", None, 3), None),
        Operation(1, 3, 5, KvOp("read"), 3),
        Operation(2, 6, 7, KvOp("cas", None, 4, 3), True),
        Operation(3, 8, 9, KvOp("cas", None, 2, 1), False),
        Operation(5, 12, None, KvOp("write", None, 1), UNKNOWN),
        Operation(7, 17, None, KvOp("cas", None, 0, 4), UNKNOWN),
    ]


def test_etcd_read_of_nothing_is_none(tmp_path: Path) -> None:
    path = write(tmp_path, "h.log", [etcd(0, "invoke", "read", "nil"), etcd(0, "ok", "read", "nil")])
    assert parse_etcd_log(path)[0].output is None


@pytest.mark.parametrize(
    "lines, message",
    [
        ([etcd(0, "invoke", "write", "1"), etcd(0, "invoke", "write", "2")], r"h.log:2: .*invokes again.*line 1"),
        ([etcd(0, "ok", "write", "1")], r"h.log:1: process 0 completes :write without an invocation"),
        ([etcd(0, "invoke", "write", "1"), etcd(0, "ok", "read", "1")], r"completes :read but invoked :write"),
        ([etcd(0, "invoke", "write", "x")], r"cannot read :write"),
        ([etcd(0, "invoke", "cas", "[1 2")], r"cannot read value"),
        ([etcd(0, "bogus", "write", "1")], r"unknown event type :bogus"),
        (["INFO  jepsen.util - garbage"], r"cannot read event"),
        (["just some text"], r"no client operation found"),
    ],
)
def test_etcd_log_errors_name_the_line(tmp_path: Path, lines: list[str], message: str) -> None:
    with pytest.raises(HistoryError, match=message):
        parse_etcd_log(write(tmp_path, "h.log", lines))


# --- kv EDN histories ---------------------------------------------------------------------------------------


def kv(proc: int | str, type_: str, f: str, key: str, value: str) -> str:
    return f'{{:process {proc}, :type :{type_}, :f :{f}, :key "{key}", :value {value}}}'


def test_kv_edn_reading(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "h.txt",
        [
            kv(0, "invoke", "put", "a", '"x"'),
            kv(1, "invoke", "get", "a", "nil"),
            kv(0, "ok", "put", "a", '"x"'),
            kv(1, "ok", "get", "a", '"x"'),
            "",
            "; a comment line",
            kv(2, "invoke", "append", "b", '"y \\"q\\""'),
            kv(2, "info", "append", "b", '"y \\"q\\""'),
            kv(3, "invoke", "get", "b", "nil"),
            kv(3, "fail", "get", "b", "nil"),
            kv(4, "invoke", "put", "c", '"z"'),
            kv(4, "fail", "put", "c", '"z"'),
            kv(":nemesis", "info", "get", "-", "nil"),
            kv(5, "invoke", "put", "d", '"w"'),
        ],
    )
    assert parse_jepsen_kv_edn(path) == [
        Operation(0, 1, 3, KvOp("put", "a", "x"), None),
        Operation(1, 2, 4, KvOp("get", "a"), "x"),
        Operation(2, 7, None, KvOp("append", "b", 'y "q"'), UNKNOWN),
        Operation(5, 14, None, KvOp("put", "d", "w"), UNKNOWN),
    ]


@pytest.mark.parametrize(
    "lines, message",
    [
        (["[1 2]"], r"h.txt:1: expected one EDN map per line"),
        (['{:process "p", :type :invoke, :f :get, :key "a", :value nil}'], r":process must be an integer"),
        ([kv(0, "invoke", "incr", "a", "nil")], r"unsupported :f :incr"),
        (['{:process 0, :type "invoke", :f :get, :key "a"}'], r":type must be a keyword"),
        ([kv(0, "invoke", "put", "a", "nil")], r":put needs a :value"),
        ([kv(0, "invoke", "get", "a", "nil"), kv(0, "ok", "get", "b", '"x"')], r"completion on key 'b'"),
        ([kv(0, "whatever", "get", "a", "nil")], r"unknown :type :whatever"),
        (['{:process 0, :type :invoke, :f :get, :key [1 {:a 1}], :value nil}'], r"cannot be a key"),
        (["{:process 0"], r"h.txt:1: cannot read value"),
        (["; only a comment"], r"no client operation found"),
    ],
)
def test_kv_edn_errors_name_the_line(tmp_path: Path, lines: list[str], message: str) -> None:
    with pytest.raises(HistoryError, match=message):
        parse_jepsen_kv_edn(write(tmp_path, "h.txt", lines))


# --- command line -------------------------------------------------------------------------------------------


def test_cli_exit_codes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = write(tmp_path, "good.log", [etcd(0, "invoke", "write", "1"), etcd(0, "ok", "write", "1")])
    bad = write(
        tmp_path,
        "bad.txt",
        [
            kv(0, "invoke", "put", "k", '"1"'),
            kv(0, "ok", "put", "k", '"1"'),
            kv(1, "invoke", "get", "k", "nil"),
            kv(1, "ok", "get", "k", '"2"'),
        ],
    )
    assert main([str(good)]) == EXIT_OK
    assert "good.log: linearizable" in capsys.readouterr().out
    assert main([str(bad), "--format", "kv"]) == EXIT_ILLEGAL
    out = capsys.readouterr().out
    assert "bad.txt: not linearizable" in out and "key 'k'" in out
    assert main([str(good), str(bad)]) == EXIT_ILLEGAL


def test_cli_timeout_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # a dozen concurrent appends and a read nobody could produce: far more than 4096 search steps
    lines = [kv(i, "invoke", "append", "k", f'"{chr(97 + i)}"') for i in range(12)]
    lines += [kv(i, "ok", "append", "k", f'"{chr(97 + i)}"') for i in range(12)]
    lines += [kv(99, "invoke", "get", "k", "nil"), kv(99, "ok", "get", "k", '"nope"')]
    path = write(tmp_path, "hard.txt", lines)
    assert main([str(path), "--timeout", "0.000001"]) == EXIT_UNKNOWN
    assert "unknown (timed out)" in capsys.readouterr().out


def test_cli_bad_input_is_a_message_not_a_traceback(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main([str(tmp_path / "missing.log")]) == EXIT_ERROR
    assert "cannot read history" in capsys.readouterr().err
    wrong = write(tmp_path, "wrong.txt", [kv(0, "invoke", "get", "k", "nil")])
    assert main([str(wrong), "--format", "etcd"]) == EXIT_ERROR
    assert "no client operation found" in capsys.readouterr().err
    unknown_format = write(tmp_path, "notes.md", ["hello"])
    assert main([str(unknown_format)]) == EXIT_ERROR
    assert "cannot tell the format" in capsys.readouterr().err
    binary = tmp_path / "blob.log"
    binary.write_bytes(b"\xff\xfe\x00")
    assert main([str(binary)]) == EXIT_ERROR
    for bad_args in (["--format", "xml", str(wrong)], ["--timeout", "0", str(wrong)]):
        with pytest.raises(SystemExit) as exit_info:
            main(bad_args)
        assert exit_info.value.code == EXIT_ERROR
