"""The Helm chart (deploy/helm/tollway), rendered offline with helm-python-sdk: with the
default values and with every optional feature on, each object is checked against the
Kubernetes schemas of a pinned release (kubernetes-validate, strict: an unknown field is
an error), and each value toggle is shown to do what values.yaml says."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import helm_python as helm
import kubernetes_validate
import pytest
import yaml
from deploy_support import (
    CHART,
    KUBERNETES,
    KUBERNETES_OLDEST,
    Manifest,
    container_env,
    of_kind,
    one,
    pod_spec,
    render,
)

from tollway.settings import Settings, load_settings

# Every optional feature on, every list and map given something.
ALL_ON: dict[str, Any] = {
    "ingress": {
        "enabled": True,
        "className": "nginx",
        "annotations": {"nginx.ingress.kubernetes.io/proxy-buffering": "off"},
        "tls": [{"secretName": "tollway-tls", "hosts": ["tollway.example.com"]}],
    },
    "autoscaling": {"enabled": True, "targetMemoryUtilizationPercentage": 80},
    "serviceMonitor": {"enabled": True, "labels": {"release": "prometheus"}},
    "metrics": {"port": 9464},
    "persistence": {"enabled": True, "storageClassName": "shared-nfs"},
    "extraEnv": [{"name": "OTEL_EXPORTER_OTLP_ENDPOINT", "value": "http://otel:4318"}],
    "extraEnvFrom": [{"secretRef": {"name": "tollway-extra"}}],
    "serviceAccountName": "tollway",
    "imagePullSecrets": [{"name": "registry"}],
    "podAnnotations": {"example.com/team": "platform"},
    "podLabels": {"team": "platform"},
    "service": {"annotations": {"example.com/owner": "platform"}},
    "nodeSelector": {"kubernetes.io/os": "linux"},
    "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "llm"}],
    "affinity": {
        "podAntiAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {
                    "weight": 100,
                    "podAffinityTerm": {
                        "topologyKey": "kubernetes.io/hostname",
                        "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "tollway"}},
                    },
                }
            ]
        }
    },
    "topologySpreadConstraints": [
        {
            "maxSkew": 1,
            "topologyKey": "topology.kubernetes.io/zone",
            "whenUnsatisfiable": "ScheduleAnyway",
            "labelSelector": {"matchLabels": {"app.kubernetes.io/name": "tollway"}},
        }
    ],
}

VARIANTS = {"default": None, "all-on": ALL_ON}
# Custom resources: no schema ships with Kubernetes (checked field by field below).
CUSTOM_KINDS = {"ServiceMonitor"}


def merged(*overrides: dict[str, Any]) -> dict[str, Any]:
    """Values overrides merged left to right (maps deeply, everything else replaced)."""
    result: dict[str, Any] = {}
    for override in overrides:
        _merge(result, copy.deepcopy(override))
    return result


def _merge(into: dict[str, Any], new: dict[str, Any]) -> None:
    for key, value in new.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value


def deployment(values: dict[str, Any] | None = None) -> Manifest:
    """The Deployment rendered for ``values``."""
    return one(render(values), "Deployment")


def gateway_container(values: dict[str, Any] | None = None) -> Manifest:
    """The gateway's container."""
    container: Manifest = pod_spec(deployment(values))["containers"][0]
    return container


@pytest.fixture(scope="module", params=list(VARIANTS))
def manifests(request: pytest.FixtureRequest) -> list[Manifest]:
    return render(VARIANTS[request.param])


@pytest.mark.parametrize("version", [KUBERNETES, KUBERNETES_OLDEST])
def test_every_object_passes_the_kubernetes_schemas(
    manifests: list[Manifest], version: str
) -> None:
    checked = 0
    for manifest in manifests:
        if manifest["kind"] in CUSTOM_KINDS:
            continue
        kubernetes_validate.validate(manifest, version, strict=True)
        checked += 1
    assert checked >= 5


def test_the_schema_check_is_strict() -> None:
    """A misspelt field fails: the check above would catch a template's typo."""
    broken = deployment()
    broken["spec"]["template"]["spec"]["containers"][0]["securityContext"][
        "readOnlyRootFileSystem"
    ] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES, strict=True)


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_helm_lint_finds_nothing_to_fix(variant: str) -> None:
    report = helm.lint(CHART, VARIANTS[variant], strict=True, kube_version=f"v{KUBERNETES}")
    assert report["errors"] == []
    # Severity 1 is information ("icon is recommended"); 2 and above need a fix.
    assert [m for m in report["messages"] if m["severity"] >= 2] == []


def test_chart_claims_the_oldest_version_checked() -> None:
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text(encoding="utf-8"))
    assert chart["kubeVersion"] == f">={KUBERNETES_OLDEST}-0"


def test_defaults_render_the_core_objects_only() -> None:
    kinds = sorted(m["kind"] for m in render())
    assert kinds == ["ConfigMap", "Deployment", "Job", "PodDisruptionBudget", "Service"]


def test_every_feature_on_renders_every_object() -> None:
    kinds = sorted(m["kind"] for m in render(ALL_ON))
    assert kinds == [
        "ConfigMap",
        "Deployment",
        "HorizontalPodAutoscaler",
        "Ingress",
        "Job",
        "PersistentVolumeClaim",
        "PodDisruptionBudget",
        "Service",
        "ServiceMonitor",
    ]


@pytest.mark.parametrize(
    ("values", "kind", "count"),
    [
        ({"ingress": {"enabled": False}}, "Ingress", 0),
        ({"ingress": {"enabled": True}}, "Ingress", 1),
        ({"autoscaling": {"enabled": False}}, "HorizontalPodAutoscaler", 0),
        ({"autoscaling": {"enabled": True}}, "HorizontalPodAutoscaler", 1),
        ({"podDisruptionBudget": {"enabled": False}}, "PodDisruptionBudget", 0),
        ({"podDisruptionBudget": {"enabled": True}}, "PodDisruptionBudget", 1),
        ({"serviceMonitor": {"enabled": False}}, "ServiceMonitor", 0),
        ({"serviceMonitor": {"enabled": True}}, "ServiceMonitor", 1),
        ({"migrations": {"enabled": False}}, "Job", 0),
        ({"migrations": {"enabled": True}}, "Job", 1),
        ({"persistence": {"enabled": False}}, "PersistentVolumeClaim", 0),
        ({"persistence": {"enabled": True}}, "PersistentVolumeClaim", 1),
        ({"persistence": {"enabled": True, "existingClaim": "mine"}}, "PersistentVolumeClaim", 0),
    ],
)
def test_a_toggle_adds_or_removes_its_object(values: dict[str, Any], kind: str, count: int) -> None:
    assert len(of_kind(render(values), kind)) == count


def test_autoscaling_leaves_the_replica_count_to_the_autoscaler() -> None:
    assert deployment({"replicaCount": 3})["spec"]["replicas"] == 3
    manifests = render({"autoscaling": {"enabled": True, "minReplicas": 2, "maxReplicas": 7}})
    assert "replicas" not in one(manifests, "Deployment")["spec"]
    hpa = one(manifests, "HorizontalPodAutoscaler")["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": one(manifests, "Deployment")["metadata"]["name"],
    }
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 7)
    assert [m["resource"]["name"] for m in hpa["metrics"]] == ["cpu"]


def test_probes_use_the_health_endpoints_on_the_gateway_port() -> None:
    container = gateway_container()
    assert container["ports"][0] == {"name": "http", "containerPort": 8080, "protocol": "TCP"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": "http"}
    assert container["startupProbe"]["httpGet"] == {"path": "/health/live", "port": "http"}
    assert container_env(container)["TOLLWAY_PORT"]["value"] == "8080"
    assert container["resources"]["requests"] and container["resources"]["limits"]


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_pods_run_unprivileged_on_a_read_only_root(variant: str) -> None:
    manifests = render(VARIANTS[variant])
    for owner in of_kind(manifests, "Deployment") + of_kind(manifests, "Job"):
        spec = pod_spec(owner)
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] != 0
        assert spec["automountServiceAccountToken"] is False
        volumes = {v["name"]: v for v in spec["volumes"]}
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"]["drop"] == ["ALL"]
            mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
            # The only writable places: the data volume (the data dir is inside it) and /tmp.
            data_dir = Path(container_env(container)["TOLLWAY_DATA_DIR"]["value"])
            assert str(data_dir.parent) in mounts and "/tmp" in mounts
            writable = {path for path, m in mounts.items() if not m.get("readOnly")}
            assert writable == {str(data_dir.parent), "/tmp"}
            for mount in mounts.values():
                assert mount["name"] in volumes


def test_the_data_dir_is_an_empty_dir_or_a_claim() -> None:
    def data_volume(values: dict[str, Any] | None) -> Manifest:
        volumes = {v["name"]: v for v in pod_spec(deployment(values))["volumes"]}
        return volumes["data"]

    assert data_volume(None) == {"name": "data", "emptyDir": {"sizeLimit": "1Gi"}}
    claimed = data_volume({"persistence": {"enabled": True}})
    assert claimed["persistentVolumeClaim"] == {"claimName": "tollway-data"}
    pvc = one(render({"persistence": {"enabled": True}}), "PersistentVolumeClaim")
    assert pvc["metadata"]["name"] == "tollway-data"
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"]
    existing = data_volume({"persistence": {"enabled": True, "existingClaim": "mine"}})
    assert existing["persistentVolumeClaim"] == {"claimName": "mine"}


def test_secrets_come_from_existing_secrets_only() -> None:
    values = {
        "secrets": {
            "masterKey": {"secretName": "gw-admin", "key": "mk"},
            "secretKey": {"secretName": "gw-admin", "key": "sk"},
            "databaseUrl": {"secretName": "gw-db", "key": "url"},
            "redisUrl": {"secretName": "gw-redis", "key": "url"},
        },
        "providerKeys": [{"env": "GROQ_API_KEY", "secretName": "llm", "key": "groq"}],
    }
    env = container_env(gateway_container(values))
    expected = {
        "TOLLWAY_MASTER_KEY": ("gw-admin", "mk"),
        "TOLLWAY_SECRET_KEY": ("gw-admin", "sk"),
        "TOLLWAY_DATABASE_URL": ("gw-db", "url"),
        "TOLLWAY_REDIS_URL": ("gw-redis", "url"),
        "GROQ_API_KEY": ("llm", "groq"),
    }
    for name, (secret, key) in expected.items():
        assert "value" not in env[name]
        reference = env[name]["valueFrom"]["secretKeyRef"]
        assert (reference["name"], reference["key"]) == (secret, key)
    assert not {"OPENAI_API_KEY", "ANTHROPIC_API_KEY"} & env.keys()


def test_without_redis_no_redis_url_is_set() -> None:
    env = container_env(gateway_container({"secrets": {"redisUrl": {"secretName": ""}}}))
    assert "TOLLWAY_REDIS_URL" not in env


def test_sqlite_serves_one_pod_only() -> None:
    sqlite = {"secrets": {"databaseUrl": {"secretName": ""}}}
    with pytest.raises(helm.HelmRenderError, match="more than one pod needs a shared database"):
        render(sqlite)
    with pytest.raises(helm.HelmRenderError, match="shared database"):
        render(merged(sqlite, {"replicaCount": 1, "autoscaling": {"enabled": True}}))
    manifests = render(merged(sqlite, {"replicaCount": 1}))
    assert "TOLLWAY_DATABASE_URL" not in container_env(
        pod_spec(one(manifests, "Deployment"))["containers"][0]
    )
    assert of_kind(manifests, "Job") == []  # SQLite migrates when the pod starts


def test_missing_secret_names_stop_the_render() -> None:
    with pytest.raises(helm.HelmRenderError, match="TOLLWAY_MASTER_KEY"):
        render({"secrets": {"masterKey": {"secretName": ""}}})


def test_migrations_run_once_as_a_hook_before_install_and_upgrade() -> None:
    job = one(render(), "Job")
    annotations = job["metadata"]["annotations"]
    assert annotations["helm.sh/hook"] == "pre-install,pre-upgrade"
    assert "before-hook-creation" in annotations["helm.sh/hook-delete-policy"]
    spec = pod_spec(job)
    assert spec["restartPolicy"] == "Never"
    container = spec["containers"][0]
    assert container["args"] == ["migrate"]
    env = container_env(container)
    # Hooks run before the release's other objects exist: the Job needs no ConfigMap.
    assert env["TOLLWAY_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"] == "tollway"
    assert all(v.get("configMap") is None for v in spec["volumes"])
    assert gateway_container()["args"] == ["serve"]


def config_of(manifests: list[Manifest]) -> dict[str, Any]:
    """The tollway.yaml in the chart's ConfigMap, parsed."""
    text = one(manifests, "ConfigMap")["data"]["tollway.yaml"]
    parsed: dict[str, Any] = yaml.safe_load(text)
    return parsed


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_the_config_is_one_the_gateway_accepts(
    variant: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = config_of(render(VARIANTS[variant]))
    if "metrics" not in Settings.model_fields:
        # The metrics section arrives with the /metrics endpoint; until this Tollway
        # knows it, what the chart writes there is checked by the next test alone.
        config.pop("metrics", None)
    path = tmp_path / "tollway.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-openai")
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    settings = load_settings(path)
    assert set(settings.providers) == {"openai", "anthropic"}
    assert settings.providers["openai"].api_key is not None


def test_a_metrics_port_is_configured_exposed_and_scraped() -> None:
    manifests = render({"metrics": {"port": 9464}, "serviceMonitor": {"enabled": True}})
    assert config_of(manifests)["metrics"] == {"port": 9464}
    ports = {p["name"]: p for p in pod_spec(one(manifests, "Deployment"))["containers"][0]["ports"]}
    assert ports["metrics"]["containerPort"] == 9464
    service_ports = {p["name"]: p for p in one(manifests, "Service")["spec"]["ports"]}
    assert service_ports["metrics"] == {
        "name": "metrics",
        "port": 9464,
        "targetPort": "metrics",
        "protocol": "TCP",
    }
    endpoint = one(manifests, "ServiceMonitor")["spec"]["endpoints"][0]
    assert (endpoint["port"], endpoint["path"]) == ("metrics", "/metrics")
    with pytest.raises(helm.HelmRenderError, match=r"metrics\.port"):
        render({"metrics": {"port": 8080}})


def test_the_service_monitor_scrapes_the_gateway_with_a_bearer_token() -> None:
    manifests = render({"serviceMonitor": {"enabled": True, "labels": {"release": "prom"}}})
    monitor = one(manifests, "ServiceMonitor")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert monitor["metadata"]["labels"]["release"] == "prom"
    service = one(manifests, "Service")
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["llm"]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    assert endpoint["authorization"] == {
        "type": "Bearer",
        "credentials": {"name": "tollway", "key": "metrics-token"},
    }
    unauthenticated = render(
        {"serviceMonitor": {"enabled": True, "bearerToken": {"secretName": ""}}}
    )
    assert "authorization" not in one(unauthenticated, "ServiceMonitor")["spec"]["endpoints"][0]


def test_selectors_reach_the_gateway_pods() -> None:
    manifests = render(ALL_ON)
    pod_labels = one(manifests, "Deployment")["spec"]["template"]["metadata"]["labels"]
    selector = one(manifests, "Deployment")["spec"]["selector"]["matchLabels"]
    assert selector.items() <= pod_labels.items()
    assert one(manifests, "Service")["spec"]["selector"] == selector
    assert one(manifests, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"] == selector
    # The migration Job's pods are not the gateway's: the Service never sends them traffic.
    job_labels = one(manifests, "Job")["spec"]["template"]["metadata"]["labels"]
    assert not selector.items() <= job_labels.items()


def test_the_ingress_routes_to_the_service_port() -> None:
    manifests = render(ALL_ON)
    service = one(manifests, "Service")
    ingress = one(manifests, "Ingress")["spec"]
    assert ingress["ingressClassName"] == "nginx"
    assert ingress["tls"] == [{"secretName": "tollway-tls", "hosts": ["tollway.example.com"]}]
    (rule,) = ingress["rules"]
    backend = rule["http"]["paths"][0]["backend"]["service"]
    assert backend["name"] == service["metadata"]["name"]
    assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}


def test_a_config_change_rolls_the_pods() -> None:
    def checksum(values: dict[str, Any] | None) -> str:
        annotations = deployment(values)["spec"]["template"]["metadata"]["annotations"]
        value: str = annotations["checksum/config"]
        return value

    assert checksum(None) == checksum(None)
    assert checksum(None) != checksum({"config": {"log": {"level": "debug"}}})


def test_the_pod_disruption_budget_takes_one_bound() -> None:
    assert one(render(), "PodDisruptionBudget")["spec"]["maxUnavailable"] == 1
    spec = one(
        render({"podDisruptionBudget": {"maxUnavailable": None, "minAvailable": 1}}),
        "PodDisruptionBudget",
    )["spec"]
    assert spec["minAvailable"] == 1 and "maxUnavailable" not in spec
