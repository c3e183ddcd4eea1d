"""A SIP-over-secure-WebSocket test peer (RFC 7118) for the browser phone's tests, on its own
thread and event loop: it challenges REGISTER with a digest (realm = the tenant's domain) and
accepts only a response computed from the right HA1, so a registered phone proves the HA1 the
portal handed out; it answers INVITEs 486 (recording them) and can place an INVITE to the
registered browser, recording the answer (decline, ringing).

Media is not this peer's business: real calls with audio run against FreeSWITCH in
tests/realswitch."""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
import ssl
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

from aiohttp import WSMsgType, web

DIGEST_PARAM = re.compile(r'(\w+)=(?:"([^"]*)"|([^,\s]*))')
OFFER = (
    "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n"
    "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\na=sendrecv\r\n"
)


def md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()  # the SIP digest is MD5


def self_signed(folder: Path) -> tuple[Path, Path]:
    cert, key = folder / "peer.pem", folder / "peer.key"
    command = ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1"]
    subprocess.run(
        [*command, "-subj", "/CN=127.0.0.1", "-keyout", str(key), "-out", str(cert)],
        check=True,
        capture_output=True,
    )
    return cert, key


@dataclass
class SipMessage:
    first: str
    headers: list[tuple[str, str]]
    body: str = ""

    @classmethod
    def parse(cls, text: str) -> SipMessage:
        head, _, body = text.partition("\r\n\r\n")
        first, *lines = head.split("\r\n")
        headers = [(n.strip(), v.strip()) for n, _, v in (line.partition(":") for line in lines)]
        return cls(first, headers, body)

    def header(self, name: str) -> str:
        return next((v for n, v in self.headers if n.lower() == name.lower()), "")

    @property
    def method(self) -> str:
        return self.first.split(" ", 1)[0]

    @property
    def status(self) -> int:
        return int(self.first.split(" ")[1]) if self.first.startswith("SIP/2.0") else 0


@dataclass
class SipPeer:
    realm: str
    ha1: dict[str, str]  # user -> HA1 the peer accepts
    registered: dict[str, str] = field(default_factory=dict)  # user -> contact
    invites: list[SipMessage] = field(default_factory=list)
    answers: list[SipMessage] = field(default_factory=list)  # to the peer's own INVITEs
    refused: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._socket: web.WebSocketResponse | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- lifecycle ------------------------------------------------------------------------

    def start(self, folder: Path) -> str:
        cert, key = self_signed(folder)
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(cert, key)
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._serve(context), self.loop).result(10)
        return f"wss://127.0.0.1:{self.port}"

    async def _serve(self, context: ssl.SSLContext) -> None:
        app = web.Application()
        app.router.add_get("/", self._websocket)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=context)
        await site.start()
        self.port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)

    # -- SIP ------------------------------------------------------------------------------

    async def _websocket(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(protocols=("sip",))
        await ws.prepare(request)
        self._socket = ws
        async for frame in ws:
            if frame.type == WSMsgType.TEXT:
                await self._handle(ws, SipMessage.parse(frame.data))
        return ws

    async def _handle(self, ws: web.WebSocketResponse, msg: SipMessage) -> None:
        if msg.status:
            self.answers.append(msg)
            if msg.status >= 200 and msg.header("CSeq").endswith("INVITE"):
                await ws.send_str(self._ack(msg))
            return
        if msg.method == "REGISTER":
            await ws.send_str(self._register(msg))
        elif msg.method == "INVITE":
            self.invites.append(msg)
            await ws.send_str(self._reply(msg, "486 Busy Here"))
        elif msg.method in ("BYE", "CANCEL", "OPTIONS"):
            await ws.send_str(self._reply(msg, "200 OK"))

    def _register(self, msg: SipMessage) -> str:
        auth = msg.header("Authorization")
        if not auth:
            nonce = secrets.token_hex(8)
            challenge = f'Digest realm="{self.realm}", nonce="{nonce}", algorithm=MD5, qop="auth"'
            return self._reply(msg, "401 Unauthorized", [("WWW-Authenticate", challenge)])
        p = {k: a or b for k, a, b in DIGEST_PARAM.findall(auth)}
        ha1 = self.ha1.get(p.get("username", ""), "")
        ha2 = md5(f"REGISTER:{p.get('uri', '')}")
        expected = md5(f"{ha1}:{p['nonce']}:{p['nc']}:{p['cnonce']}:{p['qop']}:{ha2}")
        if not ha1 or p.get("realm") != self.realm or p.get("response") != expected:
            self.refused.append(p.get("username", ""))
            return self._reply(msg, "403 Forbidden")
        contact = msg.header("Contact")
        self.registered[p["username"]] = contact
        return self._reply(msg, "200 OK", [("Contact", contact)])

    def _reply(self, msg: SipMessage, status: str, extra: list[tuple[str, str]] = ()) -> str:  # type: ignore[assignment]
        to = msg.header("To")
        if ";tag=" not in to:
            to += ";tag=" + secrets.token_hex(4)
        lines = [f"SIP/2.0 {status}"]
        lines += [f"Via: {v}" for n, v in msg.headers if n.lower() == "via"]
        lines += [f"From: {msg.header('From')}", f"To: {to}"]
        lines += [f"Call-ID: {msg.header('Call-ID')}", f"CSeq: {msg.header('CSeq')}"]
        lines += [f"{n}: {v}" for n, v in extra]
        return "\r\n".join([*lines, "Content-Length: 0", "", ""])

    def _ack(self, answer: SipMessage) -> str:
        seq = answer.header("CSeq").split()[0]
        lines = [
            f"ACK {self._target} SIP/2.0",
            *(f"Via: {v}" for n, v in answer.headers if n.lower() == "via"),
            f"From: {answer.header('From')}",
            f"To: {answer.header('To')}",
            f"Call-ID: {answer.header('Call-ID')}",
            f"CSeq: {seq} ACK",
            "Max-Forwards: 70",
            "Content-Length: 0",
        ]
        return "\r\n".join([*lines, "", ""])

    def call(self, user: str, caller: str, caller_name: str) -> None:
        """An INVITE to ``user``'s registered browser (over its WebSocket), from ``caller``."""
        contact = self.registered[user]
        self._target = contact[contact.index("<") + 1 : contact.index(">")]
        branch = "z9hG4bK" + secrets.token_hex(6)
        lines = [
            f"INVITE {self._target} SIP/2.0",
            f"Via: SIP/2.0/WSS 127.0.0.1:{self.port};branch={branch}",
            f'From: "{caller_name}" <sip:{caller}@{self.realm}>;tag={secrets.token_hex(4)}',
            f"To: <sip:{user}@{self.realm}>",
            f"Call-ID: {secrets.token_hex(8)}",
            "CSeq: 1 INVITE",
            f"Contact: <sip:{caller}@127.0.0.1:{self.port};transport=ws>",
            "Max-Forwards: 70",
            "Content-Type: application/sdp",
            f"Content-Length: {len(OFFER)}",
        ]
        text = "\r\n".join([*lines, "", OFFER])
        socket = self._socket
        assert socket is not None
        asyncio.run_coroutine_threadsafe(socket.send_str(text), self.loop).result(5)
