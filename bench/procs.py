"""Process plumbing for bench.py: spawning a runtime command and measuring
it (posix_spawn + wait4), the crun wrapper, and waiting for or reaping
container processes without sleeping."""

import ctypes
import os
import select
import signal
import sys
import time

WAIT_TIMEOUT_S = 10
WRAPPER_SCRIPT = 'umount /sys/fs/cgroup/unified 2>/dev/null; exec "$@"'
PR_SET_CHILD_SUBREAPER = 36


class BenchError(Exception):
    pass


class Result:
    __slots__ = ("rc", "ns", "maxrss", "out", "err")

    def __init__(self, rc, ns, maxrss, out, err):
        self.rc, self.ns, self.maxrss, self.out, self.err = rc, ns, maxrss, out, err


def finish(pid):
    """After an interrupt: let our in-flight child finish (so clean-up sees
    a consistent state) and reap it."""
    while True:
        try:
            os.waitpid(pid, 0)
            return
        except ChildProcessError:
            return
        except KeyboardInterrupt:
            continue


class Spawner:
    """Runs one command at a time: posix_spawn + wait4, stdin from
    /dev/null, stdout and stderr into two reusable temp files."""

    def __init__(self, tmpdir):
        self.null = os.open(os.devnull, os.O_RDONLY)
        self.outfd = os.open(os.path.join(tmpdir, "stdout"),
                             os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        self.errfd = os.open(os.path.join(tmpdir, "stderr"),
                             os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        self.actions = [
            (os.POSIX_SPAWN_DUP2, self.null, 0),
            (os.POSIX_SPAWN_DUP2, self.outfd, 1),
            (os.POSIX_SPAWN_DUP2, self.errfd, 2),
        ]
        self.sigdef = [s for s in (signal.SIGPIPE, getattr(signal, "SIGXFSZ", None))
                       if s is not None]
        self.env = dict(os.environ)

    @staticmethod
    def _read(fd):
        os.lseek(fd, 0, os.SEEK_SET)
        chunks = []
        while True:
            b = os.read(fd, 65536)
            if not b:
                break
            chunks.append(b)
        return b"".join(chunks).decode("utf-8", "replace")

    def call(self, argv):
        for fd in (self.outfd, self.errfd):
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
        t0 = time.perf_counter_ns()
        pid = os.posix_spawn(argv[0], argv, self.env,
                             file_actions=self.actions, setsigdef=self.sigdef)
        try:
            _, status, ru = os.wait4(pid, 0)
        except BaseException:
            finish(pid)
            raise
        t1 = time.perf_counter_ns()
        return Result(os.waitstatus_to_exitcode(status), t1 - t0, ru.ru_maxrss,
                      self._read(self.outfd), self._read(self.errfd))

    def call_rss(self, argv):
        """Runs argv for its peak RSS only (not timed).

        wait4() on a process that Python started reports at least Python's
        own RSS: exec() records the hiwater RSS of the image it replaces,
        and a child of Python starts as a copy of Python.  So the runtime is
        started one level down, by /bin/sh as a background job: sh forks a
        child (a copy of small sh) that execs the runtime, prints its pid on
        fd 3 and exits.  The runtime is re-parented to us (we are a child
        subreaper) and we wait4() it directly.  The floor left by sh is about
        1 MiB (the same as GNU time(1) reports for /bin/true)."""
        for fd in (self.outfd, self.errfd):
            os.ftruncate(fd, 0)
            os.lseek(fd, 0, os.SEEK_SET)
        r, w = os.pipe()
        try:
            sh = os.posix_spawn(
                "/bin/sh",
                ["/bin/sh", "-c", '"$@" 3>&- & echo $! >&3', "sh", *argv],
                self.env, file_actions=self.actions + [(os.POSIX_SPAWN_DUP2, w, 3)],
                setsigdef=self.sigdef)
            os.close(w)
            w = None
            data = b""
            while True:
                b = os.read(r, 64)
                if not b:
                    break
                data += b
        finally:
            os.close(r)
            if w is not None:
                os.close(w)
        try:
            _, status, _ = os.wait4(sh, 0)
        except BaseException:
            finish(sh)
            raise
        if status != 0 or not data.strip().isdigit():
            raise BenchError(f"/bin/sh trampoline for {argv[0]} failed "
                             f"(status {status}, {data!r})")
        try:
            gpid = int(data)
            _, status, ru = os.wait4(gpid, 0)
        except BaseException as e:
            if not isinstance(e, ChildProcessError):
                finish(gpid)
                raise
            raise BenchError("cannot wait for the runtime started by the "
                             "RSS trampoline (not a child subreaper?)")
        return Result(os.waitstatus_to_exitcode(status), 0, ru.ru_maxrss,
                      self._read(self.outfd), self._read(self.errfd))

    def close(self):
        for fd in (self.null, self.outfd, self.errfd):
            os.close(fd)


class Runtime:
    def __init__(self, name, binary, root, wrapped, unshare):
        self.name, self.binary, self.root = name, binary, root
        self.wrapped, self.unshare = wrapped, unshare
        self.version = ""
        self.live = set()           # ids that may still exist
        self.status = "ok"          # ok | skipped | failed
        self.reason = ""
        self.samples = {"run": [], "csd": []}   # raw ns
        self.rss = []                           # KiB, of `run`

    def argv(self, *args):
        base = [self.binary, "--root", self.root, *args]
        if self.wrapped:
            return [self.unshare, "-m", "--propagation", "private",
                    "/bin/sh", "-c", WRAPPER_SCRIPT, "sh", *base]
        return base


def set_subreaper():
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl")
        return True
    except (OSError, AttributeError) as e:
        print(f"bench: warning: cannot become child subreaper ({e}); "
              "orphaned containers are reaped by pid 1", file=sys.stderr)
        return False


def reap_strays():
    """Reaps zombies re-parented to us (only our descendants can be)."""
    n = 0
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return n
        if pid == 0:
            return n
        n += 1


def wait_exit(pid):
    """Blocks until process `pid` has exited, then reaps it if it is our
    child.  Uses pidfd_open + poll; no sleeping."""
    deadline_ms = WAIT_TIMEOUT_S * 1000
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return                      # already gone (reaped elsewhere)
    except (AttributeError, OSError):
        pidfd = None
    if pidfd is not None:
        try:
            p = select.poll()
            p.register(pidfd, select.POLLIN)
            if not p.poll(deadline_ms):
                raise BenchError(f"container pid {pid} did not exit "
                                 f"within {WAIT_TIMEOUT_S}s")
        finally:
            os.close(pidfd)
        try:
            os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            pass
        return
    # Fallback without pidfd: tight loop on waitpid / /proc/PID.
    end = time.monotonic() + WAIT_TIMEOUT_S
    while time.monotonic() < end:
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        except ChildProcessError:
            try:
                with open(f"/proc/{pid}/stat") as f:
                    if f.read().rpartition(")")[2].split()[0] == "Z":
                        return
            except FileNotFoundError:
                return
        os.sched_yield()
    raise BenchError(f"container pid {pid} did not exit within {WAIT_TIMEOUT_S}s")


