"""Schema tests of the --json output: every command's document has its documented, stable shape."""

from __future__ import annotations

import json

import pytest

from pegasus_shell.commands import PRIMARY
from pegasus_shell.commands.shell_cmds import describe
from pegasus_shell.errors import ShellError, UnreachableError, UsageError
from pegasus_shell.escape import unescape
from pegasus_shell.render import json_document
from tests.shell.fixtures_data import RESULTS
from tests.shell.json_shapes import COMMAND, DATA, check_document, check_shape


def test_every_command_has_a_documented_shape():
    assert set(PRIMARY) - {"exit"} <= set(DATA)


@pytest.mark.parametrize("command", sorted(RESULTS))
def test_document_for_fixed_data_matches_its_shape(command):
    line = json_document(command, f"{command} ...", RESULTS[command])
    assert "\n" not in line
    doc = json.loads(line)
    assert doc["ok"] is True and doc["command"] == command
    check_document(doc)


def test_bytes_are_escaped_ascii_and_round_trip():
    doc = json.loads(json_document("get", "get hk sk", RESULTS["get"]))
    assert doc["data"]["value"] == "hello world\\x00\\xFF"
    assert unescape(doc["data"]["value"]) == b"hello world\x00\xff"


def test_help_documents_match_the_command_shape():
    doc = json.loads(json_document("help", "help", {"commands": [describe(c) for c in PRIMARY.values()]}))
    check_shape(doc["data"], {"commands": [COMMAND]})
    doc = json.loads(json_document("help", "help get", {"command": describe(PRIMARY["get"])}))
    check_shape(doc["data"], {"command": COMMAND})


@pytest.mark.parametrize(
    "error, exit_code",
    [(UsageError("bad flag"), 2), (ShellError("failed"), 1), (UnreachableError("cannot reach"), 3)],
)
def test_error_documents(error, exit_code):
    doc = json.loads(json_document("ls", "ls", error=error))
    check_document(doc)
    assert doc["error"]["exit_code"] == exit_code
    assert "data" not in doc


def test_a_failure_with_partial_data_carries_it():
    error = ShellError("server-info: failed on 1 of 2 nodes", "ERR_REMOTE_COMMAND", data=RESULTS["server-info"])
    doc = json.loads(json_document("server-info", "server-info", error=error))
    check_document(doc)
    check_shape(doc["data"], DATA["server-info"])


def test_the_checker_catches_a_missing_field_and_a_wrong_type():
    with pytest.raises(AssertionError, match="missing key 'found'"):
        check_shape({"hash_key": "a", "sort_key": "b", "value": None}, DATA["get"])
    with pytest.raises(AssertionError, match="expected int"):
        check_shape({"hash_key": "a", "count": True}, DATA["count"])
