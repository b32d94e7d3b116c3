"""One webhook POST to a vetted target (generation.webhooks.urls_guard.vet).

Written on http.client rather than a full HTTP library because of what it must not do:

- connect anywhere but the vetted addresses (the name is not resolved again, so DNS rebinding
  can't point the request inward), while the request still carries the URL's own `Host`
  header and, for https, its name for SNI and certificate verification;
- follow redirects (a 3xx is an answer like any other non-2xx: the attempt failed);
- use a proxy from the environment (HTTP_PROXY and friends are ignored);
- take longer than `timeout` from the first connect to the last byte read, however slowly a
  receiver drips its answer: a timer shuts the socket down at the deadline.
"""

from __future__ import annotations

import contextlib
import http.client
import socket
import ssl
import threading
import time
from dataclasses import dataclass

from .urls_guard import Target

# What the delivery log keeps of an answer.
RESPONSE_BYTES = 1024


@dataclass(frozen=True)
class Answer:
    """`status` is None when no HTTP answer came back; `error` then says why."""

    status: int | None
    body: bytes = b""
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


class _Deadline:
    """Shuts a socket down when the time is up, which wakes any read or write blocked on it."""

    def __init__(self, seconds: float) -> None:
        self.ends = time.monotonic() + seconds
        self.expired = False
        self._sock: socket.socket | None = None
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def left(self) -> float:
        left = self.ends - time.monotonic()
        if left <= 0:
            raise TimeoutError("deadline reached")
        return left

    def watch(self, sock: socket.socket) -> None:
        with self._lock:
            self._sock = sock
            if self.expired:
                self._shutdown()

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            self._shutdown()

    def _shutdown(self) -> None:
        if self._sock is None:
            return
        # The plain socket's shutdown even for a TLS socket: SSLSocket.shutdown would also
        # tear down its TLS state under the thread that is reading.
        with contextlib.suppress(OSError):
            socket.socket.shutdown(self._sock, socket.SHUT_RDWR)

    def cancel(self) -> None:
        self._timer.cancel()


def tls_context() -> ssl.SSLContext:
    """The system's trust store, certificate and host name checked (tests swap in their CA)."""
    return ssl.create_default_context()


def _connect(target: Target, deadline: _Deadline) -> socket.socket:
    last_error: OSError | None = None
    for address in target.addresses:
        try:
            sock = socket.create_connection((str(address), target.port), timeout=deadline.left())
        except OSError as exc:
            last_error = exc
            continue
        deadline.watch(sock)
        return sock
    raise last_error or OSError("no address to connect to")


def post(target: Target, *, body: bytes, headers: dict[str, str], timeout: float) -> Answer:
    """POSTs `body` to the target; never raises for network or protocol failures."""
    deadline = _Deadline(timeout)
    sock: socket.socket | None = None
    try:
        sock = _connect(target, deadline)
        if target.scheme == "https":
            context = tls_context()
            # Python sends no SNI for an IP literal and checks it against the IP SANs.
            sock = context.wrap_socket(sock, server_hostname=target.host)
            deadline.watch(sock)
        connection = http.client.HTTPConnection(target.host, target.port, timeout=timeout)
        connection.sock = sock
        connection.putrequest("POST", target.path, skip_host=True, skip_accept_encoding=True)
        connection.putheader("Host", target.host_header)
        for name, value in headers.items():
            connection.putheader(name, value)
        connection.putheader("Content-Length", str(len(body)))
        connection.putheader("Connection", "close")
        connection.endheaders(body)
        response = connection.getresponse()
        status = response.status
        try:
            # At most one read: a receiver that answers and then holds the connection open
            # costs no more time than one that closes it.
            content = response.read1(RESPONSE_BYTES)
        except (OSError, http.client.HTTPException):
            content = b""  # the status is the answer; an unreadable body doesn't change it
        if deadline.expired:
            # Cut off mid-answer: whatever status came first, the answer was not complete.
            return Answer(status=None, error=f"Timed out after {timeout:g} s.")
        return Answer(status=status, body=content)
    except (OSError, http.client.HTTPException, ValueError) as exc:
        if deadline.expired or isinstance(exc, TimeoutError):
            return Answer(status=None, error=f"Timed out after {timeout:g} s.")
        return Answer(status=None, error=_describe(exc))
    finally:
        deadline.cancel()
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.close()


def _describe(exc: BaseException) -> str:
    if isinstance(exc, ssl.SSLCertVerificationError):
        return f"TLS certificate not accepted: {exc.verify_message or exc}."[:300]
    if isinstance(exc, ssl.SSLError):
        return f"TLS error: {exc.reason or exc}."[:300]
    if isinstance(exc, ConnectionRefusedError):
        return "Connection refused."
    if isinstance(exc, ConnectionResetError):
        return "Connection reset by the receiver."
    if isinstance(exc, http.client.HTTPException):
        return f"Not a valid HTTP answer ({exc.__class__.__name__})."
    return f"{exc.__class__.__name__}: {exc}"[:300]
