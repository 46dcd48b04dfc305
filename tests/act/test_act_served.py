"""Deployments against a REAL Prefect server on 127.0.0.1: `resonanz serve`, run_deployment, a schedule firing.

Starts `prefect server start` in a temporary PREFECT_HOME, then `resonanz serve` for the alerts and
weekly-report deployments, the alerts schedule replaced by a 30-second interval. The test triggers
the weekly report with `run_deployment` (it renders the PDF and mails it to a local aiosmtpd
server) and waits for the alerts schedule to fire by itself. Takes ~60 s, most of it Prefect's
server start; the subprocess output is kept in the test's tmp_path as a transcript.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from flow_support import free_port, smtp_server, write_project_config

from flows.deployments import DEPLOYMENTS, PREFECT_YAML, prefect_yaml_deployments
from resonanz.settings import Brand

ROOT = Path(__file__).parents[2]
BIN = Path(sys.executable).parent
SERVER_START_TIMEOUT = 90.0


def test_prefect_yaml_agrees_with_the_deployment_list() -> None:
    declared = yaml.safe_load(PREFECT_YAML.read_text(encoding="utf-8"))
    assert declared["deployments"] == prefect_yaml_deployments()
    by_name = {d["name"]: d for d in declared["deployments"]}
    assert by_name["weekly-report-monday"]["schedules"] == [{"cron": "0 7 * * 1", "timezone": "Europe/Berlin"}]
    assert by_name["collect-every-15-min"]["schedules"][0]["cron"] == "*/15 * * * *"
    for spec in DEPLOYMENTS:
        flow = spec.load_flow()  # every entrypoint imports and names a flow
        assert set(spec.parameters) <= set(flow.parameters.properties), spec.name


def _env(home: Path, api_url: str | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_")}
    env.update({
        "PREFECT_HOME": str(home),
        "PREFECT_API_DATABASE_CONNECTION_URL": f"sqlite+aiosqlite:///{home / 'prefect.db'}",
        "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
        "PREFECT_LOGGING_LEVEL": "INFO",
        "DO_NOT_TRACK": "1",
        "PREFECT_RUNNER_POLL_FREQUENCY": "2",
        "PREFECT_SERVER_SERVICES_SCHEDULER_LOOP_SECONDS": "5",
        "PREFECT_RESULTS_PERSIST_BY_DEFAULT": "true",
        "PREFECT_LOCAL_STORAGE_PATH": str(home / "results"),
    })
    if api_url:
        env["PREFECT_API_URL"] = api_url
    return env


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@pytest.fixture(scope="module")
def prefect_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    home = tmp_path_factory.mktemp("prefect-server-home")
    port = free_port()
    log = (home / "server.log").open("wb")
    server = subprocess.Popen(
        [str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
        env=_env(home), stdout=log, stderr=subprocess.STDOUT, cwd=home,
    )
    api = f"http://127.0.0.1:{port}/api"
    deadline = time.monotonic() + SERVER_START_TIMEOUT
    try:
        while True:
            try:
                if httpx.get(f"{api}/health", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"Prefect server did not start: {(home / 'server.log').read_text()[-2000:]}")
            time.sleep(0.5)
        yield api, home
    finally:
        _stop(server)
        log.close()


CLIENT = """
import json, sys
from prefect.deployments import run_deployment
run = run_deployment(sys.argv[1], parameters=json.loads(sys.argv[2]), timeout=120, poll_interval=1)
print(json.dumps({"state": run.state.type.value, "name": run.name, "result": run.state.result()}, default=str))
"""

def _python(code: str, args: list[str], env: dict[str, str], timeout: float = 150) -> Any:
    done = subprocess.run([sys.executable, "-c", code, *args], env=env, cwd=ROOT, capture_output=True,
                          timeout=timeout, check=False)
    assert done.returncode == 0, done.stderr.decode()[-3000:]
    return json.loads(done.stdout.decode().strip().splitlines()[-1])


def _wait_for_deployments(api: str, names: list[str], serve: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    pending = list(names)
    while pending:
        pending = [n for n in pending if httpx.get(f"{api}/deployments/name/{n}", timeout=5).status_code != 200]
        if pending and (serve.poll() is not None or time.monotonic() > deadline):
            pytest.fail(f"`resonanz serve` did not register {pending}")
        time.sleep(0.5)


def test_served_deployments_run_on_demand_and_on_schedule(
    prefect_server: tuple[str, Path], warehouse_file: Path, brands: list[Brand], tmp_path: Path
) -> None:
    api, home = prefect_server
    db = tmp_path / "w.duckdb"
    db.write_bytes(warehouse_file.read_bytes())
    with smtp_server() as (inbox, smtp_port):
        config = write_project_config(tmp_path / "resonanz.toml", brands, (
            f'report_dir = "{tmp_path / "reports"}"\n\n[smtp]\nhost = "127.0.0.1"\nport = {smtp_port}\n'
            'starttls = false\nrecipients = ["marketing@example.org"]\n'))
        env = _env(home, api)
        transcript = (tmp_path / "serve.log").open("wb")
        serve = subprocess.Popen(
            [str(BIN / "resonanz"), "serve", "--config", str(config), "--duckdb", str(db),
             "--only", "alerts-every-15-min", "--only", "weekly-report-monday", "--every", "alerts-every-15-min=30"],
            env=env, cwd=ROOT, stdout=transcript, stderr=subprocess.STDOUT,
        )
        try:
            _wait_for_deployments(api, ["weekly_report/weekly-report-monday", "alerts/alerts-every-15-min"], serve)
            # On demand: the weekly report, rendered as HTML + PDF and mailed with the PDF attached.
            started = time.monotonic()
            ran = _python(CLIENT, ["weekly_report/weekly-report-monday", json.dumps({"period": "all"})], env)
            assert ran["state"] == "COMPLETED", ran
            assert ran["result"]["mailed"] is True and Path(ran["result"]["pdf"]).stat().st_size > 10_000
            subjects = [m["Subject"] for _, m in inbox.messages]
            assert any(s.startswith("Resonanz report (all:") for s in subjects), subjects
            mail = next(m for _, m in inbox.messages if m["Subject"].startswith("Resonanz report"))
            assert [p.get_filename() for p in mail.iter_attachments()] == [Path(ran["result"]["pdf"]).name]

            # On schedule: the alerts deployment's 30-second interval fires without being asked.
            runs: list[dict[str, Any]] = []
            while time.monotonic() - started < 60:
                runs = httpx.post(f"{api}/flow_runs/filter", timeout=10, json={
                    "deployments": {"name": {"any_": ["alerts-every-15-min"]}}}).json()
                if any(r["auto_scheduled"] and r["state_type"] == "COMPLETED" for r in runs):
                    break
                time.sleep(1)
            assert any(r["auto_scheduled"] and r["state_type"] == "COMPLETED" for r in runs), runs
        finally:
            _stop(serve)
            transcript.close()
    log = (tmp_path / "serve.log").read_text(errors="replace")
    print(log)  # the transcript, shown with `pytest -s`
    assert "alerts flow:" in log and "Finished in state Completed()" in log
