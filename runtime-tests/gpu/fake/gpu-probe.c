/* Runs inside a container: loads libcuda the way CUDA programs do, by
 * soname and by its development name, and prints how many GPUs it sees.
 * Exit 2 when the library cannot be loaded (the message says why). */
#include <dlfcn.h>
#include <stdio.h>

int main(void) {
	const char *names[] = {"libcuda.so.1", "libcuda.so"};
	int count = -1;
	for (int i = 0; i < 2; i++) {
		void *h = dlopen(names[i], RTLD_NOW);
		if (!h) {
			printf("dlopen %s: %s\n", names[i], dlerror());
			return 2;
		}
		int (*init)(unsigned) = (int (*)(unsigned))dlsym(h, "cuInit");
		int (*get)(int *) = (int (*)(int *))dlsym(h, "cuDeviceGetCount");
		if (!init || !get || init(0) != 0 || get(&count) != 0) {
			printf("%s: no cuDeviceGetCount\n", names[i]);
			return 2;
		}
	}
	printf("gpus=%d\n", count);
	return 0;
}
