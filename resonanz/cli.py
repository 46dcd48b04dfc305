"""The `resonanz` command line: run the demo or the pipeline, list sources, query the warehouse."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import closing, contextmanager
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


def _run_pipeline(config: Path | None, sources: list[str] | None, duckdb_path: Path | None,
                  alert_period: str = "last-week") -> Any:
    settings = load_settings(config)
    prepare_prefect(settings)
    from connectors.base import ConnectorError  # noqa: PLC0415 - after the Prefect environment is set
    from flows.listening import listening_pipeline  # noqa: PLC0415
    from flows.writer_lock import WriterBusy  # noqa: PLC0415
    from warehouse.db import WarehouseLocked  # noqa: PLC0415

    try:
        return listening_pipeline(
            config_file=str(config) if config else None,
            duckdb_path=str(duckdb_path) if duckdb_path else None,
            sources=sources,
            alert_period=alert_period,
        )
    except (ConnectorError, WarehouseLocked, WriterBusy, KeyError) as exc:
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
    # The sample is historical (2008-2019), so alerts are evaluated over all of it, not the last week.
    result = _run_pipeline(config, None, None, alert_period="all")
    _print_summary(result)


@app.command()
def run(
    config: ConfigOption = None,
    source: Annotated[list[str] | None, typer.Option("--source", "-s", help="Only this source (repeatable).")] = None,
    duckdb_path: Annotated[Path | None, typer.Option("--duckdb", help="Warehouse file.")] = None,
    alert_period: Annotated[str, typer.Option("--alert-period", help="last-week (default) or all, for archives.")]
    = "last-week",
) -> None:
    """Run the pipeline once over the configured sources."""
    result = _run_pipeline(config, source, duckdb_path, alert_period)
    _print_summary(result)


@app.command()
def collect(
    config: ConfigOption = None,
    source: Annotated[list[str] | None, typer.Option("--source", "-s", help="Only this source (repeatable).")] = None,
    duckdb_path: Annotated[Path | None, typer.Option("--duckdb", help="Warehouse file.")] = None,
) -> None:
    """Collect new posts from the configured sources, resuming each from its cursor."""
    from rich.progress import (  # noqa: PLC0415
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
    )

    settings = load_settings(config)
    prepare_prefect(settings)
    from connectors.base import ConnectorError  # noqa: PLC0415
    from flows.scheduled import collect_flow  # noqa: PLC0415
    from warehouse.db import WarehouseLocked  # noqa: PLC0415

    names = source or [s.name for s in settings.sources if s.enabled]
    results: dict[str, dict[str, Any]] = {}
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        bar = progress.add_task("collecting", total=len(names))
        for name in names:
            progress.update(bar, description=f"collecting {name}")
            try:
                outcome = collect_flow(
                    config_file=str(config) if config else None,
                    duckdb_path=str(duckdb_path) if duckdb_path else None,
                    sources=[name],
                )
                if "skipped" in outcome:  # another run holds the warehouse's writer lock
                    raise WarehouseLocked(outcome["skipped"])
                results.update(outcome)
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


def _user_config(config: Path | None) -> Path:
    return Path(config or os.environ.get("RESONANZ_CONFIG", "resonanz.toml"))


@sources_app.command("add")
def sources_add(
    name: Annotated[str, typer.Argument(help="A unique name; it keys the source's cursor.")],
    connector: Annotated[str, typer.Option("--connector", help="See `resonanz sources list`.")],
    stream: Annotated[str, typer.Option("--stream", help="Query, feed URL, OPML file, subreddit, ...")],
    option: Annotated[list[str] | None, typer.Option("--option", help="KEY=VALUE for the connector (repeatable).")] = None,
    config: ConfigOption = None,
) -> None:
    """Add a source to resonanz.toml."""
    from connectors.registry import available_connectors  # noqa: PLC0415
    from resonanz.config_file import add_source  # noqa: PLC0415
    from resonanz.settings import SourceSpec  # noqa: PLC0415

    known = available_connectors()
    if connector not in known:
        console.print(f"[red]error:[/red] unknown connector {connector!r}; available: {', '.join(sorted(known))}")
        raise typer.Exit(2)
    options = dict(item.split("=", 1) for item in option or [] if "=" in item)
    path = _user_config(config)
    try:
        add_source(path, SourceSpec(name=name, connector=connector, stream=stream, options=options))
    except ValueError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    console.print(f"added source {name!r} ({connector}: {stream}) to {path}")


@sources_app.command("remove")
def sources_remove(
    name: Annotated[str, typer.Argument(help="The source's name.")],
    config: ConfigOption = None,
) -> None:
    """Remove a source from resonanz.toml (what it collected stays in the warehouse)."""
    from resonanz.config_file import remove_source  # noqa: PLC0415

    path = _user_config(config)
    try:
        remove_source(path, name)
    except ValueError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    console.print(f"removed source {name!r} from {path}")


@app.command()
def sql(
    query: Annotated[str, typer.Argument(help="SQL to run against the warehouse (read-only).")],
    config: ConfigOption = None,
    duckdb_path: Annotated[Path | None, typer.Option("--duckdb", help="Warehouse file.")] = None,
    snapshot: Annotated[bool, typer.Option("--snapshot", help="Query the published snapshot instead, "
                                           "which works while the pipeline is writing.")] = False,
    lake: Annotated[Path | None, typer.Option("--lake", help="Query the Parquet lake in this folder "
                                              "(views lake_posts, lake_interactions, ...) instead.")] = None,
) -> None:
    """Run a read-only SQL query against the warehouse (or its Parquet lake) and print the result."""
    import duckdb  # noqa: PLC0415

    from warehouse.db import WarehouseLocked, open_warehouse  # noqa: PLC0415

    if lake is not None:
        _print_rows(*_query_lake(lake, query))
        return
    settings = load_settings(config)
    path = duckdb_path or (settings.snapshot_path if snapshot else settings.duckdb_path)
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
    _print_rows(columns, rows)


def _query_lake(lake: Path, query: str) -> tuple[list[str], list[tuple[Any, ...]]]:
    import duckdb  # noqa: PLC0415

    from warehouse.lake import attach_lake  # noqa: PLC0415

    # The lake is plain files: an in-memory DuckDB reads them, so no writer lock is involved.
    with closing(duckdb.connect()) as con:
        if not attach_lake(con, lake):
            console.print(f"[red]error:[/red] no lake files under {lake}: run `resonanz lake write` first")
            raise typer.Exit(2)
        try:
            relation = con.sql(query)
            return ([], []) if relation is None else (relation.columns, relation.fetchall())
        except duckdb.Error as exc:
            console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2) from None


def _print_rows(columns: list[str], rows: list[tuple[Any, ...]]) -> None:
    table = Table(show_header=True)
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*("" if v is None else str(v) for v in row))
    console.print(table)


@app.command()
def report(
    out: Annotated[Path, typer.Option("--out", "-o", help="Report file to write: .html or .pdf.")],
    period: Annotated[str, typer.Option("--period", help="last-week, last-month or all (up to the newest post).")]
    = "last-week",
    brand: Annotated[list[str] | None, typer.Option("--brand", "-b", help="Only this brand (repeatable).")] = None,
    config: ConfigOption = None,
    duckdb_path: Annotated[Path | None, typer.Option("--duckdb", help="Warehouse file.")] = None,
) -> None:
    """Write the marketing report for a period as HTML or PDF."""
    from act.facts import select_brands  # noqa: PLC0415
    from act.report import period_window, write_report  # noqa: PLC0415
    from warehouse.db import WarehouseLocked, open_warehouse  # noqa: PLC0415

    settings = load_settings(config)
    path = duckdb_path or settings.duckdb_path
    if not Path(path).exists():
        console.print(f"[red]error:[/red] {path} does not exist yet: run `resonanz demo` or `resonanz run` first")
        raise typer.Exit(2)
    try:
        brands = select_brands(settings.brands, brand)
        with closing(open_warehouse(path, read_only=True)) as con:
            start, end = period_window(con, period)
            written = write_report(con, brands, out, start, end)
    except (ValueError, KeyError, RuntimeError, WarehouseLocked) as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    span = f"{start:%Y-%m-%d} – {end:%Y-%m-%d}" if start and end else "all data"
    console.print(f"report ({period}: {span}) written to [bold]{written.resolve()}[/bold]")


@app.command()
def serve(
    config: ConfigOption = None,
    duckdb_path: Annotated[Path | None, typer.Option("--duckdb", help="Warehouse file.")] = None,
    only: Annotated[list[str] | None, typer.Option("--only", help="Serve only this deployment (repeatable).")] = None,
    every: Annotated[list[str] | None, typer.Option(
        "--every", help="Replace schedules by an interval in seconds, for smoke tests and demos: "
        "SECONDS for all, or NAME=SECONDS for one deployment (repeatable).")] = None,
) -> None:
    """Run every scheduled flow on this machine until stopped (Ctrl+C); schedules from flows/deployments.py."""
    settings = load_settings(config)
    prepare_prefect(settings)
    from flows.deployments import DEPLOYMENTS  # noqa: PLC0415

    specs = [d for d in DEPLOYMENTS if not only or d.name in only]
    unknown = sorted(set(only or []) - {d.name for d in DEPLOYMENTS})
    if unknown or not specs:
        console.print(f"[red]error:[/red] no deployment named {', '.join(unknown)} "
                      f"(known: {', '.join(d.name for d in DEPLOYMENTS)})")
        raise typer.Exit(2)
    with _prefect_api() as api_url:
        console.print(f"Prefect API: {api_url}")
        _serve(specs, config, duckdb_path, every)


@contextmanager
def _prefect_api() -> Iterator[str]:
    """Use PREFECT_API_URL if set; otherwise run `prefect server start` on 127.0.0.1 for this session.

    Schedules are created by the API server's scheduler service, which Prefect's temporary
    in-process server does not run; a local server does.
    """
    import shutil  # noqa: PLC0415
    import socket  # noqa: PLC0415
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415
    import time  # noqa: PLC0415

    import httpx  # noqa: PLC0415

    if os.environ.get("PREFECT_API_URL"):
        yield os.environ["PREFECT_API_URL"]
        return
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    prefect_cli = shutil.which("prefect", path=str(Path(sys.executable).parent)) or "prefect"
    log_path = Path(os.environ["PREFECT_HOME"]) / "server.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    console.print(f"Starting a local Prefect server on 127.0.0.1:{port} (log: {log_path}); this takes ~15-30 s...")
    with log_path.open("ab") as log:
        server = subprocess.Popen([prefect_cli, "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                                  stdout=log, stderr=subprocess.STDOUT)
        api_url = f"http://127.0.0.1:{port}/api"
        try:
            deadline = time.monotonic() + 180
            while True:
                try:
                    if httpx.get(f"{api_url}/health", timeout=2).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if server.poll() is not None or time.monotonic() > deadline:
                    console.print(f"[red]error:[/red] the Prefect server did not start; see {log_path}")
                    raise typer.Exit(2)
                time.sleep(0.5)
            os.environ["PREFECT_API_URL"] = api_url
            yield api_url
        finally:
            server.terminate()
            try:
                server.wait(timeout=20)
            except subprocess.TimeoutExpired:
                server.kill()


def _serve(specs: list[Any], config: Path | None, duckdb_path: Path | None, every: list[str] | None) -> None:
    from datetime import timedelta  # noqa: PLC0415

    from prefect import serve as prefect_serve  # noqa: PLC0415 - after PREFECT_API_URL is settled

    from flows.deployments import runner_deployments  # noqa: PLC0415

    try:
        intervals = _intervals(every or [], [d.name for d in specs])
    except ValueError as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None
    parameters = {
        "config_file": str(config.resolve()) if config else None,
        "duckdb_path": str(duckdb_path.resolve()) if duckdb_path else None,
    }
    table = Table(title="Serving")
    for col in ("deployment", "flow", "schedule"):
        table.add_column(col)
    deployments = []
    for spec in specs:
        seconds = intervals.get(spec.name)
        table.add_row(spec.name, spec.entrypoint, f"every {seconds:g} s" if seconds else f"{spec.cron} ({spec.timezone})")
        deployments += runner_deployments([spec], parameters, timedelta(seconds=seconds) if seconds else None)
    console.print(table)
    prefect_serve(*deployments, print_starting_message=False)


def _intervals(items: list[str], names: list[str]) -> dict[str, float]:
    """Parse `--every` values: "SECONDS" applies to every name, "NAME=SECONDS" to one."""
    out: dict[str, float] = {}
    for item in items:
        name, _, value = item.rpartition("=")
        if name and name not in names:
            raise ValueError(f"--every {item}: {name!r} is not served (serving: {', '.join(names)})")
        try:
            seconds = float(value)
        except ValueError:
            raise ValueError(f"--every {item}: expected SECONDS or NAME=SECONDS") from None
        out.update({name: seconds} if name else dict.fromkeys(names, seconds))
    return out


crm_app = typer.Typer(no_args_is_help=True, help="Links between social accounts and CRM customers.")
app.add_typer(crm_app, name="crm")
snapshot_app = typer.Typer(no_args_is_help=True, help="Read-only snapshots for analysts.")
app.add_typer(snapshot_app, name="snapshot")
lake_app = typer.Typer(no_args_is_help=True, help="Partitioned Parquet copy of the warehouse (storage past one file).")
app.add_typer(lake_app, name="lake")
privacy_app = typer.Typer(no_args_is_help=True, help="Data-protection requests (GDPR).")
app.add_typer(privacy_app, name="privacy")


def _print_arrow(table: Any, title: str) -> None:
    out = Table(title=title, show_header=True)
    for col in table.column_names:
        out.add_column(col)
    for row in table.to_pylist():
        out.add_row(*("" if v is None else str(v) for v in row.values()))
    console.print(out)


def _writable(config: Path | None) -> Any:
    from warehouse.db import WarehouseLocked, open_warehouse  # noqa: PLC0415

    try:
        return closing(open_warehouse(load_settings(config).duckdb_path))
    except WarehouseLocked as exc:
        console.print(f"[red]error:[/red] {exc}")
        raise typer.Exit(2) from None


@app.command()
def export(
    out: Annotated[Path | None, typer.Option("--out", help="Folder (default: export_dir from the config).")] = None,
    fmt: Annotated[list[str] | None, typer.Option("--format", help="parquet and/or csv (repeatable).")] = None,
    pseudonymise: Annotated[bool, typer.Option(
        "--pseudonymise", help="Replace account ids, handles and names by keyed pseudonyms (RESONANZ_PSEUDONYM_KEY).")] = False,
    config: ConfigOption = None,
) -> None:
    """Export posts, annotations and the analyst views as day-partitioned Parquet and CSV."""
    from warehouse.export import export_all  # noqa: PLC0415
    from warehouse.pseudonym import MissingPseudonymKey  # noqa: PLC0415

    target = out or load_settings(config).export_dir
    with _writable(config) as con:
        try:
            result = export_all(con, target, formats=tuple(fmt or ("parquet", "csv")), pseudonymise=pseudonymise)
        except MissingPseudonymKey as exc:
            console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2) from None
    for name, rows in result.rows.items():
        console.print(f"{name}: {rows:,} rows")
    console.print(f"written to {Path(target).resolve()}")


@lake_app.command("write")
def lake_write(
    out: Annotated[Path | None, typer.Option("--out", help="Lake folder (default: lake_dir from the config).")] = None,
    since: Annotated[str | None, typer.Option("--since", help="Only rewrite days from YYYY-MM-DD on.")] = None,
    table: Annotated[list[str] | None, typer.Option("--table", help="Only this table (repeatable).")] = None,
    config: ConfigOption = None,
) -> None:
    """Write posts, interactions, annotations and accounts as hive-partitioned Parquet (source/day)."""
    from datetime import date  # noqa: PLC0415

    from warehouse.lake import LAKE_TABLE_NAMES, write_lake  # noqa: PLC0415

    try:
        first_day = date.fromisoformat(since) if since else None
    except ValueError:
        console.print(f"[red]error:[/red] --since {since!r} is not a date (YYYY-MM-DD)")
        raise typer.Exit(2) from None
    unknown = sorted(set(table or ()) - set(LAKE_TABLE_NAMES))
    if unknown:
        console.print(f"[red]error:[/red] unknown table {', '.join(unknown)}; choose from {', '.join(LAKE_TABLE_NAMES)}")
        raise typer.Exit(2)
    target = out or load_settings(config).lake_dir
    with _writable(config) as con:
        result = write_lake(con, target, tables=tuple(table or LAKE_TABLE_NAMES), since=first_day)
    for name, rows in result.rows.items():
        console.print(f"{name}: {rows:,} rows · {result.written.get(name, 0)} partitions written, "
                      f"{result.unchanged.get(name, 0)} unchanged, {result.removed.get(name, 0)} removed")
    console.print(f"lake at {Path(target).resolve()}  (query it: resonanz sql --lake {target} \"SELECT ...\")")


@snapshot_app.command("publish")
def snapshot_publish(
    path: Annotated[Path | None, typer.Argument(help="Snapshot file (default: snapshot_path).")] = None,
    config: ConfigOption = None,
) -> None:
    """Write a consistent read-only copy of the warehouse that analysts can open any time."""
    from warehouse.export import publish_snapshot  # noqa: PLC0415

    target = path or load_settings(config).snapshot_path
    with _writable(config) as con:
        written = publish_snapshot(con, target)
    console.print(f"snapshot published: {written.resolve()}  (open it with: duckdb -readonly {written})")


@privacy_app.command("erase")
def privacy_erase(
    account: Annotated[str | None, typer.Option("--account", help="SOURCE:ACCOUNT_ID, e.g. x:115712")] = None,
    customer: Annotated[str | None, typer.Option("--customer", help="CRM customer id")] = None,
    config: ConfigOption = None,
) -> None:
    """Remove a person from every table, raw payloads included; then re-export and re-publish."""
    from warehouse.privacy import erase_account, erase_customer  # noqa: PLC0415

    if bool(account) == bool(customer):
        console.print("[red]error:[/red] give exactly one of --account SOURCE:ID or --customer ID")
        raise typer.Exit(2)
    with _writable(config) as con:
        if account:
            if ":" not in account:
                console.print("[red]error:[/red] --account takes SOURCE:ACCOUNT_ID, e.g. x:115712")
                raise typer.Exit(2)
            source, account_id = account.split(":", 1)
            report = erase_account(con, source, account_id)
        else:
            report = erase_customer(con, str(customer))
    console.print(f"deleted: {report.deleted}")
    console.print(f"rewritten: {report.rewritten}")
    console.print("Exports and snapshots made before this still hold the person: run "
                  "`resonanz export` and `resonanz snapshot publish` again.")


@crm_app.command("review")
def crm_review(config: ConfigOption = None) -> None:
    """Show the links waiting for a decision (match probability between the two thresholds)."""
    from warehouse.linking import review_queue  # noqa: PLC0415

    with _writable(config) as con:
        _print_arrow(review_queue(con), "Links to review")


def _set_status(account: str, customer_id: str, status: str, config: Path | None) -> None:
    from warehouse.linking import set_link_status  # noqa: PLC0415

    source, _, account_id = account.partition(":")
    with _writable(config) as con:
        set_link_status(con, source, account_id, customer_id, status)
    console.print(f"{account} ↔ customer {customer_id}: {status} (kept on every later linking run)")


@crm_app.command("confirm")
def crm_confirm(account: Annotated[str, typer.Argument(help="SOURCE:ACCOUNT_ID")],
                customer_id: Annotated[str, typer.Argument()], config: ConfigOption = None) -> None:
    """Confirm that an account belongs to a customer."""
    _set_status(account, customer_id, "confirmed", config)


@crm_app.command("reject")
def crm_reject(account: Annotated[str, typer.Argument(help="SOURCE:ACCOUNT_ID")],
               customer_id: Annotated[str, typer.Argument()], config: ConfigOption = None) -> None:
    """Reject a suggested link; it is never made again."""
    _set_status(account, customer_id, "rejected", config)


@app.command()
def models(
    config: ConfigOption = None,
    duckdb_path: Annotated[Path | None, typer.Option("--duckdb", help="Warehouse file.")] = None,
    snapshot: Annotated[bool, typer.Option("--snapshot", help="Count in the published snapshot instead, "
                                           "which works while the pipeline is writing.")] = False,
) -> None:
    """Show the model each enrich task runs with this configuration, and which stored posts the
    next run will enrich or re-enrich because their annotation is from another model version."""
    import duckdb  # noqa: PLC0415
    from rich.markup import escape  # noqa: PLC0415

    from nlp.errors import ModelMissingError  # noqa: PLC0415
    from nlp.pipeline import build_enricher  # noqa: PLC0415
    from warehouse.db import WarehouseLocked, open_warehouse  # noqa: PLC0415
    from warehouse.stages import annotation_coverage, count_posts_to_enrich, other_versions  # noqa: PLC0415

    settings = load_settings(config)
    try:
        versions = build_enricher(settings.brands, settings.nlp).model_versions()
    except ModelMissingError as exc:
        console.print(f"[red]error:[/red] {exc}", soft_wrap=True)
        raise typer.Exit(2) from None
    path = Path(duckdb_path or (settings.snapshot_path if snapshot else settings.duckdb_path))
    coverage: dict[str, dict[str, Any]] = {}
    if path.exists():
        try:
            with closing(open_warehouse(path, read_only=True)) as con:
                coverage = {row["task"]: row for row in annotation_coverage(con, versions).to_pylist()}
                older = other_versions(con, versions).to_pylist()
                todo = count_posts_to_enrich(con, versions)
        except (duckdb.Error, WarehouseLocked) as exc:
            console.print(f"[red]error:[/red] {exc}")
            raise typer.Exit(2) from None
    table = Table(show_header=True, title=f"Posts in {path} annotated by each task's model")
    for column in ("task", "model", "this version", "another version", "none"):
        table.add_column(column, justify="left" if column in ("task", "model") else "right")
    for task, version in versions.items():
        row = coverage.get(task)
        counts = (f"{row['current']:,}", f"{row['other_version']:,}", f"{row['missing']:,}") if row else ("–", "–", "–")
        table.add_row(task, version.split("@", 1)[0], *counts)
    console.print(table)
    for task, version in versions.items():
        console.print(f"[bold]{task}[/bold] {escape(version)}", soft_wrap=True, highlight=False)
    if not coverage:
        console.print(f"No warehouse at {path} yet: the first run enriches every post it collects.")
    else:
        for row in older:
            console.print(f"  stored from another version: {row['task']} {escape(row['version'])} ({row['posts']:,} posts)",
                          soft_wrap=True, highlight=False)
        console.print(f"The next enrich run reads {todo:,} posts: those lacking this version's annotation for some task.")


# task -> (trainer modules with `main(argv) -> int`, run in order; whether they read the labelled
# data folder). The fine-tuned e5 models come second: the sentiment one blends with the n-gram
# model the first trainer writes. The intent set is hand-labelled and lives in nlp/data/intent/.
TRAINERS: dict[str, tuple[tuple[str, ...], bool]] = {
    # The shared-pass entity heads and the intent model's states weights read the fine-tuned
    # sentiment encoder: retrained with it. Then the int8 activation ranges of the new adapters
    # ([nlp] e5_precision).
    "sentiment": (("nlp.train_sentiment", "nlp.train_e5_sentiment", "nlp.train_e5_shared_ner", "nlp.train_intent",
                   "nlp.calibrate_int8"), True),
    "ner": (("nlp.train_ner", "nlp.train_e5_ner", "nlp.train_e5_shared_ner", "nlp.calibrate_int8"), True),
    "intent": (("nlp.train_intent",), False),
    # the distilled static-embedding student and the cascade thresholds (sentiment_mode)
    "static": (("nlp.distill",), True),
}


@app.command()
def train(
    task: Annotated[str, typer.Argument(help="sentiment, ner, intent or static (the fast student).")],
    data: Annotated[Path | None, typer.Option("--data", help="Labelled data folder "
                                              "(default: $RESONANZ_DATA, else ./data).")] = None,
    out: Annotated[Path | None, typer.Option("--out", help="Where the artefact goes "
                                             "(default: the bundled model folder, nlp/models).")] = None,
    seed: Annotated[int | None, typer.Option("--seed", help="Random seed (default 13).")] = None,
) -> None:
    """Rebuild a bundled model from its labelled data with a fixed seed and print its evaluation."""
    import importlib  # noqa: PLC0415

    from nlp.errors import ModelMissingError  # noqa: PLC0415

    if task not in TRAINERS:
        console.print(f"[red]error:[/red] unknown task {task!r}; choose one of {', '.join(TRAINERS)}")
        raise typer.Exit(2)
    module_names, needs_data = TRAINERS[task]
    data_dir = data or Path(os.environ.get("RESONANZ_DATA") or "data")
    if needs_data and not data_dir.is_dir():
        console.print(f"[red]error:[/red] labelled data folder {data_dir} not found: pass --data DIR or set "
                      "RESONANZ_DATA (docs/models.md lists the data sets each model is trained on)", soft_wrap=True)
        raise typer.Exit(2)
    # Only what was asked for is passed on, so each trainer keeps its own defaults.
    argv = [str(data_dir)] if needs_data or data else []
    argv += ["--out", str(out)] if out else []
    argv += ["--seed", str(seed)] if seed is not None else []
    for module_name in module_names:
        try:
            trainer = importlib.import_module(module_name)
        except ImportError as exc:
            console.print(f"[red]error:[/red] the {task} trainer cannot be loaded ({exc}); "
                          "install the project's dependencies: pip install -c constraints.txt -e '.[hf]'", soft_wrap=True)
            raise typer.Exit(2) from None
        console.print(f"training {task} with {module_name} {' '.join(argv)}", soft_wrap=True)
        try:
            code = trainer.main(argv)
        except ModelMissingError as exc:  # e.g. no PyTorch for the fine-tuned models
            console.print(f"[red]error:[/red] {exc}", soft_wrap=True)
            code = 2
        if code:
            raise typer.Exit(code)
    raise typer.Exit(0)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
