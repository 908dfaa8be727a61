/* A stand-in libcuda: it reports one GPU per /dev/nvidia<N> node the
 * process can see, which is exactly what a container was given. */
#include <dirent.h>
#include <string.h>

int cuInit(unsigned int flags) { (void)flags; return 0; }

/* A CUDA compat build reports its own version (runtime-tests/gpu/compat.rs). */
#ifndef FAKE_CUDA_VERSION
#define FAKE_CUDA_VERSION 12020
#endif

int cuDriverGetVersion(int *version) { *version = FAKE_CUDA_VERSION; return 0; }

int cuDeviceGetCount(int *count) {
	DIR *d = opendir("/dev");
	int n = 0;
	if (!d) { *count = 0; return 0; }
	for (struct dirent *e; (e = readdir(d));) {
		const char *p = e->d_name;
		if (strncmp(p, "nvidia", 6) != 0 || !p[6]) continue;
		p += 6;
		while (*p >= '0' && *p <= '9') p++;
		if (!*p) n++;
	}
	closedir(d);
	*count = n;
	return 0;
}

/* Just enough of the driver API for runtime-tests/gpu/cuda-check.c, so
 * real-gpu.sh can be exercised on the fake driver (GPU_ROOT=...): the
 * "kernel" runs on the CPU and adds its two int parameters. */
#include <stdio.h>
#include <stdint.h>

int cuDeviceGet(int *dev, int ordinal) { *dev = ordinal; return 0; }

int cuDeviceGetName(char *name, int len, int dev) {
	snprintf(name, (size_t)len, "Fake GPU %d", dev);
	return 0;
}

int cuCtxCreate_v2(void **ctx, unsigned int flags, int dev) {
	(void)flags; (void)dev; *ctx = (void *)1; return 0;
}

int cuModuleLoadData(void **mod, const void *image) {
	*mod = (void *)1;
	return strstr((const char *)image, ".entry add") ? 0 : 218; /* INVALID_PTX */
}

int cuModuleGetFunction(void **f, void *mod, const char *name) {
	(void)mod; *f = (void *)1; return strcmp(name, "add") ? 500 : 0;
}

static int device_memory[16];

int cuMemAlloc_v2(unsigned long long *p, size_t n) {
	(void)n; *p = (unsigned long long)(uintptr_t)device_memory; return 0;
}

int cuLaunchKernel(void *f, unsigned gx, unsigned gy, unsigned gz, unsigned bx, unsigned by,
		   unsigned bz, unsigned shm, void *stream, void **params, void **extra) {
	(void)f; (void)gx; (void)gy; (void)gz; (void)bx; (void)by; (void)bz; (void)shm; (void)stream; (void)extra;
	int *out = (int *)(uintptr_t)*(unsigned long long *)params[0];
	*out = *(int *)params[1] + *(int *)params[2];
	return 0;
}

int cuCtxSynchronize(void) { return 0; }

int cuMemcpyDtoH_v2(void *dst, unsigned long long src, size_t n) {
	memcpy(dst, (void *)(uintptr_t)src, n);
	return 0;
}
