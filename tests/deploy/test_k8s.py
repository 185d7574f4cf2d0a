"""deploy/k8s/ against the Kubernetes v1.33 JSON schemas of its kinds, its pieces against each
other and the image, its probes against a running proxy, and a pod's stop against its grace period."""

from __future__ import annotations

import copy
import json
import signal
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from openai import OpenAI
from referencing import Registry, Resource

from tests.deploy.image import parse_dockerfile
from tests.deploy.settings import DEPLOY, config_env_names, deploy_config
from tests.e2e.proxy_process import ProxyProcess, start_proxy, write_config
from tests.fakes.process import FakeServer

SCHEMAS = Path(__file__).parent / "schemas" / "kubernetes-v1.33.0"
KINDS = {
    ("v1", "ConfigMap"): "configmap-v1",
    ("v1", "Secret"): "secret-v1",
    ("v1", "Service"): "service-v1",
    ("apps/v1", "Deployment"): "deployment-apps-v1",
    ("policy/v1", "PodDisruptionBudget"): "poddisruptionbudget-policy-v1",
    ("autoscaling/v2", "HorizontalPodAutoscaler"): "horizontalpodautoscaler-autoscaling-v2",
}
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def manifests() -> dict[str, dict[str, Any]]:
    """Every object of deploy/k8s/*.yaml by kind."""
    objects = [doc for path in sorted((DEPLOY / "k8s").glob("*.yaml")) for doc in yaml.safe_load_all(path.read_text())]
    by_kind = {o["kind"]: o for o in objects if o}
    assert len(by_kind) == len(objects)
    return by_kind


def validator(api_version: str, kind: str) -> jsonschema.Draft202012Validator:
    definitions = json.loads((SCHEMAS / "_definitions.json").read_text())
    registry: Registry = Registry().with_resource(definitions["$id"], Resource.from_contents(definitions))
    schema = json.loads((SCHEMAS / f"{KINDS[api_version, kind]}.json").read_text())
    return jsonschema.Draft202012Validator(schema, registry=registry)


def container(deployment: dict[str, Any]) -> dict[str, Any]:
    (only,) = deployment["spec"]["template"]["spec"]["containers"]
    return only


def test_manifests_follow_the_kubernetes_schemas_of_their_kinds() -> None:
    objects = manifests()
    assert {(o["apiVersion"], o["kind"]) for o in objects.values()} == set(KINDS)
    for obj in objects.values():
        validator(obj["apiVersion"], obj["kind"]).validate(obj)


def test_the_schema_check_catches_mistakes() -> None:
    deployment = manifests()["Deployment"]
    check = validator("apps/v1", "Deployment")
    misspelt = copy.deepcopy(deployment)
    probe = container(misspelt).pop("readinessProbe")
    container(misspelt)["readinesProbe"] = probe
    assert not check.is_valid(misspelt)
    wrong_type = copy.deepcopy(deployment)
    wrong_type["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] = "40s"
    assert not check.is_valid(wrong_type)
    hpa = copy.deepcopy(manifests()["HorizontalPodAutoscaler"])
    hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilisation"] = 70
    assert not validator("autoscaling/v2", "HorizontalPodAutoscaler").is_valid(hpa)


def test_manifests_fit_together_and_fit_the_image() -> None:
    objects, image = manifests(), parse_dockerfile()
    deployment, pod = objects["Deployment"], objects["Deployment"]["spec"]["template"]
    labels = pod["metadata"]["labels"]
    for selector in (deployment["spec"]["selector"]["matchLabels"], objects["Service"]["spec"]["selector"],
                     objects["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"]):  # fmt: skip
        assert selector.items() <= labels.items()
    hpa = objects["HorizontalPodAutoscaler"]["spec"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    assert hpa["minReplicas"] > objects["PodDisruptionBudget"]["spec"]["minAvailable"]  # a drain can always evict one
    relay = container(deployment)
    assert relay["resources"]["requests"]["cpu"]  # the HPA's utilisation is measured against it
    # the image's user, port, config path; the config and secrets the config reads
    security = pod["spec"]["securityContext"]
    assert security["runAsNonRoot"] is True and str(security["runAsUser"]) == image.user.split(":")[0]
    assert relay["securityContext"]["allowPrivilegeEscalation"] is False
    (http,) = relay["ports"]
    assert str(http["containerPort"]) == image.env["PORT"]
    assert objects["Service"]["spec"]["ports"][0]["targetPort"] == http["name"]
    config_path = relay["args"][relay["args"].index("--config") + 1]
    assert relay["args"] == image.cmd
    mounts = {m["name"]: m["mountPath"] for m in relay["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    config_mount = next(name for name, v in volumes.items() if "configMap" in v)
    assert volumes[config_mount]["configMap"]["name"] == objects["ConfigMap"]["metadata"]["name"]
    assert f"{mounts[config_mount]}/config.yaml" == config_path
    assert objects["ConfigMap"]["data"]["config.yaml"] == (DEPLOY / "config.yaml").read_text()
    assert image.env["LLMRELAY_STORE"].startswith(tuple(mounts.values()))  # writable though the root is not
    (source,) = relay["envFrom"]
    assert source["secretRef"]["name"] == objects["Secret"]["metadata"]["name"]
    given = objects["Secret"]["stringData"].keys() | {e["name"] for e in relay["env"]}
    assert config_env_names() <= given
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert relay[probe]["httpGet"]["port"] == http["name"]


def test_probes_ask_routes_the_proxy_serves(two_instances: list[ProxyProcess]) -> None:
    relay = container(manifests()["Deployment"])
    paths = {relay[p]["httpGet"]["path"] for p in ("startupProbe", "readinessProbe", "livenessProbe")}
    assert paths == {"/health/liveliness", "/health/readiness"}
    proxy = two_instances[0]
    for path in paths:
        with _DIRECT.open(proxy.root + path, timeout=5) as reply:
            assert reply.status == 200, path
    with pytest.raises(urllib.error.HTTPError) as missing:  # a probe on a route it does not serve fails
        _DIRECT.open(proxy.root + "/healthz", timeout=5)
    assert missing.value.code == 404


def test_a_stopping_pod_drains_within_its_grace_period(openai_fake: FakeServer, tmp_path: Path) -> None:
    """Kubernetes kills a pod terminationGracePeriodSeconds after it starts stopping: the preStop
    sleep, then SIGTERM, after which llmrelay drains for at most graceful_shutdown_timeout. The
    manifests' numbers must add up; and llmrelay must exit once that drain time is over even
    with a request that never ends (run here with a 1 s drain, not the deployed 25 s)."""
    pod = manifests()["Deployment"]["spec"]["template"]["spec"]
    pre_stop = container(manifests()["Deployment"])["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    drain = deploy_config().general_settings.graceful_shutdown_timeout
    margin = pod["terminationGracePeriodSeconds"] - float(pre_stop[1]) - drain
    assert margin >= 5  # for llmrelay's own shutdown once the drain is over

    openai_fake.reset()
    config = {"model_list": [{"model_name": "openai/*", "litellm_params": {"model": "openai/*"}}],
              "general_settings": {"graceful_shutdown_timeout": 1}}  # fmt: skip
    env = {"OPENAI_API_KEY": "sk-test", "OPENAI_BASE_URL": openai_fake.url}
    with start_proxy("--config", str(write_config(config, tmp_path)), env=env) as proxy:
        openai_fake.enqueue({"hang_after_events": 2})
        client = OpenAI(base_url=proxy.url, api_key="k", max_retries=0)
        stream = client.responses.create(model="openai/gpt-4o", input="never ends", stream=True)
        assert next(iter(stream)).type == "response.created"
        start = time.monotonic()
        proxy.process.send_signal(signal.SIGTERM)
        assert proxy.process.wait(timeout=1 + margin + 5) == 0
        took = time.monotonic() - start
        stream.close()
    assert 1 <= took < 1 + margin, took  # the 1 s drain, then the hung request cut, within the margin
