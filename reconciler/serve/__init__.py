"""What FreeSWITCH is told: the immutable snapshot of the applied state, its persistence,
the Jinja2 templates and the mod_xml_curl handler. No database query and no ESL round trip
ever happens on the request path. What the rest of the program uses is exported here."""

from reconciler.serve.snapshot import Snapshot, build_snapshot, load_snapshot, save_snapshot
from reconciler.serve.templating import Templates, load_templates
from reconciler.serve.xmlcurl import XML_PATH, answer, make_app

__all__ = [
    "XML_PATH",
    "Snapshot",
    "Templates",
    "answer",
    "build_snapshot",
    "load_snapshot",
    "load_templates",
    "make_app",
    "save_snapshot",
]
