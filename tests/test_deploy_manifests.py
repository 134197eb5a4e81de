"""The deployment files, checked without a cluster or a Docker daemon.

- Kubernetes: every kustomization under deploy/k8s is rendered with kustomize (installed by
  deploy/dev/tools.sh) and every object is validated against the Kubernetes JSON schemas that
  kubernetes-validate ships; then the semantics: probes hit real routes of the app, env names are
  settings the service reads, images and commands run real modules, replicas, resources,
  security context, NetworkPolicy, no secret values, nothing dev-only in production.
- deploy/compose.yaml and deploy/Dockerfile: parsed and checked the same way (they cannot be run
  here: no Docker daemon).
"""

import ast
import importlib
import importlib.util
import json
import os
import re
import shlex
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_validate import utils as kube_schemas

from service.access.tenants import TenantDirectory
from service.app import create_app
from service.graph import tracing
from service.settings import Settings

REPO = Path(__file__).resolve().parents[1]
DEPLOY = REPO / "deploy"
K8S = DEPLOY / "k8s"
TOOLS = DEPLOY / "dev" / "tools.sh"

PRODUCTION = K8S / "overlays" / "production"
DEV = K8S / "overlays" / "dev"
MONITORING = K8S / "monitoring"
PUBLIC_INGRESS = K8S / "components" / "public-ingress"
DEV_DATASTORES = K8S / "components" / "dev-datastores"

# Validated against the oldest Kubernetes minor we support and the newest the validator ships.
K8S_VERSIONS = ("1.30", kube_schemas.latest_version())
# Kinds from the Prometheus Operator: no schema ships for them; checked by hand below.
OPERATOR_GROUP = "monitoring.coreos.com/"

SECRET_NAME = "synapse-secrets"
SECRET_KEYS = {"redis-url", "neo4j-password", "openai-api-key", "internal-token"}
TENANTS_SECRET = "synapse-tenants"
DEV_ONLY_LABEL = "synapse.dev/dev-only"

# Set by the Python runtime, not read by Synapse.
PYTHON_RUNTIME_ENV = {"PATH", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE"}

# Rendering the kustomizations (and a first kustomize build, ~40 s cold) needs more than the
# suite's default per-test budget.
pytestmark = pytest.mark.timeout(600)

Manifest = dict[str, Any]


# --- what the service really reads and serves --------------------------------------------------


class _RecordingEnv(dict[str, str]):
    """An empty environment that remembers every name asked of it."""

    def __init__(self) -> None:
        super().__init__()
        self.asked: set[str] = set()

    def get(self, key: str, default: Any = None) -> Any:
        self.asked.add(key)
        return default

    def __getitem__(self, key: str) -> str:
        self.asked.add(key)
        raise KeyError(key)

    def __contains__(self, key: object) -> bool:
        if isinstance(key, str):
            self.asked.add(key)
        return False


@cache
def settings_env_names() -> frozenset[str]:
    env = _RecordingEnv()
    Settings.from_env(env)
    return frozenset(env.asked)


@cache
def graphiti_reads_telemetry_flag() -> bool:
    spec = importlib.util.find_spec("graphiti_core")
    assert spec is not None
    assert spec.submodule_search_locations
    root = Path(next(iter(spec.submodule_search_locations)))
    return any("GRAPHITI_TELEMETRY_ENABLED" in p.read_text() for p in root.rglob("telemetry*.py"))


@cache
def known_env_names() -> frozenset[str]:
    """Every environment variable Synapse's processes read: the settings, the tracing switches
    (service/graph/tracing.py), and Graphiti's telemetry switch."""
    names = set(settings_env_names()) | set(tracing.ENV_NAMES)
    if graphiti_reads_telemetry_flag():
        names.add("GRAPHITI_TELEMETRY_ENABLED")
    return frozenset(names)


@cache
def documented_text() -> str:
    return (REPO / "README.md").read_text() + (DEPLOY / "README.md").read_text()


@cache
def app_routes() -> dict[str, frozenset[str]]:
    """Path -> methods of the API exactly as create_app builds it."""
    app = create_app(Settings())
    return {route.path: frozenset(getattr(route, "methods", ())) for route in app.routes}


@cache
def public_paths() -> frozenset[str]:
    """The routes in the OpenAPI document: debug endpoints and /metrics are not in it."""
    schema = create_app(Settings()).openapi_schema
    assert schema.paths is not None
    return frozenset(schema.paths)


def module_runs(argv: list[str]) -> bool:
    """`python -m pkg` names a package with a __main__ module in this repository."""
    if argv[:2] != ["python", "-m"] or len(argv) != 3:
        return False
    return importlib.util.find_spec(f"{argv[2]}.__main__") is not None


def arq_check_target(argv: list[str]) -> bool:
    """`arq --check module.Class` names a class whose redis_settings arq can read."""
    if argv[:2] != ["arq", "--check"] or len(argv) != 3:
        return False
    module_name, _, attr = argv[2].rpartition(".")
    worker_settings = getattr(importlib.import_module(module_name), attr, None)
    return worker_settings is not None and hasattr(worker_settings, "redis_settings")


# --- rendering ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def kustomize() -> Callable[[Path], list[Manifest]]:
    install = subprocess.run([str(TOOLS), "install"], capture_output=True, text=True, check=False)
    assert install.returncode == 0, install.stderr

    @cache
    def build(directory: Path) -> list[Manifest]:
        result = subprocess.run(
            [str(TOOLS), "kustomize", "build", str(directory)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert result.returncode == 0, f"kustomize build {directory}:\n{result.stderr}"
        return [doc for doc in yaml.safe_load_all(result.stdout) if doc]

    return build


@pytest.fixture(scope="session")
def production(kustomize: Callable[[Path], list[Manifest]]) -> list[Manifest]:
    return kustomize(PRODUCTION)


@pytest.fixture(scope="session")
def with_ingress(
    kustomize: Callable[[Path], list[Manifest]], tmp_path_factory: pytest.TempPathFactory
) -> list[Manifest]:
    """The production overlay plus the public-ingress example component, as a user's own
    overlay would use it."""
    root = tmp_path_factory.mktemp("ingress-overlay")
    (root / "kustomization.yaml").write_text(
        yaml.safe_dump(
            {
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "namespace": "synapse",
                "resources": [os.path.relpath(PRODUCTION, root)],
                "components": [os.path.relpath(PUBLIC_INGRESS, root)],
            }
        )
    )
    return kustomize(root)


def kustomizations() -> list[Path]:
    """Every buildable kustomization (components are built through the overlays using them)."""
    roots = []
    for path in sorted(K8S.rglob("kustomization.yaml")):
        if yaml.safe_load(path.read_text()).get("kind") != "Component":
            roots.append(path.parent)
    return roots


def of_kind(manifests: list[Manifest], kind: str) -> list[Manifest]:
    return [m for m in manifests if m["kind"] == kind]


def named(manifests: list[Manifest], kind: str, name: str) -> Manifest:
    matches = [m for m in of_kind(manifests, kind) if m["metadata"]["name"] == name]
    assert len(matches) == 1, f"{kind}/{name}: {len(matches)} found"
    return matches[0]


def containers(manifest: Manifest) -> list[Manifest]:
    spec = manifest["spec"]["template"]["spec"]
    return [*spec.get("initContainers", []), *spec["containers"]]


def synapse_deployments(manifests: list[Manifest]) -> list[Manifest]:
    return [
        m
        for m in of_kind(manifests, "Deployment")
        if m["metadata"]["labels"].get("app.kubernetes.io/name") == "synapse"
    ]


def selects(selector: Manifest, labels: Manifest) -> bool:
    wanted = selector.get("matchLabels", selector)
    return all(labels.get(key) == value for key, value in wanted.items())


def walk(node: Any) -> Iterator[tuple[str, Any]]:
    """Every (key, value) pair in a nested document."""
    if isinstance(node, dict):
        for key, value in node.items():
            yield key, value
            yield from walk(value)
    elif isinstance(node, list):
        for item in node:
            yield from walk(item)


# --- Kubernetes: schemas -----------------------------------------------------------------------


@pytest.mark.parametrize("root", kustomizations(), ids=lambda p: str(p.relative_to(K8S)))
def test_every_kustomization_renders_and_matches_the_kubernetes_schemas(
    kustomize: Callable[[Path], list[Manifest]], root: Path
) -> None:
    manifests = kustomize(root)
    failures = []
    for manifest in manifests:
        if manifest["apiVersion"].startswith(OPERATOR_GROUP):
            continue
        for version in K8S_VERSIONS:
            try:
                kube_schemas.validate(manifest, version, strict=True)
            except kube_schemas.ValidationError as exc:
                path = ".".join(str(p) for p in exc.path)
                failures.append(f"{kube_schemas.kn(manifest)} @{version}: {path}: {exc.message}")
            except kube_schemas.SchemaNotFoundError as exc:
                failures.append(exc.message)

    assert manifests
    assert failures == []


def test_the_ingress_example_renders_and_matches_the_kubernetes_schemas(
    with_ingress: list[Manifest],
) -> None:
    for manifest in with_ingress:
        if not manifest["apiVersion"].startswith(OPERATOR_GROUP):
            for version in K8S_VERSIONS:
                kube_schemas.validate(manifest, version, strict=True)

    assert of_kind(with_ingress, "Ingress")


def test_every_yaml_file_under_deploy_parses() -> None:
    files = sorted(DEPLOY.rglob("*.yaml"))
    for path in files:
        docs = list(yaml.safe_load_all(path.read_text()))
        assert docs, path
        assert all(isinstance(doc, dict) for doc in docs), path

    assert len(files) >= 10


# --- Kubernetes: what the production overlay runs ----------------------------------------------


def test_production_runs_the_api_and_the_janitor_from_one_image(
    production: list[Manifest],
) -> None:
    api = named(production, "Deployment", "synapse-api")
    janitor = named(production, "Deployment", "synapse-janitor")
    (api_container,) = containers(api)
    (janitor_container,) = containers(janitor)

    assert api_container["image"] == janitor_container["image"]
    assert api_container["image"].split(":")[0] != "synapse"  # the overlay names a registry
    assert module_runs(api_container["command"])
    assert module_runs(janitor_container["command"])
    assert api_container["command"] == ["python", "-m", "service"]
    assert janitor_container["command"] == ["python", "-m", "janitor"]
    assert {m["metadata"]["namespace"] for m in production if m["kind"] != "Namespace"} == {
        "synapse"
    }


def test_production_runs_at_least_two_of_each(production: list[Manifest]) -> None:
    api = named(production, "Deployment", "synapse-api")
    janitor = named(production, "Deployment", "synapse-janitor")
    hpa = named(production, "HorizontalPodAutoscaler", "synapse-api")

    # The API's count belongs to its autoscaler; a fixed count would fight it on every apply.
    assert "replicas" not in api["spec"]
    assert hpa["spec"]["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": "synapse-api",
    }
    assert hpa["spec"]["minReplicas"] >= 2
    assert hpa["spec"]["maxReplicas"] > hpa["spec"]["minReplicas"]
    assert janitor["spec"]["replicas"] >= 2


def test_probes_point_at_real_routes_and_the_arq_health_check(production: list[Manifest]) -> None:
    routes = app_routes()
    api = named(production, "Deployment", "synapse-api")
    janitor = named(production, "Deployment", "synapse-janitor")
    (api_container,) = containers(api)
    (janitor_container,) = containers(janitor)
    port_names = {port["name"] for port in api_container["ports"]}

    probes = {
        kind: api_container[kind]["httpGet"]
        for kind in ("startupProbe", "livenessProbe", "readinessProbe")
    }
    assert probes["readinessProbe"]["path"] == "/ready"
    assert probes["livenessProbe"]["path"] == "/health"
    for probe in probes.values():
        assert "GET" in routes[probe["path"]]
        assert probe["port"] in port_names
    assert arq_check_target(janitor_container["livenessProbe"]["exec"]["command"])


def test_every_env_name_is_a_setting_the_service_reads_and_is_documented(
    production: list[Manifest], kustomize: Callable[[Path], list[Manifest]]
) -> None:
    names: set[str] = set()
    for manifests in (production, kustomize(DEV)):
        for config_map in of_kind(manifests, "ConfigMap"):
            names |= set(config_map["data"])
        for deployment in synapse_deployments(manifests):
            for container in containers(deployment):
                names |= {env["name"] for env in container.get("env", [])}

    # The settings config.env offers commented out, ready to uncomment, are real ones too.
    offered = set(
        re.findall(r"^# ([A-Z][A-Z0-9_]+)=", (K8S / "base" / "config.env").read_text(), re.M)
    )

    assert names - known_env_names() == set()
    assert offered - known_env_names() == set()
    assert {name for name in names | offered if name not in documented_text()} == set()
    assert {"REDIS_URL", "NEO4J_URI", "NEO4J_PASSWORD", "SYNAPSE_TENANTS_FILE"} <= names


def test_the_production_settings_are_accepted_by_the_service(production: list[Manifest]) -> None:
    (config_map,) = of_kind(production, "ConfigMap")
    api = named(production, "Deployment", "synapse-api")
    (container,) = containers(api)
    env = dict(config_map["data"])
    env.update({e["name"]: e["value"] for e in container["env"] if "value" in e})
    # The Secret's values are the operator's; any non-empty value stands in for them here.
    env.update({e["name"]: "placeholder" for e in container["env"] if "valueFrom" in e})
    env["REDIS_URL"] = "redis://redis.example:6379/0"

    settings = Settings.from_env(env)

    assert settings.llm_provider == "openai"
    assert settings.host == "0.0.0.0"
    assert settings.port == container["ports"][0]["containerPort"]
    assert settings.tenants_file == "/etc/synapse/tenants/tenants.json"


def test_secrets_are_only_referenced_never_committed(
    production: list[Manifest], kustomize: Callable[[Path], list[Manifest]]
) -> None:
    rendered = [*production, *kustomize(DEV), *kustomize(MONITORING)]
    refs = [value for key, value in walk(rendered) if key == "secretKeyRef"]
    volumes = [value for key, value in walk(rendered) if key == "secret"]
    api = named(production, "Deployment", "synapse-api")
    (api_container,) = containers(api)
    tenants_dir = next(
        mount["mountPath"] for mount in api_container["volumeMounts"] if mount["name"] == "tenants"
    )
    tenants_file = next(
        e["value"] for e in api_container["env"] if e["name"] == "SYNAPSE_TENANTS_FILE"
    )

    assert of_kind(rendered, "Secret") == []
    assert {ref["name"] for ref in refs} == {SECRET_NAME}
    assert {ref["key"] for ref in refs} <= SECRET_KEYS
    assert {volume["secretName"] for volume in volumes} == {TENANTS_SECRET}
    assert Path(tenants_file).parent == Path(tenants_dir)
    committed = [p for p in DEPLOY.rglob("*") if p.is_file() and "secret" in p.name.lower()]
    assert committed == []


def test_every_synapse_container_is_bounded_and_unprivileged(production: list[Manifest]) -> None:
    for deployment in synapse_deployments(production):
        pod = deployment["spec"]["template"]["spec"]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pod["securityContext"]["runAsUser"] != 0
        assert pod["automountServiceAccountToken"] is False
        for container in containers(deployment):
            resources = container["resources"]
            assert {"cpu", "memory"} <= set(resources["requests"]), container["name"]
            assert "memory" in resources["limits"], container["name"]
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"]["drop"] == ["ALL"]


def test_services_budgets_and_autoscaler_select_the_api_pods(production: list[Manifest]) -> None:
    api = named(production, "Deployment", "synapse-api")
    janitor = named(production, "Deployment", "synapse-janitor")
    api_labels = api["spec"]["template"]["metadata"]["labels"]
    janitor_labels = janitor["spec"]["template"]["metadata"]["labels"]
    (container,) = containers(api)
    service = named(production, "Service", "synapse-api")

    assert selects(api["spec"]["selector"], api_labels)
    assert selects(service["spec"]["selector"], api_labels)
    assert not selects(service["spec"]["selector"], janitor_labels)
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= {
        p["name"] for p in container["ports"]
    }
    assert selects(
        named(production, "PodDisruptionBudget", "synapse-api")["spec"]["selector"], api_labels
    )
    assert selects(
        named(production, "PodDisruptionBudget", "synapse-janitor")["spec"]["selector"],
        janitor_labels,
    )


def test_only_the_orchestrator_and_monitoring_namespaces_reach_the_api(
    production: list[Manifest],
) -> None:
    api = named(production, "Deployment", "synapse-api")
    janitor = named(production, "Deployment", "synapse-janitor")
    api_labels = api["spec"]["template"]["metadata"]["labels"]
    policies = of_kind(production, "NetworkPolicy")
    for_api = [p for p in policies if selects(p["spec"]["podSelector"], api_labels)]
    janitor_policies = [
        p
        for p in policies
        if selects(p["spec"]["podSelector"], janitor["spec"]["template"]["metadata"]["labels"])
    ]
    sources = [
        peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        for policy in for_api
        for rule in policy["spec"]["ingress"]
        for peer in rule["from"]
    ]

    assert for_api
    assert all("Ingress" in p["spec"]["policyTypes"] for p in for_api)
    # Every peer is a whole namespace named explicitly: no podSelector-only or ipBlock peer.
    assert sorted(sources) == ["monitoring", "orchestrator"]
    assert [p["spec"]["ingress"] for p in janitor_policies] == [[]]
    assert of_kind(production, "Ingress") == []


def test_the_ingress_example_routes_only_public_paths(with_ingress: list[Manifest]) -> None:
    (ingress,) = of_kind(with_ingress, "Ingress")
    paths = [
        (path["path"], path["pathType"], path["backend"]["service"]["name"])
        for rule in ingress["spec"]["rules"]
        for path in rule["http"]["paths"]
    ]
    public = public_paths() - {"/health", "/ready"}

    assert all(kind == "Exact" for _, kind, _ in paths)
    assert {backend for _, _, backend in paths} == {"synapse-api"}
    assert {path for path, _, _ in paths} == public
    assert not any(path.startswith(("/internal", "/metrics", "/schema")) for path, _, _ in paths)
    # The controller's namespace is let through to the API as well.
    assert any(
        p["metadata"]["name"] == "synapse-api-from-ingress"
        for p in of_kind(with_ingress, "NetworkPolicy")
    )


def test_dev_datastores_are_marked_and_never_in_production(
    production: list[Manifest], kustomize: Callable[[Path], list[Manifest]]
) -> None:
    dev = kustomize(DEV)
    dev_only = [m for m in dev if m["metadata"].get("labels", {}).get(DEV_ONLY_LABEL) == "true"]
    stateful = of_kind(dev, "StatefulSet")
    production_kustomization = yaml.safe_load((PRODUCTION / "kustomization.yaml").read_text())
    production_sources = [
        *production_kustomization.get("resources", []),
        *production_kustomization.get("components", []),
    ]

    assert {m["metadata"]["name"] for m in stateful} == {"synapse-redis", "synapse-neo4j"}
    assert all(m["spec"]["replicas"] == 1 for m in stateful)
    assert all(m in dev_only for m in stateful)
    assert {c["image"] for m in stateful for c in containers(m)} == {
        "redis:7",
        "neo4j:2026.08.1-community",
    }
    redis = named(dev, "StatefulSet", "synapse-redis")
    assert "--appendonly" in containers(redis)[0]["args"]
    assert [m for m in production if DEV_ONLY_LABEL in m["metadata"].get("labels", {})] == []
    assert of_kind(production, "StatefulSet") == []
    assert not any("dev-datastores" in source for source in production_sources)
    assert "DEV ONLY" in (DEV_DATASTORES / "kustomization.yaml").read_text()


# --- Kubernetes: monitoring (Prometheus Operator kinds, no published schema here) --------------


@cache
def exported_metric_names() -> frozenset[str]:
    """The metric families service/observability/metrics.py defines, with their exposition
    suffixes."""
    source = (REPO / "service" / "observability" / "metrics.py").read_text()
    bases = set(re.findall(r'"(synapse_[a-z_]+)"', source))
    suffixes = ("", "_total", "_count", "_sum", "_bucket", "_created")
    return frozenset(base + suffix for base in bases for suffix in suffixes)


def test_the_service_monitor_scrapes_the_metrics_route_of_the_api_service(
    production: list[Manifest], kustomize: Callable[[Path], list[Manifest]]
) -> None:
    monitoring = kustomize(MONITORING)
    (monitor,) = of_kind(monitoring, "ServiceMonitor")
    service = named(production, "Service", "synapse-api")
    (endpoint,) = monitor["spec"]["endpoints"]

    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert selects(monitor["spec"]["selector"], service["metadata"]["labels"])
    assert monitor["spec"]["namespaceSelector"]["matchNames"] == [service["metadata"]["namespace"]]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert "GET" in app_routes()[endpoint["path"]]
    assert endpoint["path"] == "/metrics"


def test_every_alert_uses_real_metrics_and_is_explained(
    kustomize: Callable[[Path], list[Manifest]],
) -> None:
    (rule_set,) = of_kind(kustomize(MONITORING), "PrometheusRule")
    rules = [rule for group in rule_set["spec"]["groups"] for rule in group["rules"]]
    operations_doc = (DEPLOY / "README.md").read_text()
    used = {name for rule in rules for name in re.findall(r"\b(synapse_[a-z_]+)", rule["expr"])}

    assert used
    assert used <= exported_metric_names()
    for rule in rules:
        assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"]
        assert rule["annotations"]["description"]
        assert rule["expr"].count("(") == rule["expr"].count(")"), rule["alert"]
        assert f"`{rule['alert']}`" in operations_doc, f"{rule['alert']} is not in deploy/README.md"
    assert {
        "SynapseOutboxDeadEntries",
        "SynapseOutboxPendingGrowing",
        "SynapseApiHigh5xxRate",
        "SynapseJanitorDown",
    } <= {rule["alert"] for rule in rules}


# --- Docker Compose ------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> Manifest:
    document: Manifest = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return document


def compose_env_names(service: Manifest) -> set[str]:
    environment = service.get("environment", {})
    if isinstance(environment, list):
        return {item.split("=", 1)[0] for item in environment}
    return set(environment)


def test_compose_runs_redis_with_aof_and_neo4j_with_a_password_on_volumes(
    compose: Manifest,
) -> None:
    services = compose["services"]
    redis, neo4j = services["redis"], services["neo4j"]
    declared_volumes = set(compose["volumes"])

    assert redis["image"] == "redis:7"
    assert redis["command"][redis["command"].index("--appendonly") + 1] == "yes"
    assert redis["command"][redis["command"].index("--appendfsync") + 1] == "everysec"
    assert neo4j["image"] == "neo4j:2026.08.1-community"
    assert neo4j["environment"]["NEO4J_AUTH"].startswith("neo4j/${NEO4J_PASSWORD")
    for service in (redis, neo4j):
        (volume,) = service["volumes"]
        name, target = volume.split(":")[:2]
        assert name in declared_volumes
        assert target == "/data"
        assert service["healthcheck"]["test"]


def test_compose_runs_both_processes_from_the_dockerfile_once_the_stores_are_healthy(
    compose: Manifest,
) -> None:
    services = compose["services"]
    api, janitor = services["api"], services["janitor"]

    assert (DEPLOY / api["build"]["context"] / api["build"]["dockerfile"]).resolve() == (
        DEPLOY / "Dockerfile"
    )
    assert janitor["image"] == api["image"]
    assert module_runs(api["command"])
    assert module_runs(janitor["command"])
    assert api["command"] != janitor["command"]
    for service in (api, janitor):
        assert service["depends_on"]["redis"]["condition"] == "service_healthy"
        assert service["depends_on"]["neo4j"]["condition"] == "service_healthy"
        assert service["healthcheck"]["test"]
    assert arq_check_target(janitor["healthcheck"]["test"][1:])
    assert "/health" in " ".join(api["healthcheck"]["test"])


def test_compose_env_names_are_settings_and_the_api_port_is_the_published_one(
    compose: Manifest,
) -> None:
    api = compose["services"]["api"]
    names = compose_env_names(api) | compose_env_names(compose["services"]["janitor"])
    (published,) = api["ports"]
    host, host_port, container_port = published.split(":")

    assert names - known_env_names() == set()
    assert host == "127.0.0.1"
    assert host_port == container_port == api["environment"]["SYNAPSE_PORT"]
    assert api["environment"]["REDIS_URL"].startswith("redis://redis:")
    assert api["environment"]["NEO4J_URI"].startswith("bolt://neo4j:")


def test_compose_dev_tenants_file_holds_only_key_hashes_of_the_documented_dev_keys(
    compose: Manifest,
) -> None:
    api = compose["services"]["api"]
    (mount,) = api["volumes"]
    source, target, _ = mount.split(":")
    path = (DEPLOY / source).resolve()
    directory = TenantDirectory(str(path))
    raw = json.loads(path.read_text())

    assert target == api["environment"]["SYNAPSE_TENANTS_FILE"]
    tenant_a = directory.tenant_for("dev-key-tenant-a")
    tenant_t = directory.tenant_for("dev-key-t")
    assert tenant_a is not None
    assert tenant_a.tenant_id == "tenant_a"
    assert tenant_t is not None
    assert tenant_t.tenant_id == "t"
    assert all(
        re.fullmatch(r"sha256:[0-9a-f]{64}", key)
        for entry in raw["tenants"].values()
        for key in entry["keys"]
    )
    assert "dev-key-tenant-a" in (DEPLOY / "README.md").read_text()


# --- Dockerfile (static: no Docker daemon here) --------------------------------------------------


@dataclass(frozen=True)
class Instruction:
    keyword: str
    args: str


def dockerfile() -> list[Instruction]:
    logical: list[str] = []
    pending = ""
    for line in (DEPLOY / "Dockerfile").read_text().splitlines():
        stripped = line.strip()
        if not pending and (not stripped or stripped.startswith("#")):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical.append(pending + stripped)
        pending = ""
    instructions = []
    for text in logical:
        keyword, _, args = text.partition(" ")
        instructions.append(Instruction(keyword.upper(), args.strip()))
    return instructions


def stages() -> list[list[Instruction]]:
    result: list[list[Instruction]] = []
    for instruction in dockerfile():
        if instruction.keyword == "FROM":
            result.append([])
        if result:
            result[-1].append(instruction)
    return result


def exec_form(args: str) -> list[str]:
    parsed = json.loads(args)
    assert isinstance(parsed, list), args
    assert all(isinstance(a, str) for a in parsed), args
    return parsed


def test_dockerfile_is_multi_stage_and_the_final_stage_only_copies_the_built_venv() -> None:
    all_stages = stages()
    final = all_stages[-1]
    build_names = {s[0].args.split()[-1] for s in all_stages[:-1]}
    copies_from = {
        i.args.split()[0].removeprefix("--from=")
        for i in final
        if i.keyword == "COPY" and i.args.startswith("--from=")
    }
    final_runs = " ".join(i.args for i in final if i.keyword == "RUN")

    assert len(all_stages) >= 2
    assert copies_from
    assert copies_from <= build_names
    assert "pip install" not in final_runs
    assert not re.search(r"\b(apt-get|apk)\b.*\b(gcc|g\+\+|build-essential|make)\b", final_runs)


def test_dockerfile_runs_as_a_numeric_non_root_user() -> None:
    final = stages()[-1]
    users = [i.args for i in final if i.keyword == "USER"]

    assert users, "the final stage sets no USER"
    uid, _, gid = users[-1].partition(":")
    assert uid.isdigit()
    assert int(uid) != 0
    assert not gid or (gid.isdigit() and int(gid) != 0)
    for deployment_file in (K8S / "base").glob("*-deployment.yaml"):
        context = yaml.safe_load(deployment_file.read_text())["spec"]["template"]["spec"]
        assert context["securityContext"]["runAsUser"] == int(uid)


def test_dockerfile_env_healthcheck_and_command() -> None:
    final = stages()[-1]
    env: dict[str, str] = {}
    for instruction in (i for i in final if i.keyword == "ENV"):
        for pair in shlex.split(instruction.args):
            name, _, value = pair.partition("=")
            env[name] = value
    (healthcheck,) = [i.args for i in final if i.keyword == "HEALTHCHECK"]
    (command,) = [i.args for i in final if i.keyword == "CMD"]
    probe = exec_form(healthcheck[healthcheck.index("CMD") + len("CMD") :].strip())

    assert env["GRAPHITI_TELEMETRY_ENABLED"] == "false"
    assert set(env) - PYTHON_RUNTIME_ENV <= known_env_names()
    assert env["SYNAPSE_HOST"] == "0.0.0.0"
    assert module_runs(exec_form(command))
    assert exec_form(command) == ["python", "-m", "service"]
    assert probe[:2] == ["python", "-c"]
    ast.parse(probe[2])
    assert "/health" in probe[2]
    assert "GET" in app_routes()["/health"]
    assert not any(i.keyword == "ENTRYPOINT" for i in final)
