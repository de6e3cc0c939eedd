"""Registry specs resolved from DIR/index.json, as the C++ Registry does (docs/registry.md).

A spec is NAME (the latest version), NAME:VERSION or NAME@STAGE. The index is read without a
lock (it is always replaced whole by a rename), and the file is verified against its CRC-32
before it is handed back, so a damaged copy is never loaded.
"""
import json
import os
import re
import zlib
from dataclasses import dataclass

from .errors import ModelError

REGISTRY_FORMAT = "mfrec-registry"
REGISTRY_FORMAT_VERSION = 1
STAGES = ("candidate", "staging", "production")
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}\Z")


@dataclass(frozen=True)
class Source:
    """Where a model came from: a plain file (name empty, version 0) or a registry entry."""
    path: str
    spec: str = ""
    name: str = ""
    version: int = 0
    checksum: str = ""

    def describe(self):
        return self.path if not self.name else f"{self.name}:{self.version} ({self.path})"


def parse_spec(text):
    """(name, version or 0, stage or ""); ValueError for a malformed spec (the C++ message)."""
    bad = ValueError(f"bad model spec '{text}': expected NAME, NAME:VERSION or NAME@STAGE")
    if not isinstance(text, str):
        raise bad
    name, version, stage = text, 0, ""
    if ":" in text and "@" in text:
        raise bad
    if ":" in text:
        name, v = text.split(":", 1)
        if not v or len(v) > 9 or not (v.isascii() and v.isdigit()) or int(v) < 1:
            raise bad
        version = int(v)
    elif "@" in text:
        name, stage = text.split("@", 1)
        if not stage:
            raise bad
    if not name:
        raise bad
    if not _NAME.match(name):
        raise ValueError(f"invalid model name '{name}': use letters, digits, '.', '_' and '-', "
                         "starting with a letter or digit")
    if stage and stage not in STAGES:
        raise ValueError(f"unknown stage '{stage}' (stages: {', '.join(STAGES)})")
    return name, version, stage


def read_index(registry):
    """The index's entries (dicts as stored). FileNotFoundError for a missing directory;
    ModelError for an index that is not a registry index. No index file: no entries."""
    if not os.path.isdir(registry):
        raise FileNotFoundError(f"registry {registry} does not exist or is not a directory")
    path = os.path.join(registry, "index.json")
    try:
        with open(path, "rb") as f:
            doc = json.load(f)
    except FileNotFoundError:
        return []
    except ValueError as e:
        raise ModelError(f"{path}: not a valid registry index: {e}") from None
    if not isinstance(doc, dict) or doc.get("format") != REGISTRY_FORMAT:
        raise ModelError(f'{path}: not a registry index (format is not "{REGISTRY_FORMAT}")')
    version = doc.get("format_version", 0)
    if not isinstance(version, int) or not 1 <= version <= REGISTRY_FORMAT_VERSION:
        raise ModelError(f"{path}: registry index format_version {version} is not supported "
                         f"(this module reads 1 to {REGISTRY_FORMAT_VERSION})")
    entries = []
    for e in doc.get("models", []):
        try:
            name, ver, file = e["name"], e["version"], e["file"]
            ok = (isinstance(name, str) and _NAME.match(name) and isinstance(ver, int) and ver >= 1
                  and isinstance(file, str) and file and not os.path.isabs(file)
                  and ".." not in file.split("/") and isinstance(e["checksum"], str))
        except (KeyError, TypeError):
            ok = False
        if not ok:
            raise ModelError(f"{path}: not a valid registry index: bad entry {json.dumps(e)[:200]}")
        entries.append(e)
    entries.sort(key=lambda e: (e["name"], e["version"]))
    return entries


def find(registry, spec):
    """The index entry `spec` names (no file check). ValueError for a malformed spec, LookupError
    for an unknown model, version or stage (the C++ messages)."""
    name, version, stage = parse_spec(spec)
    entries = read_index(registry)
    mine = [e for e in entries if e["name"] == name]
    if not mine:
        names = sorted({e["name"] for e in entries})
        known = " (the registry is empty)" if not names else \
            " (models: " + ", ".join(names[:10]) + (", ..." if len(names) > 10 else "") + ")"
        raise LookupError(f"unknown model '{name}' in registry {registry}{known}")
    if version:
        for e in mine:
            if e["version"] == version:
                return e
        raise LookupError(f"model '{name}' has no version {version} "
                          f"(versions {mine[0]['version']} to {mine[-1]['version']})")
    if stage:
        for e in mine:
            if stage in e.get("stages", []):
                return e
        raise LookupError(f"no version of model '{name}' has the stage '{stage}'")
    return mine[-1]


def file_checksum(path):
    """'crc32:xxxxxxxx' of a file's bytes: the same CRC-32 as boost::crc_32_type and zlib."""
    crc = 0
    with open(path, "rb") as f:
        while True:
            block = f.read(1 << 20)
            if not block:
                break
            crc = zlib.crc32(block, crc)
    return f"crc32:{crc & 0xFFFFFFFF:08x}"


def resolve(registry, spec):
    """A verified Source for `spec`: ModelError when the file is missing or its checksum does not
    match the index (the file is then never loaded)."""
    e = find(registry, spec)
    path = os.path.join(os.path.abspath(registry), e["file"])
    label = f"{e['name']}:{e['version']}"
    if not os.path.exists(path):
        raise ModelError(f"{path}: model file of {label} is missing from the registry")
    got = file_checksum(path)
    if got != e["checksum"]:
        raise ModelError(f"{path}: checksum mismatch for {label} (file {got}, index {e['checksum']}); "
                         "refusing to load it")
    return Source(path=path, spec=spec, name=e["name"], version=e["version"], checksum=e["checksum"])
