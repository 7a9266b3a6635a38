#!/usr/bin/env python3
"""Validates rendered Kubernetes manifests offline; deploy/dev/k8s-check.sh runs it.

Every document of each file (a `kubectl kustomize` rendering) is checked three ways, and any
failure makes the exit status 1:

1. Schema: built-in kinds against the Kubernetes JSON schemas that the kubernetes-validate
   package bundles, in strict mode (unknown fields are errors), for each --k8s-version; custom
   resources against deploy/dev/schemas/<kind>-<group>-<version>.json. A kind with neither is an
   error: nothing is skipped.
2. HeyDoc's rules for workloads: an image, resource requests and limits, the restricted
   security context, probes on long-running containers, a termination grace period longer than
   the sender's shutdown grace.
3. References inside the rendering: ConfigMaps and Secrets that pods, Jobs and KEDA name exist
   (after kustomize's hash suffixes), and the selectors of Services, PDBs, HPAs, ScaledObjects
   and Ingresses find their targets. --external-secret NAME allows a Secret that the rendering
   does not contain (the base leaves `heydoc-secrets` to its overlays).
"""
from __future__ import annotations

import argparse
import functools
import json
import os
import sys

import jsonschema
import yaml
from kubernetes_validate import utils as kv

# kubernetes-validate reads and parses its (1 MB+) definitions file for every document; parse
# each file once.
kv.schema_contents = functools.lru_cache(maxsize=None)(kv.schema_contents)

WORKLOADS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "CronJob"}
LONG_RUNNING = {"Deployment", "StatefulSet", "DaemonSet"}
DEFAULT_SHUTDOWN_GRACE_SECS = 20
REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def ident(doc: dict) -> str:
    return f"{doc.get('kind', '?')}/{(doc.get('metadata') or {}).get('name', '?')}"


def pod_spec(doc: dict) -> dict | None:
    kind = doc.get("kind")
    spec = doc.get("spec") or {}
    if kind == "CronJob":
        spec = ((spec.get("jobTemplate") or {}).get("spec")) or {}
    if kind in WORKLOADS:
        return ((spec.get("template") or {}).get("spec")) or {}
    return None


def pod_labels(doc: dict) -> dict:
    spec = doc.get("spec") or {}
    if doc.get("kind") == "CronJob":
        spec = ((spec.get("jobTemplate") or {}).get("spec")) or {}
    return (((spec.get("template") or {}).get("metadata")) or {}).get("labels") or {}


class Checker:
    def __init__(self, versions: list[str], schema_dir: str, external_secrets: set[str]):
        self.versions = versions
        self.schema_dir = schema_dir
        self.external_secrets = external_secrets
        self.errors: list[str] = []
        self.builtin = 0
        self.custom = 0

    def error(self, where: str, what: str) -> None:
        self.errors.append(f"{where}: {what}")

    # 1. Schemas ------------------------------------------------------------------------------

    def custom_schema_path(self, doc: dict) -> str:
        api = doc.get("apiVersion", "")
        group, _, version = api.rpartition("/")
        name = f"{doc.get('kind', '').lower()}-{group or 'core'}-{version}.json"
        return os.path.join(self.schema_dir, name)

    def check_schema(self, doc: dict) -> None:
        where = ident(doc)
        for key in ("apiVersion", "kind"):
            if not isinstance(doc.get(key), str) or not doc.get(key):
                self.error(where, f"missing {key}")
                return
        custom_done = builtin_done = False
        # The same mistake seen by several versions' schemas is reported once, naming them all.
        found: dict[tuple[str, str], list[str]] = {}
        for version in self.versions:
            try:
                kv.validate(doc, version, strict=True)
                builtin_done = True
            except kv.ValidationError as e:
                builtin_done = True
                path = ".".join(str(p) for p in e.path) or "(document)"
                found.setdefault((path, e.message), []).append(e.version)
            except kv.VersionNotSupportedError:
                self.error(where, f"kubernetes-validate has no schemas for Kubernetes {version}")
            except kv.SchemaNotFoundError:
                if custom_done:
                    continue
                custom_done = True
                path = self.custom_schema_path(doc)
                if not os.path.exists(path):
                    self.error(where, f"no schema for {doc['apiVersion']} {doc['kind']} in "
                                      f"Kubernetes {version} nor at {os.path.relpath(path, REPO)}: add one")
                    continue
                with open(path) as f:
                    schema = json.load(f)
                validator = jsonschema.Draft202012Validator(schema)
                problems = sorted(validator.iter_errors(doc), key=lambda e: list(e.path))
                for e in problems:
                    where_in = ".".join(str(p) for p in e.path) or "(document)"
                    self.error(where, f"{os.path.basename(path)}: {where_in}: {e.message}")
                self.custom += 1
        for (path, message), versions in found.items():
            schemas = "schemas" if len(versions) > 1 else "schema"
            self.error(where, f"Kubernetes {' and '.join(versions)} {schemas}: {path}: {message}")
        self.builtin += builtin_done

    # 2. HeyDoc's rules for workloads ---------------------------------------------------------

    def check_workload(self, doc: dict, shutdown_grace: int) -> None:
        spec = pod_spec(doc)
        if spec is None:
            return
        where = ident(doc)
        pod_sc = spec.get("securityContext") or {}
        if pod_sc.get("runAsNonRoot") is not True:
            self.error(where, "pod securityContext.runAsNonRoot must be true")
        if pod_sc.get("runAsUser") != 10001:
            self.error(where, "pod securityContext.runAsUser must be 10001 (the image's user)")
        if (pod_sc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
            self.error(where, "pod securityContext.seccompProfile.type must be RuntimeDefault")
        if doc["kind"] in LONG_RUNNING:
            grace = spec.get("terminationGracePeriodSeconds", 30)
            if not isinstance(grace, int) or grace <= shutdown_grace:
                self.error(where, f"terminationGracePeriodSeconds ({grace}) must exceed "
                                  f"HEYDOC_SENDER__SHUTDOWN_GRACE_SECS ({shutdown_grace})")
            if not spec.get("topologySpreadConstraints"):
                self.error(where, "needs topologySpreadConstraints")
            annotations = ((((doc.get("spec") or {}).get("template") or {}).get("metadata")) or {}).get("annotations") or {}
            if annotations.get("prometheus.io/scrape") != "true" or not annotations.get("prometheus.io/port"):
                self.error(where, "pod template needs prometheus.io/scrape and prometheus.io/port annotations")
        for c in (spec.get("initContainers") or []) + (spec.get("containers") or []):
            cw = f"{where} container {c.get('name', '?')}"
            if not c.get("image"):
                self.error(cw, "has no image")
            res = c.get("resources") or {}
            for part in ("requests", "limits"):
                for r in ("cpu", "memory"):
                    if r not in (res.get(part) or {}):
                        self.error(cw, f"resources.{part}.{r} is missing")
            sc = c.get("securityContext") or {}
            if sc.get("allowPrivilegeEscalation") is not False:
                self.error(cw, "securityContext.allowPrivilegeEscalation must be false")
            if sc.get("readOnlyRootFilesystem") is not True:
                self.error(cw, "securityContext.readOnlyRootFilesystem must be true")
            if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
                self.error(cw, "securityContext.capabilities.drop must include ALL")
            if doc["kind"] in LONG_RUNNING and c in (spec.get("containers") or []):
                for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
                    if not c.get(probe):
                        self.error(cw, f"has no {probe}")

    def check_bounds(self, doc: dict) -> None:
        spec = doc.get("spec") or {}
        keys = {"HorizontalPodAutoscaler": ("minReplicas", "maxReplicas"),
                "ScaledObject": ("minReplicaCount", "maxReplicaCount")}.get(doc.get("kind", ""))
        if keys:
            low, high = spec.get(keys[0], 1), spec.get(keys[1])
            if isinstance(low, int) and isinstance(high, int) and low > high:
                self.error(ident(doc), f"{keys[0]} ({low}) exceeds {keys[1]} ({high})")

    # 3. References ---------------------------------------------------------------------------

    def check_references(self, docs: list[dict]) -> None:
        names: dict[str, set[str]] = {}
        for d in docs:
            names.setdefault(d.get("kind", ""), set()).add((d.get("metadata") or {}).get("name"))
        configmaps = names.get("ConfigMap", set())
        secrets = names.get("Secret", set()) | self.external_secrets
        templates = [(d, pod_labels(d)) for d in docs if d.get("kind") in WORKLOADS]

        def need(where: str, kind: str, name: str | None, pool: set[str]) -> None:
            if name and name not in pool:
                self.error(where, f"refers to {kind} {name!r}, which the rendering does not contain")

        def selects(where: str, selector: dict) -> None:
            if not selector:
                self.error(where, "has an empty selector")
                return
            if not any(labels and all(labels.get(k) == v for k, v in selector.items())
                       for _, labels in templates):
                self.error(where, f"selector {selector} matches no pod template")

        for d in docs:
            where, kind, spec = ident(d), d.get("kind"), d.get("spec") or {}
            pod = pod_spec(d)
            if pod is not None:
                for c in (pod.get("initContainers") or []) + (pod.get("containers") or []):
                    for src in c.get("envFrom") or []:
                        if "configMapRef" in src and not src["configMapRef"].get("optional"):
                            need(where, "ConfigMap", src["configMapRef"].get("name"), configmaps)
                        if "secretRef" in src and not src["secretRef"].get("optional"):
                            need(where, "Secret", src["secretRef"].get("name"), secrets)
                    for env in c.get("env") or []:
                        ref = env.get("valueFrom") or {}
                        if "configMapKeyRef" in ref and not ref["configMapKeyRef"].get("optional"):
                            need(where, "ConfigMap", ref["configMapKeyRef"].get("name"), configmaps)
                        if "secretKeyRef" in ref and not ref["secretKeyRef"].get("optional"):
                            need(where, "Secret", ref["secretKeyRef"].get("name"), secrets)
                for v in pod.get("volumes") or []:
                    if "configMap" in v:
                        need(where, "ConfigMap", v["configMap"].get("name"), configmaps)
                    if "secret" in v:
                        need(where, "Secret", v["secret"].get("secretName"), secrets)
                need(where, "ServiceAccount", pod.get("serviceAccountName"),
                     names.get("ServiceAccount", set()) | {"default"})
            if kind == "Service":
                selects(where, spec.get("selector") or {})
            elif kind == "PodDisruptionBudget":
                selects(where, (spec.get("selector") or {}).get("matchLabels") or {})
            elif kind == "Deployment":
                selects(where, (spec.get("selector") or {}).get("matchLabels") or {})
            elif kind == "HorizontalPodAutoscaler":
                ref = spec.get("scaleTargetRef") or {}
                need(where, ref.get("kind", "?"), ref.get("name"), names.get(ref.get("kind", ""), set()))
            elif kind == "ScaledObject":
                ref = spec.get("scaleTargetRef") or {}
                need(where, ref.get("kind", "Deployment"), ref.get("name"),
                     names.get(ref.get("kind", "Deployment"), set()))
                for t in spec.get("triggers") or []:
                    auth = t.get("authenticationRef") or {}
                    need(where, auth.get("kind", "TriggerAuthentication"), auth.get("name"),
                         names.get(auth.get("kind", "TriggerAuthentication"), set()))
            elif kind == "TriggerAuthentication":
                for ref in spec.get("secretTargetRef") or []:
                    need(where, "Secret", ref.get("name"), secrets)
            elif kind == "Ingress":
                for rule in spec.get("rules") or []:
                    for p in ((rule.get("http") or {}).get("paths")) or []:
                        svc = ((p.get("backend") or {}).get("service") or {}).get("name")
                        need(where, "Service", svc, names.get("Service", set()))
        seen: set[str] = set()
        for d in docs:
            key = f"{d.get('apiVersion')} {ident(d)} in {(d.get('metadata') or {}).get('namespace', '')}"
            if key in seen:
                self.error(ident(d), "appears twice in the rendering")
            seen.add(key)

    def run(self, docs: list[dict]) -> None:
        shutdown_grace = DEFAULT_SHUTDOWN_GRACE_SECS
        for d in docs:
            if d.get("kind") == "ConfigMap":
                value = (d.get("data") or {}).get("HEYDOC_SENDER__SHUTDOWN_GRACE_SECS")
                if value is not None:
                    try:
                        shutdown_grace = int(value)
                    except ValueError:
                        self.error(ident(d), f"HEYDOC_SENDER__SHUTDOWN_GRACE_SECS={value!r} is not a number")
        for d in docs:
            self.check_schema(d)
            self.check_workload(d, shutdown_grace)
            self.check_bounds(d)
        self.check_references(docs)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("file", help="rendered manifests (multi-document YAML); - for stdin")
    ap.add_argument("--label", help="name to print for the file")
    ap.add_argument("--k8s-version", action="append", required=True,
                    help="Kubernetes version whose schemas to use (repeatable)")
    ap.add_argument("--schemas", required=True, help="folder of JSON schemas for custom resources")
    ap.add_argument("--external-secret", action="append", default=[],
                    help="a Secret created outside this rendering (repeatable)")
    args = ap.parse_args()
    label = args.label or args.file

    text = sys.stdin.read() if args.file == "-" else open(args.file).read()
    try:
        docs = [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as e:
        print(f"{label}: not YAML: {e}")
        return 1
    bad = [i for i, d in enumerate(docs) if not isinstance(d, dict)]
    if not docs or bad:
        print(f"{label}: {'no documents' if not docs else f'document {bad[0] + 1} is not a mapping'}")
        return 1

    checker = Checker(args.k8s_version, args.schemas, set(args.external_secret))
    checker.run(docs)
    if checker.errors:
        for e in checker.errors:
            print(f"{label}: {e}")
        print(f"{label}: {len(checker.errors)} problem(s) in {len(docs)} documents")
        return 1
    versions = " and ".join(args.k8s_version)
    print(f"{label}: {len(docs)} documents valid ({checker.builtin} against the Kubernetes "
          f"{versions} schemas, {checker.custom} against {os.path.relpath(args.schemas, REPO)}; "
          f"workload rules and references hold)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
