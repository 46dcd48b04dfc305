"""Every scheduled deployment, declared once: `resonanz serve` runs these, prefect.yaml is written from them.

Run `python -m flows.deployments` to regenerate prefect.yaml after changing the list; a test
checks that the file and the list agree.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

TIMEZONE = "Europe/Berlin"
PREFECT_YAML = Path(__file__).parents[1] / "prefect.yaml"
WORK_POOL = "resonanz"


@dataclass(frozen=True)
class DeploymentSpec:
    """One deployment: which flow, when (cron in a time zone) and with which parameters."""

    name: str
    entrypoint: str  # "flows/module.py:function", relative to the project root
    cron: str
    description: str
    timezone: str = TIMEZONE
    parameters: dict[str, Any] = field(default_factory=dict)
    tags: tuple[str, ...] = ("resonanz",)

    def load_flow(self) -> Any:
        """Import the flow object named by the entrypoint."""
        path, _, function = self.entrypoint.partition(":")
        module = importlib.import_module(path.removesuffix(".py").replace("/", "."))
        return getattr(module, function)


# Parameters per project: `config_file` names the project's resonanz.toml (its brands, sources,
# warehouse); `brands` narrows alerts and reports to one brand team. Copy an entry with other
# parameters for another project or team.
DEPLOYMENTS: list[DeploymentSpec] = [
    DeploymentSpec(
        name="collect-every-15-min",
        entrypoint="flows/scheduled.py:collect_flow",
        cron="*/15 * * * *",
        description="Collect every enabled source, each resuming from its stored cursor.",
        parameters={"config_file": None},
    ),
    DeploymentSpec(
        name="enrich-rank-hourly",
        entrypoint="flows/scheduled.py:enrich_rank_flow",
        cron="5 * * * *",
        description="Enrich new posts, link CRM customers and re-rank influence.",
        parameters={"config_file": None},
    ),
    DeploymentSpec(
        name="alerts-every-15-min",
        entrypoint="flows/alerts.py:alerts_flow",
        cron="2,17,32,47 * * * *",
        description="Evaluate alert rules, store new alerts, deliver them by e-mail and webhooks.",
        parameters={"config_file": None, "brands": None},
    ),
    DeploymentSpec(
        name="weekly-report-monday",
        entrypoint="flows/weekly_report.py:weekly_report_flow",
        cron="0 7 * * 1",
        description="Render last week's report as HTML and PDF and mail it (Monday 07:00 Berlin time).",
        parameters={"config_file": None, "period": "last-week", "brands": None},
    ),
    DeploymentSpec(
        name="retention-nightly",
        entrypoint="flows/scheduled.py:retention_flow",
        cron="30 3 * * *",
        description="Nightly retention pass (measures only until warehouse/ can delete by age).",
        parameters={"config_file": None, "retention_days": 365},
    ),
]


def runner_deployments(
    specs: list[DeploymentSpec] | None = None,
    parameters: dict[str, Any] | None = None,
    interval: timedelta | None = None,
) -> list[Any]:
    """Build Prefect RunnerDeployments for `prefect.serve`; `interval` replaces the cron (smoke tests)."""
    from prefect.schedules import Cron, Interval  # noqa: PLC0415 - keep `import flows.deployments` light

    deployments = []
    for spec in specs if specs is not None else DEPLOYMENTS:
        schedule = Interval(interval, timezone=spec.timezone) if interval else Cron(spec.cron, timezone=spec.timezone)
        flow = spec.load_flow()
        given = {k: v for k, v in {**spec.parameters, **(parameters or {})}.items() if v is not None}
        # Only pass parameters the flow accepts: one override (say duckdb_path) serves every flow.
        accepted = set(flow.parameters.properties)
        deployments.append(flow.to_deployment(
            name=spec.name,
            schedule=schedule,
            parameters={k: v for k, v in given.items() if k in accepted},
            description=spec.description,
            tags=list(spec.tags),
        ))
    return deployments


def prefect_yaml_deployments(specs: list[DeploymentSpec] | None = None) -> list[dict[str, Any]]:
    """Return the `deployments:` section of prefect.yaml for the specs."""
    return [
        {
            "name": spec.name,
            "description": spec.description,
            "entrypoint": spec.entrypoint,
            "parameters": {k: v for k, v in spec.parameters.items() if v is not None},
            "tags": list(spec.tags),
            "schedules": [{"cron": spec.cron, "timezone": spec.timezone}],
            "work_pool": {"name": WORK_POOL},
        }
        for spec in (specs if specs is not None else DEPLOYMENTS)
    ]


HEADER = """\
# Prefect deployments for Resonanz. GENERATED from flows/deployments.py by
# `python -m flows.deployments`: edit the list there, then regenerate (a test checks they agree).
#
# One machine, no server: `resonanz serve` runs the same schedules (see docs/operations.md).
# Prefect server or Prefect Cloud: create a process work pool once, deploy, start a worker:
#   prefect work-pool create resonanz --type process
#   prefect deploy --all
#   prefect worker start --pool resonanz
# Cron schedules are in Europe/Berlin time. The worker runs flows from $RESONANZ_HOME (the project
# checkout holding resonanz.toml); parameters per project: config_file, per brand team: brands.
"""


def render_prefect_yaml(specs: list[DeploymentSpec] | None = None) -> str:
    """Render the whole prefect.yaml file."""
    body = {
        "name": "resonanz",
        "prefect-version": "3.8.8",
        "pull": [{"prefect.deployments.steps.set_working_directory": {"directory": "{{ $RESONANZ_HOME }}"}}],
        "deployments": prefect_yaml_deployments(specs),
    }
    return HEADER + yaml.safe_dump(body, sort_keys=False, allow_unicode=True, width=100)


if __name__ == "__main__":
    PREFECT_YAML.write_text(render_prefect_yaml(), encoding="utf-8")
    print(f"wrote {PREFECT_YAML} ({len(DEPLOYMENTS)} deployments)")
