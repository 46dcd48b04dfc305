"""The `resonanz` command line: run the demo or the pipeline, list sources, query the warehouse."""

from __future__ import annotations

import os
from contextlib import closing
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from resonanz.settings import Settings, load_settings

app = typer.Typer(add_completion=False, no_args_is_help=True, help=__doc__)
sources_app = typer.Typer(no_args_is_help=True, help="Configured sources.")
app.add_typer(sources_app, name="sources")
console = Console()

EXAMPLE_QUERIES = {
    "Top 10 influencers with their explanation": """\
SELECT rank, source, account_id, round(score, 4) AS score, explanation
FROM influence_scores
WHERE as_of = (SELECT max(as_of) FROM influence_scores)
ORDER BY rank
LIMIT 10;""",
    "Sentiment per tracked brand and language": """\
SELECT b.brand, l.label AS language, s.label AS sentiment, count(*) AS posts
FROM brand_mentions b
JOIN annotations s ON s.source = b.source AND s.post_id = b.post_id AND s.task = 'sentiment'
JOIN annotations l ON l.source = b.source AND l.post_id = b.post_id AND l.task = 'language'
GROUP BY ALL
ORDER BY b.brand, language, sentiment;""",
}

ConfigOption = Annotated[Path | None, typer.Option("--config", "-c", help="A resonanz.toml to use.")]


def prepare_prefect(settings: Settings) -> None:
    """Point Prefect at a home inside the working directory and its local ephemeral API.

    Must run before prefect is imported: Prefect reads these settings once, at import.
    """
    os.environ.setdefault("PREFECT_HOME", str(Path(settings.prefect_home).resolve()))
    os.environ.setdefault("PREFECT_SERVER_ANALYTICS_ENABLED", "false")
    os.environ.setdefault("PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS", "120")
    os.environ.setdefault("DO_NOT_TRACK", "1")


def _run_pipeline(config: Path | None, sources: list[str] | None, duckdb_path: Path | None) -> Any:
    settings = load_settings(config)
    prepare_prefect(settings)
    from connectors.base import ConnectorError  # noqa: PLC0415 - after the Prefect environment is set
    from flows.listening import listening_pipeline  # noqa: PLC0415
    from warehouse.db import WarehouseLocked  # noqa: PLC0415

    try:
        return listening_pipeline(
            config_file=str(config) if config else None,
            duckdb_path=str(duckdb_path) if duckdb_path else None,
            sources=sources,
        )
    except (ConnectorError, WarehouseLocked, KeyError) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None


def _print_summary(result: Any) -> None:
    from warehouse.db import open_warehouse, table_counts  # noqa: PLC0415
    from warehouse.schema import DATA_TABLES  # noqa: PLC0415

    with closing(open_warehouse(result.duckdb_path, read_only=True)) as con:
        counts = table_counts(con, (*DATA_TABLES, "pipeline_runs"))
    table = Table(title="Rows in the warehouse", show_header=True)
    table.add_column("table")
    table.add_column("rows", justify="right")
    for name, n in counts.items():
        table.add_row(name, f"{n:,}")
    console.print(table)

    timing = ", ".join(f"{k} {v:.1f}s" for k, v in result.stage_seconds.items())
    console.print(f"Stage times: {timing}")

    top = Table(title="Top influencers", show_header=True, show_lines=False)
    top.add_column("#", justify="right")
    top.add_column("account")
    top.add_column("score", justify="right")
    top.add_column("why")
    for t in result.top:
        top.add_row(str(t.rank), f"{t.source}:{t.handle}", f"{t.score:.4f}", t.explanation)
    console.print(top)
    console.print(f"Alerts fired in this run: {result.alerts_fired}")
    console.print(f"\nDuckDB warehouse: [bold]{Path(result.duckdb_path).resolve()}[/bold]")
    if result.report_path:
        console.print(f"HTML report:      [bold]{Path(result.report_path).resolve()}[/bold]")
    console.print("\nTry these in any DuckDB client (e.g. `resonanz sql \"...\"` or `duckdb resonanz.duckdb`):")
    for title, sql in EXAMPLE_QUERIES.items():
        console.print(f"\n-- {title}\n{sql}", highlight=False, markup=False)


@app.command()
def demo(config: ConfigOption = None) -> None:
    """Run the whole pipeline on the bundled sample data and show what it found."""
    console.print("Running listening_pipeline on the bundled sample (first start of Prefect's local API takes ~15 s)...")
    result = _run_pipeline(config, None, None)
    _print_summary(result)


@app.command()
def run(
    config: ConfigOption = None,
    source: Annotated[list[str] | None, typer.Option("--source", "-s", help="Only this source (repeatable).")] = None,
    duckdb_path: Annotated[Path | None, typer.Option("--duckdb", help="Warehouse file.")] = None,
) -> None:
    """Run the pipeline once over the configured sources."""
    result = _run_pipeline(config, source, duckdb_path)
    _print_summary(result)


@app.command()
def collect(
    config: ConfigOption = None,
    source: Annotated[list[str] | None, typer.Option("--source", "-s", help="Only this source (repeatable).")] = None,
    duckdb_path: Annotated[Path | None, typer.Option("--duckdb", help="Warehouse file.")] = None,
) -> None:
    """Collect new posts from the configured sources, resuming each from its cursor."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn  # noqa: PLC0415

    settings = load_settings(config)
    prepare_prefect(settings)
    from connectors.base import ConnectorError  # noqa: PLC0415
    from flows.collect import collect_sources  # noqa: PLC0415
    from warehouse.db import WarehouseLocked  # noqa: PLC0415

    names = source or [s.name for s in settings.sources if s.enabled]
    results: dict[str, dict[str, Any]] = {}
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        bar = progress.add_task("collecting", total=len(names))
        for name in names:
            progress.update(bar, description=f"collecting {name}")
            try:
                results.update(collect_sources(
                    config_file=str(config) if config else None,
                    duckdb_path=str(duckdb_path) if duckdb_path else None,
                    sources=[name],
                ))
            except (ConnectorError, WarehouseLocked, KeyError) as exc:
                console.print(f"[red]error:[/red] {name}: {exc}")
                results[name] = {"error": str(exc)}
            progress.advance(bar)
    table = Table(title="Collected")
    for col in ("source", "pages", "posts", "accounts", "interactions", "quarantine"):
        table.add_column(col, justify="left" if col == "source" else "right")
    for name, counts in results.items():
        table.add_row(name, *(str(counts.get(k, "-")) for k in ("pages", "posts", "accounts", "interactions", "quarantine")))
    console.print(table)
    if any("error" in c for c in results.values()):
        raise typer.Exit(2)


@sources_app.command("list")
def sources_list(config: ConfigOption = None) -> None:
    """List the configured sources and the connectors available."""
    from connectors.registry import available_connectors  # noqa: PLC0415

    settings = load_settings(config)
    table = Table(title="Configured sources")
    for col in ("name", "connector", "stream", "enabled"):
        table.add_column(col)
    for spec in settings.sources:
        table.add_row(spec.name, spec.connector, spec.stream, "yes" if spec.enabled else "no")
    console.print(table)
    known = Table(title="Available connectors")
    known.add_column("connector")
    known.add_column("what it reads")
    for name, description in available_connectors().items():
        known.add_row(name, description)
    console.print(known)


@app.command()
def sql(
    query: Annotated[str, typer.Argument(help="SQL to run against the warehouse (read-only).")],
    config: ConfigOption = None,
    duckdb_path: Annotated[Path | None, typer.Option("--duckdb", help="Warehouse file.")] = None,
) -> None:
    """Run a read-only SQL query against the warehouse and print the result."""
    import duckdb  # noqa: PLC0415

    from warehouse.db import WarehouseLocked, open_warehouse  # noqa: PLC0415

    path = duckdb_path or load_settings(config).duckdb_path
    if not Path(path).exists():
        console.print(f"[red]error:[/red] {path} does not exist yet: run `resonanz demo` or `resonanz run` first")
        raise typer.Exit(2)
    try:
        with closing(open_warehouse(path, read_only=True)) as con:
            relation = con.sql(query)
            if relation is None:
                return
            columns, rows = relation.columns, relation.fetchall()
    except (duckdb.Error, WarehouseLocked) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    table = Table(show_header=True)
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    console.print(table)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
