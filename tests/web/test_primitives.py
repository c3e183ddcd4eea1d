"""Rate limits, TOTP, passwords, tokens and search: the small parts, without a database."""

from __future__ import annotations

from dataclasses import replace
from ipaddress import ip_network

import pyotp
import pytest

from reconciler.core.model import InboundNumber
from reconciler.store.accounts import next_used_steps
from reconciler.web import totp
from reconciler.web.config import PortalConfig, RateLimit, parse_networks
from reconciler.web.errors import BadRequest, RateLimited
from reconciler.web.passwords import check_new_password, hash_password, verify
from reconciler.web.proxies import client_address
from reconciler.web.ratelimit import LoginLimiter, RefusalAudit, SlidingWindow, Throttled
from reconciler.web.search import SearchIndex
from reconciler.web.tokens import same_secret, token_digest
from tests.fakes.portal import demo_state


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_window_refuses_once_full_and_forgets_after_the_window() -> None:
    clock = Clock()
    window = SlidingWindow(RateLimit(attempts=3, window=60), clock)
    for _ in range(3):
        window.check("k")
        window.hit("k")
    with pytest.raises(RateLimited) as refused:
        window.check("k")
    assert 0 < refused.value.retry_after <= 60
    clock.now += 61
    window.check("k")


def _limiter(clock: Clock, pair: int = 3, address: int = 50, account: int = 20) -> LoginLimiter:
    return LoginLimiter(
        RateLimit(pair, 900), RateLimit(address, 300), RateLimit(account, 900), clock
    )


def test_an_attempt_is_reserved_before_its_password_is_checked() -> None:
    """Concurrent attempts: the fourth is refused before the first three are judged."""
    limiter = _limiter(Clock())
    for _ in range(3):
        limiter.reserve("a@x.org", "10.0.0.1")
    with pytest.raises(Throttled) as refused:
        limiter.reserve("A@X.org", "10.0.0.1")
    assert refused.value.key == "account+address a@x.org 10.0.0.1"


def test_failures_per_account_and_address_back_off_doubling_and_never_touch_other_addresses() -> (
    None
):
    clock = Clock()
    limiter = _limiter(clock)
    waits = []
    for _ in range(8):
        try:
            limiter.reserve("a@x.org", "10.0.0.1")
        except Throttled as exc:
            waits.append(round(exc.retry_after))
            clock.now += exc.retry_after
            limiter.reserve("a@x.org", "10.0.0.1")
    assert waits == [1, 2, 4, 8, 16]
    clock.now += 32
    limiter.reserve("a@x.org", "10.0.0.1")  # waiting out a wait buys one attempt, no more
    with pytest.raises(Throttled) as refused:
        limiter.reserve("a@x.org", "10.0.0.1")
    assert round(refused.value.retry_after) == 64
    limiter.reserve("a@x.org", "10.0.0.2")  # the owner, elsewhere: no wait
    clock.now += 3600
    limiter.reserve("a@x.org", "10.0.0.1")  # an hour later: still the same streak
    with pytest.raises(Throttled):
        limiter.reserve("a@x.org", "10.0.0.1")
    clock.now += 24 * 3600 + 1  # a day without a failure: forgotten
    for _ in range(3):
        limiter.reserve("a@x.org", "10.0.0.1")


def test_success_gives_the_reservation_back_and_ends_the_streak() -> None:
    limiter = _limiter(Clock(), address=2)
    for _ in range(2):
        limiter.reserve("a@x.org", "ip")
        limiter.succeeded("a@x.org", "ip")  # a NAT full of agents logging in: no count
    limiter.reserve("b@x.org", "ip")
    limiter.reserve("c@x.org", "ip")
    with pytest.raises(Throttled):  # two failures: the address is spent
        limiter.reserve("d@x.org", "ip")


def test_the_account_cap_spares_addresses_that_logged_in_before_and_a_super_admin_clears_it() -> (
    None
):
    limiter = _limiter(Clock(), pair=50, account=5)
    limiter.reserve("a@x.org", "home")
    limiter.succeeded("a@x.org", "home")
    for n in range(5):
        limiter.reserve("a@x.org", f"bot{n}")
    with pytest.raises(Throttled, match="too many"):
        limiter.reserve("a@x.org", "bot9")
    assert [lock.email for lock in limiter.locks()] == ["a@x.org"]
    limiter.reserve("a@x.org", "home")  # the owner's known address still gets in
    assert limiter.clear("a@x.org") >= 5
    limiter.reserve("a@x.org", "bot9")
    assert limiter.locks() == []


def test_an_attempt_never_judged_costs_nothing() -> None:
    limiter = _limiter(Clock(), pair=1)
    limiter.reserve("a@x.org", "ip")
    limiter.release("a@x.org", "ip")
    limiter.reserve("a@x.org", "ip")


def test_refusals_are_audited_once_per_key_and_window_and_the_rest_counted() -> None:
    clock = Clock()
    refusals = RefusalAudit(clock)
    assert refusals.first("address ip", 60) == (True, 0)
    assert [refusals.first("address ip", 60) for _ in range(3)] == [(False, 0)] * 3
    assert refusals.first("address other", 60) == (True, 0)
    clock.now += 61
    assert refusals.first("address ip", 60) == (True, 3)


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        ("10.0.0.5", ["198.51.100.7, 203.0.113.9"], "203.0.113.9"),  # rightmost untrusted
        ("10.0.0.5", ["198.51.100.7", "203.0.113.9, 10.0.0.6"], "203.0.113.9"),
        ("203.0.113.1", ["198.51.100.7"], "203.0.113.1"),  # not a trusted peer: ignored
        ("10.0.0.5", [], "10.0.0.5"),
        ("10.0.0.5", ["garbage, 10.0.0.6"], "10.0.0.6"),  # malformed: stop at the last proxy
        ("10.0.0.5", ["10.0.0.7"], "10.0.0.7"),  # all trusted: the farthest one
        ("::ffff:10.0.0.5", ["2001:db8::1"], "2001:db8::1"),
        (None, ["198.51.100.7"], "unknown"),
    ],
)
def test_the_client_address_behind_trusted_proxies(
    peer: str | None, forwarded: list[str], client: str
) -> None:
    assert client_address(peer, forwarded, parse_networks("10.0.0.0/8")) == client


def test_trusted_proxies_setting() -> None:
    assert parse_networks(" 10.0.0.0/8, 192.168.1.1 ,2001:db8::/32") == (
        ip_network("10.0.0.0/8"),
        ip_network("192.168.1.1/32"),
        ip_network("2001:db8::/32"),
    )
    assert parse_networks("") == ()
    with pytest.raises(ValueError, match="CIDR"):
        parse_networks("10.0.0.0/8,proxy.example.net")


def test_totp_steps_are_each_usable_once_and_the_next_one_does_not_block_the_current() -> None:
    used = next_used_steps(None, 101)  # a phone slightly ahead
    assert used is not None
    current = next_used_steps(used, 100)
    assert current is not None
    assert next_used_steps(current, 100) is None and next_used_steps(current, 101) is None
    assert next_used_steps(current, 99) is not None
    assert next_used_steps(current, 97) is None  # older than the window: treated as used
    assert next_used_steps(100, 100) is None  # a plain step (enrolment) reads the same


def test_totp_accepts_one_step_of_skew_and_reports_the_step() -> None:
    secret = totp.new_secret()
    now = 1_700_000_000.0
    code = pyotp.TOTP(secret).at(now - 30)
    assert totp.matching_step(secret, code, now) == pyotp.TOTP(secret).timecode(now) - 1
    assert totp.matching_step(secret, pyotp.TOTP(secret).at(now - 90), now) is None
    assert totp.matching_step(secret, "12345", now) is None
    assert totp.matching_step(secret, "abcdef", now) is None


def test_enrol_uri_and_qr_code() -> None:
    uri = totp.enrol_uri(totp.new_secret(), "ops@pbx.example.net")
    assert uri.startswith("otpauth://totp/pbx-reconciler:ops%40pbx.example.net?")
    assert totp.qr_data_uri(uri).startswith("data:image/svg+xml")


def test_passwords_are_argon2id_and_unknown_accounts_still_cost_a_verification() -> None:
    stored = hash_password("a long enough passphrase")
    assert stored.startswith("$argon2id$")
    assert verify(stored, "a long enough passphrase").ok
    assert not verify(stored, "wrong").ok
    assert not verify(None, "a long enough passphrase").ok


@pytest.mark.parametrize(
    ("password", "confirmation", "message"),
    [
        ("short", "short", "12 to"),
        ("a long enough passphrase", "a different one here", "differ"),
        ("alice@acme.example.com", "alice@acme.example.com", "email"),
    ],
)
def test_new_password_rules(password: str, confirmation: str, message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        check_new_password(password, confirmation, "alice@acme.example.com")


def test_token_digests_and_constant_time_comparison() -> None:
    assert len(token_digest("x")) == 32
    assert same_secret("abc", "abc") and not same_secret("abd", "abc")
    assert not same_secret(None, "abc")


def test_search_finds_tenants_extensions_and_people() -> None:
    index = SearchIndex(demo_state())
    kinds = {(h.kind, h.tenant_id, h.key) for h in index.search("dave")}
    assert ("user", "acme", "dave@example.org") in kinds
    assert ("user", "globex", "dave@example.org") in kinds
    assert [h.key for h in index.search("1010")] == ["1010"]
    assert index.search("globex.example")[0].kind == "tenant"
    assert index.search("   ") == []
    assert index.search("no such thing") == []


def test_search_also_finds_agents_queues_and_inbound_numbers() -> None:
    state = demo_state()
    acme = state["acme"]
    did = InboundNumber(number="+14155550100", destination_kind="queue", destination="support")
    state["acme"] = replace(acme, inbound_numbers={did.number: did})
    index = SearchIndex(state)
    assert ("agent", "acme", "bob2") in {(h.kind, h.tenant_id, h.key) for h in index.search("bob2")}
    assert [(h.kind, h.key) for h in index.search("7001")] == [("queue", "sales")]
    assert [(h.kind, h.key) for h in index.search("4155550100")] == [("did", "+14155550100")]
    assert index.search("+1415555")[0].label == "+14155550100 -> queue support"


@pytest.mark.parametrize(
    ("kwargs", "secure"),
    [
        ({"public_url": "https://pbx.example.net"}, True),
        ({"public_url": "http://127.0.0.1:8081"}, False),
        ({"public_url": "http://127.0.0.1:8081", "secure_cookies": True}, True),
    ],
)
def test_cookies_are_secure_when_served_over_https(kwargs: dict[str, object], secure: bool) -> None:
    assert PortalConfig(**kwargs).cookies_secure is secure  # type: ignore[arg-type]


def test_config_refuses_nonsense() -> None:
    with pytest.raises(ValueError, match="portal URL"):
        PortalConfig(public_url="pbx.example.net")
    with pytest.raises(ValueError, match="timeouts"):
        PortalConfig(idle_timeout=100, absolute_timeout=10)


def test_config_from_the_cli_settings() -> None:
    from reconciler.web.config import config_from_settings

    config = config_from_settings("0.0.0.0:9443", login_limit="3/60")
    assert (config.listen_host, config.listen_port) == ("0.0.0.0", 9443)
    assert config.public_url == "http://0.0.0.0:9443"
    assert config.login_per_account_address == RateLimit(3, 60.0)
    assert config_from_settings("[::1]:8081").public_url == "http://[::1]:8081"
    with pytest.raises(ValueError, match="HOST:PORT"):
        config_from_settings("8081")
    with pytest.raises(ValueError, match="ATTEMPTS/SECONDS"):
        config_from_settings(address_limit="many")
