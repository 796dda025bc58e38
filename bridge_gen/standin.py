"""A local mosquitto that plays the cloud side (Kaa) in tests and demos.

It listens on 127.0.0.1 only, speaks TLS with the throwaway PKI and, by
default, demands a client certificate, as the cloud does. It can be stopped
and started again on the same port, for outage drills.
"""

from __future__ import annotations

import logging
import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.reasoncodes import ReasonCode

from bridge_gen.errors import BridgeGenError
from bridge_gen.pki import Pki

log = logging.getLogger(__name__)

LOOPBACK = "127.0.0.1"

# Debian installs the broker in /usr/sbin, which is not on a normal user's
# PATH, so a bare name is looked up there too.
_SBIN_DIRS = ("/usr/sbin", "/usr/local/sbin")

# Everything but "debug": debug logs every PUBLISH, which drowns the lines a
# failing test needs once a bridge carries a few thousand messages.
_LOG_TYPES = (
    "error",
    "warning",
    "notice",
    "information",
    "subscribe",
    "unsubscribe",
)

_LOG_TAIL_LINES = 30

_Process = subprocess.Popen[bytes]


class StandInError(BridgeGenError):
    """The stand-in broker could not be started or reached."""


def find_mosquitto(name: str = "mosquitto") -> str | None:
    """Return the path of the mosquitto binary, or None if there is none."""
    found = shutil.which(name)
    if found or os.sep in name:
        return found
    path = os.pathsep.join(_SBIN_DIRS)
    return shutil.which(name, path=path)


def free_port(host: str = LOOPBACK) -> int:
    """Return a TCP port on ``host`` that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def tls_client(
    pki: Pki,
    host: str,
    port: int,
    client_id: str = "bridge-gen-test",
    *,
    timeout: float = 5.0,
) -> mqtt.Client:
    """Return a paho client connected with the PKI's client certificate.

    Its network loop runs in a background thread; call ``disconnect()``
    then ``loop_stop()`` when done (that order wakes the thread at once).
    Raises StandInError if the broker does not accept the connection
    within ``timeout`` seconds.
    """
    client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=client_id)
    client.tls_set(
        ca_certs=str(pki.ca_cert),
        certfile=str(pki.client_cert),
        keyfile=str(pki.client_key),
    )
    client.connect_timeout = timeout
    outcome = _ConnectOutcome(client)

    try:
        client.connect(host, port, keepalive=30)
    except OSError as exc:
        raise StandInError(f"cannot connect to {host}:{port}: {exc}") from exc
    client.loop_start()

    reason = outcome.wait(timeout)
    outcome.detach()
    if reason is None or reason.is_failure:
        client.disconnect()
        client.loop_stop()
        why = "no CONNACK" if reason is None else str(reason)
        raise StandInError(f"MQTT connect to {host}:{port} failed: {why}")
    return client


class StandInBroker:
    """A mosquitto process on 127.0.0.1 serving TLS with a throwaway PKI."""

    host = LOOPBACK

    def __init__(
        self,
        workdir: Path,
        pki: Pki,
        *,
        port: int | None = None,
        require_certificate: bool = True,
        persistence: bool = False,
        mosquitto: str = "mosquitto",
    ) -> None:
        self.workdir = workdir
        self.pki = pki
        self.require_certificate = require_certificate
        # The CA clients must be signed by; another one than the PKI's makes
        # the stand-in refuse the bridge, as a cloud does with a suspended
        # certificate.
        self.client_ca: Path | None = None
        # Outage drills stop and start the stand-in; with persistence the
        # counting subscriber's session and queue survive that.
        self.persistence = persistence
        self._port = port if port is not None else free_port()
        self._mosquitto = mosquitto
        self._proc: _Process | None = None
        self._console: IO[bytes] | None = None

    @property
    def port(self) -> int:
        """The TCP port, fixed for the life of the object."""
        return self._port

    @property
    def conf_path(self) -> Path:
        """The mosquitto.conf written by :meth:`start`."""
        return self.workdir / "mosquitto.conf"

    @property
    def log_path(self) -> Path:
        """The broker's log file; restarts append to it."""
        return self.workdir / "mosquitto.log"

    @property
    def console_path(self) -> Path:
        """Stdout and stderr, where errors before logging starts go."""
        return self.workdir / "mosquitto.console"

    @property
    def running(self) -> bool:
        """True while the broker process is alive."""
        return self._proc is not None and self._proc.poll() is None

    def config_text(self) -> str:
        """Return the mosquitto.conf this stand-in runs with."""
        lines = [
            "# bridge-gen stand-in broker: throwaway, loopback only.",
            *self._persistence_lines(),
            # A subscriber slower than a draining bridge must not lose what
            # the cloud accepted: mosquitto's default keeps only 1,000.
            "max_queued_messages 10000000",
            f"log_dest file {_conf_path(self.log_path)}",
            *(f"log_type {t}" for t in _LOG_TYPES),
            "log_timestamp_format %Y-%m-%dT%H:%M:%S",
            *_user_lines(),
        ]
        if self.require_certificate:
            lines += ["allow_anonymous false"]
        else:
            # 2.0 refuses anonymous clients on any configured listener
            # unless told otherwise.
            lines += ["allow_anonymous true"]

        lines += [
            f"listener {self.port} {self.host}",
            f"cafile {_conf_path(self.client_ca or self.pki.ca_cert)}",
            f"certfile {_conf_path(self.pki.server_cert)}",
            f"keyfile {_conf_path(self.pki.server_key)}",
        ]
        if self.require_certificate:
            lines += [
                "require_certificate true",
                "use_identity_as_username true",
            ]
        return "\n".join(lines) + "\n"

    def _persistence_lines(self) -> list[str]:
        if not self.persistence:
            return ["persistence false"]
        data = self.workdir / "data"
        data.mkdir(parents=True, exist_ok=True)
        return ["persistence true", f"persistence_location {_conf_path(data)}/"]

    def start(self, timeout: float = 10.0) -> None:
        """Start mosquitto and wait until a TLS client can connect."""
        if self.running:
            return
        binary = find_mosquitto(self._mosquitto)
        if binary is None:
            raise StandInError(f"mosquitto not found: {self._mosquitto}")

        self.workdir.mkdir(parents=True, exist_ok=True)
        self.conf_path.write_text(self.config_text(), encoding="utf-8")
        # Restarts append to both files; a failure shows only this run.
        offsets = (_size(self.log_path), _size(self.console_path))

        self._console = self.console_path.open("ab")
        log.debug("starting %s on %s:%d", binary, self.host, self.port)
        try:
            self._proc = subprocess.Popen(
                [binary, "-c", str(self.conf_path)],
                stdin=subprocess.DEVNULL,
                stdout=self._console,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
            )
        except OSError as exc:
            self.stop()
            raise StandInError(f"cannot run {binary}: {exc}") from exc

        problem = self._wait_ready(self._proc, timeout)
        if problem is not None:
            self.stop()
            raise StandInError(self._failure_text(problem, offsets))

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the broker: SIGTERM, then SIGKILL after ``timeout`` seconds."""
        proc, self._proc = self._proc, None
        if proc is not None:
            stop_process(proc, timeout)
        if self._console is not None:
            self._console.close()
            self._console = None

    def restart(self, timeout: float = 10.0) -> None:
        """Stop and start again on the same port."""
        self.stop()
        self.start(timeout)

    def subscriptions(self, client_id: str) -> list[str]:
        """The filters ``client_id`` subscribed to, as the broker logged them.

        A bridge subscribes right after its CONNACK, so "connected" alone
        does not mean the remote already forwards what it carries `in`.
        """
        found = []
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return []
        for line in text.splitlines():
            # "<time>: <client id> <qos> <filter>", with log_type subscribe.
            words = line.partition(": ")[2].split(" ", 2)
            if len(words) == 3 and words[0] == client_id and words[1].isdigit():
                found.append(words[2])
        return found

    def __enter__(self) -> StandInBroker:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _wait_ready(self, proc: _Process, timeout: float) -> str | None:
        # Returns None once ready, else what went wrong.
        deadline = time.monotonic() + timeout
        last_error = "no attempt made"
        while time.monotonic() < deadline:
            code = proc.poll()
            if code is not None:
                return f"mosquitto exited with code {code}"
            if self.client_ca is not None:
                # Our own client would be refused too: listening is ready.
                if accepts(self.host, self.port):
                    return None
                time.sleep(0.1)
                continue
            try:
                client = tls_client(
                    self.pki,
                    self.host,
                    self.port,
                    "bridge-gen-probe",
                    timeout=1.0,
                )
            except StandInError as exc:
                last_error = str(exc)
                time.sleep(0.1)
                continue
            client.disconnect()
            client.loop_stop()
            return None
        return f"not ready after {timeout:g} s ({last_error})"

    def _failure_text(self, problem: str, offsets: tuple[int, int]) -> str:
        parts = [f"stand-in broker on {self.host}:{self.port}: {problem}"]
        paths = (self.log_path, self.console_path)
        for path, offset in zip(paths, offsets, strict=True):
            tail = _tail(path, offset)
            if tail:
                parts.append(f"--- {path} (last lines) ---\n{tail}")
        return "\n".join(parts)


class _ConnectOutcome:
    """Catches the first CONNACK or disconnect of a paho client."""

    def __init__(self, client: mqtt.Client) -> None:
        self._client = client
        self._done = threading.Event()
        self._reason: ReasonCode | None = None
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect

    def wait(self, timeout: float) -> ReasonCode | None:
        self._done.wait(timeout)
        return self._reason

    def detach(self) -> None:
        self._client.on_connect = None
        self._client.on_disconnect = None

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: Any,
        reason: ReasonCode,
        properties: Any,
    ) -> None:
        self._reason = reason
        self._done.set()

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: Any,
        reason: ReasonCode,
        properties: Any,
    ) -> None:
        # A refused TLS client certificate shows up here, not in
        # on_connect: with TLS 1.3 the server rejects it after the client
        # thinks the handshake is done.
        if not self._done.is_set():
            self._reason = reason
            self._done.set()


def _user_lines() -> list[str]:
    # Started as root, mosquitto 2.0 drops to the "mosquitto" user before
    # it loads the listener's certificates. Our keys are 0600 and pytest's
    # tmp dirs 0700, both root's, so it exits with "Unable to load CA
    # certificates ... Permission denied". "user root" keeps the broker at
    # the rights of whoever started it, no more. Acceptable for a throwaway
    # broker bound to loopback; as any other user the option is ignored.
    if os.name == "posix" and os.geteuid() == 0:
        return ["user root"]
    return []


def accepts(host: str, port: int) -> bool:
    """Whether something accepts TCP connections there now."""
    try:
        socket.create_connection((host, port), timeout=1).close()
    except OSError:
        return False
    return True


def wait_listening(port: int, timeout: float = 30.0, host: str = "127.0.0.1") -> None:
    """Return once something listens on host:port; StandInError after timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if accepts(host, port):
            return
        time.sleep(0.1)
    raise StandInError(f"nothing listens on {host}:{port} after {timeout:g} s")


def stop_process(proc: subprocess.Popen, timeout: float = 10.0) -> None:
    """SIGTERM, then SIGKILL if it is still there after `timeout` seconds."""
    if proc.poll() is not None:
        return
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        log.warning("process %d ignored SIGTERM; killing it", proc.pid)
        proc.kill()
        proc.wait(timeout)


def _conf_path(path: Path) -> str:
    # mosquitto.conf has no quoting: a newline would start a new directive
    # and outer spaces are trimmed, so such paths cannot be written at all.
    text = str(path.resolve())
    if "\n" in text or "\r" in text or text != text.strip():
        raise StandInError(f"mosquitto.conf cannot hold the path {text!r}")
    return text


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except FileNotFoundError:
        return 0


def _tail(path: Path, offset: int) -> str:
    try:
        with path.open("rb") as f:
            f.seek(offset)
            data = f.read()
    except FileNotFoundError:
        return ""
    lines = data.decode("utf-8", "replace").splitlines()
    return "\n".join(lines[-_LOG_TAIL_LINES:])
