"""k8s/ overlays rendered with ``kubectl kustomize`` and validated strictly with
``kubernetes-validate`` (unknown fields rejected), then the deployment's own rules."""

from __future__ import annotations

import copy
from typing import Any

import kubernetes_validate
import pytest
from rq import Queue

from helpers.deploy import K8S, OVERLAYS, config_map_data, find, kustomize, one

# The oldest Kubernetes we support and the newest the schemas know.
KUBERNETES_VERSIONS = ("1.28.0", kubernetes_validate.latest_version())
CUSTOM_GROUPS = ("keda.sh/",)  # validated against their CRD in test_keda.py


def containers(docs: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any], dict[str, Any]]]:
    """(workload name, pod spec, container) for every container of every workload."""
    out = []
    for doc in docs:
        if doc["kind"] in ("Deployment", "StatefulSet"):
            pod = doc["spec"]["template"]["spec"]
            out += [(doc["metadata"]["name"], pod, c) for c in pod["containers"]]
    return out


def strict_errors(doc: dict[str, Any], version: str) -> str | None:
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        return f"{doc['kind']}/{doc['metadata']['name']}: {exc.message} at {'.'.join(map(str, exc.path))}"
    return None


@pytest.mark.parametrize("overlay", OVERLAYS)
@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_resource_is_valid_in_strict_mode(rendered: dict, overlay: str, version: str) -> None:
    docs = [d for d in rendered[overlay] if not d["apiVersion"].startswith(CUSTOM_GROUPS)]
    assert docs
    errors = [e for e in (strict_errors(doc, version) for doc in docs) if e]
    assert not errors, "\n".join(errors)


def test_strict_validation_rejects_an_unknown_field(rendered: dict) -> None:
    deployment = copy.deepcopy(one(rendered["cluster"], "Deployment", "api"))
    deployment["spec"]["replica"] = 2  # typo of replicas
    assert "replica" in (strict_errors(deployment, KUBERNETES_VERSIONS[-1]) or "")


def test_the_base_renders_too() -> None:
    assert one(kustomize(K8S / "base"), "ScaledObject", "worker-gpu")


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_reference_resolves(rendered: dict, overlay: str) -> None:
    """ConfigMaps (hash-suffixed), Secrets, PVCs and Services referenced by name exist."""
    docs = rendered[overlay]
    names = {(d["kind"], d["metadata"]["name"]) for d in docs}
    for workload, pod, container in containers(docs):
        for source in container.get("envFrom", []):
            if "configMapRef" in source:
                assert ("ConfigMap", source["configMapRef"]["name"]) in names, workload
        for var in container.get("env", []):
            if "secretKeyRef" in var.get("valueFrom", {}):
                ref = var["valueFrom"]["secretKeyRef"]
                secret = one(docs, "Secret", ref["name"])
                assert ref["key"] in {**secret.get("data", {}), **secret.get("stringData", {})}, workload
        for volume in pod.get("volumes", []):
            if "persistentVolumeClaim" in volume:
                assert ("PersistentVolumeClaim", volume["persistentVolumeClaim"]["claimName"]) in names, workload
    for ingress in find(docs, "Ingress"):
        for rule in ingress["spec"]["rules"]:
            for path in rule["http"]["paths"]:
                backend = path["backend"]["service"]
                service = one(docs, "Service", backend["name"])
                assert backend["port"]["name"] in {p["name"] for p in service["spec"]["ports"]}


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_selectors_match_pods(rendered: dict, overlay: str) -> None:
    docs = rendered[overlay]
    pod_labels = [
        d["spec"]["template"]["metadata"]["labels"] for d in docs if d["kind"] in ("Deployment", "StatefulSet")
    ]
    for doc in find(docs, "Service") + find(docs, "PodDisruptionBudget"):
        selector = doc["spec"]["selector"]
        selector = selector.get("matchLabels", selector)
        assert any(selector.items() <= labels.items() for labels in pod_labels), doc["metadata"]["name"]


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_redis_is_a_statefulset_with_aof_on_a_pvc(rendered: dict, overlay: str) -> None:
    redis = one(rendered[overlay], "StatefulSet", "redis")
    container = redis["spec"]["template"]["spec"]["containers"][0]
    args = " ".join(container.get("command", []) + container.get("args", []))
    assert "--appendonly yes" in args and "--maxmemory-policy noeviction" in args
    claims = {c["metadata"]["name"] for c in redis["spec"]["volumeClaimTemplates"]}
    assert {m["name"] for m in container["volumeMounts"]} <= claims


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_every_container_has_requests_limits_and_runs_as_non_root(rendered: dict, overlay: str) -> None:
    for workload, pod, container in containers(rendered[overlay]):
        resources = container["resources"]
        for kind in ("requests", "limits"):
            assert {"cpu", "memory"} <= resources[kind].keys(), f"{workload}: {kind}"
        assert pod["securityContext"]["runAsNonRoot"] is True, workload
        assert container["securityContext"]["allowPrivilegeEscalation"] is False, workload


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_api_probes_service_ingress_and_disruption_budget(rendered: dict, overlay: str) -> None:
    docs = rendered[overlay]
    api = one(docs, "Deployment", "api")
    container = api["spec"]["template"]["spec"]["containers"][0]
    assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert container["readinessProbe"]["exec"]["command"] == ["softlabel-probe", "readyz"]
    assert one(docs, "Service", "api") and one(docs, "Ingress", "api")
    budget = one(docs, "PodDisruptionBudget", "api")["spec"]
    replicas = api["spec"]["replicas"]
    allowed = replicas - budget["minAvailable"] if "minAvailable" in budget else budget["maxUnavailable"]
    assert allowed >= 1, "the budget must let a node drain"


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_gpu_workers_hold_a_gpu_never_fork_and_outlive_a_job(rendered: dict, overlay: str) -> None:
    docs = rendered[overlay]
    worker = one(docs, "Deployment", "worker-gpu")
    pod = worker["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert int(container["resources"]["limits"]["nvidia.com/gpu"]) >= 1
    assert container["command"][:4] == ["softlabel", "worker", "--backend", "gpu"] and "--no-fork" in container["command"]
    timeout_s = int(config_map_data(docs)["SOFTLABEL_JOB_TIMEOUT_S"])
    assert pod["terminationGracePeriodSeconds"] > timeout_s  # SIGTERM = warm shutdown, then SIGKILL


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_data_volume_is_shared_and_mounted_at_the_data_dir(rendered: dict, overlay: str) -> None:
    docs = rendered[overlay]
    data_dir = config_map_data(docs)["SOFTLABEL_DATA_DIR"]
    claim = one(docs, "PersistentVolumeClaim", "softlabel-data")
    modes = claim["spec"]["accessModes"]
    assert modes == (["ReadWriteOnce"] if overlay == "single-gpu-node" else ["ReadWriteMany"])
    for name in ("api", "worker-gpu"):
        pod = one(docs, "Deployment", name)["spec"]["template"]["spec"]
        volumes = {v["name"]: v for v in pod["volumes"]}
        mounts = {m["mountPath"]: m["name"] for m in pod["containers"][0]["volumeMounts"]}
        assert volumes[mounts[data_dir]]["persistentVolumeClaim"]["claimName"] == "softlabel-data", name


@pytest.mark.parametrize("overlay", OVERLAYS)
def test_keda_scales_workers_on_the_rq_queue_list(rendered: dict, overlay: str) -> None:
    docs = rendered[overlay]
    config = config_map_data(docs)
    scaled = one(docs, "ScaledObject", "worker-gpu")["spec"]
    assert scaled["scaleTargetRef"]["name"] == "worker-gpu"
    one(docs, "Deployment", scaled["scaleTargetRef"]["name"])
    (trigger,) = scaled["triggers"]
    assert trigger["type"] == "redis"
    meta = trigger["metadata"]
    # The list RQ pushes job ids onto, computed by RQ itself (no connection is opened).
    queue_key = Queue(config["SOFTLABEL_QUEUE"], connection=object()).key  # type: ignore[arg-type]
    assert queue_key == f"rq:queue:{config['SOFTLABEL_QUEUE']}"
    assert meta["listName"] == queue_key
    assert int(meta["listLength"]) >= 1
    # KEDA's operator runs in its own namespace: the address must be the Service's FQDN.
    namespace = one(docs, "StatefulSet", "redis")["metadata"]["namespace"]
    assert meta["address"] == f"redis.{namespace}.svc.cluster.local:6379"
    assert config["REDIS_URL"].startswith("redis://redis:6379/")
    assert meta.get("databaseIndex", "0") == config["REDIS_URL"].rsplit("/", 1)[1]
    assert 0 <= scaled["minReplicaCount"] < scaled["maxReplicaCount"]
