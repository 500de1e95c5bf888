"""`distillery doctor`: one line per check, OK / WARN / FAIL with the fix."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

from distillery.pipeline.commands import doctor

CHECK_NAMES = (
    "python", "packages", "vllm", "gpus", "bubblewrap", "user namespaces", "cgroups", "ray cluster",
    "ray token auth", "bundled teacher", "bundled embedder", "disk",
)


def test_doctor_fails_on_a_missing_model_cache_and_a_path_without_bwrap(tmp_path):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith("RAY_")}
    env |= {"PATH": str(bin_dir), "DISTILLERY_CACHE": str(tmp_path / "no-cache")}
    proc = subprocess.run(
        [sys.executable, "-m", "distillery.pipeline.commands.cli", "doctor", "--output", str(tmp_path / "runs")],
        capture_output=True, text=True, timeout=300, env=env,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    lines = proc.stdout.splitlines()
    checks = [line for line in lines if line and not line.startswith("      fix: ") and " failed, " not in line]
    assert all(line.split()[0] in ("OK", "WARN", "FAIL") for line in checks), checks
    named = {line.split(None, 1)[1].split(":")[0] for line in checks}
    assert named == set(CHECK_NAMES)

    def line_after(start: str) -> str:
        index = next(i for i, line in enumerate(lines) if line.startswith(start))
        return lines[index + 1]

    assert line_after("FAIL  bubblewrap: `bwrap` is not on PATH") == (
        "      fix: apt-get install -y bubblewrap (Debian/Ubuntu; dnf install bubblewrap on Fedora)"
    )
    assert f"bundled:smollm2-135m is not prepared in the cache ({tmp_path / 'no-cache'}" in proc.stdout
    assert line_after("FAIL  bundled teacher:").startswith("      fix: distillery prepare jobs/demo.yaml")
    assert "OK    python: 3.1" in proc.stdout
    assert f"GiB free at {tmp_path} (runs go to {tmp_path / 'runs'})" in proc.stdout


def test_ray_address_that_nothing_answers_and_one_that_does(monkeypatch, tmp_path):
    monkeypatch.setattr(doctor, "RAY_CURRENT_CLUSTER", tmp_path / "ray_current_cluster")
    monkeypatch.setattr(doctor, "RAY_TOKEN_FILE", tmp_path / "auth_token")
    for name in ("RAY_AUTH_TOKEN", "RAY_AUTH_TOKEN_PATH", "RAY_AUTH_MODE"):
        monkeypatch.delenv(name, raising=False)
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]
        monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{port}")
        cluster, token = doctor.check_ray()
        assert cluster.status == "OK" and "answers" in cluster.detail
    cluster, _ = doctor.check_ray()
    assert cluster.status == "FAIL" and "nothing answers" in cluster.detail and "ray start --head" in cluster.fix
    assert token.status == "OK"

    monkeypatch.setenv("RAY_AUTH_MODE", "token")
    _, token = doctor.check_ray()
    assert token.status == "FAIL" and token.fix == "ray get-auth-token --generate"
    (tmp_path / "auth_token").write_text("secret")
    _, token = doctor.check_ray()
    assert token.status == "OK" and str(tmp_path / "auth_token") in token.detail

    monkeypatch.delenv("RAY_ADDRESS")
    (tmp_path / "ray_current_cluster").write_text(f"127.0.0.1:{port}\n")
    cluster, _ = doctor.check_ray()
    assert cluster.status == "FAIL" and "started by `ray start`" in cluster.detail


def test_disk_check_walks_up_to_an_existing_folder(tmp_path):
    (line,) = doctor.check_disk(tmp_path / "not" / "yet" / "runs")
    assert line.status in ("OK", "WARN") and f"free at {tmp_path} " in line.detail


def test_a_line_shows_its_fix_unless_it_is_ok():
    assert str(doctor.CheckLine("OK", "disk", "plenty", "n/a")) == "OK    disk: plenty"
    assert str(doctor.CheckLine("WARN", "vllm", "missing", "pip install")) == (
        "WARN  vllm: missing\n      fix: pip install"
    )


def test_bundled_teacher_prepared(monkeypatch, tmp_path):
    folder = tmp_path / "models" / "smollm2-135m"
    folder.mkdir(parents=True)
    (folder / "config.json").write_text("{}")
    monkeypatch.setenv("DISTILLERY_CACHE", str(tmp_path))
    teacher = doctor.check_bundled()[0]
    assert teacher.status == "OK" and str(folder) in teacher.detail
    assert Path(doctor.check_bundled()[1].detail.split(": ", 1)[1]).is_dir()
