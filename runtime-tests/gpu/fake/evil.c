/* What a hostile image ships for runtime-tests/gpu/cves.rs: loaded through
 * LD_PRELOAD (its constructor), LD_AUDIT (la_version) or LD_LIBRARY_PATH
 * (as libcuda.so.1 or the hook's library), it appends who loaded it to
 * MARKER, an absolute path given at build time (-DMARKER="..."). Loaded
 * by a host process, the line lands at that path on the host; loaded in
 * the container, inside its rootfs. */
#include <fcntl.h>
#include <link.h>
#include <stdio.h>
#include <unistd.h>

static void mark(const char *how) {
	char exe[512] = "?", line[700];
	ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
	if (n > 0)
		exe[n] = 0;
	int fd = open(MARKER, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	int len = snprintf(line, sizeof line, "%s: pid %d exe %s\n", how, (int)getpid(), exe);
	if (len > 0)
		(void)write(fd, line, (size_t)len);
	close(fd);
}

__attribute__((constructor)) static void loaded(void) { mark("constructor"); }

unsigned int la_version(unsigned int version) {
	mark("audit");
	return version;
}

/* The symbol the hook probe needs, so that as its library it loads fully. */
int vessel_fake_driver_library(void) { return 0; }
