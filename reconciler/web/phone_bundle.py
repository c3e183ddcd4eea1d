"""Where the browser phone's script is: SIP.js and the phone bundled by esbuild from
``reconciler/web/phone`` (``npm ci && npm run build`` there) into ``phone/dist``, which git
ignores. The build names the file by its content hash and writes ``manifest.json``; the
portal serves it under that name with a year-long immutable cache, so a rebuilt phone is a
new URL. Without a build the phone page names the command instead of breaking."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from importlib import resources
from importlib.abc import Traversable

BUILD_COMMAND = "cd reconciler/web/phone && npm ci && npm run build"
ASSET_NAME = re.compile(r"^phone-[A-Za-z0-9]{4,32}\.js$")


def dist_folder() -> Traversable:
    return resources.files("reconciler.web") / "phone" / "dist"


@dataclass(frozen=True, slots=True)
class Bundle:
    """The built script's file name (``phone-<hash>.js``) and its bytes."""

    name: str
    body: bytes


class BundleFinder:
    """Reads the manifest once it exists (a build after start-up is picked up on the next
    page; once found, it is kept: a rebuild needs a restart, as any code change does)."""

    def __init__(self, folder: Traversable | None = None) -> None:
        self._folder = folder
        self._found: Bundle | None = None

    def find(self) -> Bundle | None:
        if self._found is None:
            self._found = _read(self._folder or dist_folder())
        return self._found


def _read(folder: Traversable) -> Bundle | None:
    try:
        manifest = json.loads((folder / "manifest.json").read_text())
        name = manifest["phone.js"]
        if not isinstance(name, str) or not ASSET_NAME.match(name):
            return None
        return Bundle(name, (folder / name).read_bytes())
    except (OSError, ValueError, KeyError, TypeError):
        return None
