#!/usr/bin/env bash
# Builds the CPU image without a registry and smoke-tests it without a container runtime:
#
#   1. a Debian bookworm root filesystem (debootstrap) plus this machine's Node.js and npm,
#      imported as the local base image localhost/kelix-base:bookworm-node (podman import);
#   2. podman build --isolation=chroot of docker/Dockerfile on that base;
#   3. the image's filesystem exported, mounted read-only, and the server started in it with chroot
#      as the image's user (10001), with a tmpfs /tmp as in Kubernetes; then /health/ready must
#      answer 200, the image's HEALTHCHECK command must pass, and SIGTERM must stop the server.
#
# Run as root from the repository root: docker/local-image-test.sh [WORK_DIR]  (default /tmp/kelix-image)
# Needs: apt-get install podman debootstrap curl. Takes 2-3 minutes (debootstrap once, npm ci once).
# Behind a TLS-intercepting proxy, the proxy's CA bundle (NODE_EXTRA_CA_CERTS) is copied into the base.
set -euo pipefail
cd "$(dirname "$0")/.."

WORK=${1:-/tmp/kelix-image}
BASE=localhost/kelix-base:bookworm-node
IMAGE=localhost/kelix-serve:cpu
PORT=18000
mkdir -p "$WORK"

# 1. The local base image.
if [ ! -x "$WORK/rootfs/usr/bin/apt-get" ]; then
  debootstrap --variant=minbase bookworm "$WORK/rootfs" http://deb.debian.org/debian
fi
NODE=$(command -v node)
NPM_DIR=$(dirname "$(dirname "$(readlink -f "$(command -v npm)")")")
mkdir -p "$WORK/rootfs/usr/local/bin" "$WORK/rootfs/usr/local/lib/node_modules"
cp "$NODE" "$WORK/rootfs/usr/local/bin/node"
rm -rf "$WORK/rootfs/usr/local/lib/node_modules/npm"
cp -a "$NPM_DIR" "$WORK/rootfs/usr/local/lib/node_modules/npm"
ln -sf ../lib/node_modules/npm/bin/npm-cli.js "$WORK/rootfs/usr/local/bin/npm"
ln -sf ../lib/node_modules/npm/bin/npx-cli.js "$WORK/rootfs/usr/local/bin/npx"
CHANGES=(--change 'ENV=PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin')
if [ -n "${NODE_EXTRA_CA_CERTS:-}" ] && [ -f "$NODE_EXTRA_CA_CERTS" ]; then
  mkdir -p "$WORK/rootfs/etc/ssl/certs"
  cp "$NODE_EXTRA_CA_CERTS" "$WORK/rootfs/etc/ssl/certs/extra-ca.crt"
  CHANGES+=(--change 'ENV=NODE_EXTRA_CA_CERTS=/etc/ssl/certs/extra-ca.crt')
fi
tar -C "$WORK/rootfs" -c . | podman import "${CHANGES[@]}" - "$BASE"
echo "base: $(chroot "$WORK/rootfs" /usr/local/bin/node --version) on Debian $(cat "$WORK/rootfs/etc/debian_version")"

# 2. The image.
podman build --isolation=chroot --network=host --format docker \
  --ignorefile docker/Dockerfile.dockerignore \
  --build-arg BASE_IMAGE="$BASE" -f docker/Dockerfile -t "$IMAGE" .

# 3. Its filesystem, read-only, under chroot.
ROOT="$WORK/image-rootfs"
RO="$WORK/image-ro"
cleanup() {
  [ -n "${SERVER:-}" ] && kill "$SERVER" 2>/dev/null || true
  for m in "$RO/dev" "$RO/proc" "$RO/tmp" "$RO"; do mountpoint -q "$m" && umount "$m"; done
  return 0
}
trap cleanup EXIT
cleanup
rm -rf "$ROOT" && mkdir -p "$ROOT" "$RO"
CONTAINER=$(podman create "$IMAGE")
podman export "$CONTAINER" | tar -C "$ROOT" -x
podman rm "$CONTAINER" >/dev/null
mount --bind "$ROOT" "$RO" && mount -o remount,bind,ro "$RO"
mount -t proc proc "$RO/proc"
mount --bind /dev "$RO/dev"
mount -t tmpfs -o size=64m,mode=1777 tmpfs "$RO/tmp"

USER_SPEC=$(podman image inspect "$IMAGE" --format '{{.Config.User}}')
mapfile -t ENV < <(podman image inspect "$IMAGE" --format '{{range .Config.Env}}{{println .}}{{end}}' | sed '/^$/d')
chroot --userspec="$USER_SPEC" "$RO" /usr/bin/env -i "${ENV[@]}" KELIX_PORT=$PORT \
  /bin/sh -c 'cd /app && exec node dist/server/main.js' > "$WORK/server.log" 2>&1 &
SERVER=$!
for _ in $(seq 1 120); do
  curl -fsS "http://127.0.0.1:$PORT/health/ready" > "$WORK/ready.json" 2>/dev/null && break
  kill -0 "$SERVER" 2>/dev/null || { cat "$WORK/server.log"; echo "FAIL: the server exited"; exit 1; }
  sleep 0.5
done
echo "GET /health/ready -> $(cat "$WORK/ready.json")"
[ "$(cat "$WORK/ready.json")" = '{"status":"ready"}' ] || { cat "$WORK/server.log"; echo "FAIL: not ready"; exit 1; }
echo "GET /v1/models -> $(curl -fsS "http://127.0.0.1:$PORT/v1/models")"
chroot --userspec="$USER_SPEC" "$RO" /usr/bin/env -i "${ENV[@]}" KELIX_PORT=$PORT \
  node -e "fetch('http://127.0.0.1:' + (process.env.KELIX_PORT || 8000) + '/health/ready').then((r) => process.exit(r.ok ? 0 : 1), () => process.exit(1))"
echo "HEALTHCHECK command -> exit 0"
kill -TERM "$SERVER"
if wait "$SERVER"; then echo "SIGTERM -> exit 0"; else echo "FAIL: the server did not exit cleanly on SIGTERM"; exit 1; fi
SERVER=
echo "PASS: $IMAGE serves /health/ready from a read-only root as user $USER_SPEC"
