"""Write the Kubernetes JSON schemas deploy/k8s/ is checked against: the strict schemas of the
kinds it uses, and of `_definitions.json` only the definitions they reach, descriptions dropped.

    pip download --no-deps kubernetes-validate==1.37.0
    python tests/deploy/schemas/vendor_kubernetes.py kubernetes_validate-1.37.0-py3-none-any.whl
"""

from __future__ import annotations

import json
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

VERSION = "v1.33.0"
KINDS = [
    "configmap-v1",
    "secret-v1",
    "service-v1",
    "deployment-apps-v1",
    "poddisruptionbudget-policy-v1",
    "horizontalpodautoscaler-autoscaling-v2",
]
OUT = Path(__file__).parent / f"kubernetes-{VERSION}"


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from refs(value)


def undescribed(node: Any) -> Any:
    if isinstance(node, dict):
        return {k: undescribed(v) for k, v in node.items() if not (k == "description" and isinstance(v, str))}
    if isinstance(node, list):
        return [undescribed(v) for v in node]
    return node


def main(wheel: str) -> None:
    base = f"kubernetes_validate/kubernetes-json-schema/{VERSION}-local-strict/"
    with zipfile.ZipFile(wheel) as z:
        definitions = json.loads(z.read(base + "_definitions.json"))
        kinds = {name: json.loads(z.read(f"{base}{name}.json")) for name in KINDS}
    needed: set[str] = set()
    pending = [r for schema in kinds.values() for r in refs(schema)]
    while pending:
        name = pending.pop().split("/$defs/")[1]
        if name not in needed:
            needed.add(name)
            pending += refs(definitions["$defs"][name])
    definitions["$defs"] = {name: definitions["$defs"][name] for name in sorted(needed)}
    OUT.mkdir(exist_ok=True)
    for name, schema in {"_definitions": definitions, **kinds}.items():
        (OUT / f"{name}.json").write_text(json.dumps(undescribed(schema), indent=1) + "\n")


if __name__ == "__main__":
    main(sys.argv[1])
