// The same check with the CUDA runtime (built with nvcc -cudart static, so
// the image carries no CUDA library): device names and a kernel's result.
#include <cstdio>
#include <cstring>

__global__ void add(int *out, int a, int b) { *out = a + b; }

int main(int argc, char **argv) {
	if (argc > 1 && std::strcmp(argv[1], "--noop") == 0) return 0;
	int count = 0;
	cudaError_t e = cudaGetDeviceCount(&count);
	if (e != cudaSuccess) { std::printf("cudaGetDeviceCount: %s\n", cudaGetErrorString(e)); return 4; }
	std::printf("devices: %d\n", count);
	for (int i = 0; i < count; i++) {
		cudaDeviceProp p;
		cudaGetDeviceProperties(&p, i);
		std::printf("device %d: %s\n", i, p.name);
	}
	int *d, r = 0;
	cudaMalloc(&d, sizeof(int));
	add<<<1, 1>>>(d, 2, 3);
	e = cudaMemcpy(&r, d, sizeof(int), cudaMemcpyDeviceToHost);
	if (e != cudaSuccess) { std::printf("kernel: %s\n", cudaGetErrorString(e)); return 4; }
	std::printf("kernel: 2+3=%d\n", r);
	return r == 5 ? 0 : 4;
}
