"""clusters.ini: where it is found, -c, the default cluster, cc, and clear errors for bad files."""

from __future__ import annotations

from pathlib import Path

import pytest

from pegasus_shell.config import find_clusters_ini, load_clusters
from pegasus_shell.errors import UsageError

REPO_ROOT = Path(__file__).resolve().parents[2]


def write_ini(path: Path, clusters: dict[str, str], default: str | None = None) -> Path:
    lines = ["[pegasus.clusters]", *(f"{k} = {v}" for k, v in clusters.items()), "", "[duplication-group]",
             *(f"{k} = {i}" for i, k in enumerate(clusters, start=1))]
    if default:
        lines += ["", "[pegasus.shell]", f"default_cluster = {default}"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def test_the_repository_clusters_ini_names_the_onebox():
    config = load_clusters(REPO_ROOT / "clusters.ini")
    assert config.clusters == {"onebox": ["127.0.0.1:34601"]}
    assert config.cluster_ids == {"onebox": 1}
    assert config.default_cluster == "onebox"


def test_current_directory_first_then_xdg_config(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    assert find_clusters_ini(cwd) is None
    xdg = write_ini(tmp_path / "config" / "pegasus" / "clusters.ini", {"a": "127.0.0.1:1"})
    assert find_clusters_ini(cwd) == xdg
    local = write_ini(cwd / "clusters.ini", {"b": "127.0.0.1:2"})
    assert find_clusters_ini(cwd) == local


@pytest.mark.parametrize(
    "text, message",
    [
        ("[pegasus.clusters]\nx = nonsense\n", "cluster 'x': bad meta server address 'nonsense'"),
        ("[pegasus.clusters]\nx = 127.0.0.1:1\n[pegasus.shell]\ndefault_cluster = y\n",
         "default_cluster 'y' is not in [pegasus.clusters]"),
        ("[duplication-group]\nx = one\n", "[duplication-group] x = 'one' is not a cluster id"),
        ("no section header\n", "cannot read"),
    ],
)
def test_a_bad_file_is_one_clear_error(tmp_path, text, message):
    path = tmp_path / "clusters.ini"
    path.write_text(text)
    with pytest.raises(UsageError, match=None) as caught:
        load_clusters(path)
    assert message in caught.value.message and "\n" not in caught.value.message


def test_dash_c_names_a_cluster_from_the_file(onebox, shell, tmp_path):
    write_ini(tmp_path / "cwd" / "clusters.ini", {"MyBox": onebox.meta})
    run = shell("-c", "MyBox", "-e", "cluster-info")
    assert run.code == 0, run.err
    assert run.out_lines[0].split() == ["cluster", ":", "MyBox"]


def test_dash_c_with_an_unknown_name_is_a_usage_error(onebox, shell, tmp_path):
    ini = write_ini(tmp_path / "cwd" / "clusters.ini", {"box": onebox.meta})
    run = shell("-c", "nope", "-e", "ls")
    assert run.code == 2
    assert run.err_lines == [f"error: unknown cluster 'nope' in {ini}; known clusters: box"]


def test_a_bad_clusters_ini_stops_with_exit_2(shell, tmp_path):
    (tmp_path / "cwd" / "clusters.ini").write_text("[pegasus.clusters]\nx = nonsense\n")
    run = shell("-e", "help")
    assert run.code == 2 and len(run.err_lines) == 1 and "bad meta server address" in run.err


def test_the_default_cluster_is_used_when_it_answers(onebox, shell, tmp_path):
    write_ini(tmp_path / "config" / "pegasus" / "clusters.ini", {"home": onebox.meta}, default="home")
    run = shell("-e", "cluster-info")
    assert run.code == 0 and run.err == ""  # no embedded onebox notice
    assert run.out_lines[0].split() == ["cluster", ":", "home"]
    assert not (tmp_path / "data" / "pegasus-py").exists()


def test_cc_switches_cluster_and_forgets_the_table(onebox, shell, tmp_path):
    write_ini(tmp_path / "cwd" / "clusters.ini", {"box": onebox.meta, "dead": "127.0.0.1:1"})
    run = shell("-m", onebox.meta, "-e", "use temp", "-e", "cc box", "-e", "get a b", "--on-error", "continue")
    assert run.out_lines[2:4] == [">>> cc box", f"connected to cluster box (meta servers: {onebox.meta})"]
    assert run.err_lines == ['error: get: no table in use; run "use TABLE" first']
    failed = shell("-m", onebox.meta, "-e", "use temp", "-e", "cc dead", "-e", "get a b")
    assert failed.code == 3  # an unreachable cluster stops the run with exit 3
    assert failed.err_lines == ["error: cannot reach cluster dead (meta servers 127.0.0.1:1): "
                                "connection refused or timed out"]
    usage = shell("-m", onebox.meta, "-e", "cc")
    assert usage.code == 2 and "give either a cluster name or -m META_LIST" in usage.err
