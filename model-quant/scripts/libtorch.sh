#!/usr/bin/env bash
# Unpacks a CPU libtorch for `model-quant --features tch` (the libtorch training backend)
# from PyPI, the only place we may download it from: the torch wheel's lib/ and include/,
# plus the two CUDA runtime libraries its CPU library links against. The wheel's CUDA
# half is replaced by an empty stub library: this machine has no GPU and training never
# calls it. Then:
#
#   LIBTORCH=DIR LIBTORCH_BYPASS_VERSION_CHECK=1 cargo build --release -p model-quant --features tch
#   LD_LIBRARY_PATH=DIR/lib target/release/model-quant train --backend libtorch ...
#
# Usage: model-quant/scripts/libtorch.sh [DIR]   (default /root/libtorch; about 900 MB download)
set -euo pipefail
dir="${1:-/root/libtorch}"
torch_version=2.9.1   # burn-tch 0.22 wants 2.9 (tch 0.22)
cuda_version=12.8.90  # what that wheel's libtorch_cpu.so was linked with
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

python3 -m pip download -q --no-deps -d "$work" "torch==$torch_version" \
    "nvidia-cuda-runtime-cu12==$cuda_version" "nvidia-cuda-cupti-cu12==$cuda_version"
mkdir -p "$dir/lib"
python3 - "$work" "$dir" <<'PY'
import pathlib, shutil, sys, zipfile
work, out = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
torch = zipfile.ZipFile(next(work.glob("torch-*.whl")))
for name in torch.namelist():
    if name.startswith(("torch/include/", "torch/share/cmake/")):
        torch.extract(name, work / "x")
for lib in ["libc10.so", "libtorch_cpu.so", "libtorch.so", "libgomp.so.1"]:
    (out / "lib" / lib).write_bytes(torch.read(f"torch/lib/{lib}"))
for sub in ["include", "share"]:
    shutil.copytree(work / "x" / "torch" / sub, out / sub, dirs_exist_ok=True)
for wheel, lib in [("nvidia_cuda_runtime", "cuda_runtime/lib/libcudart.so.12"),
                   ("nvidia_cuda_cupti", "cuda_cupti/lib/libcupti.so.12")]:
    z = zipfile.ZipFile(next(work.glob(f"{wheel}*.whl")))
    (out / "lib" / pathlib.Path(lib).name).write_bytes(z.read(f"nvidia/{lib}"))
PY
# libtorch.so (the forwarder tch links) names libtorch_cuda.so, and burn-tch references two
# of its functions to keep it linked; a stub with just those satisfies both (never called
# on the CPU device).
cat >"$work/stub.cpp" <<'CPP'
struct cublasContext;
namespace at { namespace cuda {
cublasContext* getCurrentCUDABlasHandle() { return nullptr; }
int warp_size() { return 32; }
} }
CPP
g++ -shared -fPIC -o "$dir/lib/libtorch_cuda.so" "$work/stub.cpp"
python3 -c "import ctypes, sys; [ctypes.CDLL(f'{sys.argv[1]}/lib/{l}') for l in
  ['libc10.so', 'libcudart.so.12', 'libcupti.so.12', 'libgomp.so.1', 'libtorch_cpu.so',
   'libtorch_cuda.so', 'libtorch.so']]" "$dir"
echo "libtorch $torch_version (CPU) in $dir"
