"""Every history of the external test set (Jepsen etcd register logs and Jepsen kv histories, with verdicts
nobody here wrote) must get its known verdict."""

from __future__ import annotations

from pathlib import Path

import pytest

from pegasus_node.checker import ETCD_MODEL, KV_MODEL, Verdict, check, parse_etcd_log, parse_jepsen_kv_edn

DATA = Path(__file__).resolve().parents[2].parent / "shared" / "testdata" / "linearizability"
pytestmark = pytest.mark.skipif(
    not DATA.is_dir(), reason=f"external linearizability test data is absent (looked for {DATA})"
)

_VERDICT_WORDS = {"linearizable": Verdict.OK, "not-linearizable": Verdict.ILLEGAL}


def _etcd_verdicts() -> dict[str, Verdict]:
    if not DATA.is_dir():
        return {}
    verdicts = {}
    for line in (DATA / "etcd" / "VERDICTS.txt").read_text().splitlines():
        if line.strip():
            name, word = line.split()
            verdicts[name] = _VERDICT_WORDS[word]
    return verdicts


def _kv_files() -> list[str]:
    return sorted(p.name for p in (DATA / "kv").glob("*.txt")) if DATA.is_dir() else []


ETCD = _etcd_verdicts()


def test_every_etcd_log_has_a_verdict_and_both_verdicts_occur() -> None:
    logs = {p.name for p in (DATA / "etcd").glob("*.log")}
    assert logs == set(ETCD)
    assert set(ETCD.values()) == {Verdict.OK, Verdict.ILLEGAL}


@pytest.mark.parametrize("name", sorted(ETCD))
def test_etcd_history_gets_its_known_verdict(name: str) -> None:
    result = check(parse_etcd_log(DATA / "etcd" / name), ETCD_MODEL)
    assert result.verdict is ETCD[name], result.explanation
    if result.verdict is Verdict.ILLEGAL:
        assert result.failed_op is not None
        assert result.explanation.startswith("register is not linearizable")


def test_kv_set_holds_good_and_bad_histories_of_each_size() -> None:
    names = _kv_files()
    for clients in ("c01", "c10", "c50"):
        assert f"{clients}-ok.txt" in names and f"{clients}-bad.txt" in names


@pytest.mark.parametrize("name", _kv_files())
def test_kv_history_gets_its_known_verdict(name: str) -> None:
    expected = Verdict.OK if name.endswith("-ok.txt") else Verdict.ILLEGAL
    history = parse_jepsen_kv_edn(DATA / "kv" / name)
    result = check(history, KV_MODEL)
    assert result.verdict is expected, result.explanation
    assert result.partitions == len({op.input.key for op in history}) or result.verdict is Verdict.ILLEGAL
    if expected is Verdict.ILLEGAL:
        key = result.failed_op.input.key
        assert result.partition == f"key {key!r}"
        assert f"key {key!r}" in result.explanation
        assert all(op.input.key == key for op in result.prefix)
