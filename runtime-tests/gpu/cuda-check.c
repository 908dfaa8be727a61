/* A CUDA check with no CUDA toolkit: the driver API through dlopen, and a
 * PTX kernel (out = a + b) that the driver compiles itself. Prints the
 * devices and the kernel's result; exit 3 when libcuda cannot be loaded,
 * 4 when CUDA fails. `--noop` returns at once (for start-up timing). */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

typedef int (*fn)();
static const char *ptx =
	".version 6.0\n.target sm_50\n.address_size 64\n"
	".visible .entry add(.param .u64 out, .param .u32 a, .param .u32 b)\n{\n"
	"  .reg .u64 %rd<3>;\n  .reg .u32 %r<4>;\n"
	"  ld.param.u64 %rd1, [out];\n  ld.param.u32 %r1, [a];\n  ld.param.u32 %r2, [b];\n"
	"  add.u32 %r3, %r1, %r2;\n  cvta.to.global.u64 %rd2, %rd1;\n"
	"  st.global.u32 [%rd2], %r3;\n  ret;\n}\n";

#define CALL(name, ...) do { \
	fn f = (fn)dlsym(h, name); \
	int rc = f ? f(__VA_ARGS__) : -1; \
	if (rc != 0) { printf("%s failed: %d\n", name, rc); return 4; } \
} while (0)

int main(int argc, char **argv) {
	if (argc > 1 && strcmp(argv[1], "--noop") == 0)
		return 0;
	void *h = dlopen("libcuda.so.1", RTLD_NOW);
	if (!h) {
		printf("no libcuda: %s\n", dlerror());
		return 3;
	}
	int count = 0, dev = 0, a = 2, b = 3, result = 0;
	char name[256];
	void *ctx, *mod, *func;
	unsigned long long out;
	CALL("cuInit", 0);
	CALL("cuDeviceGetCount", &count);
	printf("devices: %d\n", count);
	for (int i = 0; i < count; i++) {
		CALL("cuDeviceGet", &dev, i);
		CALL("cuDeviceGetName", name, (int)sizeof name, dev);
		printf("device %d: %s\n", i, name);
	}
	if (count == 0)
		return 4;
	CALL("cuDeviceGet", &dev, 0);
	CALL("cuCtxCreate_v2", &ctx, 0, dev);
	CALL("cuModuleLoadData", &mod, ptx);
	CALL("cuModuleGetFunction", &func, mod, "add");
	CALL("cuMemAlloc_v2", &out, sizeof(int));
	void *params[] = {&out, &a, &b};
	CALL("cuLaunchKernel", func, 1, 1, 1, 1, 1, 1, 0, (void *)0, params, (void *)0);
	CALL("cuCtxSynchronize");
	CALL("cuMemcpyDtoH_v2", &result, out, sizeof(int));
	printf("kernel: %d+%d=%d\n", a, b, result);
	return result == a + b ? 0 : 4;
}
