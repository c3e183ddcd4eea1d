"""SIP.js's half of a browser phone, for the tests: SIP over WebSocket (RFC 7118) with
digest auth, the media left to a real WebRTC endpoint (``browser_media``: Chromium).

Why written for the tests: the real-switch tier proves what the portal's SIP.js phone
needs from the shipped node config (register over WSS, call and be called with DTLS-SRTP
media) without depending on the portal's bundle. The messages copy what SIP.js 0.21.2 sent
in ``../shared/freeswitch/transcripts/webrtc/``: ``Via: SIP/2.0/WSS <random>.invalid``, a
``<random>.invalid;transport=ws`` contact, one WebSocket per phone with the ``sip``
subprotocol, and the full SDP (candidates included, no trickle).

Just enough SIP for these calls: transactions matched by Via branch, in-dialog requests
from the switch (BYE, INFO, NOTIFY, OPTIONS) answered 200.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import re
import secrets
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Protocol

import aiohttp

from tests.realswitch.sipp import SipMessage

# Generous: the switch shares 2 cores with other test runs. A wait, never a timing check.
WAIT = 30.0
_PARAM = re.compile(r'(\w+)=(?:"([^"]*)"|([^\s,]+))')


def _token(size: int = 10) -> str:
    return secrets.token_hex(size // 2 + 1)[:size]


@dataclass(frozen=True)
class WsMessage(SipMessage):
    """One SIP message received over the WebSocket: sipp's reading of a message (first
    line, status, method, headers) plus what this phone needs for transactions and
    dialogs."""

    @classmethod
    def parse(cls, text: str) -> WsMessage:
        return cls(True, text.split("\r\n", 1)[0], text)

    @property
    def headers(self) -> list[tuple[str, str]]:
        """(name, value) in order, repeats kept (Via)."""
        head = self.text.partition("\r\n\r\n")[0]
        pairs = (line.partition(":") for line in head.split("\r\n")[1:])
        return [(name.strip(), value.strip()) for name, _, value in pairs]

    @property
    def body(self) -> str:
        return self.text.partition("\r\n\r\n")[2]

    @property
    def branch(self) -> str:
        match = re.search(r"branch=([^;,\s]+)", self.header("Via") or "")
        return match.group(1) if match else ""

    def tag(self, header: str) -> str | None:
        match = re.search(r";tag=([^;>\s]+)", self.header(header) or "")
        return match.group(1) if match else None

    def contact_uri(self) -> str | None:
        match = re.search(r"<([^>]+)>", self.header("Contact") or "")
        return match.group(1) if match else None


def digest(challenge: str, *, user: str, password: str, method: str, uri: str, header: str) -> str:
    """The Authorization / Proxy-Authorization value answering a Digest MD5 challenge."""
    params = {m.group(1): m.group(2) or m.group(3) for m in _PARAM.finditer(challenge)}
    realm, nonce = params["realm"], params["nonce"]

    def md5(text: str) -> str:
        return hashlib.md5(text.encode()).hexdigest()

    ha1, ha2 = md5(f"{user}:{realm}:{password}"), md5(f"{method}:{uri}")
    fields = f'username="{user}", realm="{realm}", nonce="{nonce}", uri="{uri}", algorithm=MD5'
    if "auth" in params.get("qop", "").split(","):
        cnonce, nc = _token(12), "00000001"
        response = md5(f"{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")
        return f'{header}: Digest {fields}, response="{response}", qop=auth, cnonce="{cnonce}", nc={nc}'
    return f'{header}: Digest {fields}, response="{md5(f"{ha1}:{nonce}:{ha2}")}"'


class MediaPeer(Protocol):
    """A WebRTC endpoint for one call (``browser_media.BrowserMedia``)."""

    async def offer(self) -> str: ...
    async def answer(self, offer: str) -> str: ...
    async def accept(self, answer: str) -> None: ...
    async def flowing_both_ways(self, packets: int) -> tuple[int, int, int]: ...
    async def close(self) -> None: ...


@dataclass
class Dialog:
    """An established call, from this phone's side."""

    call_id: str
    local_tag: str
    remote_tag: str
    local_uri: str
    remote_uri: str
    target: str
    cseq: int
    media: MediaPeer
    ended: asyncio.Event = field(default_factory=asyncio.Event)


class WssPhone:
    """One browser phone: a WebSocket to the switch, an extension's credentials."""

    def __init__(
        self,
        url: str,
        user: str,
        domain: str,
        password: str,
        cafile: str,
        media: Callable[[], Awaitable[MediaPeer]],
        name: str = "",
    ) -> None:
        self.url, self.user, self.domain, self.password = url, user, domain, password
        self.new_media = media
        self.name = name or f"Browser {user}"
        self.host = f"{_token(12)}.invalid"
        self.contact_user = _token(8)  # names the switch's channel to this phone
        self.contact = f"<sip:{self.contact_user}@{self.host};transport=ws>"
        self.reg_call_id, self.reg_cseq = _token(20), 0
        self._ssl = ssl.create_default_context(cafile=cafile)
        self._session: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._pending: dict[str, asyncio.Queue[WsMessage]] = {}
        self.invites: asyncio.Queue[WsMessage] = asyncio.Queue()
        self.dialogs: dict[str, Dialog] = {}
        self.wire: list[str] = []  # first lines, '>' sent '<' received, for failure messages
        self._reader: asyncio.Task[None] | None = None

    # --- transport ------------------------------------------------------------------

    async def connect(self) -> None:
        self._session = aiohttp.ClientSession()
        self._ws = await self._session.ws_connect(self.url, protocols=("sip",), ssl=self._ssl)
        assert self._ws.protocol == "sip", "the switch must accept the sip subprotocol"
        self._reader = asyncio.ensure_future(self._read())

    async def close(self) -> None:
        for dialog in self.dialogs.values():
            await dialog.media.close()
        if self._reader is not None:
            self._reader.cancel()
        if self._ws is not None:
            await self._ws.close()
        if self._session is not None:
            await self._session.close()

    async def _send(self, text: str) -> None:
        assert self._ws is not None
        self.wire.append("> " + text.split("\r\n", 1)[0])
        await self._ws.send_str(text)

    async def _read(self) -> None:
        assert self._ws is not None
        async for frame in self._ws:
            if frame.type != aiohttp.WSMsgType.TEXT:
                continue
            message = WsMessage.parse(frame.data)
            self.wire.append("< " + message.first_line)
            if message.status is not None:
                queue = self._pending.get(message.branch)
                if queue is not None:
                    queue.put_nowait(message)
            elif message.method == "INVITE" and not message.tag("To"):
                self.invites.put_nowait(message)
            elif message.method != "ACK":
                await self._answer_in_dialog(message)

    async def _answer_in_dialog(self, request: WsMessage) -> None:
        """200 to whatever the switch asks within a call; a BYE ends the call."""
        await self._send(self._response(request, 200, "OK"))
        dialog = self.dialogs.get(request.header("Call-ID") or "")
        if request.method == "BYE" and dialog is not None:
            dialog.ended.set()

    def _response(
        self, request: WsMessage, code: int, reason: str, *, to_tag: str = "", body: str = ""
    ) -> str:
        lines = [f"SIP/2.0 {code} {reason}"]
        for name in ("Via", "From", "To", "Call-ID", "CSeq"):
            for key, value in request.headers:
                if key.lower() == name.lower():
                    tagged = name == "To" and to_tag and ";tag=" not in value
                    lines.append(f"{name}: {value};tag={to_tag}" if tagged else f"{name}: {value}")
        lines.append(f"Contact: {self.contact}")
        return self._finish(lines, body)

    @staticmethod
    def _finish(lines: list[str], body: str) -> str:
        if body:
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(body.encode())}")
        return "\r\n".join(lines) + "\r\n\r\n" + body

    def _request(self, method: str, uri: str, branch: str, headers: list[str], body: str) -> str:
        lines = [
            f"{method} {uri} SIP/2.0",
            f"Via: SIP/2.0/WSS {self.host};branch={branch}",
            "Max-Forwards: 70",
            *headers,
            "User-Agent: pbx-reconciler realswitch wss phone",
        ]
        return self._finish(lines, body)

    @contextlib.asynccontextmanager
    async def _transaction(self, branch: str) -> AsyncIterator[asyncio.Queue[WsMessage]]:
        queue: asyncio.Queue[WsMessage] = asyncio.Queue()
        self._pending[branch] = queue
        try:
            yield queue
        finally:
            self._pending.pop(branch, None)

    async def _final(self, queue: asyncio.Queue[WsMessage]) -> WsMessage:
        while True:
            message = await asyncio.wait_for(queue.get(), WAIT)
            if (message.status or 0) >= 200:
                return message

    async def _exchange(
        self, method: str, uri: str, headers: list[str], body: str = ""
    ) -> WsMessage:
        """Send one request (a new transaction) and return its final response."""
        branch = "z9hG4bK" + _token(12)
        async with self._transaction(branch) as queue:
            await self._send(self._request(method, uri, branch, headers, body))
            return await self._final(queue)

    # --- registration ---------------------------------------------------------------

    async def register(self, expires: int = 300) -> int:
        """REGISTER, answering one digest challenge; the final status."""
        uri, aor = f"sip:{self.domain}", f"<sip:{self.user}@{self.domain}>"
        tag, auth = _token(10), []
        for _ in range(2):
            self.reg_cseq += 1
            headers = [
                f"To: {aor}",
                f'From: "{self.name}" {aor};tag={tag}',
                f"Call-ID: {self.reg_call_id}",
                f"CSeq: {self.reg_cseq} REGISTER",
                f"Contact: {self.contact};expires={expires}",
                "Supported: path, outbound, gruu",
                *auth,
            ]
            answer = await self._exchange("REGISTER", uri, headers)
            challenge = answer.header("WWW-Authenticate")
            if answer.status != 401 or auth or challenge is None:
                return answer.status or 0
            auth = [self._auth(challenge, "REGISTER", uri, "Authorization")]
        return 0

    def _auth(self, challenge: str, method: str, uri: str, header: str) -> str:
        return digest(
            challenge, user=self.user, password=self.password, method=method, uri=uri, header=header
        )

    # --- calls ----------------------------------------------------------------------

    async def call(self, number: str, domain: str | None = None) -> tuple[int, Dialog | None]:
        """INVITE ``number`` (answering the 407), ACK the answer; (final status, dialog)."""
        uri = f"sip:{number}@{domain or self.domain}"
        media = await self.new_media()
        offer = await media.offer()
        call_id, tag = _token(20), _token(10)
        local = f'"{self.name}" <sip:{self.user}@{self.domain}>'
        auth: list[str] = []
        for cseq in (1, 2):
            branch = "z9hG4bK" + _token(12)
            headers = [
                f"To: <{uri}>",
                f"From: {local};tag={tag}",
                f"Call-ID: {call_id}",
                f"CSeq: {cseq} INVITE",
                f"Contact: {self.contact}",
                *auth,
            ]
            async with self._transaction(branch) as queue:
                await self._send(self._request("INVITE", uri, branch, headers, offer))
                answer = await self._final(queue)
            challenge = answer.header("Proxy-Authenticate")
            if answer.status != 407 or auth or challenge is None:
                break
            await self._ack_failure(uri, branch, headers, answer)
            auth = [self._auth(challenge, "INVITE", uri, "Proxy-Authorization")]
        if answer.status != 200:
            await media.close()
            return answer.status or 0, None
        await media.accept(answer.body)
        dialog = Dialog(
            call_id, tag, answer.tag("To") or "", local, answer.header("To") or "",
            answer.contact_uri() or uri, cseq, media,
        )  # fmt: skip
        self.dialogs[call_id] = dialog
        await self._send(self._in_dialog("ACK", dialog, branch="z9hG4bK" + _token(12)))
        return 200, dialog

    async def _ack_failure(
        self, uri: str, branch: str, headers: list[str], answer: WsMessage
    ) -> None:
        """ACK a non-2xx final answer: same branch, the answer's To (RFC 3261 17.1.1.3)."""
        cseq = (answer.header("CSeq") or "1").split()[0]
        kept = [h for h in headers if h.split(":")[0] in ("From", "Call-ID")]
        ack = [f"To: {answer.header('To')}", *kept, f"CSeq: {cseq} ACK"]
        await self._send(self._request("ACK", uri, branch, ack, ""))

    def _in_dialog(self, method: str, dialog: Dialog, *, branch: str) -> str:
        if method != "ACK":
            dialog.cseq += 1
        headers = [
            f"From: {dialog.local_uri};tag={dialog.local_tag}"
            if ";tag=" not in dialog.local_uri
            else f"From: {dialog.local_uri}",
            f"To: {dialog.remote_uri}",
            f"Call-ID: {dialog.call_id}",
            f"CSeq: {dialog.cseq} {method}",
        ]
        return self._request(method, dialog.target, branch, headers, "")

    async def hang_up(self, dialog: Dialog) -> int:
        """BYE; the switch's answer."""
        branch = "z9hG4bK" + _token(12)
        async with self._transaction(branch) as queue:
            await self._send(self._in_dialog("BYE", dialog, branch=branch))
            answer = await self._final(queue)
        dialog.ended.set()
        return answer.status or 0

    async def answer_next_call(self) -> tuple[WsMessage, Dialog]:
        """Wait for the switch's INVITE, ring, answer it with WebRTC media."""
        invite = await asyncio.wait_for(self.invites.get(), WAIT)
        tag = _token(10)
        await self._send(self._response(invite, 180, "Ringing", to_tag=tag))
        media = await self.new_media()
        sdp = await media.answer(invite.body)
        call_id = invite.header("Call-ID") or ""
        dialog = Dialog(
            call_id, tag, invite.tag("From") or "", f"{invite.header('To')};tag={tag}",
            invite.header("From") or "", invite.contact_uri() or "", 0, media,
        )  # fmt: skip
        self.dialogs[call_id] = dialog
        await self._send(self._response(invite, 200, "OK", to_tag=tag, body=sdp))
        return invite, dialog

    def describe(self) -> str:
        return f"{self.user}@{self.domain} over {self.url}: " + "; ".join(self.wire)
