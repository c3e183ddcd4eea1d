"""The two switch-facing rules with one home each: argument quoting for FreeSWITCH's
tokenizer (used by the ESL commands and by the dialplan's feature codes alike) and the
``user/<n>@<domain>`` contact (built and read back in core.model)."""

from __future__ import annotations

import pytest

from reconciler.core.model import user_contact, user_contact_extension
from reconciler.core.switch_args import quote_arg
from reconciler.switch.callcenter import commands as cmd


@pytest.mark.parametrize("status", cmd.AGENT_STATUSES)
def test_the_feature_codes_and_the_esl_commands_quote_a_status_alike(status: str) -> None:
    sent = cmd.agent_set("status", "a@acme.example.com", status)
    assert sent.endswith(" " + quote_arg(status))


def test_quoting_escapes_what_the_tokenizer_would_read_as_quotes() -> None:
    assert quote_arg("it's on") == "'it\\'s on'"  # the old dialplan copy sent 'it's on'


@pytest.mark.parametrize("number", ["1001", "7", "123456789012345"])
def test_a_user_contact_reads_back_the_extension_it_was_built_from(number: str) -> None:
    assert (
        user_contact_extension(user_contact(number, "acme.example.com"), "acme.example.com")
        == number
    )


@pytest.mark.parametrize(
    "contact",
    [
        "user/1001@other.example.com",
        "user/10a1@acme.example.com",
        "user/@acme.example.com",
        "user/1001",
        "sofia/gateway/carrier/+4930123456",
        "USER/1001@acme.example.com",
        "user/1001@acme.example.com.evil.net",
    ],
)
def test_anything_else_is_not_a_user_contact_of_the_domain(contact: str) -> None:
    assert user_contact_extension(contact, "acme.example.com") is None


def test_the_domain_is_compared_case_insensitively_as_before() -> None:
    assert user_contact_extension("user/1001@ACME.example.com", "acme.example.com") == "1001"
