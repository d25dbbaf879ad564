"""Real peers for the node's tests: dcmtk, Orthanc and ``cadp-med serve`` subprocesses.

Everything listens on 127.0.0.1 on ports found by binding to port 0.
"""

from __future__ import annotations

import functools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

import pydicom.data

LOOPBACK = "127.0.0.1"
ORTHANC_PLUGIN = Path("/usr/share/orthanc/plugins/libOrthancDicomWeb.so")
REPO = Path(__file__).resolve().parents[2]


def dcmtk_env() -> dict[str, str]:
    """The environment for dcmtk tools: ``TCP_NODELAY=1`` turns Nagle's algorithm off.

    Debian's dcmtk leaves Nagle on unless told; with delayed ACKs that costs about
    90 ms per instance on loopback and would make every timing meaningless.
    """
    return {**os.environ, "TCP_NODELAY": "1"}


def free_port() -> int:
    """A free TCP port on the loopback interface."""
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return sock.getsockname()[1]


@functools.cache
def dcmtk(name: str) -> str | None:
    """Path of a dcmtk tool, skipping same-named scripts (pynetdicom installs a
    Python ``storescu`` into the venv that takes different options)."""
    for folder in os.environ.get("PATH", "").split(os.pathsep) + ["/usr/bin"]:
        candidate = Path(folder) / name
        if not candidate.is_file() or not os.access(candidate, os.X_OK):
            continue
        with open(candidate, "rb") as stream:
            if stream.read(4) == b"\x7fELF":
                return str(candidate)
    return None


def orthanc() -> str | None:
    """Path of the Orthanc binary, if its DICOMweb plugin is installed too."""
    binary = shutil.which("Orthanc") or (
        "/usr/sbin/Orthanc" if Path("/usr/sbin/Orthanc").exists() else None
    )
    return binary if binary and ORTHANC_PLUGIN.exists() else None


def study_files(patient: str = "98892001") -> list[Path]:
    """The instances of one dicomdirtests patient: one study in several series."""
    files = [
        Path(f)
        for f in pydicom.data.get_testdata_files("**/*")
        if f"dicomdirtests{os.sep}{patient}{os.sep}" in f and Path(f).is_file()
    ]
    files = [f for f in files if _is_instance(f)]
    assert files, "pydicom's dicomdirtests data is missing"
    return sorted(files)


def _is_instance(path: Path) -> bool:
    """A DICOM Part 10 file that is not a DICOMDIR (README files live beside them)."""
    try:
        meta = pydicom.filereader.read_file_meta_info(path)
    except Exception:  # noqa: BLE001 - not DICOM
        return False
    return meta.get("MediaStorageSOPClassUID") != "1.2.840.10008.1.3.10"


def to_toml(data: dict[str, Any]) -> str:
    """Serialise the small subset of TOML the node config uses."""

    def value(v: Any) -> str:
        if isinstance(v, bool):
            return "true" if v else "false"
        if isinstance(v, (int, float)):
            return repr(v)
        if isinstance(v, str):
            return json.dumps(v)
        if isinstance(v, list):
            return "[" + ", ".join(value(x) for x in v) + "]"
        if isinstance(v, dict):
            return "{" + ", ".join(f"{k} = {value(x)}" for k, x in v.items()) + "}"
        raise TypeError(type(v))

    lines = [f"{k} = {value(v)}" for k, v in data.items() if not isinstance(v, (dict, list))]
    for k, v in data.items():
        if isinstance(v, dict):
            lines += [f"[{k}]"] + [f"{kk} = {value(vv)}" for kk, vv in v.items()]
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v):
            for item in v:
                lines += [f"[[{k}]]"] + [f"{kk} = {value(vv)}" for kk, vv in item.items()]
        elif isinstance(v, list):
            lines.insert(0, f"{k} = {value(v)}")
    return "\n".join(lines) + "\n"


def wait_for(predicate: Any, timeout: float, what: str, interval: float = 0.1) -> Any:
    """Poll ``predicate`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")


def http_json(url: str, timeout: float = 5.0) -> Any:
    """GET ``url`` and decode its JSON body."""
    with urllib.request.urlopen(url, timeout=timeout) as reply:
        return json.loads(reply.read())


def _answers(url: str) -> bool:
    try:
        http_json(url, timeout=1.0)
        return True
    except OSError:
        return False


class NodeProcess:
    """``cadp-med serve`` as a subprocess with a generated config in ``folder``."""

    def __init__(self, folder: Path, config: dict[str, Any]) -> None:
        self.folder = folder
        self.http_port = free_port()
        self.port = config.get("port") or free_port()
        base = {
            "ae_title": "CADPNODE",
            "host": LOOPBACK,
            "port": self.port,
            "spool": "spool",
            "staging": "staging",
            "quarantine": "quarantine",
            "dead_letter": "dead-letter",
            "key_file": "node.key",
            "pixels": "keep",
            "idle_seconds": 1.0,
            "http_status": {"host": LOOPBACK, "port": self.http_port},
        }
        base.update(config)
        self.config = base
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "node.key").write_bytes(b"cadp-med-test-key-0123456789abcdef")
        (folder / "node.key").chmod(0o600)
        (folder / "node.toml").write_text(to_toml(base))
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> NodeProcess:
        """Start the node and wait until its status endpoint answers."""
        log = open(self.folder / "node.log", "ab")
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "from cadp_med.cli import main; main()",
                "serve",
                "--config",
                str(self.folder / "node.toml"),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=REPO,
        )

        def ready() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"node exited: {self.log()[-2000:]}")
            return _answers(f"http://{LOOPBACK}:{self.http_port}/health")

        wait_for(ready, 30, "cadp-med serve to start")
        return self

    def metrics(self) -> dict[str, int]:
        return http_json(f"http://{LOOPBACK}:{self.http_port}/metrics")

    def log(self) -> str:
        return (self.folder / "node.log").read_text(errors="replace")

    def stop(self, sig: int = signal.SIGTERM, timeout: float = 30) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(sig)
        return self.process.wait(timeout)


class StoreSCP:
    """dcmtk ``storescp`` writing every received instance to its own file."""

    def __init__(self, folder: Path, ae_title: str = "DEST") -> None:
        self.folder = folder
        self.ae_title = ae_title
        self.port = free_port()
        folder.mkdir(parents=True, exist_ok=True)
        # +uf: unique file names, so a duplicate delivery shows up as an extra file.
        self.process = subprocess.Popen(
            [dcmtk("storescp"), "-aet", ae_title, "+xa", "+uf", "-od", str(folder), str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=dcmtk_env(),
        )
        wait_for(self._listening, 10, "storescp to listen")

    def _listening(self) -> bool:
        with socket.socket() as sock:
            return sock.connect_ex((LOOPBACK, self.port)) == 0

    def files(self) -> list[Path]:
        return sorted(p for p in self.folder.rglob("*") if p.is_file())

    def count(self) -> int:
        """How many files storescp has written (its folder is flat): cheap enough to
        poll while a benchmark runs, unlike :meth:`files`."""
        return len(os.listdir(self.folder))

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


def storescu(
    files: list[Path], port: int, calling: str, called: str
) -> subprocess.CompletedProcess[bytes]:
    """Send ``files`` on one association with dcmtk ``storescu``."""
    return subprocess.run(
        [dcmtk("storescu"), "-aet", calling, "-aec", called, LOOPBACK, str(port)]
        + [str(f) for f in files],
        capture_output=True,
        env=dcmtk_env(),
        timeout=60,
    )


class OrthancProcess:
    """An Orthanc server with the DICOMweb plugin, on loopback ports."""

    def __init__(self, folder: Path, ae_title: str, extra: dict[str, Any]) -> None:
        self.folder = folder
        self.ae_title = ae_title
        self.http_port = free_port()
        self.dicom_port = free_port()
        folder.mkdir(parents=True, exist_ok=True)
        config = {
            "Name": ae_title,
            "StorageDirectory": str(folder / "db"),
            "IndexDirectory": str(folder / "db"),
            "HttpPort": self.http_port,
            "DicomPort": self.dicom_port,
            "DicomAet": ae_title,
            # Orthanc 1.10 cannot bind to loopback only: HTTP is limited to local
            # clients, and DICOM stores only from modalities listed in the config,
            # checked by AE title and host.
            "RemoteAccessAllowed": False,
            "AuthenticationEnabled": False,
            "DicomAlwaysAllowStore": False,
            "DicomCheckModalityHost": True,
            "SaveJobs": False,
            "Plugins": [str(ORTHANC_PLUGIN)],
            "DicomWeb": {"Enable": True, "Root": "/dicom-web/"},
        }
        config.update(extra)
        (folder / "orthanc.json").write_text(json.dumps(config, indent=2))
        self.log = open(folder / "orthanc.log", "wb")
        self.process = subprocess.Popen(
            [orthanc(), str(folder / "orthanc.json")], stdout=self.log, stderr=subprocess.STDOUT
        )
        wait_for(lambda: _answers(self.url("/system")), 30, "Orthanc to start")

    def url(self, path: str) -> str:
        return f"http://{LOOPBACK}:{self.http_port}{path}"

    def get(self, path: str) -> Any:
        return http_json(self.url(path))

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(20)
        self.log.close()
