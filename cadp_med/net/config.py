"""The ``node.toml`` configuration of ``cadp-med serve``, parsed and validated up front.

Every option is documented in ``docs/NODE.md``; ``pipelines/node.example.toml`` is a
complete example.  Validation happens here, at start-up, so that a node never fails
half-way through a study because of a typo in its configuration.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cadp_med.errors import ConfigError

#: Pixel stages the node accepts.  ``privatize`` and ``blank`` are passed through to
#: ``AnonymizeOptions`` once the library supports them.
PIXEL_MODES = ("keep", "privatize", "blank")
DESTINATION_TYPES = ("cstore", "folder", "stow")


@dataclass(frozen=True)
class AllowedPeer:
    """A calling application entity that may open an association."""

    ae_title: str
    host: str


@dataclass(frozen=True)
class TlsConfig:
    """Server certificate and key, and optionally the CA that client certificates need."""

    cert: Path
    key: Path
    ca: Path | None = None


@dataclass(frozen=True)
class Destination:
    """Where de-identified instances go: one of ``cstore``, ``folder`` or ``stow``."""

    type: str
    name: str
    ae_title: str = ""
    host: str = ""
    port: int = 0
    path: Path | None = None
    url: str = ""
    timeout_seconds: float = 30.0


@dataclass(frozen=True)
class RetryConfig:
    """Exponential backoff: ``backoff_seconds * 2**n``, capped at ``max_backoff``."""

    attempts: int = 5
    backoff_seconds: float = 1.0
    max_backoff: float = 60.0

    def delay(self, failed_attempts: int) -> float:
        """Seconds to wait after ``failed_attempts`` consecutive failures (>= 1)."""
        return min(self.backoff_seconds * 2 ** (failed_attempts - 1), self.max_backoff)


@dataclass(frozen=True)
class NodeConfig:
    """The validated configuration of one node.  Build it with :func:`load_config`."""

    ae_title: str
    port: int
    spool: Path
    staging: Path
    quarantine: Path
    dead_letter: Path
    destinations: tuple[Destination, ...]
    host: str = "127.0.0.1"
    allow: tuple[AllowedPeer, ...] = ()
    tls: TlsConfig | None = None
    key_file: Path | None = None
    profile: dict[str, Any] = field(default_factory=dict)
    pixels: str = "keep"
    eps: float | None = None
    model: str | None = None
    #: Further ``PixelOptions`` for ``pixels = "privatize"`` (mechanism, delta,
    #: window_eps_share, temperature, allow_outside_domain), as given in ``[privacy]``.
    privacy: dict[str, Any] = field(default_factory=dict)
    idle_seconds: float = 30.0
    #: Header-only: the worker takes a study's instances in batches of this many while
    #: the study is still arriving (0: only once it is quiet).
    batch_instances: int = 64
    retry: RetryConfig = field(default_factory=RetryConfig)
    http_host: str = "127.0.0.1"
    http_port: int | None = None
    retain_spool: bool = False
    max_associations: int = 10

    def key_bytes(self) -> bytes:
        """Return the pseudonymisation key from ``key_file`` or ``CADP_MED_KEY``.

        Raises
        ------
        ConfigError
            If neither is set or the key file cannot be read.
        """
        from cadp_med.deid import load_key

        return load_key(self.key_file)


def _require(table: dict[str, Any], name: str, kind: type | tuple[type, ...], where: str) -> Any:
    if name not in table:
        raise ConfigError(f"{where}: '{name}' is required")
    return _typed(table[name], name, kind, where)


def _typed(value: Any, name: str, kind: type | tuple[type, ...], where: str) -> Any:
    # bool is an int in Python; a port of ``true`` is a typo, not a port.
    if isinstance(value, bool) and kind is not bool:
        raise ConfigError(f"{where}: '{name}' must be {kind}, not a boolean")
    if not isinstance(value, kind):
        raise ConfigError(f"{where}: '{name}' has the wrong type {type(value).__name__}")
    return value


def _port(value: Any, name: str, where: str) -> int:
    port = _typed(value, name, int, where)
    if not 0 < port < 65536:
        raise ConfigError(f"{where}: '{name}' must be in 1..65535")
    return port


def _ae_title(value: Any, name: str, where: str) -> str:
    title = _typed(value, name, str, where).strip()
    if not 0 < len(title) <= 16 or "\\" in title:
        raise ConfigError(f"{where}: '{name}' must be 1 to 16 characters without backslash")
    return title


def _destination(index: int, raw: Any, base: Path) -> Destination:
    where = f"destinations[{index}]"
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: must be a table")
    kind = _require(raw, "type", str, where)
    if kind not in DESTINATION_TYPES:
        raise ConfigError(f"{where}: type must be one of {', '.join(DESTINATION_TYPES)}")
    name = _typed(raw.get("name", f"{kind}-{index}"), "name", str, where)
    if not name.replace("-", "").replace("_", "").isalnum():
        raise ConfigError(f"{where}: name may hold letters, digits, '-' and '_' only")
    timeout = float(
        _typed(raw.get("timeout_seconds", 30.0), "timeout_seconds", (int, float), where)
    )
    if kind == "cstore":
        return Destination(
            type=kind,
            name=name,
            ae_title=_ae_title(_require(raw, "ae_title", str, where), "ae_title", where),
            host=_require(raw, "host", str, where),
            port=_port(_require(raw, "port", int, where), "port", where),
            timeout_seconds=timeout,
        )
    if kind == "folder":
        return Destination(type=kind, name=name, path=base / _require(raw, "path", str, where))
    url = _require(raw, "url", str, where).rstrip("/")
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"{where}: url must start with http:// or https://")
    return Destination(type=kind, name=name, url=url, timeout_seconds=timeout)


def parse_config(data: dict[str, Any], base: Path) -> NodeConfig:
    """Validate a parsed TOML table; relative paths are resolved against ``base``.

    Raises
    ------
    ConfigError
        Naming the first invalid or missing option.
    """
    where = "node"
    path = lambda name: base / _require(data, name, str, where)  # noqa: E731
    destinations = data.get("destinations", [])
    if not isinstance(destinations, list) or not destinations:
        raise ConfigError("node: at least one [[destinations]] entry is required")
    dests = tuple(_destination(i, d, base) for i, d in enumerate(destinations))
    if len({d.name for d in dests}) != len(dests):
        raise ConfigError("node: destination names must be unique")
    allow = []
    for i, peer in enumerate(_typed(data.get("allow", []), "allow", list, where)):
        w = f"allow[{i}]"
        if not isinstance(peer, dict):
            raise ConfigError(f"{w}: must be a table")
        allow.append(
            AllowedPeer(
                ae_title=_ae_title(_require(peer, "ae_title", str, w), "ae_title", w),
                host=_require(peer, "host", str, w),
            )
        )
    tls = None
    if "tls" in data:
        t = _typed(data["tls"], "tls", dict, where)
        ca = t.get("ca")
        tls = TlsConfig(
            cert=base / _require(t, "cert", str, "tls"),
            key=base / _require(t, "key", str, "tls"),
            ca=base / _typed(ca, "ca", str, "tls") if ca is not None else None,
        )
    retry_raw = _typed(data.get("retry", {}), "retry", dict, where)
    retry = RetryConfig(
        attempts=_typed(retry_raw.get("attempts", 5), "attempts", int, "retry"),
        backoff_seconds=float(
            _typed(retry_raw.get("backoff_seconds", 1.0), "backoff_seconds", (int, float), "retry")
        ),
        max_backoff=float(
            _typed(retry_raw.get("max_backoff", 60.0), "max_backoff", (int, float), "retry")
        ),
    )
    if retry.attempts < 1 or retry.backoff_seconds < 0 or retry.max_backoff < 0:
        raise ConfigError("retry: attempts must be >= 1 and the delays >= 0")
    pixels = _typed(data.get("pixels", "keep"), "pixels", str, where)
    if pixels not in PIXEL_MODES:
        raise ConfigError(f"node: pixels must be one of {', '.join(PIXEL_MODES)}")
    http = _typed(data.get("http_status", {}), "http_status", dict, where)
    idle = float(_typed(data.get("idle_seconds", 30.0), "idle_seconds", (int, float), where))
    if idle <= 0:
        raise ConfigError("node: idle_seconds must be > 0")
    batch = _typed(data.get("batch_instances", 64), "batch_instances", int, where)
    if batch < 0:
        raise ConfigError("node: batch_instances must be >= 0")
    key_file = data.get("key_file")
    eps = data.get("eps")
    privacy = _privacy_table(_typed(data.get("privacy", {}), "privacy", dict, where))
    if privacy and pixels != "privatize":
        raise ConfigError('node: [privacy] applies only to pixels = "privatize"')
    return NodeConfig(
        ae_title=_ae_title(_require(data, "ae_title", str, where), "ae_title", where),
        host=_typed(data.get("host", "127.0.0.1"), "host", str, where),
        port=_port(_require(data, "port", int, where), "port", where),
        allow=tuple(allow),
        tls=tls,
        spool=path("spool"),
        staging=path("staging"),
        quarantine=path("quarantine"),
        dead_letter=path("dead_letter"),
        key_file=base / _typed(key_file, "key_file", str, where) if key_file else None,
        profile=dict(_typed(data.get("profile", {}), "profile", dict, where)),
        pixels=pixels,
        eps=float(_typed(eps, "eps", (int, float), where)) if eps is not None else None,
        model=str(base / _typed(data["model"], "model", str, where)) if "model" in data else None,
        privacy=privacy,
        idle_seconds=idle,
        batch_instances=batch,
        destinations=dests,
        retry=retry,
        http_host=_typed(http.get("host", "127.0.0.1"), "host", str, "http_status"),
        http_port=_port(http["port"], "port", "http_status") if "port" in http else None,
        retain_spool=_typed(data.get("retain_spool", False), "retain_spool", bool, where),
        max_associations=_typed(data.get("max_associations", 10), "max_associations", int, where),
    )


def load_config(path: Path) -> NodeConfig:
    """Read and validate ``node.toml``; relative paths are relative to its folder.

    Raises
    ------
    ConfigError
        If the file cannot be read, is not TOML, or holds an invalid option.
    """
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"config cannot be read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config is not valid TOML: {exc}") from None
    return parse_config(data, Path(path).resolve().parent)


#: ``[privacy]`` keys of node.toml and the types they take (``PixelOptions`` fields).
_PRIVACY_KEYS: dict[str, tuple[type, ...]] = {
    "mechanism": (str,),
    "delta": (int, float),
    "window_eps_share": (int, float),
    "temperature": (int, float),
    "allow_outside_domain": (bool,),
}


def _privacy_table(table: dict[str, Any]) -> dict[str, Any]:
    """Check the ``[privacy]`` table: known keys with values of the right type."""
    unknown = sorted(set(table) - set(_PRIVACY_KEYS))
    if unknown:
        raise ConfigError(
            f"privacy: unknown keys {', '.join(unknown)} (known: {', '.join(_PRIVACY_KEYS)})"
        )
    return {name: _typed(value, name, _PRIVACY_KEYS[name], "privacy")
            for name, value in table.items()}  # fmt: skip
