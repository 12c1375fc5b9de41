"""Splitting, escaping and argument parsing: the Pegasus shell's quoting rules, and clear usage errors."""

from __future__ import annotations

import pytest

from pegasus_shell.commands import lookup
from pegasus_shell.errors import UsageError
from pegasus_shell.escape import display, escape, split_line, unescape


def words(line: str) -> list[bytes]:
    return [t.value for t in split_line(line).tokens]


def test_blanks_separate_words_and_hash_starts_a_comment():
    assert words("  set  hk\tsk   v ") == [b"set", b"hk", b"sk", b"v"]
    assert words("# a comment") == []
    assert words("get a b # trailing comment") == [b"get", b"a", b"b"]
    assert words('get "a # not a comment" b') == [b"get", b"a # not a comment", b"b"]


def test_double_quotes_understand_escapes():
    assert words(r'set "a b" "\x00\xff\n\t\"\\" v') == [b"set", b"a b", b'\x00\xff\n\t"\\', b"v"]
    assert words(r'get "" x') == [b"get", b"", b"x"]


def test_single_quotes_take_everything_literally_but_the_quote():
    assert words(r"set 'a \x00' 'it\'s'") == [b"set", b"a \\x00", b"it's"]


def test_unquoted_backslash_is_literal_and_utf8_is_kept():
    assert words(r"set a\x00 é") == [b"set", b"a\\x00", "é".encode()]


def test_quoted_parts_join_the_word():
    assert words('set pre"fix y"post') == [b"set", b"prefix ypost"]


@pytest.mark.parametrize("line", ['get "abc', "get 'abc", 'set a "b\\"'])
def test_unbalanced_quotes_are_a_usage_error(line):
    with pytest.raises(UsageError, match="unbalanced"):
        split_line(line)


def test_partial_split_tolerates_an_open_quote():
    split = split_line('use "te', partial=True)
    assert split.unterminated and split.tokens[-1].value == b"te"


def test_escape_is_the_pegasus_escape_all_spelling():
    assert escape(b"plain") == "plain"
    assert escape(b'a"b\\c\n\r\t') == 'a\\"b\\\\c\\n\\r\\t'
    assert escape(b"\x00\x7f\xff") == "\\x00\\x7F\\xFF"
    assert escape("é") == "\\xC3\\xA9"


@pytest.mark.parametrize("data", [b"", b"plain", b"a b", b"\x00\xff", b'q"uote', b"it's", b"#x", b"-x", bytes(range(256))])
def test_display_reads_back_as_the_same_bytes(data):
    shown = display(data)
    assert words(f"get {shown} x")[1] == data
    assert unescape(escape(data)) == data


def test_display_quotes_only_when_needed():
    assert display(b"temp") == "temp"
    assert display(b"a b") == '"a b"'
    assert display(b"") == '""'


def parse(line: str):
    tokens = split_line(line).tokens
    return lookup(tokens[0].text).parse(tokens[1:])


def test_flags_anywhere_with_spaces_or_equals_and_all_spellings():
    args = parse("create t1 -p 8 --replica_count=2")
    assert (args.table, args.partitions, args.replicas) == ("t1", 8, 2)
    args = parse("create --partition_count 3 t2")
    assert (args.table, args.partitions, args.replicas) == ("t2", 3, None)


def test_negative_numbers_are_arguments_not_flags():
    assert parse("incr hk sk -5").increment == -5


def test_double_dash_ends_flags():
    args = parse("remote-command -n 127.0.0.1:1 fail_point.set -- -x")
    assert (args.command, args.args) == ("fail_point.set", ["-x"])


def test_quoted_dash_word_is_an_argument():
    assert parse('set hk "-s" v').sort_key == b"-s"


def test_repeatable_arguments_collect_the_rest():
    args = parse("multi_set hk a 1 b 2")
    assert args.sort_key_value == [b"a", b"1", b"b", b"2"]
    assert parse("multi_get hk").sort_key == []


@pytest.mark.parametrize(
    "line, message",
    [
        ("bogus", 'unknown command "bogus"'),
        ("ls -x", "ls: unknown flag -x; usage: ls [-d] [--drop]"),
        ("create", "create: missing TABLE"),
        ("create t -p", "create: flag -p needs a value"),
        ("create t -p many", "create -p must be an integer, not 'many'"),
        ("create t -p 0", "create -p must be >= 1, not 0"),
        ("get hk", "get: missing SORT_KEY"),
        ("get hk sk extra", "get: unexpected argument extra"),
        ('get "" sk', "get: HASH_KEY must not be empty"),
        ("ls -d=1", "flag -d takes no value"),
        ("meta-level set nonsense", "LEVEL must be one of steady, lively, freezed"),
        ("check_and_set hk -t sometimes", "check_and_set -t must be one of no_check"),
        ("recall x", "recall: APP_ID must be an integer"),
    ],
)
def test_bad_command_lines_give_one_clear_usage_error(line, message):
    with pytest.raises(UsageError) as caught:
        parse(line)
    assert message in caught.value.message
    assert "\n" not in caught.value.message
    assert caught.value.exit_code == 2


def test_every_name_and_alias_resolves_to_one_command():
    assert lookup("app") is lookup("partitions") is lookup("table-partitions")
    assert lookup("cluster_info") is lookup("cluster-info")
    assert lookup("server_info") is lookup("server-info")
    assert lookup("remote_command") is lookup("remote-command")
    assert lookup("quit") is lookup("exit")
    assert lookup("sortkey_count") is lookup("count")
    assert lookup("get_meta_level") is lookup("meta-level")
