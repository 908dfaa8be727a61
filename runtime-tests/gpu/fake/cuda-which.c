/* Runs inside a container: dlopen's each name given, as CUDA programs and
 * frameworks do, and prints the file the dynamic loader chose for it and
 * the CUDA version that library reports (-1: it has no
 * cuDriverGetVersion), one line per name:
 *   libcuda.so.1 => /usr/lib/x86_64-linux-gnu/libcuda.so.1 (cuda 12020)
 * Exit 2 when a name does not load. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <link.h>
#include <stdio.h>

int main(int argc, char **argv) {
	int rc = 0;
	for (int i = 1; i < argc; i++) {
		void *h = dlopen(argv[i], RTLD_NOW);
		if (!h) {
			printf("%s: not loaded: %s\n", argv[i], dlerror());
			rc = 2;
			continue;
		}
		struct link_map *map = NULL;
		if (dlinfo(h, RTLD_DI_LINKMAP, &map) != 0)
			map = NULL;
		int (*get)(int *) = (int (*)(int *))dlsym(h, "cuDriverGetVersion");
		int version = -1;
		if (get)
			get(&version);
		printf("%s => %s (cuda %d)\n", argv[i], map ? map->l_name : "?", version);
	}
	return rc;
}
