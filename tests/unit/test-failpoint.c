/* SPDX-License-Identifier: LGPL-2.1-or-later */
/*
 * Unit test of lib/failpoint.c and its hooks in lib/io.c: parsing of
 * VIMG_FAILPOINT specs (valid and invalid), per-kind and "any" counting
 * (also from several threads), injected -EIO/-ENOSPC that leave the file
 * untouched, a "crash" failpoint killing a forked child with SIGKILL before
 * its write, and the environment path (VIMG_FAILPOINT, VIMG_FAILPOINT_COUNT)
 * in a re-executed copy of this program.
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "failpoint.h"
#include "internal.h"
#include "tap.h"

static char tmpdir[] = "/tmp/test-failpoint.XXXXXX";

static void
path_in_tmp(char *buf, size_t len, const char *name)
{
    snprintf(buf, len, "%s/%s", tmpdir, name);
}

static int
open_tmp(const char *name)
{
    char path[256];

    path_in_tmp(path, sizeof(path), name);
    return open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
}

static void
test_parse_valid(void)
{
    struct failpoint fp[FAILPOINT_MAX];
    size_t n = 0;

    ok(failpoint_parse("write:17:crash", fp, FAILPOINT_MAX, &n) == 0 &&
       n == 1 && fp[0].kind == FAILPOINT_WRITE && fp[0].nth == 17 &&
       fp[0].action == FAILPOINT_CRASH, "write:17:crash");
    ok(failpoint_parse("write:17:eio,flush:3:crash", fp, FAILPOINT_MAX,
                       &n) == 0 && n == 2 &&
       fp[0].kind == FAILPOINT_WRITE && fp[0].nth == 17 &&
       fp[0].action == FAILPOINT_EIO && fp[1].kind == FAILPOINT_FLUSH &&
       fp[1].nth == 3 && fp[1].action == FAILPOINT_CRASH,
       "two elements");
    ok(failpoint_parse("zero:1:enospc,truncate:2:eio,discard:3:eio,"
                       "alloc:4:crash,any:18446744073709551615:eio",
                       fp, FAILPOINT_MAX, &n) == 0 && n == 5 &&
       fp[0].kind == FAILPOINT_ZERO && fp[0].action == FAILPOINT_ENOSPC &&
       fp[1].kind == FAILPOINT_TRUNCATE && fp[2].kind == FAILPOINT_DISCARD &&
       fp[3].kind == FAILPOINT_ALLOC && fp[4].kind == FAILPOINT_ANY &&
       fp[4].nth == UINT64_MAX, "every kind and action, N = 2^64-1");
    ok(failpoint_parse("write:007:eio", fp, FAILPOINT_MAX, &n) == 0 &&
       fp[0].nth == 7, "leading zeros in N");
    ok_str(failpoint_kind_name(FAILPOINT_FLUSH), "flush", "kind name flush");
    ok_str(failpoint_kind_name(FAILPOINT_ANY), "any", "kind name any");
    ok(failpoint_kind_name((enum failpoint_kind)99) == NULL,
       "kind name out of range");
}

static void
test_parse_invalid(void)
{
    static const char *const bad[] = {
        "", "write", "write:17", "write:17:", "write::eio", ":1:eio",
        "write:0:eio", "write:-1:eio", "write:+1:eio", "write: 1:eio",
        "write:1x:eio", "write:x:eio", "bogus:1:eio", "Write:1:eio",
        "write:1:boom", "write:1:EIO", "write:1:eio,", ",write:1:eio",
        "write:1:eio,,flush:1:eio", "write:1:eio:extra", " write:1:eio",
        "write:18446744073709551616:eio", "write:99999999999999999999:eio",
        "write:1:eio flush:1:eio",
    };
    struct failpoint fp[FAILPOINT_MAX];
    char many[FAILPOINT_MAX * 16 + 32] = "";
    size_t n = 42;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int r = failpoint_parse(bad[i], fp, FAILPOINT_MAX, &n);

        ok(r == -EINVAL && n == 42, "invalid spec '%s' -> -EINVAL (%d)",
           bad[i], r);
    }
    ok(failpoint_parse(NULL, fp, FAILPOINT_MAX, &n) == -EINVAL,
       "NULL spec");
    ok(failpoint_parse("write:1:eio,write:2:eio", fp, 1, &n) == -E2BIG &&
       n == 42, "more elements than the array holds -> -E2BIG");
    for (int i = 0; i <= FAILPOINT_MAX; i++) {
        char one[32];

        snprintf(one, sizeof(one), "%swrite:%d:eio", i ? "," : "", i + 1);
        strcat(many, one);
    }
    ok(failpoint_parse(many, fp, FAILPOINT_MAX, &n) == -E2BIG,
       "%d elements -> -E2BIG", FAILPOINT_MAX + 1);
}

static void
test_counting(void)
{
    uint8_t buf[4096], back[4096];
    int fd = open_tmp("count");

    memset(buf, 0xa5, sizeof(buf));
    ok(fd >= 0, "temp file");
    ok(failpoint_setup_for_test("") == 0, "counting only");
    ok(failpoint_count(FAILPOINT_ANY) == 0, "counters reset");

    ok(full_pwrite(fd, buf, sizeof(buf), 0) == 0, "write 1");
    ok(full_pwrite(fd, buf, 512, 8192) == 0, "write 2");
    ok(full_pwrite(fd, buf, 0, 0) == 0, "empty write");
    ok(file_flush(fd) == 0, "flush");
    ok(file_truncate(fd, 16384) == 0, "truncate");
    ok(file_punch_zero(fd, 0, 1024, true) == 0, "punch zero");
    ok(file_punch_zero(fd, 0, 0, true) == 0, "empty zero");
    ok(file_discard(fd, 4096, 4096) == 0, "discard");
    ok(file_preallocate(fd, 0, 65536) == 0, "preallocate");

    ok(failpoint_count(FAILPOINT_WRITE) == 2,
       "2 writes counted, empty one not (%llu)",
       (unsigned long long)failpoint_count(FAILPOINT_WRITE));
    ok(failpoint_count(FAILPOINT_FLUSH) == 1, "1 flush");
    ok(failpoint_count(FAILPOINT_TRUNCATE) == 1, "1 truncate");
    ok(failpoint_count(FAILPOINT_ZERO) == 1, "1 zero, empty one not");
    ok(failpoint_count(FAILPOINT_DISCARD) == 1, "1 discard");
    ok(failpoint_count(FAILPOINT_ALLOC) == 1, "1 alloc");
    ok(failpoint_count(FAILPOINT_ANY) == 7, "7 calls in all");
    ok(file_size(fd) == 65536, "preallocate grew the file");
    ok(full_pread(fd, back, 1024, 0) == 0 &&
       back[0] == 0 && back[1023] == 0 && full_pread(fd, back, 1, 1024) == 0 &&
       back[0] == 0xa5, "zeroed range reads as zero, the rest kept");

    ok(failpoint_setup_for_test(NULL) == 0, "failpoints off");
    ok(full_pwrite(fd, buf, 512, 0) == 0 && file_flush(fd) == 0,
       "calls still work when off");
    ok(failpoint_count(FAILPOINT_ANY) == 0, "nothing counted when off");
    close(fd);
}

static void
test_eio(void)
{
    uint8_t a[512], b[512], back[512];
    int fd = open_tmp("eio");

    memset(a, 'a', sizeof(a));
    memset(b, 'b', sizeof(b));
    ok(failpoint_setup_for_test("write:2:eio,flush:1:enospc") == 0,
       "arm write:2:eio,flush:1:enospc");
    ok(full_pwrite(fd, a, sizeof(a), 0) == 0, "write 1 passes");
    ok(full_pwrite(fd, b, sizeof(b), 0) == -EIO, "write 2 fails with -EIO");
    ok(full_pread(fd, back, sizeof(back), 0) == 0 &&
       memcmp(back, a, sizeof(a)) == 0, "the failed write wrote nothing");
    ok(full_pwrite(fd, b, sizeof(b), 512) == 0, "write 3 passes again");
    ok(file_size(fd) == 1024, "file size 1024 after writes 1 and 3");
    ok(file_flush(fd) == -ENOSPC, "flush 1 fails with -ENOSPC");
    ok(file_flush(fd) == 0, "flush 2 passes");
    ok(failpoint_count(FAILPOINT_WRITE) == 3, "failed calls are counted");

    ok(failpoint_setup_for_test("any:3:eio") == 0, "arm any:3:eio");
    ok(full_pwrite(fd, a, sizeof(a), 0) == 0, "any 1 (write)");
    ok(file_flush(fd) == 0, "any 2 (flush)");
    ok(file_truncate(fd, 100) == -EIO, "any 3 (truncate) fails");
    ok(file_size(fd) == 1024, "size unchanged by the failed truncate");
    ok(file_punch_zero(fd, 0, 512, false) == 0, "any 4 (zero) passes");

    ok(failpoint_setup_for_test("zero:1:eio,discard:1:eio,alloc:1:eio") == 0,
       "arm zero/discard/alloc");
    ok(file_punch_zero(fd, 0, 512, true) == -EIO, "zero fails");
    ok(file_discard(fd, 0, 512) == -EIO, "discard fails");
    ok(file_preallocate(fd, 0, 1 << 20) == -EIO && file_size(fd) == 1024,
       "alloc fails, size unchanged");

    ok(failpoint_setup_for_test("write:1:explode") == -EINVAL,
       "bad spec reported by setup");
    ok(full_pwrite(fd, b, sizeof(b), 0) == -EINVAL &&
       file_flush(fd) == -EINVAL, "bad spec: every call fails with -EINVAL");
    ok(full_pread(fd, back, sizeof(back), 0) == 0 && back[0] == 0,
       "bad spec: nothing written");
    failpoint_setup_for_test(NULL);
    close(fd);
}

static void
test_crash(void)
{
    uint8_t a[512], b[512], back[1024];
    int fd = open_tmp("crash"), status = 0;
    pid_t pid;

    memset(a, 'a', sizeof(a));
    memset(b, 'b', sizeof(b));
    ok(failpoint_setup_for_test("write:2:crash") == 0, "arm write:2:crash");
    fflush(stdout);
    pid = fork();
    if (pid == 0) {
        full_pwrite(fd, a, sizeof(a), 0);
        full_pwrite(fd, b, sizeof(b), 512);
        _exit(0);                       /* not reached */
    }
    ok(pid > 0 && waitpid(pid, &status, 0) == pid, "child ran");
    ok(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
       "child killed by SIGKILL (status 0x%x)", status);
    ok(file_size(fd) == 512, "only the first write reached the file");
    ok(full_pread(fd, back, 512, 0) == 0 && memcmp(back, a, 512) == 0,
       "first write intact");
    ok(failpoint_count(FAILPOINT_WRITE) == 0, "parent's counters unchanged");
    failpoint_setup_for_test(NULL);
    close(fd);
}

struct thread_arg {
    int fd;
    int index;
};

#define THREADS 4
#define THREAD_WRITES 500

static void *
writer(void *opaque)
{
    struct thread_arg *t = opaque;
    uint8_t buf[64];
    long failed = 0;

    memset(buf, t->index, sizeof(buf));
    for (int i = 0; i < THREAD_WRITES; i++) {
        int r = full_pwrite(t->fd, buf, sizeof(buf),
                            ((uint64_t)t->index * THREAD_WRITES + i) * 64);
        if (r == -EIO) {
            failed++;
        }
    }
    return (void *)failed;
}

static void
test_threads(void)
{
    pthread_t th[THREADS];
    struct thread_arg args[THREADS];
    long failed = 0;
    int fd = open_tmp("threads");

    ok(failpoint_setup_for_test("write:1000:eio") == 0, "arm write:1000:eio");
    for (int i = 0; i < THREADS; i++) {
        args[i].fd = fd;
        args[i].index = i;
        pthread_create(&th[i], NULL, writer, &args[i]);
    }
    for (int i = 0; i < THREADS; i++) {
        void *ret;

        pthread_join(th[i], &ret);
        failed += (long)ret;
    }
    ok(failpoint_count(FAILPOINT_WRITE) == THREADS * THREAD_WRITES,
       "%d concurrent writes counted exactly (%llu)", THREADS * THREAD_WRITES,
       (unsigned long long)failpoint_count(FAILPOINT_WRITE));
    ok(failed == 1, "exactly one of them failed (%ld)", failed);
    failpoint_setup_for_test(NULL);
    close(fd);
}

/* Run in the re-executed child: the environment is read on the first hit. */
static int
child_main(void)
{
    uint8_t buf[512] = { 0 };
    int fd = open_tmp("env");

    if (fd < 0) {
        return 10;
    }
    if (full_pwrite(fd, buf, sizeof(buf), 0) != 0) {
        return 11;
    }
    if (full_pwrite(fd, buf, sizeof(buf), 512) != -EIO) {
        return 12;
    }
    if (file_flush(fd) != 0 || file_truncate(fd, 4096) != 0) {
        return 13;
    }
    close(fd);
    return 0;                 /* exit() writes the counter file */
}

static void
test_environment(const char *self)
{
    char countfile[256], out[512] = "", cmd[1024];
    int status = -1;
    ssize_t n;
    pid_t pid;
    int fd;

    path_in_tmp(countfile, sizeof(countfile), "counts");
    fflush(stdout);
    pid = fork();
    if (pid == 0) {
        setenv("VIMG_FAILPOINT", "write:2:eio", 1);
        setenv("VIMG_FAILPOINT_COUNT", countfile, 1);
        execl(self, self, "--child", tmpdir, (char *)NULL);
        _exit(99);
    }
    ok(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) &&
       WEXITSTATUS(status) == 0,
       "child with VIMG_FAILPOINT=write:2:eio saw the injected error "
       "(status 0x%x)", status);
    fd = open(countfile, O_RDONLY | O_CLOEXEC);
    n = fd >= 0 ? read(fd, out, sizeof(out) - 1) : -1;
    if (fd >= 0) {
        close(fd);
    }
    ok(n > 0, "VIMG_FAILPOINT_COUNT file written at exit");
    out[n > 0 ? n : 0] = '\0';
    ok_str(out, "write 2\nzero 0\nflush 1\ntruncate 1\ndiscard 0\nalloc 0\n"
           "any 4\n", "counter file contents");

    /* A bad spec in the environment makes writes fail, not pass silently. */
    snprintf(cmd, sizeof(cmd), "VIMG_FAILPOINT=write:1:bogus '%s' --child "
             "'%s'", self, tmpdir);
    status = system(cmd);
    ok(WIFEXITED(status) && WEXITSTATUS(status) == 11,
       "bad VIMG_FAILPOINT: the first write fails (status 0x%x)", status);
}

int
main(int argc, char **argv)
{
    char cmd[256];

    if (argc == 3 && strcmp(argv[1], "--child") == 0) {
        snprintf(tmpdir, sizeof(tmpdir), "%s", argv[2]);
        return child_main();
    }
    /* The tests below arm failpoints themselves. */
    unsetenv("VIMG_FAILPOINT");
    unsetenv("VIMG_FAILPOINT_COUNT");
    if (!mkdtemp(tmpdir)) {
        perror("mkdtemp");
        return 1;
    }
    test_parse_valid();
    test_parse_invalid();
    test_counting();
    test_eio();
    test_crash();
    test_threads();
    test_environment(argv[0]);

    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    if (system(cmd) != 0) {
        printf("# could not remove %s\n", tmpdir);
    }
    return tap_done();
}
