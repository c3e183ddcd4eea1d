"""A SIP-over-secure-WebSocket test peer (RFC 7118) for the browser phone's tests, on its own
thread and event loop: it challenges REGISTER with a digest (realm = the tenant's domain) and
accepts only a response computed from the right HA1, so a registered phone proves the HA1 the
portal handed out. INVITEs are refused 486 (recorded), or with ``answering`` answered by a
real WebRTC endpoint (aiortc: ICE, DTLS-SRTP, Opus) that sends audio and counts the audio
frames it receives; re-INVITEs (hold, resume), REFERs and BYEs are answered and recorded.
It also calls the registered browser, with a bogus offer (to decline) or a real one, and
lights its message-waiting lamp with the NOTIFYs the real switch sends a WSS contact
(``tests/fakes/wss``): on a change of the box, and answering the phone's SUBSCRIBE (202,
then the box's state out of the dialog, as FreeSWITCH does)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import secrets
import ssl
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path

import aioice.ice
from aiohttp import WSMsgType, web
from aiortc import RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import AudioStreamTrack, MediaStreamError, MediaStreamTrack

from tests.fakes.wss.mwi import mwi_notify, subscribe_accepted

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
class PeerCall:
    """One call with media: the peer's WebRTC end, what it saw of the call."""

    call_id: str
    pc: RTCPeerConnection
    answer_sdp: str = ""
    to_tag: str = ""
    frames: int = 0  # audio frames received and decoded from the browser
    directions: list[str] = field(default_factory=list)  # of each re-INVITE's offer
    refer_to: str = ""
    ended: bool = False  # a BYE from the browser
    tasks: list[asyncio.Task[None]] = field(default_factory=list)


def _direction(sdp: str) -> str:
    for direction in ("sendonly", "recvonly", "inactive"):
        if f"a={direction}" in sdp:
            return direction
    return "sendrecv"


_ANSWERING = {"sendonly": "recvonly", "recvonly": "sendonly"}


@dataclass
class SipPeer:
    realm: str
    ha1: dict[str, str]  # user -> HA1 the peer accepts
    registered: dict[str, str] = field(default_factory=dict)  # user -> contact
    invites: list[SipMessage] = field(default_factory=list)
    answers: list[SipMessage] = field(default_factory=list)  # to the peer's own INVITEs
    refused: list[str] = field(default_factory=list)
    answering: bool = False  # answer INVITEs with media (else 486)
    calls: dict[str, PeerCall] = field(default_factory=dict)  # by Call-ID
    boxes: dict[str, tuple[int, int]] = field(default_factory=dict)  # user -> (new, saved)
    subscribes: list[SipMessage] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._socket: web.WebSocketResponse | None = None
        self._runner: web.AppRunner | None = None
        self.port = 0

    # -- lifecycle ------------------------------------------------------------------------

    def start(self, folder: Path) -> str:
        # media on loopback: aioice would offer only the host's other interfaces
        self._host_addresses = aioice.ice.get_host_addresses
        aioice.ice.get_host_addresses = lambda **_: ["127.0.0.1"]
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
        aioice.ice.get_host_addresses = self._host_addresses

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
                call = self.calls.get(msg.header("Call-ID"))
                if call is not None and msg.status == 200:
                    await call.pc.setRemoteDescription(RTCSessionDescription(msg.body, "answer"))
                await ws.send_str(self._ack(msg))
            return
        call = self.calls.get(msg.header("Call-ID"))
        if msg.method == "REGISTER":
            await ws.send_str(self._register(msg))
        elif msg.method == "INVITE" and call is not None:  # hold or resume
            call.directions.append(_direction(msg.body))
            await ws.send_str(self._answer_again(msg, call))
        elif msg.method == "INVITE":
            self.invites.append(msg)
            if self.answering:
                await ws.send_str(await self._answer(msg))
            else:
                await ws.send_str(self._reply(msg, "486 Busy Here"))
        elif msg.method == "REFER" and call is not None:
            call.refer_to = msg.header("Refer-To")
            await ws.send_str(self._reply(msg, "202 Accepted", to_tag=call.to_tag))
        elif msg.method == "BYE":
            if call is not None:
                call.ended = True
                await call.pc.close()
            await ws.send_str(self._reply(msg, "200 OK"))
        elif msg.method == "SUBSCRIBE":
            await self._subscribe(ws, msg)
        elif msg.method in ("CANCEL", "OPTIONS", "NOTIFY", "INFO"):
            await ws.send_str(self._reply(msg, "200 OK"))

    # -- media ----------------------------------------------------------------------------

    def _media_end(self, call_id: str) -> PeerCall:
        pc = RTCPeerConnection()
        call = self.calls[call_id] = PeerCall(call_id, pc)

        @pc.on("track")
        def _on_track(track: MediaStreamTrack) -> None:
            if track.kind == "audio":
                call.tasks.append(asyncio.ensure_future(self._count_frames(call, track)))

        return call

    @staticmethod
    async def _count_frames(call: PeerCall, track: MediaStreamTrack) -> None:
        with contextlib.suppress(MediaStreamError):
            while True:
                await track.recv()
                call.frames += 1

    async def _answer(self, msg: SipMessage) -> str:
        call = self._media_end(msg.header("Call-ID"))
        await call.pc.setRemoteDescription(RTCSessionDescription(msg.body, "offer"))
        call.pc.addTrack(AudioStreamTrack())  # silence, as Opus packets
        await call.pc.setLocalDescription(await call.pc.createAnswer())
        call.answer_sdp = call.pc.localDescription.sdp
        call.to_tag = secrets.token_hex(4)
        return self._reply(msg, "200 OK", self._sdp_headers(call.answer_sdp), call.to_tag,
                           call.answer_sdp)  # fmt: skip

    def _answer_again(self, msg: SipMessage, call: PeerCall) -> str:
        """A re-INVITE is answered with the same media, in the direction it asks for."""
        wanted = _ANSWERING.get(call.directions[-1], call.directions[-1])
        sdp = call.answer_sdp.replace("a=sendrecv", f"a={wanted}")
        return self._reply(msg, "200 OK", self._sdp_headers(sdp), call.to_tag, sdp)

    def _sdp_headers(self, sdp: str) -> list[tuple[str, str]]:
        return [
            ("Contact", f"<sip:peer@127.0.0.1:{self.port};transport=ws>"),
            ("Content-Type", "application/sdp"),
        ]

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

    def _reply(
        self,
        msg: SipMessage,
        status: str,
        extra: list[tuple[str, str]] | None = None,
        to_tag: str = "",
        body: str = "",
    ) -> str:
        to = msg.header("To")
        if ";tag=" not in to:
            to += ";tag=" + (to_tag or secrets.token_hex(4))
        lines = [f"SIP/2.0 {status}"]
        lines += [f"Via: {v}" for n, v in msg.headers if n.lower() == "via"]
        lines += [f"From: {msg.header('From')}", f"To: {to}"]
        lines += [f"Call-ID: {msg.header('Call-ID')}", f"CSeq: {msg.header('CSeq')}"]
        lines += [f"{n}: {v}" for n, v in extra or ()]
        return "\r\n".join([*lines, f"Content-Length: {len(body.encode())}", "", body])

    def _ack(self, answer: SipMessage) -> str:
        """A 2xx's ACK is a new transaction (own branch) to the answerer's Contact; a
        failure's reuses the INVITE's Via."""
        seq = answer.header("CSeq").split()[0]
        contact = answer.header("Contact")
        target = contact[contact.index("<") + 1 : contact.index(">")] if "<" in contact else ""
        branch = "z9hG4bK" + secrets.token_hex(6)
        vias = [v for n, v in answer.headers if n.lower() == "via"]
        if answer.status < 300:
            vias = [f"SIP/2.0/WSS 127.0.0.1:{self.port};branch={branch}"]
        lines = [
            f"ACK {target or self._target} SIP/2.0",
            *(f"Via: {v}" for v in vias),
            f"From: {answer.header('From')}",
            f"To: {answer.header('To')}",
            f"Call-ID: {answer.header('Call-ID')}",
            f"CSeq: {seq} ACK",
            "Max-Forwards: 70",
            "Content-Length: 0",
        ]
        return "\r\n".join([*lines, "", ""])

    def call(self, user: str, caller: str, caller_name: str, *, media: bool = False) -> str:
        """An INVITE to ``user``'s registered browser (over its WebSocket), from ``caller``:
        with a real WebRTC offer when ``media``, else a bogus one (to be declined). Returns
        its Call-ID."""
        return asyncio.run_coroutine_threadsafe(
            self._call(user, caller, caller_name, media), self.loop
        ).result(15)

    async def _call(self, user: str, caller: str, caller_name: str, media: bool) -> str:
        call_id = secrets.token_hex(8)
        offer = OFFER
        if media:
            call = self._media_end(call_id)
            call.pc.addTrack(AudioStreamTrack())
            await call.pc.setLocalDescription(await call.pc.createOffer())
            offer = call.pc.localDescription.sdp
        contact = self.registered[user]
        self._target = contact[contact.index("<") + 1 : contact.index(">")]
        branch = "z9hG4bK" + secrets.token_hex(6)
        lines = [
            f"INVITE {self._target} SIP/2.0",
            f"Via: SIP/2.0/WSS 127.0.0.1:{self.port};branch={branch}",
            f'From: "{caller_name}" <sip:{caller}@{self.realm}>;tag={secrets.token_hex(4)}',
            f"To: <sip:{user}@{self.realm}>",
            f"Call-ID: {call_id}",
            "CSeq: 1 INVITE",
            f"Contact: <sip:{caller}@127.0.0.1:{self.port};transport=ws>",
            "Max-Forwards: 70",
            "Content-Type: application/sdp",
            f"Content-Length: {len(offer.encode())}",
        ]
        assert self._socket is not None
        await self._socket.send_str("\r\n".join([*lines, "", offer]))
        return call_id

    async def _subscribe(self, ws: web.WebSocketResponse, msg: SipMessage) -> None:
        """message-summary: accepted, then the box's state in a NOTIFY of its own (the real
        switch never notifies inside the subscription's dialog); anything else 489."""
        self.subscribes.append(msg)
        if msg.header("Event").split(";")[0].strip() != "message-summary":
            await ws.send_str(self._reply(msg, "489 Bad Event"))
            return
        await ws.send_str(self._reply(msg, "202 Accepted", subscribe_accepted()))
        user = re.sub(r"^.*<sip:([^@>]+)@.*$", r"\1", msg.header("From"))
        if user in self.registered:
            await ws.send_str(self._mwi_frame(user, *self.boxes.get(user, (0, 0)), query=True))

    def _mwi_frame(self, user: str, fresh: int, saved: int, *, query: bool = False) -> str:
        contact = self.registered[user]
        target = contact[contact.index("<") + 1 : contact.index(">")]
        return mwi_notify(target, user, self.realm, fresh, saved, query=query)

    def notify_mwi(self, user: str, fresh: int, saved: int, event: str = "") -> str:
        """FreeSWITCH's unsolicited message-summary NOTIFY to ``user``'s registered contact
        (``fresh`` new, ``saved`` saved; ``event`` names another package instead); the
        browser's answer lands in ``answers``. Returns its Call-ID."""
        self.boxes[user] = (fresh, saved)
        frame = self._mwi_frame(user, fresh, saved)
        if event:
            frame = frame.replace("\r\nEvent: message-summary\r\n", f"\r\nEvent: {event}\r\n")
        assert self._socket is not None
        asyncio.run_coroutine_threadsafe(self._socket.send_str(frame), self.loop).result(10)
        return SipMessage.parse(frame).header("Call-ID")

    def hang_up_all(self) -> None:
        """Close every media end (the test's clean-up)."""

        async def close() -> None:
            for call in self.calls.values():
                await call.pc.close()

        asyncio.run_coroutine_threadsafe(close(), self.loop).result(10)
