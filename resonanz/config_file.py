"""Edit the user's resonanz.toml in place (keeping its comments and layout), for `resonanz sources`."""

from __future__ import annotations

from pathlib import Path

import tomlkit

from resonanz.settings import SourceSpec, load_settings


def _read(path: Path) -> tomlkit.TOMLDocument:
    return tomlkit.parse(path.read_text(encoding="utf-8")) if path.exists() else tomlkit.document()


def _sources_array(doc: tomlkit.TOMLDocument, path: Path) -> tomlkit.items.AoT:
    if "sources" not in doc:
        # The user file's [[sources]] replaces the bundled list entirely, so start from what is
        # in effect now; otherwise adding one source would silently drop the defaults.
        current = tomlkit.aot()
        for spec in load_settings(path).sources:
            current.append(tomlkit.item(spec.model_dump(exclude_defaults=True)))
        doc["sources"] = current
    return doc["sources"]  # type: ignore[return-value]


def add_source(path: Path, spec: SourceSpec) -> None:
    """Append a source to the user file; a source of that name must not exist yet."""
    doc = _read(path)
    sources = _sources_array(doc, path)
    if any(item.get("name") == spec.name for item in sources):
        raise ValueError(f"a source named {spec.name!r} already exists in {path}")
    sources.append(tomlkit.item(spec.model_dump(exclude_defaults=True)))
    path.write_text(tomlkit.dumps(doc), encoding="utf-8")


def remove_source(path: Path, name: str) -> None:
    """Remove a source from the user file (its stored posts and cursor stay in the warehouse)."""
    doc = _read(path)
    sources = _sources_array(doc, path)
    kept = [item for item in sources if item.get("name") != name]
    if len(kept) == len(sources):
        raise ValueError(f"no source named {name!r} in {path}")
    new = tomlkit.aot()
    for item in kept:
        new.append(item)
    doc["sources"] = new
    path.write_text(tomlkit.dumps(doc), encoding="utf-8")
