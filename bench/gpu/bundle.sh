#!/usr/bin/env bash
# Packs what bench/gpu/run.sh needs on a machine without Node.js: node, nats-server, the
# built services and their production dependencies (linux x64 only), and the Vulkan loader
# packages the webgpu provider needs. Output: .device/bundle.tar.xz and .gl/*.deb
# (both git-ignored), small enough to travel with the working tree.
set -euo pipefail
cd "$(dirname "$0")/../.."
STAGE=$(mktemp -d)
mkdir -p "$STAGE/app" "$STAGE/bin" .device .gl
cp "$(command -v node)" "$(command -v nats-server || echo /usr/sbin/nats-server)" "$STAGE/bin/"
tar -c --exclude='*/src' --exclude='*.map' --exclude='*.test.*' package.json proto libs/*/package.json libs/*/dist \
  services/*/package.json services/*/dist cli/package.json cli/bin cli/dist bench/package.json bench/dist bench/gpu \
  models/text-direction models/iris | tar -x -C "$STAGE/app"
tar -c --exclude='node_modules/onnxruntime-node/bin/napi-v6/darwin' --exclude='node_modules/onnxruntime-node/bin/napi-v6/win32' \
  --exclude='node_modules/onnxruntime-node/bin/napi-v6/linux/arm64' --exclude='node_modules/typescript' --exclude='node_modules/@turbo' \
  --exclude='node_modules/turbo' --exclude='node_modules/@rolldown' --exclude='node_modules/lightningcss*' --exclude='node_modules/vite' \
  --exclude='node_modules/vitest' --exclude='node_modules/@vitest' --exclude='node_modules/@gutenye' --exclude='node_modules/@img' \
  --exclude='node_modules/onnx-proto' --exclude='node_modules/@esbuild' --exclude='node_modules/esbuild' node_modules | tar -x -C "$STAGE/app"
tar -cJf .device/bundle.tar.xz -C "$STAGE" app bin
rm -rf "$STAGE"
if ! ls .gl/libvulkan1_*.deb >/dev/null 2>&1; then
  mkdir -p /tmp/amd64/partial
  o='-oAPT::Architecture=amd64 -oAPT::Architectures=amd64 -oDir::State::Lists=/tmp/amd64'
  apt-get $o update -qq
  (cd .gl && apt-get $o download libvulkan1 libegl1 libglvnd0 libopengl0 libgl1 libglx0 libgles2)
fi
du -sh .device/bundle.tar.xz .gl
