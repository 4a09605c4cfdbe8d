"""A second ``onecard serve`` on a port in use is refused before it starts anything."""

from engine.cli import main
from engine.server import reuse_port_socket


def test_a_port_held_by_a_running_server_is_refused(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("ONECARD_HOME", str(tmp_path))
    # As a running onecard serve holds it: a reuse-port socket, listening.
    first = reuse_port_socket("127.0.0.1", 0, listen=True)
    try:
        port = first.getsockname()[1]
        assert main(["serve", "--port", str(port), "--workers", "1"]) == 1
        assert capsys.readouterr().err == (
            f"onecard: --port {port}: address in use on 127.0.0.1 (another onecard serve or program listens there)\n")
        assert not (tmp_path / "pgdata").exists()  # refused before the database was started
    finally:
        first.close()
