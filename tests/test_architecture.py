"""Layering and documentation rules that keep the codebase honest.

Import hygiene runs in fresh interpreters (harlequin style): what a module *loads* matters,
not only what it names. CLI coverage follows sqlite-utils' test_docs: every command has help
and appears in the README.
"""

from __future__ import annotations

import contextlib
import io
import re
import subprocess
import sys
from pathlib import Path

import pytest

from appliance.cli import build_parser

ROOT = Path(__file__).resolve().parent.parent


def _loaded_after(import_line: str) -> set[str]:
    code = f"import sys\n{import_line}\nprint('\\n'.join(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True, cwd=ROOT).stdout
    return set(out.split())


@pytest.mark.parametrize("module", ["media.rtmp.session", "media.rtmp.chunk", "media.rtmp.amf0",
                                    "media.rtmp.flv", "media.rtmp.handshake"])
def test_rtmp_parsers_are_sans_io(module: str) -> None:
    """The RTMP engine loads no asyncio, aiohttp or PyAV."""
    loaded = _loaded_after(f"import {module}")
    assert not {"asyncio", "aiohttp", "av"} & loaded


def test_libraries_import_nothing_of_ours() -> None:
    for lib, others in (("media", ("appliance", "relay_client", "tui")),
                        ("relay_client", ("appliance", "media", "tui"))):
        loaded = _loaded_after(f"import {lib}; import pkgutil, importlib\n"
                               f"for m in pkgutil.walk_packages({lib}.__path__, '{lib}.'):"
                               f" importlib.import_module(m.name)")
        assert not {m for m in loaded if m.split(".")[0] in others}, lib


def test_appliance_never_loads_the_tui() -> None:
    loaded = _loaded_after("import appliance.lifecycle, appliance.cli")
    assert not {m for m in loaded if m.split(".")[0] in ("tui", "textual")}


def _commands() -> list[list[str]]:
    parser = build_parser()
    found: list[list[str]] = []

    def walk(p: object, prefix: list[str]) -> None:
        for action in getattr(p, "_actions", []):
            choices = getattr(action, "choices", None)
            if isinstance(choices, dict):
                for name, sub in choices.items():
                    found.append([*prefix, name])
                    walk(sub, [*prefix, name])

    walk(parser, [])
    return found


def _help_of(cmd: list[str]) -> str:
    """``hearth CMD --help`` as printed, from the real parser, in this process (one
    interpreter per command made this test take minutes on a busy 2-core box)."""
    out = io.StringIO()
    with contextlib.redirect_stdout(out), pytest.raises(SystemExit) as done:
        build_parser().parse_args([*cmd, "--help"])
    assert done.value.code == 0, cmd
    return out.getvalue()


def test_every_command_has_help_and_is_documented() -> None:
    readme = (ROOT / "README.md").read_text()
    commands = _commands()
    assert ["stream", "create"] in commands and ["serve"] in commands
    for cmd in commands:
        assert "usage: hearth" in _help_of(cmd), cmd
        assert f"hearth {' '.join(cmd)}" in readme, f"README does not mention hearth {cmd}"
    # The installed entry point prints the same help.
    out = subprocess.run([sys.executable, "-m", "appliance", "channel", "--help"],
                         capture_output=True, text=True, cwd=ROOT)
    assert out.returncode == 0 and out.stdout == _help_of(["channel"])


def test_tui_loads_only_the_schema_of_the_appliance() -> None:
    """`import tui` (and its app) loads no media stack and no appliance module but the schema
    and the admin client (aiohttp + the schema: the one typed client, shared with the CLI)."""
    loaded = _loaded_after("import tui, tui.app, tui.__main__")
    assert not {"av", "aiortc", "sqlite_utils", "media"} & {m.split(".")[0] for m in loaded}
    ours = {m for m in loaded if m.split(".")[0] == "appliance"}
    assert ours <= {"appliance", "appliance.api", "appliance.api.schema",
                    "appliance.api.admin_client"}, ours


def test_the_admin_client_needs_only_aiohttp_and_the_schema() -> None:
    """What makes it shareable with the TUI: no other module of ours behind it."""
    loaded = _loaded_after("import appliance.api.admin_client")
    ours = {m for m in loaded if m.split(".")[0] in ("appliance", "media", "relay_client")}
    assert ours <= {"appliance", "appliance.api", "appliance.api.schema",
                    "appliance.api.admin_client"}, ours


# ---- comments cite our own threat model --------------------------------------------------------

_THREAT_MODEL = ROOT / "docs" / "threat-model.md"
_CITATION = re.compile(r"threat-model\.md\s*§\s*([A-Za-z0-9-]+)")


def _cited_texts() -> dict[Path, str]:
    dirs = ("appliance", "media", "relay_client", "tui", "tests", "bench", "scripts", "docs")
    files = [p for d in dirs for p in (ROOT / d).rglob("*")
             if p.is_file() and p.suffix in {".py", ".js", ".md", ".sh", ".toml", ".css", ".html"}
             and "__snapshots__" not in p.parts and p != Path(__file__).resolve()]
    return {p: p.read_text(errors="replace") for p in [*files, ROOT / "README.md"] if p.exists()}


def test_threat_model_citations_name_existing_sections() -> None:
    """``docs/threat-model.md §x`` must name one of its stable anchors (``<a id="x">``), and
    nothing cites the out-of-repo "bad-input" notes the early code referred to."""
    anchors = set(re.findall(r'<a id="([a-z0-9-]+)"></a>', _THREAT_MODEL.read_text()))
    assert {"rtmp", "http", "whep", "chat", "nostr-relays", "admin-socket", "filesystem"} <= anchors
    texts = _cited_texts()
    missing = sorted({(str(p.relative_to(ROOT)), m) for p, t in texts.items()
                      for m in _CITATION.findall(t) if m not in anchors})
    assert not missing, f"no such section in docs/threat-model.md: {missing}"
    stale = sorted(str(p.relative_to(ROOT)) for p, t in texts.items()
                   if re.search("bad-input", t, re.IGNORECASE))
    assert not stale, f"cite docs/threat-model.md §<section> instead of bad-input: {stale}"


# ---- all SQL lives in appliance/db ---------------------------------------------------------------

_SQL = re.compile(r"""["'](SELECT|INSERT INTO|INSERT OR|DELETE FROM|UPDATE \w+ SET|CREATE """
                  r"""(TABLE|INDEX)|ALTER TABLE|PRAGMA)\b""")


def test_sql_lives_only_in_the_db_package() -> None:
    """Queries belong in ``appliance/db`` (one writer, one place to review them)."""
    outside = sorted(
        f"{p.relative_to(ROOT)}:{n}"
        for pkg in ("appliance", "tui", "media", "relay_client")
        for p in (ROOT / pkg).rglob("*.py") if "db" not in p.relative_to(ROOT).parts[1:2]
        for n, line in enumerate(p.read_text().splitlines(), 1) if _SQL.search(line))
    assert not outside, f"SQL outside appliance/db: {outside}"
