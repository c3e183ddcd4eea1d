"""The forms mod_xml_curl posts, built for ``pbx render`` (which answers them without a
switch). Field names are the ones the captured FreeSWITCH 1.10 requests carry."""

from __future__ import annotations


def directory_form(domain: str, user: str, action: str = "sip_auth") -> dict[str, str]:
    """A directory lookup as a REGISTER's digest auth (``sip_auth``) or a ``user/`` dial
    string (``user_call``) makes it."""
    return {
        "hostname": "pbx-render",
        "section": "directory",
        "tag_name": "domain",
        "key_name": "name",
        "key_value": domain,
        "action": action,
        "key": "id",
        "user": user,
        "domain": domain,
    }


def dialplan_form(context: str, number: str, caller: str | None = None) -> dict[str, str]:
    """A dialplan lookup of ``number`` in ``context``; ``caller`` is the authenticated
    calling extension (feature codes act on its agents)."""
    form = {
        "hostname": "pbx-render",
        "section": "dialplan",
        "tag_name": "",
        "key_name": "",
        "key_value": "",
        "Hunt-Context": context,
        "Caller-Context": context,
        "Hunt-Destination-Number": number,
        "Caller-Destination-Number": number,
    }
    if caller:
        form.update(
            {
                "variable_user_name": caller,
                "variable_domain_name": context,
                "Caller-Username": caller,
            }
        )
    return form


def configuration_form(name: str = "callcenter.conf", queue: str | None = None) -> dict[str, str]:
    """A configuration fetch; ``queue`` as mod_callcenter's ``CC-Queue`` on a queue load."""
    form = {
        "hostname": "pbx-render",
        "section": "configuration",
        "tag_name": "configuration",
        "key_name": "name",
        "key_value": name,
    }
    if queue:
        form["CC-Queue"] = queue
    return form
