"""The documented ini example is what the nodes read: every key in it is known, and it loads."""

from __future__ import annotations

import configparser
from pathlib import Path

import pytest

from pegasus_node.config import _INI_KEYS, ConfigError, load_config

EXAMPLE = Path(__file__).resolve().parents[1] / "docs" / "node.ini.example"


def test_every_key_of_the_ini_example_is_read_by_the_nodes():
    parser = configparser.ConfigParser(interpolation=None)
    parser.read(EXAMPLE, encoding="utf-8")
    documented = {(section, key) for section in parser.sections() for key, _ in parser.items(section)}
    assert documented and documented - set(_INI_KEYS) == set()


def test_the_ini_example_loads_with_its_values():
    config = load_config(EXAMPLE)
    assert config.min_batch_when_busy == 4 and config.shared_log_rotate_bytes == 32 << 20
    assert config.gc_unassigned_replica_seconds == 86400


def test_gc_unassigned_replica_seconds_is_read_and_must_not_be_negative(tmp_path):
    ini = tmp_path / "node.ini"
    ini.write_text("[replication]\ngc_unassigned_replica_seconds = 0\n")
    assert load_config(ini).gc_unassigned_replica_seconds == 0
    ini.write_text("[replication]\ngc_unassigned_replica_seconds = -1\n")
    with pytest.raises(ConfigError, match="gc_unassigned_replica_seconds"):
        load_config(ini)
