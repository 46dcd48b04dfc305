"""The command line: source management edits resonanz.toml; every command is documented."""

from __future__ import annotations

import re
from contextlib import closing
from pathlib import Path

from typer.main import get_command
from typer.testing import CliRunner

from resonanz.cli import app
from resonanz.settings import load_settings
from warehouse.db import open_warehouse

README = Path(__file__).parents[2] / "README.md"
runner = CliRunner()


def test_sources_add_keeps_defaults_and_remove(tmp_path):
    config = tmp_path / "resonanz.toml"
    config.write_text("# my team's listening setup\n", encoding="utf-8")
    result = runner.invoke(app, ["sources", "add", "heise", "--connector", "rss",
                                 "--stream", "https://www.heise.de/rss/heise-atom.xml", "--config", str(config)])
    assert result.exit_code == 0, result.output
    names = [s.name for s in load_settings(config).sources]
    assert names == ["x_sample_en", "x_sample_de", "feeds_sample", "heise"]
    assert config.read_text(encoding="utf-8").startswith("# my team's listening setup")

    result = runner.invoke(app, ["sources", "remove", "x_sample_de", "--config", str(config)])
    assert result.exit_code == 0, result.output
    assert [s.name for s in load_settings(config).sources] == ["x_sample_en", "feeds_sample", "heise"]


def test_sources_add_refuses_duplicates_and_unknown_connectors(tmp_path):
    config = tmp_path / "resonanz.toml"
    args = ["sources", "add", "feeds_sample", "--connector", "rss", "--stream", "x", "--config", str(config)]
    result = runner.invoke(app, args)
    assert result.exit_code == 2 and "already exists" in result.output
    result = runner.invoke(app, ["sources", "add", "n", "--connector", "myspace", "--stream", "x", "--config", str(config)])
    assert result.exit_code == 2 and "unknown connector" in result.output


def test_sql_runs_read_only_queries(tmp_path):
    db = tmp_path / "w.duckdb"
    with closing(open_warehouse(db)) as con:
        con.execute("INSERT INTO customers VALUES ('12347', 'Iceland', NULL, NULL, 7, 4310.0, 'uci', now())")
    result = runner.invoke(app, ["sql", "SELECT customer_id, country FROM customers", "--duckdb", str(db)], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "12347" in result.output and "Iceland" in result.output
    result = runner.invoke(app, ["sql", "DELETE FROM customers", "--duckdb", str(db)])
    assert result.exit_code == 2 and "read-only" in result.output.lower()


def test_sql_on_missing_warehouse_says_what_to_do(tmp_path):
    result = runner.invoke(app, ["sql", "SELECT 1", "--duckdb", str(tmp_path / "none.duckdb")])
    assert result.exit_code == 2 and "resonanz demo" in result.output


def _command_paths(group, prefix: str = "resonanz") -> list[str]:
    paths = []
    for name, command in group.commands.items():
        path = f"{prefix} {name}"
        if hasattr(command, "commands"):
            paths.extend(_command_paths(command, path))
        else:
            paths.append(path)
    return paths


def test_every_command_is_in_the_readme():
    documented = README.read_text(encoding="utf-8")
    missing = [p for p in _command_paths(get_command(app)) if not re.search(re.escape(p) + r"\b", documented)]
    assert not missing, f"undocumented commands: {missing}"
