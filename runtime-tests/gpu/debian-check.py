"""What NVIDIA's libraries say inside a container (make-python-image.sh
puts this in the image; debian.rs runs it): NVML through pynvml, the CUDA
runtime (the wheel's libcudart.so.12) through ctypes. One line per check:

    nvml: ok, driver 535.309.01      or  nvml: NVMLError_<Kind>: <message>
    cudaDriverGetVersion: 0 cudaSuccess, version 12020
    cudaGetDeviceCount: 35 cudaErrorInsufficientDriver "CUDA driver ...", count 0
"""

import ctypes
import glob
import sys


def nvml():
    import pynvml

    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as e:
        return f"{type(e).__name__}: {e}"
    try:
        return f"ok, driver {pynvml.nvmlSystemGetDriverVersion()}"
    finally:
        pynvml.nvmlShutdown()


def cudart():
    found = [p for d in sys.path for p in glob.glob(f"{d}/nvidia/cuda_runtime/lib/libcudart.so.12")]
    if not found:
        sys.exit(f"no nvidia/cuda_runtime/lib/libcudart.so.12 on sys.path {sys.path}")
    lib = ctypes.CDLL(found[0])
    lib.cudaGetErrorName.restype = ctypes.c_char_p
    lib.cudaGetErrorString.restype = ctypes.c_char_p

    def result(rc):
        name = lib.cudaGetErrorName(rc).decode()
        return f"{rc} {name}" if rc == 0 else f'{rc} {name} "{lib.cudaGetErrorString(rc).decode()}"'

    version = ctypes.c_int(-1)
    rc = lib.cudaDriverGetVersion(ctypes.byref(version))
    print(f"cudaDriverGetVersion: {result(rc)}, version {version.value}")
    count = ctypes.c_int(-1)
    rc = lib.cudaGetDeviceCount(ctypes.byref(count))
    print(f"cudaGetDeviceCount: {result(rc)}, count {count.value}")


print(f"nvml: {nvml()}", flush=True)
cudart()
