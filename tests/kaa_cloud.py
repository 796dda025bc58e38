"""A Kaa Cloud look-alike for tests: answers KP1 requests on the stand-in.

:class:`KaaCloud` connects to the stand-in broker as one more TLS client,
subscribes to ``kp1/#`` and plays the extension services behind Kaa's MQTT
service: dcx (data collection), epmx (metadata), cex (commands), cmx and
cmx_ota (configuration), as Kaa's KP1 protocol RFCs describe them:

- a request with an id is answered on its topic + ``/status`` or ``/error``;
- a request without an id gets no success reply (1/KP: it SHOULD NOT), but
  a bad one still gets ``/error``;
- cex and cmx may push to ``<resource>/status`` at any time, so a command
  or configuration request without an id is answered by such a push;
- every handled request is recorded, so a test can ask what arrived.

Requests are handled in paho's network thread. Never call :meth:`push_command`
or :meth:`push_config` from a paho callback: they wait for the PUBACK.
"""

from __future__ import annotations

import copy
import json
import logging
import re
import threading
import time
import traceback
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.client import topic_matches_sub

from bridge_gen.pki import Pki
from bridge_gen.standin import StandInError, tls_client

log = logging.getLogger(__name__)

CONFIG_EXTENSIONS = ("cmx", "cmx_ota")
EXTENSIONS = ("dcx", "epmx", "cex", *CONFIG_EXTENSIONS)

# KAA-KP1.md allows "_" in metadata keys (10/EPMP's first draft did not).
_METADATA_KEY = re.compile(r"[a-zA-Z0-9_]+")
# 11/CEP says alphanumeric, yet Kaa's own examples use "turn_off": being
# stricter than the cloud would fail bridges that the cloud accepts.
_COMMAND_TYPE = re.compile(r"[a-zA-Z0-9_]+")
_REPLY_LEVELS = ("status", "error")
_QOS = 1

# 7/CMP: an endpoint without a configuration has config null and id "".
_NO_CONFIG: dict[str, Any] = {"configId": "", "config": None}

Endpoint = tuple[str, str]
Matcher = str | Callable[["Kp1Message"], bool]


@dataclass(frozen=True)
class Kp1Topic:
    """The parts of ``kp1/{app}/{extension}/{token}/{resource}[/{id}]``."""

    app: str
    extension: str
    token: str
    resource: str
    request_id: int | None


@dataclass(frozen=True)
class Kp1Message:
    """One message the cloud received; ``parsed`` is None off the KP1 form."""

    topic: str
    payload: bytes
    parsed: Kp1Topic | None

    def json(self) -> Any:
        """The payload decoded as JSON."""
        return json.loads(self.payload)


def parse_topic(topic: str) -> Kp1Topic | None:
    """Split a KP1 endpoint topic, or return None if it is not one."""
    levels = topic.split("/")
    if levels[0] != "kp1" or len(levels) < 5:
        return None
    request_id = _request_id(levels[-1])
    if request_id is not None:
        levels = levels[:-1]
    app, extension, token, *resource = levels[1:]
    if not (app and extension and token and resource and all(resource)):
        return None
    return Kp1Topic(app, extension, token, "/".join(resource), request_id)


def _request_id(level: str) -> int | None:
    # 1/KP: "a positive integer"; 0 and "-1" stay part of the resource.
    if level.isascii() and level.isdigit() and int(level) > 0:
        return int(level)
    return None


class _Kp1Error(Exception):
    """A request the cloud refuses; becomes a payload on ``…/error``."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason

    def payload(self) -> bytes:
        body = {"statusCode": self.status, "reasonPhrase": self.reason}
        return json.dumps(body).encode()


@dataclass(frozen=True)
class _Answer:
    payload: bytes
    # True where the extension may push to <resource>/status unasked.
    also_without_id: bool = False


_Handler = Callable[["KaaCloud", Kp1Topic, bytes], "_Answer | None"]


class KaaCloud:
    """Answers KP1 requests on a broker as Kaa Cloud documents it.

    ``metadata`` maps ``(app, token)`` to the endpoint's initial metadata.
    ``configs`` maps ``(app, token)`` (meaning cmx) or ``(app, token,
    extension)`` to ``{"configId": ..., "config": ...}``; an endpoint with
    none gets ``{"configId": "", "config": null}``.
    """

    def __init__(
        self,
        pki: Pki,
        host: str,
        port: int,
        *,
        metadata: dict[Endpoint, dict[str, Any]] | None = None,
        configs: dict[tuple[str, ...], dict[str, Any]] | None = None,
    ) -> None:
        self._pki = pki
        self._host = host
        self._port = port
        self._client: mqtt.Client | None = None
        self._subscribed = threading.Event()
        # Reentrant, so a wait_for() predicate may call the accessors.
        self._cond = threading.Condition(threading.RLock())

        self._messages: list[Kp1Message] = []
        self._handler_errors: list[str] = []
        self._samples: dict[Endpoint, list[Any]] = {}
        self._plain: dict[tuple[str, str, str], list[int | float | str]] = {}
        self._metadata = _initial_metadata(metadata or {})
        self._outstanding: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
        self._results: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
        self._configs = _initial_configs(configs or {})
        self._applied: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
        self._refusing: dict[Endpoint, _Kp1Error] = {}

    # -- life cycle ---------------------------------------------------------

    def start(self, timeout: float = 5.0) -> None:
        """Connect, subscribe to ``kp1/#`` and wait for the SUBACK."""
        if self._client is not None:
            return
        client_id = f"kaa-cloud-{uuid.uuid4().hex[:8]}"
        client = tls_client(
            self._pki, self._host, self._port, client_id, timeout=timeout
        )
        # Outage drills restart the broker, which forgets subscriptions:
        # come back within seconds and subscribe again (see _on_connect).
        client.reconnect_delay_set(1, 2)
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        self._client = client

        client.subscribe("kp1/#", _QOS)
        if not self._subscribed.wait(timeout):
            self.close()
            where = f"{self._host}:{self._port}"
            raise StandInError(f"KaaCloud: no SUBACK for kp1/# from {where}")

    def close(self) -> None:
        """Disconnect; safe to call twice."""
        client, self._client = self._client, None
        if client is not None:
            client.disconnect()
            client.loop_stop()

    def wait_subscribed(self, timeout: float = 10.0) -> bool:
        """True once subscribed again after a reconnect, within ``timeout``."""
        return self._subscribed.wait(timeout)

    def __enter__(self) -> KaaCloud:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # -- pushes from the platform -------------------------------------------

    def push_command(
        self,
        app: str,
        token: str,
        command_type: str,
        payload: Any,
        command_id: int = 1,
    ) -> None:
        """Send a command to ``…/cex/{token}/command/{type}/status``.

        It stays outstanding, and is returned to command requests, until the
        endpoint posts a result with its id.
        """
        if not _COMMAND_TYPE.fullmatch(command_type):
            raise ValueError(f"not a command type: {command_type!r}")
        command = {"id": command_id, "payload": payload}
        with self._cond:
            key = (app, token, command_type)
            self._outstanding.setdefault(key, []).append(command)
        topic = f"kp1/{app}/cex/{token}/command/{command_type}/status"
        self._publish_and_wait(topic, json.dumps([command]).encode())

    def push_config(
        self,
        app: str,
        token: str,
        config: Any,
        config_id: str,
        extension: str = "cmx",
    ) -> None:
        """Make ``config`` current and send it to ``…/config/json/status``."""
        if extension not in CONFIG_EXTENSIONS:
            raise ValueError(f"not a configuration extension: {extension!r}")
        body = {"configId": config_id, "config": config}
        with self._cond:
            self._configs[(app, token, extension)] = copy.deepcopy(body)
        topic = f"kp1/{app}/{extension}/{token}/config/json/status"
        self._publish_and_wait(topic, json.dumps(body).encode())

    def refuse(self, app: str, token: str, status: int, reason: str) -> None:
        """Answer every later request of the endpoint on ``…/error``.

        As when its token is suspended: the connection stays up, and each
        request gets ``{"statusCode": status, "reasonPhrase": reason}``.
        """
        with self._cond:
            self._refusing[(app, token)] = _Kp1Error(status, reason)

    # -- what arrived ---------------------------------------------------------

    def received(self, topic: str | None = None) -> list[Kp1Message]:
        """Requests received so far, optionally those matching a filter.

        ``topic`` is an MQTT topic filter: ``+`` and ``#`` work. The cloud's
        own replies, which come back through ``kp1/#``, are not included.
        """
        with self._cond:
            messages = list(self._messages)
        if topic is None:
            return messages
        return [m for m in messages if topic_matches_sub(topic, m.topic)]

    def count(self, topic: str) -> int:
        """How many requests matching the topic filter arrived."""
        return len(self.received(topic))

    def wait_for(self, match: Matcher, timeout: float = 5.0) -> Kp1Message:
        """The first request matching a topic filter or a predicate.

        Includes requests that arrived before the call. Raises TimeoutError
        after ``timeout`` seconds, naming what did arrive.
        """
        test = _matcher(match)
        deadline = time.monotonic() + timeout
        scanned = 0
        with self._cond:
            while True:
                for message in self._messages[scanned:]:
                    if test(message):
                        return message
                scanned = len(self._messages)
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                self._cond.wait(left)
            seen = [m.topic for m in self._messages]
        raise TimeoutError(
            f"KaaCloud: nothing matching {match!r} within {timeout:g} s; "
            f"received {seen}"
        )

    def samples(self, app: str, token: str) -> list[Any]:
        """dcx ``json`` samples, one list item per sample, in arrival order."""
        with self._cond:
            return copy.deepcopy(self._samples.get((app, token), []))

    def plain_values(
        self, app: str, token: str, metric: str
    ) -> list[int | float | str]:
        """dcx ``plain/{metric}`` values; numbers parsed, anything else text."""
        with self._cond:
            return list(self._plain.get((app, token, metric), []))

    def metadata(self, app: str, token: str) -> dict[str, Any]:
        """The endpoint's metadata as epmx holds it now."""
        with self._cond:
            return copy.deepcopy(self._metadata.get((app, token), {}))

    def outstanding_commands(
        self, app: str, token: str, command_type: str
    ) -> list[dict[str, Any]]:
        """Pushed commands of this type with no result yet."""
        with self._cond:
            key = (app, token, command_type)
            return copy.deepcopy(self._outstanding.get(key, []))

    def command_results(
        self, app: str, token: str, command_type: str
    ) -> list[dict[str, Any]]:
        """cex results posted for this command type, one item per command."""
        with self._cond:
            key = (app, token, command_type)
            return copy.deepcopy(self._results.get(key, []))

    def applied_configs(
        self, app: str, token: str, extension: str = "cmx"
    ) -> list[dict[str, Any]]:
        """Bodies of the endpoint's ``applied/json`` requests."""
        with self._cond:
            key = (app, token, extension)
            return copy.deepcopy(self._applied.get(key, []))

    def handler_errors(self) -> list[str]:
        """Bugs in this responder (tracebacks); a sound run has none."""
        with self._cond:
            return list(self._handler_errors)

    # -- paho callbacks (network thread) -------------------------------------

    def _on_connect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: Any,
        reason: Any,
        properties: Any,
    ) -> None:
        # Only reconnects get here: start() subscribes the first time.
        if not reason.is_failure:
            client.subscribe("kp1/#", _QOS)

    def _on_disconnect(
        self,
        client: mqtt.Client,
        userdata: Any,
        flags: Any,
        reason: Any,
        properties: Any,
    ) -> None:
        self._subscribed.clear()

    def _on_subscribe(
        self,
        client: mqtt.Client,
        userdata: Any,
        mid: int,
        reasons: list[Any],
        properties: Any,
    ) -> None:
        if reasons and not any(r.is_failure for r in reasons):
            self._subscribed.set()

    def _on_message(
        self, client: mqtt.Client, userdata: Any, msg: mqtt.MQTTMessage
    ) -> None:
        try:
            reply = self._handle(msg.topic, msg.payload)
        except Exception:
            # An exception escaping a paho callback ends the network
            # thread, and with it every later reply; keep it for the test.
            log.exception("KaaCloud failed on %s", msg.topic)
            with self._cond:
                failure = f"{msg.topic}: {traceback.format_exc()}"
                self._handler_errors.append(failure)
            return
        if reply is not None:
            client.publish(reply[0], reply[1], qos=_QOS)

    # -- request handling ------------------------------------------------------

    def _handle(self, topic: str, payload: bytes) -> tuple[str, bytes] | None:
        # Our own replies come back through kp1/#; they are not requests.
        if topic.rsplit("/", 1)[-1] in _REPLY_LEVELS:
            return None
        message = Kp1Message(topic, payload, parse_topic(topic))
        with self._cond:
            self._messages.append(message)
            try:
                answer = self._answer(message)
            except _Kp1Error as exc:
                return (f"{topic}/error", exc.payload())
            finally:
                self._cond.notify_all()
        if answer is None:
            return None
        assert message.parsed is not None  # _answer() refuses the rest
        if message.parsed.request_id or answer.also_without_id:
            return (f"{topic}/status", answer.payload)
        return None

    def _answer(self, message: Kp1Message) -> _Answer | None:
        request = message.parsed
        if request is None:
            raise _Kp1Error(
                400,
                "not a KP1 endpoint topic: expected "
                "kp1/{app}/{extension}/{token}/{resource}[/{request_id}]",
            )
        refusal = self._refusing.get((request.app, request.token))
        if refusal is not None:
            raise refusal
        handler = _route(request)
        return handler(self, request, message.payload)

    def _dcx_json(self, req: Kp1Topic, payload: bytes) -> _Answer:
        body = _json_body(payload, "data samples")
        if isinstance(body, dict):
            body = [body]
        if not isinstance(body, list):
            raise _Kp1Error(400, "data samples must be a JSON array or object")
        self._samples.setdefault((req.app, req.token), []).extend(body)
        return _Answer(b"")

    def _dcx_plain(self, req: Kp1Topic, payload: bytes) -> _Answer:
        metric = req.resource.partition("/")[2]
        if not metric or "/" in metric:
            raise _Kp1Error(400, "plain data goes to plain/{metric}")
        text = _text_body(payload, f"plain/{metric}")
        if not text.strip():
            raise _Kp1Error(400, f"plain/{metric} needs a number or a string")
        key = (req.app, req.token, metric)
        self._plain.setdefault(key, []).append(_number_or_text(text))
        return _Answer(b"")

    def _epmx_get(self, req: Kp1Topic, payload: bytes) -> _Answer:
        # 10/EPMP: an empty payload asks for every key.
        body = _json_object(payload, "get request") if payload else {}
        stored = self._metadata.get((req.app, req.token), {})
        keys = body.get("keys")
        if keys is None:
            return _json_answer(stored)
        if not isinstance(keys, list):
            raise _Kp1Error(400, '"keys" must be an array of metadata keys')
        _check_keys(keys)
        return _json_answer({k: stored[k] for k in keys if k in stored})

    def _epmx_get_keys(self, req: Kp1Topic, payload: bytes) -> _Answer:
        # 10/EPMP: the server ignores any payload here.
        return _json_answer(list(self._metadata.get((req.app, req.token), {})))

    def _epmx_update(self, req: Kp1Topic, payload: bytes) -> _Answer:
        body = _metadata_update(payload)
        self._metadata[(req.app, req.token)] = body
        return _Answer(b"")

    def _epmx_update_keys(self, req: Kp1Topic, payload: bytes) -> _Answer:
        body = _metadata_update(payload)
        self._metadata.setdefault((req.app, req.token), {}).update(body)
        return _Answer(b"")

    def _epmx_delete_keys(self, req: Kp1Topic, payload: bytes) -> _Answer:
        keys = _json_body(payload, "delete request")
        if not isinstance(keys, list) or not keys:
            raise _Kp1Error(400, "delete/keys takes a non-empty array of keys")
        _check_keys(keys)
        stored = self._metadata.setdefault((req.app, req.token), {})
        for key in keys:
            stored.pop(key, None)
        return _Answer(b"")

    def _cex_command(self, req: Kp1Topic, payload: bytes) -> _Answer | None:
        command_type = _command_type(req)
        if payload:
            _json_object(payload, "command request")
        key = (req.app, req.token, command_type)
        outstanding = self._outstanding.get(key, [])
        # 11/CEP: the answer lists every outstanding command, [] if none;
        # with no id to answer, only an actual command is worth a push.
        if req.request_id is None and not outstanding:
            return None
        return _Answer(json.dumps(outstanding).encode(), also_without_id=True)

    def _cex_result(self, req: Kp1Topic, payload: bytes) -> _Answer:
        command_type = _command_type(req)
        results = _json_body(payload, "command results")
        if not isinstance(results, list) or not all(map(_is_result, results)):
            raise _Kp1Error(
                400,
                'results must be an array of objects with integer "id" and '
                '"statusCode"',
            )
        key = (req.app, req.token, command_type)
        self._results.setdefault(key, []).extend(results)
        done = {result["id"] for result in results}
        pending = self._outstanding.get(key, [])
        self._outstanding[key] = [c for c in pending if c["id"] not in done]
        return _Answer(b"")

    def _cmx_config(self, req: Kp1Topic, payload: bytes) -> _Answer | None:
        body = _json_object(payload, "config request") if payload else {}
        known = body.get("configId")
        if known is not None and not isinstance(known, str):
            raise _Kp1Error(400, '"configId" must be a string')
        key = (req.app, req.token, req.extension)
        current = self._configs.get(key, _NO_CONFIG)
        if known == current["configId"]:
            # 7/CMP: unchanged is an empty object; nothing new to push.
            return _Answer(b"{}")
        return _Answer(json.dumps(current).encode(), also_without_id=True)

    def _cmx_applied(self, req: Kp1Topic, payload: bytes) -> _Answer:
        body = _json_object(payload, "applied request")
        if not isinstance(body.get("configId"), str):
            raise _Kp1Error(400, 'applied/json needs a string "configId"')
        if "statusCode" in body and not _is_int(body["statusCode"]):
            raise _Kp1Error(400, '"statusCode" must be an integer')
        key = (req.app, req.token, req.extension)
        self._applied.setdefault(key, []).append(body)
        return _Answer(b"")

    def _publish_and_wait(self, topic: str, payload: bytes) -> None:
        client = self._client
        if client is None:
            raise StandInError("KaaCloud is not started")
        info = client.publish(topic, payload, qos=_QOS)
        try:
            info.wait_for_publish(5.0)
        except (RuntimeError, ValueError) as exc:
            raise StandInError(f"KaaCloud: cannot publish {topic}: {exc}") from exc
        if not info.is_published():
            raise StandInError(f"KaaCloud: no PUBACK for {topic} within 5 s")


# Resources at a fixed path, then those with one variable last level.
_FIXED: dict[tuple[str, str], _Handler] = {
    ("dcx", "json"): KaaCloud._dcx_json,
    ("epmx", "get"): KaaCloud._epmx_get,
    ("epmx", "get/keys"): KaaCloud._epmx_get_keys,
    ("epmx", "update"): KaaCloud._epmx_update,
    ("epmx", "update/keys"): KaaCloud._epmx_update_keys,
    ("epmx", "delete/keys"): KaaCloud._epmx_delete_keys,
    **{(e, "config/json"): KaaCloud._cmx_config for e in CONFIG_EXTENSIONS},
    **{(e, "applied/json"): KaaCloud._cmx_applied for e in CONFIG_EXTENSIONS},
}
_PREFIXED: dict[tuple[str, str], _Handler] = {
    ("dcx", "plain"): KaaCloud._dcx_plain,
    ("cex", "command"): KaaCloud._cex_command,
    ("cex", "result"): KaaCloud._cex_result,
}


def _route(req: Kp1Topic) -> _Handler:
    head = req.resource.partition("/")[0]
    handler = _FIXED.get((req.extension, req.resource))
    handler = handler or _PREFIXED.get((req.extension, head))
    if handler is not None:
        return handler
    if req.extension not in EXTENSIONS:
        raise _Kp1Error(404, f"no extension {req.extension!r} here")
    raise _Kp1Error(404, f"{req.extension} has no resource {req.resource!r}")


def _matcher(match: Matcher) -> Callable[[Kp1Message], bool]:
    if isinstance(match, str):
        return lambda message: topic_matches_sub(match, message.topic)
    return match


def _text_body(payload: bytes, what: str) -> str:
    try:
        return payload.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _Kp1Error(400, f"{what} is not UTF-8: {exc}") from None


def _json_body(payload: bytes, what: str) -> Any:
    text = _text_body(payload, what)
    try:
        # Python accepts NaN and Infinity; JSON, and so Kaa, does not.
        return json.loads(text, parse_constant=_not_json)
    except ValueError as exc:
        raise _Kp1Error(400, f"{what} is not valid JSON: {exc}") from None


def _not_json(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def _json_object(payload: bytes, what: str) -> dict[str, Any]:
    body = _json_body(payload, what)
    if not isinstance(body, dict):
        raise _Kp1Error(400, f"{what} must be a JSON object")
    return body


def _json_answer(body: Any) -> _Answer:
    return _Answer(json.dumps(body).encode())


def _metadata_update(payload: bytes) -> dict[str, Any]:
    body = _json_object(payload, "metadata update")
    if not body:
        raise _Kp1Error(400, "metadata update needs at least one key")
    _check_keys(body)
    return body


def _check_keys(keys: list[Any] | dict[str, Any]) -> None:
    bad = [k for k in keys if not _is_metadata_key(k)]
    if bad:
        raise _Kp1Error(400, f"metadata keys must match [a-zA-Z0-9_]+: {bad}")


def _is_metadata_key(key: Any) -> bool:
    return isinstance(key, str) and bool(_METADATA_KEY.fullmatch(key))


def _command_type(req: Kp1Topic) -> str:
    command_type = req.resource.partition("/")[2]
    if not _COMMAND_TYPE.fullmatch(command_type):
        kind = req.resource.partition("/")[0]
        raise _Kp1Error(400, f"{kind}/{{type}} needs a command type [a-zA-Z0-9_]+")
    return command_type


def _is_int(value: Any) -> bool:
    # JSON true is a Python bool, which is an int; it is no status code.
    return isinstance(value, int) and not isinstance(value, bool)


def _is_result(item: Any) -> bool:
    return (
        isinstance(item, dict)
        and _is_int(item.get("id"))
        and _is_int(item.get("statusCode"))
    )


def _number_or_text(text: str) -> int | float | str:
    for parse in (int, float):
        try:
            value = parse(text)
        except ValueError:
            continue
        # float() takes "nan" and "inf", which no metric store accepts.
        if value == value and value not in (float("inf"), float("-inf")):
            return value
    return text


def _initial_metadata(
    metadata: Mapping[Endpoint, dict[str, Any]],
) -> dict[Endpoint, dict[str, Any]]:
    for endpoint, values in metadata.items():
        bad = [k for k in values if not _is_metadata_key(k)]
        if bad:
            raise ValueError(f"metadata for {endpoint}: bad keys {bad}")
    return {(app, token): copy.deepcopy(v) for (app, token), v in metadata.items()}


def _initial_configs(
    configs: Mapping[tuple[str, ...], dict[str, Any]],
) -> dict[tuple[str, str, str], dict[str, Any]]:
    result: dict[tuple[str, str, str], dict[str, Any]] = {}
    for key, body in configs.items():
        if len(key) not in (2, 3):
            raise ValueError(f"configs{key}: want (app, token[, extension])")
        app, token, extension = (*key, "cmx") if len(key) == 2 else key
        if extension not in CONFIG_EXTENSIONS:
            raise ValueError(f"configs{key}: not a configuration extension")
        if set(body) != {"configId", "config"}:
            raise ValueError(f'configs{key}: want {{"configId", "config"}}')
        result[(app, token, extension)] = copy.deepcopy(body)
    return result
