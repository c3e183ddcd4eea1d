"""Rate limits, TOTP, passwords, tokens and search: the small parts, without a database."""

from __future__ import annotations

import pyotp
import pytest

from reconciler.web import totp
from reconciler.web.config import PortalConfig, RateLimit
from reconciler.web.errors import BadRequest, RateLimited
from reconciler.web.passwords import check_new_password, hash_password, verify
from reconciler.web.ratelimit import LoginLimiter, SlidingWindow
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


def test_account_failures_and_address_attempts_are_limited_separately() -> None:
    clock = Clock()
    limiter = LoginLimiter(RateLimit(2, 900), RateLimit(5, 300), clock)
    for _ in range(2):
        limiter.before_attempt("a@x.org", "10.0.0.1")
        limiter.failed("a@x.org")
    with pytest.raises(RateLimited):
        limiter.before_attempt("A@X.org", "10.0.0.2")  # same account, other address
    limiter.before_attempt("b@x.org", "10.0.0.1")  # other account, same address: fine
    for _ in range(2):
        limiter.before_attempt(f"c{_}@x.org", "10.0.0.1")
    with pytest.raises(RateLimited):
        limiter.before_attempt("d@x.org", "10.0.0.1")  # the address used up its 5


def test_success_clears_the_account_window() -> None:
    limiter = LoginLimiter(RateLimit(2, 900), RateLimit(50, 300), Clock())
    limiter.before_attempt("a@x.org", "ip")
    limiter.failed("a@x.org")
    limiter.succeeded("a@x.org")
    limiter.before_attempt("a@x.org", "ip")
    limiter.failed("a@x.org")
    limiter.before_attempt("a@x.org", "ip")


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
    assert config.login_per_account == RateLimit(3, 60.0)
    assert config_from_settings("[::1]:8081").public_url == "http://[::1]:8081"
    with pytest.raises(ValueError, match="HOST:PORT"):
        config_from_settings("8081")
    with pytest.raises(ValueError, match="ATTEMPTS/SECONDS"):
        config_from_settings(address_limit="many")
