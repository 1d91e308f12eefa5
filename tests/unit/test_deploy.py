"""The deployment files are valid for the real tools and agree with the code.

Prometheus config, rules and rule unit tests go through ``promtool`` (Debian package
``prometheus``), the Alertmanager config and its routing through ``amtool`` (package
``prometheus-alertmanager``), the compose file through ``docker-compose config`` (package
``docker-compose``). A missing tool fails the test with the package to install: none skips.

Structure checks: every metric a rule or a dashboard panel reads is one the worker
exposes; every alert has a severity, a runbook section and a firing and a quiet unit test;
the Kubernetes manifests probe ``/healthz`` and ``/readyz`` and scale on Kafka lag; every
``PIPESTATUS_*`` variable in compose and Kubernetes is a real setting that loads.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml  # type: ignore[import-untyped]  # PyYAML ships no type information

from pipestatus.settings import Settings, load_settings

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
RULES = DEPLOY / "prometheus" / "rules.yml"
RULES_TEST = DEPLOY / "prometheus" / "rules_test.yml"
PROMETHEUS_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
ALERTMANAGER_CONFIG = DEPLOY / "alertmanager" / "alertmanager.yml"
COMPOSE = REPO / "docker-compose.yml"
DOCKERFILE = DEPLOY / "Dockerfile"
DASHBOARD = DEPLOY / "grafana" / "dashboards" / "pipestatus.json"
GRAFANA_PROVISIONING = DEPLOY / "grafana" / "provisioning"
K8S = DEPLOY / "k8s"
RUNBOOK = REPO / "docs" / "runbook.md"

#: Every metric the worker exposes (src/pipestatus/adapters/metrics.py), by type.
COUNTERS = frozenset(
    {
        "pipestatus_records_consumed_total",
        "pipestatus_transitions_total",
        "pipestatus_dead_letters_total",
        "pipestatus_dependency_retries_total",
        "pipestatus_alert_deliveries_total",
    }
)
GAUGES = frozenset(
    {
        "pipestatus_runs",
        "pipestatus_consumer_lag_messages",
        "pipestatus_partitions_assigned",
        "pipestatus_last_batch_timestamp_seconds",
        "pipestatus_database_up",
        "pipestatus_alert_outbox_backlog",
        "pipestatus_alerts_firing",
        "pipestatus_build_info",
    }
)
HISTOGRAMS = frozenset(
    {
        "pipestatus_run_duration_seconds",
        "pipestatus_event_delay_seconds",
        "pipestatus_batch_records",
        "pipestatus_batch_duration_seconds",
    }
)
EXPOSED_METRICS = COUNTERS | GAUGES | HISTOGRAMS
#: Series Prometheus itself writes for every scrape target.
SCRAPE_SERIES = frozenset({"up"})
#: The names a query may select: histograms through their _bucket/_sum/_count series.
QUERYABLE = (
    COUNTERS
    | GAUGES
    | SCRAPE_SERIES
    | {f"{name}{suffix}" for name in HISTOGRAMS for suffix in ("_bucket", "_sum", "_count")}
)

WORKER_ALERTS = frozenset(
    {
        "PipestatusConsumerLagGrowing",
        "PipestatusDeadLetterRateHigh",
        "PipestatusNoEventsConsumed",
        "PipestatusWorkerDown",
        "PipestatusAlertDeliveryFailing",
        "PipestatusDatabaseDown",
    }
)
#: Raised by the worker itself (src/pipestatus/domain/alerting.py), routed by Alertmanager.
PIPELINE_ALERTS = frozenset({"PipelineRunFailed", "PipelineRunStuck", "PipelineRunDataQuality"})

TOOL_PACKAGES = {
    "promtool": "prometheus",
    "amtool": "prometheus-alertmanager",
    "docker-compose": "docker-compose",
}


# ------------------------------------------------------------------------------ helpers


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        package = TOOL_PACKAGES[name]
        pytest.fail(
            f"`{name}` is not on PATH: install the Debian package `{package}` "
            f"(apt-get install -y --no-install-recommends {package})",
            pytrace=False,
        )
    return path


def _run(*argv: str) -> str:
    command = [_tool(argv[0]), *argv[1:]]
    done = subprocess.run(
        command, cwd=REPO, capture_output=True, text=True, timeout=120, check=False
    )
    output = f"{done.stdout}\n{done.stderr}".strip()
    assert done.returncode == 0, f"{' '.join(argv)} exited {done.returncode}:\n{output}"
    return output


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def _rules() -> list[dict[str, Any]]:
    return [rule for group in _yaml(RULES)["groups"] for rule in group["rules"]]


def _k8s_documents() -> Iterator[tuple[Path, dict[str, Any]]]:
    for path in sorted(K8S.glob("*.yaml")):
        for document in yaml.safe_load_all(path.read_text(encoding="utf-8")):
            if document is not None:
                yield path, document


def _k8s(kind: str) -> dict[str, Any]:
    found = [doc for _, doc in _k8s_documents() if doc.get("kind") == kind]
    assert len(found) == 1, f"expected one {kind} in {K8S}, found {len(found)}"
    return found[0]


def _compose() -> dict[str, Any]:
    compose: dict[str, Any] = _yaml(COMPOSE)
    return compose


def _panels() -> list[dict[str, Any]]:
    panels: list[dict[str, Any]] = []
    for panel in json.loads(DASHBOARD.read_text(encoding="utf-8"))["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))  # panels inside collapsed rows
    return panels


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_KEYWORDS = frozenset({"and", "or", "unless", "bool", "offset", "atan2", "inf", "nan"})


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (Grafana ``$variables`` allowed)."""
    text = _STRING.sub('""', expr)
    text = re.sub(r"\$\{[^}]*\}|\$\w+", "", text)
    text = re.sub(r"\{[^}]*\}", " ", text)  # label matchers
    text = re.sub(r"\[[^\]]*\]", " ", text)  # ranges and subqueries
    text = _GROUPING.sub(" ", text)
    names = set()
    for match in re.finditer(r"[A-Za-z_:][A-Za-z0-9_:]*", text):
        before = text[match.start() - 1] if match.start() else " "
        if before.isdigit() or before == ".":  # 1e3, 5m
            continue
        if text[match.end() :].lstrip().startswith("("):  # a function or aggregation
            continue
        if match.group().lower() in _KEYWORDS:
            continue
        names.add(match.group())
    return names


# --------------------------------------------------------------------- the real tools


def test_promtool_check_config() -> None:
    output = _run("promtool", "check", "config", str(PROMETHEUS_CONFIG.relative_to(REPO)))
    assert "SUCCESS" in output


def test_promtool_check_rules() -> None:
    output = _run("promtool", "check", "rules", str(RULES.relative_to(REPO)))
    assert "SUCCESS" in output


def test_promtool_rule_unit_tests_pass() -> None:
    output = _run("promtool", "test", "rules", str(RULES_TEST.relative_to(REPO)))
    assert "SUCCESS" in output


def test_amtool_check_config() -> None:
    output = _run("amtool", "check-config", str(ALERTMANAGER_CONFIG.relative_to(REPO)))
    assert "SUCCESS" in output


@pytest.mark.parametrize(
    ("labels", "receiver"),
    [
        (["alertname=PipelineRunFailed", "provider=codat", "severity=error"], "pipeline-owners"),
        (["alertname=PipelineRunStuck", "provider=nuvo", "severity=warning"], "pipeline-owners"),
        (["alertname=PipestatusWorkerDown", "severity=critical"], "platform-oncall"),
        (["alertname=PipestatusDeadLetterRateHigh", "severity=warning"], "platform-oncall"),
    ],
)
def test_alertmanager_routes_alerts_to_the_sample_receivers(
    labels: list[str], receiver: str
) -> None:
    _run(
        "amtool",
        "config",
        "routes",
        "test",
        f"--config.file={ALERTMANAGER_CONFIG.relative_to(REPO)}",
        f"--verify.receivers={receiver}",
        *labels,
    )


def test_docker_compose_config_is_valid() -> None:
    _run("docker-compose", "-f", str(COMPOSE.relative_to(REPO)), "config", "-q")


# ------------------------------------------------------------------------------ rules


def test_metric_name_extraction_sees_names_and_skips_functions() -> None:
    """The checks below rely on this: a misspelt metric must not slip through."""
    expr = (
        "histogram_quantile(0.99, sum by (le) (rate(pipestatus_batch_duration_seconds_bucket"
        '{job="pipestatus"}[$__rate_interval]))) > 1e3 and on (job) up offset 5m'
        " unless pipestatus_typo"
    )
    assert metric_names(expr) == {
        "pipestatus_batch_duration_seconds_bucket",
        "up",
        "pipestatus_typo",
    }


def test_every_worker_alert_is_defined() -> None:
    assert {rule["alert"] for rule in _rules()} == WORKER_ALERTS


def test_rules_read_only_exposed_metrics() -> None:
    for rule in _rules():
        names = metric_names(rule["expr"])
        assert names, f"{rule['alert']}: no metric found in {rule['expr']!r}"
        unknown = names - QUERYABLE
        assert not unknown, f"{rule['alert']} reads metrics the worker does not expose: {unknown}"


def test_rules_have_severity_annotations_and_a_runbook_section() -> None:
    anchors = _runbook_anchors()
    for rule in _rules():
        name = rule["alert"]
        assert rule["labels"]["severity"] in {"critical", "warning"}, name
        annotations = rule["annotations"]
        assert {"summary", "description", "runbook_url"} <= annotations.keys(), name
        url = annotations["runbook_url"]
        assert url == f"docs/runbook.md#{name.lower()}", f"{name}: runbook_url {url}"
        assert name.lower() in anchors, f"docs/runbook.md has no section for {name}"


def test_rule_unit_tests_cover_firing_and_quiet_cases_of_every_alert() -> None:
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in _yaml(RULES_TEST)["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
        for series in case.get("input_series", []):
            name = series["series"].split("{", 1)[0]
            assert name in QUERYABLE, f"{case['name']}: test series {name} is not exposed"
    assert firing == WORKER_ALERTS, f"no firing case for {WORKER_ALERTS - firing}"
    assert quiet == WORKER_ALERTS, f"no quiet case for {WORKER_ALERTS - quiet}"


def _runbook_anchors() -> set[str]:
    """GitHub-style anchors of the runbook's headings."""
    anchors = set()
    for line in RUNBOOK.read_text(encoding="utf-8").splitlines():
        if match := re.match(r"#{1,6}\s+(.*)", line):
            title = re.sub(r"[^\w\- ]", "", match.group(1).strip().lower())
            anchors.add(title.replace(" ", "-"))
    return anchors


def test_runbook_has_a_section_for_every_alert_with_commands() -> None:
    text = RUNBOOK.read_text(encoding="utf-8")
    anchors = _runbook_anchors()
    for name in WORKER_ALERTS | PIPELINE_ALERTS:
        assert name.lower() in anchors, f"docs/runbook.md has no section for {name}"
    for command in (
        "pipestatus runs list --state failed",
        "pipestatus dead-letters list",
        "pipestatus runs show",
        "pipestatus dead-letters replay",
    ):
        assert command in text, f"the runbook never shows `{command}`"


# -------------------------------------------------------------------------- prometheus


def test_prometheus_scrapes_the_worker_and_alerts_alertmanager() -> None:
    config = _yaml(PROMETHEUS_CONFIG)
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    targets = [t for sc in jobs["pipestatus"]["static_configs"] for t in sc["targets"]]
    assert targets == ["pipestatus:9108"]
    assert config["rule_files"] == ["rules.yml"]
    managers = config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"]
    assert managers == ["alertmanager:9093"]


# ----------------------------------------------------------------------------- grafana


def test_dashboard_panels_read_only_exposed_metrics() -> None:
    panels = [p for p in _panels() if p["type"] != "row"]
    assert len({p["id"] for p in _panels()}) == len(_panels()), "panel ids must be unique"
    for panel in panels:
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        for target in panel["targets"]:
            names = metric_names(target["expr"])
            assert names, f"{panel['title']!r}: no metric in {target['expr']!r}"
            unknown = names - QUERYABLE
            assert not unknown, f"panel {panel['title']!r} reads unexposed metrics {unknown}"
            assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}


def test_dashboard_has_the_required_panels() -> None:
    titles = {p["title"] for p in _panels()}
    for required in (
        "Throughput by outcome",
        "Consumer lag by partition",
        "Runs by state",
        "Failures (transitions to failed)",
        "Dead letters by reason",
        "Alert deliveries by receiver and result",
        "Batch duration p99 / p50",
        "Event delay p99 by provider",
    ):
        assert required in titles, f"dashboard has no panel {required!r}"
    exprs = " ".join(t["expr"] for p in _panels() for t in p.get("targets", []))
    assert "histogram_quantile(0.99" in exprs


def test_dashboard_panels_do_not_overlap() -> None:
    taken: set[tuple[int, int]] = set()
    for panel in _panels():
        pos = panel["gridPos"]
        assert pos["x"] + pos["w"] <= 24, panel["title"]
        cells = {
            (x, y)
            for x in range(pos["x"], pos["x"] + pos["w"])
            for y in range(pos["y"], pos["y"] + pos["h"])
        }
        assert not cells & taken, f"panel {panel['title']!r} overlaps another"
        taken |= cells


def test_dashboard_variables_and_provisioning_agree() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    for name in ("provider", "topic"):
        query = variables[name]["query"]["query"]
        match = re.fullmatch(r"label_values\((\w+),\s*(\w+)\)", query)
        assert match, query
        assert match.group(1) in QUERYABLE
        assert match.group(2) == name
    datasources = _yaml(GRAFANA_PROVISIONING / "datasources" / "prometheus.yml")["datasources"]
    assert [d["uid"] for d in datasources] == [variables["datasource"]["current"]["value"]]
    assert datasources[0]["url"] == "http://prometheus:9090"
    providers = _yaml(GRAFANA_PROVISIONING / "dashboards" / "pipestatus.yml")["providers"]
    grafana_volumes = _compose()["services"]["grafana"]["volumes"]
    mounts = {v.split(":")[1] for v in grafana_volumes}
    assert providers[0]["options"]["path"] in mounts
    assert dashboard["uid"] == "pipestatus"


# ----------------------------------------------------------------------------- compose


def test_compose_runs_the_whole_stack() -> None:
    services = _compose()["services"]
    assert {
        "kafka",
        "postgres",
        "migrate",
        "pipestatus",
        "prometheus",
        "alertmanager",
        "grafana",
        "webhook-receiver",
    } <= services.keys()
    assert services["kafka"]["image"] == "apache/kafka:3.9.0"
    assert services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"] == "broker,controller"
    assert services["postgres"]["image"] == "postgres:16"
    assert services["migrate"]["build"]["dockerfile"] == "deploy/Dockerfile"
    assert services["migrate"]["command"] == ["pipestatus", "migrate"]
    worker = services["pipestatus"]
    assert worker["image"] == services["migrate"]["image"]
    assert worker["build"] == services["migrate"]["build"]
    assert worker["command"] == ["pipestatus", "worker"]
    assert worker["depends_on"]["migrate"]["condition"] == "service_completed_successfully"
    prometheus_mounts = " ".join(services["prometheus"]["volumes"])
    assert "deploy/prometheus/rules.yml" in prometheus_mounts
    assert "deploy/alertmanager/alertmanager.yml" in " ".join(services["alertmanager"]["volumes"])


def _compose_partitions_per_topic() -> int:
    script = " ".join(_compose()["services"]["kafka-topics"]["command"])
    match = re.search(r"--partitions (\d+)", script)
    assert match, "kafka-topics creates no partitions"
    return int(match.group(1))


def test_dockerfile_is_multi_stage_non_root_with_a_health_check() -> None:
    text = DOCKERFILE.read_text(encoding="utf-8")
    instructions = [line.strip() for line in text.replace("\\\n", " ").splitlines() if line.strip()]
    stages = [line for line in instructions if line.startswith("FROM ")]
    assert len(stages) >= 2, "build the wheel in one stage, run in another"
    assert any("python:3.11" in line for line in instructions if line.startswith("ARG "))
    user = [line for line in instructions if line.startswith("USER ")]
    assert user, "the image must not run as root"
    assert user[-1].split()[1].split(":")[0] not in {"root", "0"}
    assert "EXPOSE 9108" in instructions
    health = [line for line in instructions if line.startswith("HEALTHCHECK ")]
    assert health, "no HEALTHCHECK"
    assert 'CMD ["pipestatus", "health"]' in health[0]
    assert instructions[-1] == 'CMD ["pipestatus", "worker"]'


# ---------------------------------------------------------------------------- kubernetes


def test_k8s_manifests_parse_and_hold_every_kind() -> None:
    kinds = {doc["kind"] for _, doc in _k8s_documents()}
    assert kinds == {
        "Deployment",
        "Service",
        "PodDisruptionBudget",
        "ServiceMonitor",
        "ScaledObject",
        "ConfigMap",
        "Secret",
    }
    for path, doc in _k8s_documents():
        assert doc["apiVersion"], path.name
        assert doc["metadata"]["name"] == "pipestatus", path.name


def test_k8s_deployment_probes_health_and_readiness() -> None:
    deployment = _k8s("Deployment")
    pod = deployment["spec"]["template"]
    (container,) = pod["spec"]["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"metrics": 9108}
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
        assert container[probe]["httpGet"]["port"] in {"metrics", 9108}
    assert container["resources"]["requests"]
    assert container["resources"]["limits"]
    sources = {next(iter(s)): s[next(iter(s))]["name"] for s in container["envFrom"]}
    assert sources == {"configMapRef": "pipestatus", "secretRef": "pipestatus"}
    assert pod["spec"]["securityContext"]["runAsNonRoot"] is True
    assert pod["metadata"]["labels"] == deployment["spec"]["selector"]["matchLabels"]
    shutdown = float(_k8s("ConfigMap")["data"]["PIPESTATUS_WORKER__SHUTDOWN_TIMEOUT_S"])
    assert pod["spec"]["terminationGracePeriodSeconds"] > shutdown


def test_k8s_service_and_monitor_select_the_worker_as_job_pipestatus() -> None:
    pod_labels = _k8s("Deployment")["spec"]["template"]["metadata"]["labels"]
    service = _k8s("Service")
    assert service["metadata"]["name"] == "pipestatus"  # the job label the rules select
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert [p["name"] for p in service["spec"]["ports"]] == ["metrics"]
    monitor = _k8s("ServiceMonitor")
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert [e["port"] for e in monitor["spec"]["endpoints"]] == ["metrics"]
    budget = _k8s("PodDisruptionBudget")
    assert budget["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


def test_k8s_scaled_object_scales_on_kafka_lag_within_the_partitions() -> None:
    scaled = _k8s("ScaledObject")
    spec = scaled["spec"]
    assert spec["scaleTargetRef"]["name"] == _k8s("Deployment")["metadata"]["name"]
    (trigger,) = spec["triggers"]
    assert trigger["type"] == "kafka"
    metadata = trigger["metadata"]
    config = _k8s("ConfigMap")["data"]
    assert metadata["consumerGroup"] == config["PIPESTATUS_KAFKA__GROUP_ID"]
    assert metadata["bootstrapServers"] == config["PIPESTATUS_KAFKA__BOOTSTRAP_SERVERS"]
    assert int(metadata["lagThreshold"]) > 0
    assert spec["minReplicaCount"] >= 1, "the sweep and the alert dispatcher need a worker"
    assert spec["maxReplicaCount"] <= _compose_partitions_per_topic(), (
        "more workers than partitions sit idle"
    )


# ---------------------------------------------------------------------- settings in env


def _environments() -> dict[str, dict[str, str]]:
    services = _compose()["services"]
    k8s_env = {**_k8s("ConfigMap")["data"], **_k8s("Secret")["stringData"]}
    return {
        "compose migrate": services["migrate"]["environment"],
        "compose pipestatus": services["pipestatus"]["environment"],
        "kubernetes": k8s_env,
    }


@pytest.mark.parametrize("where", ["compose migrate", "compose pipestatus", "kubernetes"])
def test_deploy_environment_is_valid_settings(where: str, monkeypatch: pytest.MonkeyPatch) -> None:
    environment = {key: str(value) for key, value in _environments()[where].items()}
    for key in environment:
        assert key.startswith("PIPESTATUS_"), key
        section, _, field = key.removeprefix("PIPESTATUS_").lower().partition("__")
        assert section in Settings.model_fields, f"{where}: {key} is not a setting"
        if field:
            model = Settings.model_fields[section].annotation
            assert model is not None
            assert field in model.model_fields, f"{where}: {key} is not a setting"
    for key in [k for k in os.environ if k.startswith("PIPESTATUS_")]:
        monkeypatch.delenv(key)
    for key, value in environment.items():
        monkeypatch.setenv(key, value)
    settings = load_settings()
    assert settings.http.host == "0.0.0.0"  # noqa: S104  # containers: reachable from outside
    assert settings.http.port == 9108
    assert settings.kafka.group_id == "pipestatus"
    if where != "compose migrate":
        assert settings.alerts.receivers, f"{where}: no alert receiver configured"


# ---------------------------------------------------------------------------- ingress


def test_the_ingress_is_deployed_in_compose_and_kubernetes() -> None:
    service = _compose()["services"]["ingress"]
    assert service["command"] == ["pipestatus", "ingress"]
    assert service["environment"]["PIPESTATUS_INGRESS__HOST"] == "0.0.0.0"  # noqa: S104
    assert json.loads(service["environment"]["PIPESTATUS_INGRESS__SOURCES"])[0]["name"] == "codat"
    documents = list(yaml.safe_load_all((K8S / "ingress" / "ingress.yaml").read_text()))
    kinds = {doc["kind"]: doc for doc in documents}
    assert set(kinds) == {"Deployment", "Service", "Ingress", "Secret"}
    (container,) = kinds["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert container["args"] == ["pipestatus", "ingress"]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    paths = kinds["Ingress"]["spec"]["rules"][0]["http"]["paths"]
    assert [p["path"] for p in paths] == ["/webhooks/"]  # metrics and probes stay inside
    pod_labels = kinds["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert kinds["Service"]["spec"]["selector"].items() <= pod_labels.items()
