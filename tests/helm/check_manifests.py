"""Checks manifests rendered by `helm template` (read from stdin).

For every workload: the container ports, the Service ports and the
--listen-port-* arguments agree; both probes are HTTP GET /health on the
otlp-http port; the root filesystem is read-only. In StatefulSet mode a
headless Service exists and is the StatefulSet's serviceName. The ConfigMap's
perf-sentinel.toml is written to the file named on the command line, for
`perf-sentinel watch --check-config`.

Usage: helm template ... | python check_manifests.py OUT.toml
Prints one JSON line summarizing what it checked.
"""

import json
import sys

import yaml


def fail(msg):
    sys.exit(f"manifest check failed: {msg}")


docs = [d for d in yaml.safe_load_all(sys.stdin) if d]
by_kind = {}
for d in docs:
    by_kind.setdefault(d["kind"], []).append(d)

workloads = [d for k in ("Deployment", "StatefulSet", "DaemonSet") for d in by_kind.get(k, [])]
if len(workloads) != 1:
    fail(f"expected one workload, found {[w['kind'] for w in workloads]}")
workload = workloads[0]
pod = workload["spec"]["template"]["spec"]
container = pod["containers"][0]
ports = {p["name"]: p["containerPort"] for p in container["ports"]}
args = container["args"]

def arg(flag):
    if flag not in args:
        fail(f"{flag} missing from {args}")
    return int(args[args.index(flag) + 1])

if arg("--listen-port-grpc") != ports["otlp-grpc"] or arg("--listen-port-http") != ports["otlp-http"]:
    fail(f"listen ports {args} differ from container ports {ports}")
if args[args.index("--listen-address") + 1] != "0.0.0.0":
    fail("the daemon must listen on 0.0.0.0 in a pod")

services = [s for s in by_kind.get("Service", []) if s["spec"].get("clusterIP") != "None"]
if len(services) != 1:
    fail(f"expected one regular Service, found {len(services)}")
svc_ports = {p["name"]: (p["port"], p["targetPort"]) for p in services[0]["spec"]["ports"]}
for name, port in ports.items():
    if svc_ports.get(name) != (port, name):
        fail(f"Service port {name} = {svc_ports.get(name)}, container port {port}")

for probe in ("livenessProbe", "readinessProbe"):
    get = container.get(probe, {}).get("httpGet", {})
    if get.get("path") != "/health" or get.get("port") != "otlp-http":
        fail(f"{probe} is not GET /health on otlp-http: {container.get(probe)}")
if not container["securityContext"].get("readOnlyRootFilesystem"):
    fail("the root filesystem must be read-only")
if pod.get("automountServiceAccountToken") is not False:
    fail("the service account token must not be mounted")

if workload["kind"] == "StatefulSet":
    headless = [s for s in by_kind.get("Service", []) if s["spec"].get("clusterIP") == "None"]
    if len(headless) != 1 or headless[0]["metadata"]["name"] != workload["spec"]["serviceName"]:
        fail("a StatefulSet needs the headless Service as its serviceName")

selector = workload["spec"]["selector"]["matchLabels"]
for np in by_kind.get("NetworkPolicy", []):
    if np["spec"]["podSelector"]["matchLabels"] != selector:
        fail("the NetworkPolicy does not select the daemon's pods")

configs = by_kind.get("ConfigMap", [])
if len(configs) != 1 or "perf-sentinel.toml" not in configs[0]["data"]:
    fail("expected one ConfigMap with perf-sentinel.toml")
mount = [m for m in container["volumeMounts"] if m["name"] == "config"][0]
if mount["mountPath"] != "/etc/perf-sentinel/.perf-sentinel.toml" or args[args.index("--config") + 1] != mount["mountPath"]:
    fail("--config does not point at the mounted ConfigMap")
with open(sys.argv[1], "w") as f:
    f.write(configs[0]["data"]["perf-sentinel.toml"])

print(json.dumps({"kind": workload["kind"], "objects": sorted(by_kind), "ports": ports}))
