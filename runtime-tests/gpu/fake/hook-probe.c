/* A host program that runtime-tests/gpu/cves.rs runs as every kind of OCI
 * hook: dynamically linked, its one library (libstub.c, as
 * libvessel-stub.so.1) found through its RUNPATH, so an LD_PRELOAD,
 * LD_AUDIT or LD_LIBRARY_PATH it inherited would load the image's code.
 * Reads the container state on stdin and exits 0. */
#include <stdio.h>

int vessel_fake_driver_library(void);

int main(void) {
	char buf[4096];
	while (fread(buf, 1, sizeof buf, stdin) > 0) {
	}
	return vessel_fake_driver_library();
}
