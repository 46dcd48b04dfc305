"""Every connector added beside the core ones is documented for users."""

from __future__ import annotations

from pathlib import Path

from connectors.extra_builders import EXTRA_BUILDERS

DOCS = Path(__file__).parents[2] / "docs"


def test_every_extra_connector_is_documented() -> None:
    text = (DOCS / "sources.md").read_text(encoding="utf-8") + (DOCS / "import_mapping.md").read_text(encoding="utf-8")
    missing = [name for name in EXTRA_BUILDERS if f"`{name}`" not in text]
    assert not missing, f"document these connectors in docs/sources.md or docs/import_mapping.md: {missing}"


def test_import_mapping_lists_every_mapping_field() -> None:
    from connectors.importers import RECORD_FIELDS

    text = (DOCS / "import_mapping.md").read_text(encoding="utf-8")
    assert [field for field in RECORD_FIELDS if f"`{field}`" not in text] == []
