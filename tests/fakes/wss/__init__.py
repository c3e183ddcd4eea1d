"""What FreeSWITCH sends a phone registered over secure WebSocket, captured from the real
switch (``captures/``, see its README), replayed by the browser phone's test peer
(``tests/web/sip_peer.py``)."""
