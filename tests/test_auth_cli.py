"""``loaxa user``, ``loaxa token`` and ``loaxa audit``, in process, against a real database."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from station.cli import main


@pytest.fixture
def config(tmp_path: Path, database_url: str) -> str:
    path = tmp_path / "loaxa.yaml"
    path.write_text(f"database:\n  url: {database_url}\n", encoding="utf-8")
    return str(path)


def test_users_tokens_and_audit(
    config: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("a long enough secret\n"))
    assert main(["user", "add", "Lan", "--role", "admin", "--password-stdin", "-c", config]) == 0
    assert "created admin 'lan'" in capsys.readouterr().out

    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # not a terminal: generated, shown once
    assert main(["user", "add", "minh", "--role", "technician", "-c", config]) == 0
    out = capsys.readouterr().out
    assert "one-time password" in out and len(out.rsplit(": ", 1)[1].strip()) == 16

    assert main(["user", "add", "lan", "--role", "viewer", "-c", config]) == 2
    assert "taken" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.StringIO("short\n"))
    assert main(["user", "add", "hoa", "--role", "viewer", "--password-stdin", "-c", config]) == 2
    assert "at least 10" in capsys.readouterr().err

    assert main(["user", "list", "-c", config]) == 0
    listing = capsys.readouterr().out
    assert "lan" in listing and "pw-change" in listing

    assert main(["token", "create", "--user", "lan", "--name", "upstream", "-c", config]) == 0
    captured = capsys.readouterr()
    assert captured.out.strip().startswith("lxa_") and "shown once" in captured.err
    assert main(["token", "create", "--user", "minh", "--name", "x", "--role", "admin",
                 "-c", config]) == 2  # fmt: skip
    assert "cannot create" in capsys.readouterr().err
    assert main(["token", "revoke", "1", "-c", config]) == 0
    assert main(["token", "revoke", "99", "-c", config]) == 2
    capsys.readouterr()

    monkeypatch.setattr("sys.stdin", io.StringIO(""))
    assert main(["user", "passwd", "minh", "-c", config]) == 0
    assert "one-time password" in capsys.readouterr().out

    assert main(["audit", "--since", "1h", "-c", config]) == 0
    lines = capsys.readouterr().out.splitlines()
    actions = [line.split()[3] for line in lines]
    assert actions == [
        "user.create",
        "user.create",
        "token.create",
        "token.revoke",
        "user.password_reset",
    ]
    assert main(["audit", "--csv", "--action", "token.", "-c", config]) == 0
    csv_lines = capsys.readouterr().out.splitlines()
    assert csv_lines[0].startswith("id,at,actor") and len(csv_lines) == 3
    assert main(["audit", "--since", "yesterday", "-c", config]) == 2
