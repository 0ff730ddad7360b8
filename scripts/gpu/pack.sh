#!/usr/bin/env bash
# Prepares what scripts/gpu/check.sh carries to a GPU machine that has python3 + torch but none of
# Strata's Debian libraries and no package registry. Writes (default folder .gpu, kept out of git):
#   debs/       the Debian 12 packages Strata builds against; check.sh unpacks them with dpkg -x into a
#               folder and builds Strata from source there against that machine's own PyTorch;
#   prebuilt/   stripped bin/strata and tests/test_cuda from this machine's build/ (the same torch
#               2.11 + CUDA 13 wheel) plus the non-system libraries they load, so the CUDA checks and
#               benchmarks run even if the source build there fails;
#   kjv-byte/   the prepared default corpus, for an end-to-end `strata train` on the GPU.
# Usage: scripts/build && scripts/gpu/pack.sh [out]   then e.g. device run with carry [".gpu"]:
#        scripts/gpu/check.sh .gpu
set -euo pipefail
cd "$(dirname "$0")/../.."
out="${1:-.gpu}"
build="${STRATA_BUILD_DIR:-build}"
grep -qxF "/$out/" .git/info/exclude 2>/dev/null || echo "/$out/" >>.git/info/exclude
rm -rf "$out" && mkdir -p "$out/debs" "$out/prebuilt/bin" "$out/prebuilt/tests" "$out/prebuilt/lib"
debs=(libyaml-cpp-dev libyaml-cpp0.7 libspdlog-dev libspdlog1.10 libfmt-dev libfmt9 libprotobuf-dev libprotobuf32
      libprotobuf-lite32 libprotoc32 protobuf-compiler libisal-dev libisal2 libsentencepiece-dev libsentencepiece0
      libcli11-dev catch2 libgloo-dev libopenmpi-dev libopenmpi3 libhwloc15 libevent-core-2.1-7
      libevent-pthreads-2.1-7 libevent-2.1-7 nlohmann-json3-dev)
(cd "$out/debs" && apt-get download "${debs[@]}" >/dev/null 2>&1) || {
  echo "pack.sh: apt-get download failed (needs Debian's apt)" >&2; exit 1; }
for f in bin/strata tests/test_cuda; do
  [ -x "$build/$f" ] || { echo "pack.sh: $build/$f missing: run scripts/build first" >&2; exit 1; }
  strip -o "$out/prebuilt/$f" "$build/$f"
done
# Every library the binaries load except glibc/libstdc++ (present everywhere) and torch/CUDA (the GPU
# machine's own python3 torch provides those).
skip='^(linux-vdso|ld-linux|libc\.|libm\.|libstdc\+\+|libgcc_s|libpthread|libdl\.|librt\.|libutil\.|libz\.|libudev)'
ldd "$build/bin/strata" "$build/tests/test_cuda" | awk '/=> \// {print $1, $3}' | sort -u |
  while read -r name path; do
    case "$path" in */torch/*|*/nvidia/*|*/cuda*) continue ;; esac
    echo "$name" | grep -Eq "$skip" && continue
    cp -L "$path" "$out/prebuilt/lib/$name"
  done
[ -d datasets/kjv-byte ] && cp -r datasets/kjv-byte "$out/kjv-byte"
du -sh "$out"/* | sed 's/^/pack.sh: /'
