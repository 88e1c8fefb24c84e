/* phphost-launch: the FPM master launcher (supervisord runs one per pool).
 *
 *   launch --pool NAME --jail ROOT [--pid-ns] [--cgroup phphost/NAME]
 *          [--limits FILE | --nproc N] [--network-policy FILE --network-user USER]
 *          [--mounts FILE] [--mount SRC:DST:ro|rw ...]
 *          [--socket PATH --socket-group GROUP --socket-mode 0660 --backlog N
 *           --idle-timeout SECONDS]
 *          -- /usr/sbin/php-fpm8.2 --nodaemonize --fpm-config ...
 *
 * Built with gcc like the jails' sendmail (launcher/mailer.py's CFLAGS; apply builds it
 * from the source it installs as /usr/local/lib/phphost/launch.c). libc only: it stays
 * resident beside every master, so it must cost next to nothing (docs/idle.md).
 *
 * Every master gets a private IPC namespace and a private mount namespace (made
 * rprivate: nothing propagates back to the host) in which each jail mount of the mount
 * file is made: sources and targets are opened component by component with
 * O_PATH|O_NOFOLLOW and mounted through /proc/self/fd, so a symlink planted in a tenant's
 * home cannot redirect a bind. Binds are remounted nosuid,nodev plus ro (read-only) or
 * noexec (writable); "proc" is a read-only procfs with hidepid=invisible; "tmpfs" a
 * private tmpfs of the given size, noexec,nosuid,nodev, mode 1777.
 *
 * --cgroup: the launcher joins phphost/NAME in every mounted cgroup hierarchy that has
 * it, before any master is forked; --limits/--nproc set RLIMIT_NPROC (the workers').
 * --network-policy FILE --network-user USER: when nftables' table inet phphost does not
 * send USER's packets to the pool's chain (its verdict map `pools` has no element
 * "USER's uid : jump pool-NAME": after a reboot or a ruleset flush), `nft -f FILE` first;
 * no master starts without that element or with FILE missing. The check asks nft for the
 * one element (`nft get element`; nft 1.0.6 dumps the whole map to answer, ~11 ms at
 * 1,000 pools). Checked when the launcher starts and again before every master it
 * starts on a connection (a failed check there ends the launcher), except while the
 * kernel's ruleset generation (NFT_MSG_GETGEN) is still the one in which this launcher
 * last found its element: every committed change of any table makes a new one.
 *
 * --pid-ns: each master is PID 1 of a new PID namespace (a killed master takes every
 * worker along); the launcher stays as the supervised process, forwards QUIT, TERM,
 * INT, USR1, USR2 and HUP to the master and exits with its status. Without --pid-ns
 * the launcher execs the command itself.
 *
 * --socket (socket activation, needs --pid-ns): the launcher binds and listens on the
 * pool's socket itself (owner root, the given group and mode, the given backlog; created
 * through a descriptor of its directory, which must be root's and writable by no one
 * else) and starts no master until a connection waits. The master inherits the socket
 * (FPM_SOCKETS=PATH=3) and the connection waits in the backlog until a worker accepts
 * it. When the master has had no worker and no connection waited for --idle-timeout
 * seconds, the launcher sends it SIGQUIT (graceful) and goes back to sleep holding the
 * socket: a connection that arrives meanwhile waits in the backlog for the next master.
 * A connection may also find an awake master with no worker that never forks one: FPM's
 * ondemand pool forks a worker when a connection arrives and no worker is idle, and it
 * counts a worker it has just told to quit (pm.process_idle_timeout) as idle until it has
 * reaped it, so a connection that arrives in that moment waits until the next one
 * arrives. Every TICK_MS the launcher looks: no worker and a connection waiting, it
 * connects to the socket itself and closes at once (the master sees an arrival and forks;
 * the worker takes the waiting connection first, then reads EOF from this one); still so
 * for STUCK_RESTART_SECONDS in a master that has had a worker, SIGQUIT and the next
 * master takes the connection, as after an idle stop.
 * SIGWINCH asks for that sleep now instead of after --idle-timeout (apply wakes every
 * pool it starts, to see its master come up, then lets it sleep again; the master's
 * SIGQUIT is graceful, a request under way finishes); without --socket, or asleep,
 * SIGWINCH does nothing. Asleep, USR1/USR2/HUP have nothing to act on (the next master reads config and logs
 * afresh) and QUIT/TERM/INT end the launcher. A master that exits unasked ends the
 * launcher with its status (supervisord restarts the pool).
 *
 * FPM unlinks its listening socket's path when it exits; in the master's namespace the
 * path is bind-mounted onto itself, so that unlink fails there (EBUSY) and the socket
 * stays reachable while the launcher sleeps.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <linux/netfilter/nf_tables.h>
#include <linux/netfilter/nfnetlink.h>
#include <linux/netlink.h>
#include <poll.h>
#include <pwd.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define LAUNCH_CLOSE_RANGE_CLOEXEC (1U << 2)   /* linux/close_range.h, kernel 5.11 */

#ifndef NFT
#define NFT "/usr/sbin/nft"          /* layout.NFT_BINARY; tests build a copy with their own */
#endif
#define UNSHARE_IPC CLONE_NEWIPC       /* tests weaken a copy by setting this to 0 */
#define JOIN_CGROUPS 1                 /* tests weaken a copy by setting this to 0 */
#define NUDGE_STUCK 1                  /* tests weaken a copy by setting this to 0 */
#define RESTART_STUCK 1                /* tests weaken a copy by setting this to 0 */
#define TICK_MS 250                    /* how often an awake launcher looks at its master */
#define STUCK_RESTART_SECONDS 2.0
#define MAX_MOUNTS 256
#define MAX_FILE (1 << 20)
#define INHERITED_FD 3

/* ------------------------------------------------------------------ errors */

static const char *pool_name = "?";

static void fail(const char *fmt, ...) __attribute__((noreturn, format(printf, 1, 2)));
static void fail(const char *fmt, ...) {
    va_list ap;
    char msg[3000];
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "phphost-launch[%s]: %s; the FPM master was not started\n", pool_name, msg);
    fflush(stderr);
    _exit(1);
}

static void note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void note(const char *fmt, ...) {
    va_list ap;
    char msg[1000];
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "phphost-launch[%s]: %s\n", pool_name, msg);
    fflush(stderr);
}

static void *xalloc(size_t n) {
    void *p = calloc(1, n ? n : 1);
    if (p == NULL) fail("out of memory");
    return p;
}

static char *xstrdup(const char *s) {
    char *p = strdup(s);
    if (p == NULL) fail("out of memory");
    return p;
}

/* ------------------------------------------------------------------ a small JSON reader */

enum jtype { J_NULL, J_BOOL, J_NUM, J_STR, J_ARR, J_OBJ };

struct jval {
    enum jtype type;
    int boolean;
    long long num;
    int is_int;
    char *str;                 /* J_STR */
    struct jval **items;       /* J_ARR values, J_OBJ values */
    char **keys;               /* J_OBJ */
    size_t n;
};

struct jparser { const char *p, *end; const char *err; };

static void jspace(struct jparser *j) {
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static struct jval *jvalue(struct jparser *j, int depth);

static void put_utf8(char **o, unsigned long c) {
    char *q = *o;
    if (c < 0x80) *q++ = (char)c;
    else if (c < 0x800) { *q++ = (char)(0xc0 | (c >> 6)); *q++ = (char)(0x80 | (c & 0x3f)); }
    else if (c < 0x10000) {
        *q++ = (char)(0xe0 | (c >> 12)); *q++ = (char)(0x80 | ((c >> 6) & 0x3f));
        *q++ = (char)(0x80 | (c & 0x3f));
    } else {
        *q++ = (char)(0xf0 | (c >> 18)); *q++ = (char)(0x80 | ((c >> 12) & 0x3f));
        *q++ = (char)(0x80 | ((c >> 6) & 0x3f)); *q++ = (char)(0x80 | (c & 0x3f));
    }
    *o = q;
}

static int hex4(struct jparser *j, unsigned long *out) {
    unsigned long v = 0;
    if (j->end - j->p < 4) return -1;
    for (int i = 0; i < 4; i++) {
        char c = *j->p++;
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned long)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned long)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned long)(c - 'A' + 10);
        else return -1;
    }
    *out = v;
    return 0;
}

static char *jstring(struct jparser *j) {
    char *out, *o;
    if (j->p >= j->end || *j->p != '"') { j->err = "expected a string"; return NULL; }
    j->p++;
    out = o = xalloc((size_t)(j->end - j->p) * 2 + 1);
    while (j->p < j->end && *j->p != '"') {
        unsigned char c = (unsigned char)*j->p++;
        if (c < 0x20) { j->err = "control character in a string"; return NULL; }
        if (c != '\\') { *o++ = (char)c; continue; }
        if (j->p >= j->end) break;
        c = (unsigned char)*j->p++;
        switch (c) {
        case '"': case '\\': case '/': *o++ = (char)c; break;
        case 'b': *o++ = '\b'; break;
        case 'f': *o++ = '\f'; break;
        case 'n': *o++ = '\n'; break;
        case 'r': *o++ = '\r'; break;
        case 't': *o++ = '\t'; break;
        case 'u': {
            unsigned long cp, lo;
            if (hex4(j, &cp) != 0) { j->err = "bad \\u escape"; return NULL; }
            if (cp >= 0xd800 && cp < 0xdc00) {
                if (j->end - j->p < 6 || j->p[0] != '\\' || j->p[1] != 'u') {
                    j->err = "lone surrogate"; return NULL;
                }
                j->p += 2;
                if (hex4(j, &lo) != 0 || lo < 0xdc00 || lo > 0xdfff) {
                    j->err = "bad surrogate pair"; return NULL;
                }
                cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
            } else if (cp >= 0xdc00 && cp < 0xe000) {
                j->err = "lone surrogate"; return NULL;
            }
            if (cp == 0) { j->err = "NUL in a string"; return NULL; }
            put_utf8(&o, cp);
            break;
        }
        default: j->err = "bad escape"; return NULL;
        }
    }
    if (j->p >= j->end) { j->err = "unterminated string"; return NULL; }
    j->p++;
    *o = '\0';
    return out;
}

static struct jval *jcontainer(struct jparser *j, int obj, int depth) {
    struct jval *v = xalloc(sizeof *v);
    size_t cap = 8;
    v->type = obj ? J_OBJ : J_ARR;
    v->items = xalloc(cap * sizeof *v->items);
    v->keys = xalloc(cap * sizeof *v->keys);
    j->p++;
    jspace(j);
    if (j->p < j->end && *j->p == (obj ? '}' : ']')) { j->p++; return v; }
    for (;;) {
        if (v->n == cap) {
            cap *= 2;
            v->items = realloc(v->items, cap * sizeof *v->items);
            v->keys = realloc(v->keys, cap * sizeof *v->keys);
            if (v->items == NULL || v->keys == NULL) fail("out of memory");
        }
        jspace(j);
        if (obj) {
            if ((v->keys[v->n] = jstring(j)) == NULL) return NULL;
            jspace(j);
            if (j->p >= j->end || *j->p++ != ':') { j->err = "expected ':'"; return NULL; }
        }
        if ((v->items[v->n] = jvalue(j, depth + 1)) == NULL) return NULL;
        v->n++;
        jspace(j);
        if (j->p < j->end && *j->p == ',') { j->p++; continue; }
        if (j->p < j->end && *j->p == (obj ? '}' : ']')) { j->p++; return v; }
        j->err = obj ? "expected ',' or '}'" : "expected ',' or ']'";
        return NULL;
    }
}

static struct jval *jvalue(struct jparser *j, int depth) {
    struct jval *v;
    if (depth > 16) { j->err = "nested too deep"; return NULL; }
    jspace(j);
    if (j->p >= j->end) { j->err = "unexpected end"; return NULL; }
    if (*j->p == '{' || *j->p == '[') return jcontainer(j, *j->p == '{', depth);
    v = xalloc(sizeof *v);
    if (*j->p == '"') {
        v->type = J_STR;
        return (v->str = jstring(j)) == NULL ? NULL : v;
    }
    if (j->end - j->p >= 4 && !strncmp(j->p, "true", 4)) { j->p += 4; v->type = J_BOOL; v->boolean = 1; return v; }
    if (j->end - j->p >= 5 && !strncmp(j->p, "false", 5)) { j->p += 5; v->type = J_BOOL; return v; }
    if (j->end - j->p >= 4 && !strncmp(j->p, "null", 4)) { j->p += 4; v->type = J_NULL; return v; }
    if (*j->p == '-' || isdigit((unsigned char)*j->p)) {
        const char *s = j->p;
        int neg = *j->p == '-', digits = 0;
        long long n = 0;
        if (neg) j->p++;
        while (j->p < j->end && isdigit((unsigned char)*j->p)) {
            if (n > (LLONG_MAX - 9) / 10) { j->err = "number too large"; return NULL; }
            n = n * 10 + (*j->p++ - '0');
            digits++;
        }
        v->type = J_NUM;
        v->is_int = digits > 0;
        while (j->p < j->end && strchr("0123456789.eE+-", *j->p)) { j->p++; v->is_int = 0; }
        if (j->p == s + neg) { j->err = "bad number"; return NULL; }
        v->num = neg ? -n : n;
        return v;
    }
    j->err = "unexpected character";
    return NULL;
}

static struct jval *jparse(const char *text, size_t len, const char **err) {
    struct jparser j = { text, text + len, NULL };
    struct jval *v = jvalue(&j, 0);
    if (v != NULL) {
        jspace(&j);
        if (j.p != j.end) { v = NULL; j.err = "trailing data"; }
    }
    *err = j.err;
    return v;
}

static struct jval *jget(const struct jval *obj, const char *key) {
    if (obj == NULL || obj->type != J_OBJ) return NULL;
    for (size_t i = 0; i < obj->n; i++)
        if (!strcmp(obj->keys[i], key)) return obj->items[i];
    return NULL;
}

/* ------------------------------------------------------------------ the launch plan */

enum mtype { M_BIND, M_PROC, M_TMPFS };

struct mountspec {
    enum mtype type;
    char *source;        /* host path; "proc" / "tmpfs" */
    char *target;        /* inside the jail */
    int writable;
    long long size;      /* tmpfs bytes */
};

struct plan {
    const char *pool, *jail, *cgroup, *policy, *policy_user;
    uid_t policy_uid;
    long nproc;
    int pid_ns;
    struct mountspec mounts[MAX_MOUNTS];
    size_t nmounts;
    char **command;
    /* socket activation */
    const char *socket, *socket_group;
    unsigned socket_mode;
    int backlog;
    long idle_timeout;
};

static char *read_file(const char *path, size_t *len) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    char *buf;
    ssize_t n;
    size_t got = 0;
    if (fd < 0) fail("cannot read %s: %s", path, strerror(errno));
    buf = xalloc(MAX_FILE + 1);
    while ((n = read(fd, buf + got, MAX_FILE - got)) > 0) got += (size_t)n;
    close(fd);
    if (n < 0) fail("cannot read %s: %s", path, strerror(errno));
    if (got >= MAX_FILE) fail("%s is larger than %d bytes", path, MAX_FILE);
    *len = got;
    return buf;
}

/* Absolute, no "..", normalised (no empty or "." components, no trailing slash). */
static char *normalised(const char *path, const char *what, const char *where) {
    char *out, *o, *copy, *save = NULL, *part;
    if (path[0] != '/') fail("%s: %s '%s' must be absolute, without '..'", where, what, path);
    out = o = xalloc(strlen(path) + 2);
    copy = xstrdup(path);
    for (part = strtok_r(copy, "/", &save); part; part = strtok_r(NULL, "/", &save)) {
        if (!strcmp(part, "..")) fail("%s: %s '%s' must be absolute, without '..'", where, what, path);
        if (!strcmp(part, ".")) continue;
        *o++ = '/';
        strcpy(o, part);
        o += strlen(part);
    }
    free(copy);
    if (o == out) *o++ = '/';
    *o = '\0';
    return out;
}

static void add_mount(struct plan *pl, enum mtype type, const char *source, const char *target,
                      int writable, long long size, const char *where) {
    struct mountspec *m;
    if (pl->nmounts == MAX_MOUNTS) fail("%s: more than %d mounts", where, MAX_MOUNTS);
    m = &pl->mounts[pl->nmounts++];
    m->type = type;
    m->target = normalised(target, "target", where);
    m->source = type == M_BIND ? normalised(source, "source", where)
                               : xstrdup(type == M_PROC ? "proc" : "tmpfs");
    if (!strcmp(m->target, "/")) fail("%s: cannot mount over the jail root", where);
    m->writable = writable;
    m->size = size;
}

static void read_mount_file(struct plan *pl, const char *path) {
    size_t len;
    const char *err;
    char *text = read_file(path, &len);
    struct jval *root = jparse(text, len, &err), *pool, *mounts;
    if (root == NULL) fail("%s is not JSON: %s", path, err);
    pool = jget(root, "pool");
    mounts = jget(root, "mounts");
    if (pool == NULL || pool->type != J_STR || mounts == NULL || mounts->type != J_ARR)
        fail("%s needs a \"pool\" string and a \"mounts\" list", path);
    if (strcmp(pool->str, pl->pool))
        fail("%s is the mount file of pool '%s', not '%s'", path, pool->str, pl->pool);
    for (size_t i = 0; i < mounts->n; i++) {
        struct jval *it = mounts->items[i], *type, *src, *dst, *wr, *size;
        char where[4200];
        enum mtype t = M_BIND;
        snprintf(where, sizeof where, "%s: mounts[%zu]", path, i);
        if (it->type != J_OBJ) fail("%s is not an object", where);
        type = jget(it, "type"); src = jget(it, "source"); dst = jget(it, "target");
        wr = jget(it, "writable"); size = jget(it, "size");
        if (type != NULL && (type->type != J_STR || (strcmp(type->str, "bind")
                && strcmp(type->str, "proc") && strcmp(type->str, "tmpfs"))))
            fail("%s: type must be bind, proc or tmpfs, writable true or false", where);
        if (wr != NULL && wr->type != J_BOOL)
            fail("%s: type must be bind, proc or tmpfs, writable true or false", where);
        if (type != NULL) t = !strcmp(type->str, "proc") ? M_PROC : !strcmp(type->str, "tmpfs") ? M_TMPFS : M_BIND;
        if (src == NULL || src->type != J_STR || dst == NULL || dst->type != J_STR)
            fail("%s: source and target must be strings", where);
        if (t == M_TMPFS && (size == NULL || size->type != J_NUM || !size->is_int || size->num <= 0))
            fail("%s: a tmpfs needs \"size\", a number of bytes > 0", where);
        add_mount(pl, t, src->str, dst->str, wr != NULL && wr->boolean,
                  t == M_TMPFS ? size->num : 0, where);
    }
}

static long read_limits_file(const char *path, const char *pool) {
    size_t len;
    const char *err;
    char *text = read_file(path, &len);
    struct jval *root = jparse(text, len, &err), *p, *n;
    if (root == NULL) fail("%s is not JSON: %s", path, err);
    p = jget(root, "pool");
    if (p == NULL || p->type != J_STR || strcmp(p->str, pool))
        fail("%s is not the limits file of pool '%s'", path, pool);
    n = jget(root, "nproc");
    if (n == NULL || n->type != J_NUM || !n->is_int || n->num <= 0 || n->num >= (1 << 22))
        fail("%s: \"nproc\" must be a number of processes", path);
    return (long)n->num;
}

static int depth_of(const char *path) {
    int n = 0;
    for (; *path; path++) n += *path == '/';
    return n;
}

static int mount_order(const void *a, const void *b) {
    const struct mountspec *x = a, *y = b;
    int dx = depth_of(x->target), dy = depth_of(y->target);
    return dx != dy ? dx - dy : strcmp(x->target, y->target);
}

static int valid_cgroup(const char *s) {
    size_t n;
    if (strncmp(s, "phphost/", 8)) return 0;
    s += 8;
    n = strlen(s);
    if (n < 1 || n > 31 || !(*s >= 'a' && *s <= 'z')) return 0;
    for (; *s; s++)
        if (!((*s >= 'a' && *s <= 'z') || isdigit((unsigned char)*s) || *s == '_' || *s == '-'))
            return 0;
    return 1;
}

static long number(const char *s, long lo, long hi, const char *what) {
    char *end;
    long v;
    if (!isdigit((unsigned char)*s)) fail("%s '%s': expected a number", what, s);
    errno = 0;
    v = strtol(s, &end, 10);
    if (*end || errno || v < lo || v > hi) fail("%s '%s': expected a number from %ld to %ld", what, s, lo, hi);
    return v;
}

static void parse_args(struct plan *pl, int argc, char **argv) {
    int i, split = -1, seen_limits = 0;
    const char *limits = NULL;
    for (i = 1; i < argc; i++) if (!strcmp(argv[i], "--")) { split = i; break; }
    if (split < 0)
        fail("usage: ... --pool NAME --jail ROOT [--mounts FILE] [--mount SRC:DST:ro|rw] -- COMMAND ARGS");
    pl->command = argv + split + 1;
    for (i = 1; i < split; i++) {
        const char *k = argv[i], *v;
        if (!strcmp(k, "--pid-ns")) { pl->pid_ns = 1; continue; }
        if (i + 1 >= split) fail("unknown option or missing value: %s", k);
        v = argv[++i];
#define ONCE(field, name) do { if (pl->field) fail(name " is given at most once"); pl->field = v; } while (0)
        if (!strcmp(k, "--pool")) ONCE(pool, "--pool");
        else if (!strcmp(k, "--jail")) ONCE(jail, "--jail");
        else if (!strcmp(k, "--cgroup")) ONCE(cgroup, "--cgroup");
        else if (!strcmp(k, "--network-policy")) ONCE(policy, "--network-policy");
        else if (!strcmp(k, "--network-user")) ONCE(policy_user, "--network-user");
        else if (!strcmp(k, "--socket")) ONCE(socket, "--socket");
        else if (!strcmp(k, "--socket-group")) ONCE(socket_group, "--socket-group");
        else if (!strcmp(k, "--limits")) { limits = v; seen_limits++; }
        else if (!strcmp(k, "--nproc")) {
            if (pl->nproc) fail("--cgroup and --nproc are given at most once");
            pl->nproc = number(v, 1, (1 << 22) - 1, "--nproc");
        }
        else if (!strcmp(k, "--socket-mode")) pl->socket_mode = (unsigned)strtoul(v, NULL, 8);
        else if (!strcmp(k, "--backlog")) pl->backlog = (int)number(v, 1, 65535, "--backlog");
        else if (!strcmp(k, "--idle-timeout")) pl->idle_timeout = number(v, 1, 86400 * 365, "--idle-timeout");
        else if (!strcmp(k, "--mount") || !strcmp(k, "--mounts")) continue;   /* below */
        else fail("unknown option or missing value: %s", k);
#undef ONCE
    }
    if (pl->pool) pool_name = pl->pool;
    if (!pl->pool || !pl->jail || !pl->command[0])
        fail("--pool, --jail (once each) and a command after -- are required");
    if (pl->jail[0] != '/' || pl->command[0][0] != '/')
        fail("the jail root and the command must be absolute paths");
    if (pl->cgroup && !valid_cgroup(pl->cgroup)) fail("--cgroup '%s': expected phphost/POOL", pl->cgroup);
    if (pl->policy && pl->policy[0] != '/') fail("--network-policy is given at most once, as an absolute path");
    if (!pl->policy != !pl->policy_user) fail("--network-policy and --network-user go together");
    if (pl->policy_user) {
        struct passwd *pw = getpwnam(pl->policy_user);
        if (pw == NULL) fail("--network-user %s: no such user; run `phphost apply`", pl->policy_user);
        pl->policy_uid = pw->pw_uid;
    }
    if (seen_limits > 1) fail("--limits is given at most once");
    if (limits) pl->nproc = read_limits_file(limits, pl->pool);
    if (pl->socket) {
        if (pl->socket[0] != '/' || strlen(pl->socket) >= sizeof(((struct sockaddr_un *)0)->sun_path))
            fail("--socket '%s': expected an absolute path of at most 107 bytes", pl->socket);
        if (!pl->pid_ns || !pl->socket_group || !pl->socket_mode || !pl->backlog || !pl->idle_timeout)
            fail("--socket needs --pid-ns, --socket-group, --socket-mode, --backlog and --idle-timeout");
        if (pl->socket_mode & ~0777u) fail("--socket-mode: expected an octal mode such as 0660");
    }
    for (i = 1; i < split; i++) {
        if (!strcmp(argv[i], "--pid-ns")) continue;
        if (!strcmp(argv[i], "--mount")) {
            char *spec = xstrdup(argv[i + 1]), *c1 = strchr(spec, ':'), *c2 = c1 ? strchr(c1 + 1, ':') : NULL;
            char where[4200];
            snprintf(where, sizeof where, "--mount %s", argv[i + 1]);
            if (!c1 || !c2 || strchr(c2 + 1, ':') || (strcmp(c2 + 1, "ro") && strcmp(c2 + 1, "rw")))
                fail("--mount '%s': expected SRC:DST:ro or SRC:DST:rw (paths with ':' go in a mount file)", argv[i + 1]);
            *c1 = *c2 = '\0';
            add_mount(pl, !strcmp(spec, "proc") ? M_PROC : M_BIND, spec, c1 + 1, !strcmp(c2 + 1, "rw"), 0, where);
        } else if (!strcmp(argv[i], "--mounts")) {
            read_mount_file(pl, argv[i + 1]);
        }
        i++;
    }
    qsort(pl->mounts, pl->nmounts, sizeof pl->mounts[0], mount_order);
    for (size_t m = 1; m < pl->nmounts; m++)
        if (!strcmp(pl->mounts[m].target, pl->mounts[m - 1].target))
            fail("two mounts have the target %s", pl->mounts[m].target);
}

/* ------------------------------------------------------------------ paths without symlinks */

static const char *fdpath(int fd, char *buf, size_t n) {
    snprintf(buf, n, "/proc/self/fd/%d", fd);
    return buf;
}

static const char *missing_hint = "";

static int open_part(int fd, const char *part, int create, int is_dir, const char *shown) {
    struct stat st;
    int sub = openat(fd, part, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (sub < 0 && errno == ENOENT) {
        if (!create) fail("%s does not exist%s", shown, missing_hint);
        if (is_dir) {
            int d;
            if (mkdirat(fd, part, 0755) != 0 && errno != EEXIST) fail("%s: mkdir %s: %s", shown, part, strerror(errno));
            d = openat(fd, part, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
            if (d < 0 || fchmod(d, 0755) != 0) fail("%s: %s: %s", shown, part, strerror(errno));
            close(d);
        } else {
            int f = openat(fd, part, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0444);
            if (f < 0) fail("%s: create %s: %s", shown, part, strerror(errno));
            close(f);
        }
        sub = openat(fd, part, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    }
    if (sub < 0) fail("%s: %s: %s", shown, part, strerror(errno));
    if (fstat(sub, &st) != 0) fail("%s: %s", shown, strerror(errno));
    if (is_dir ? !S_ISDIR(st.st_mode) : !(S_ISREG(st.st_mode) || S_ISDIR(st.st_mode)))
        fail("%s: '%s' is %s; mount sources and targets must be real paths without symlinks",
             shown, part, S_ISLNK(st.st_mode) ? "a symlink" : "not a directory");
    return sub;
}

/* O_PATH fd of path under the directory fd base, no symlink followed anywhere; with
 * create, missing directories (and a missing final file) are made, root's. */
static int open_nofollow(int base, const char *path, int create, int want_dir, const char *shown) {
    char *copy = xstrdup(path), *save = NULL, *part, *next;
    int fd = dup(base);
    if (fd < 0) fail("dup: %s", strerror(errno));
    part = strtok_r(copy, "/", &save);
    while (part) {
        int sub;
        next = strtok_r(NULL, "/", &save);
        sub = open_part(fd, part, create, want_dir || next != NULL, shown);
        close(fd);
        fd = sub;
        part = next;
    }
    free(copy);
    return fd;
}

/* ------------------------------------------------------------------ namespaces and mounts */

static void do_mount(const char *src, const char *dst, const char *fstype, unsigned long flags,
                     const char *data, const char *where) {
    if (mount(src, dst, fstype, flags, data) != 0) fail("%s: %s", where, strerror(errno));
}

static void private_namespace(void) {
    if (unshare(CLONE_NEWNS) != 0) fail("unshare(CLONE_NEWNS) (are we root?): %s", strerror(errno));
    do_mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL, "making / private");
}

static void mount_one(const struct mountspec *m, int jail_fd, int slash_fd, int inside) {
    char where[9000], shown[9100], a[64], b[64], data[128];
    int sfd, tfd, rfd, is_dir;
    struct stat st;
    snprintf(where, sizeof where, "mount %s -> %s", m->source, m->target);
    snprintf(shown, sizeof shown, "%s: target", where);
    if (m->type != M_BIND) {
        tfd = open_nofollow(jail_fd, m->target, !inside, 1, shown);
        if (m->type == M_TMPFS) {
            long long inodes = m->size / 4096 > 1024 ? m->size / 4096 : 1024;
            snprintf(data, sizeof data, "size=%lld,nr_inodes=%lld,mode=1777", m->size, inodes);
            do_mount("tmpfs", fdpath(tfd, a, sizeof a), "tmpfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, data, where);
        } else {
            do_mount("proc", fdpath(tfd, a, sizeof a), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC | MS_RDONLY,
                     "hidepid=invisible", where);
        }
        close(tfd);
        return;
    }
    snprintf(shown, sizeof shown, "%s: source %s", where, m->source);
    sfd = open_nofollow(slash_fd, m->source, 0, 0, shown);
    if (fstat(sfd, &st) != 0) fail("%s: %s", where, strerror(errno));
    is_dir = S_ISDIR(st.st_mode);
    snprintf(shown, sizeof shown, "%s: target", where);
    tfd = open_nofollow(jail_fd, m->target, !inside, is_dir, shown);
    do_mount(fdpath(sfd, a, sizeof a), fdpath(tfd, b, sizeof b), NULL, MS_BIND, NULL, where);
    close(tfd);
    close(sfd);
    rfd = open_nofollow(jail_fd, m->target, 0, is_dir, where);
    snprintf(shown, sizeof shown, "%s (remount)", where);
    do_mount(NULL, fdpath(rfd, a, sizeof a), NULL,
             MS_REMOUNT | MS_BIND | MS_NOSUID | MS_NODEV | (m->writable ? MS_NOEXEC : MS_RDONLY), NULL, shown);
    close(rfd);
}

static void set_up(const struct plan *pl) {
    char shown[4200];
    int slash_fd, jail_fd;
    private_namespace();
    slash_fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (slash_fd < 0) fail("open /: %s", strerror(errno));
    snprintf(shown, sizeof shown, "jail root %s", pl->jail);
    missing_hint = "; build the jail first (phphost apply)";
    jail_fd = open_nofollow(slash_fd, pl->jail, 0, 1, shown);
    missing_hint = "";
    for (size_t i = 0; i < pl->nmounts; i++) {
        const struct mountspec *m = &pl->mounts[i];
        int inside = 0;
        for (size_t j = 0; j < i; j++) {
            size_t n = strlen(pl->mounts[j].target);
            if (!strncmp(m->target, pl->mounts[j].target, n) && m->target[n] == '/') inside = 1;
        }
        mount_one(m, jail_fd, slash_fd, inside);
    }
    close(jail_fd);
    close(slash_fd);
}

/* ------------------------------------------------------------------ cgroups, limits, policy */

/* mountinfo escapes space, tab, newline and backslash as \ooo */
static void unescape(char *s) {
    char *o = s;
    while (*s) {
        if (s[0] == '\\' && isdigit((unsigned char)s[1]) && isdigit((unsigned char)s[2]) && isdigit((unsigned char)s[3])) {
            *o++ = (char)((s[1] - '0') * 64 + (s[2] - '0') * 8 + (s[3] - '0'));
            s += 4;
        } else {
            *o++ = *s++;
        }
    }
    *o = '\0';
}

static void join_cgroups(const struct plan *pl) {
    FILE *fh;
    char *line = NULL;
    size_t cap = 0;
    if (!JOIN_CGROUPS) return;
    if (pl->cgroup) {
        fh = fopen("/proc/self/mountinfo", "re");
        if (fh == NULL) fail("cannot read /proc/self/mountinfo: %s", strerror(errno));
        while (getline(&line, &cap, fh) > 0) {
            char *sep = strstr(line, " - "), *fields[6], *save = NULL, *tok, dir[4400], procs[4500], pid[32];
            int n = 0, fd;
            struct stat st;
            if (sep == NULL) continue;
            if (strncmp(sep + 3, "cgroup ", 7) && strncmp(sep + 3, "cgroup2 ", 8)) continue;
            *sep = '\0';
            for (tok = strtok_r(line, " ", &save); tok && n < 6; tok = strtok_r(NULL, " ", &save)) fields[n++] = tok;
            if (n < 5) continue;
            unescape(fields[4]);
            snprintf(dir, sizeof dir, "%s/%s", fields[4], pl->cgroup);
            if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) continue;
            snprintf(procs, sizeof procs, "%s/cgroup.procs", dir);
            snprintf(pid, sizeof pid, "%d", (int)getpid());
            fd = open(procs, O_WRONLY | O_NOFOLLOW | O_CLOEXEC);
            if (fd < 0 || write(fd, pid, strlen(pid)) < 0) fail("cannot join cgroup %s: %s", dir, strerror(errno));
            close(fd);
        }
        free(line);
        fclose(fh);
    }
    if (pl->nproc) {
        struct rlimit rl = { (rlim_t)pl->nproc, (rlim_t)pl->nproc };
        if (setrlimit(RLIMIT_NPROC, &rl) != 0) fail("setrlimit(RLIMIT_NPROC): %s", strerror(errno));
    }
}

/* Runs argv; returns its exit status (-1: could not run) and up to cap bytes of stdout. */
static int run_capture(char *const argv[], char *out, size_t cap) {
    int pipefd[2], status;
    size_t got = 0;
    ssize_t n;
    pid_t pid;
    if (pipe2(pipefd, O_CLOEXEC) != 0) return -1;
    pid = fork();
    if (pid < 0) return -1;
    if (pid == 0) {
        int devnull = open("/dev/null", O_RDWR);
        dup2(pipefd[1], 1);
        if (devnull >= 0) dup2(devnull, 0);
        execv(argv[0], argv);
        _exit(127);
    }
    close(pipefd[1]);
    while (got < cap - 1 && (n = read(pipefd[0], out + got, cap - 1 - got)) > 0) got += (size_t)n;
    for (;;) {      /* drain to EOF: a child blocked on a full pipe would never exit */
        char sink[4096];
        n = read(pipefd[0], sink, sizeof sink);
        if (n > 0 || (n < 0 && errno == EINTR)) continue;
        break;
    }
    out[got] = '\0';
    close(pipefd[0]);
    while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {}
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static int policy_has(const char *pool, uid_t uid) {
    /* one element of the dispatch map, not a listing that grows with the pools */
    static char out[4096];
    char key[40], want[120], *at;
    char *argv[] = { NFT, "get", "element", "inet", "phphost", "pools", key, NULL };
    size_t w;
    snprintf(key, sizeof key, "{ %u }", (unsigned)uid);
    if (run_capture(argv, out, sizeof out) != 0) return 0;
    w = (size_t)snprintf(want, sizeof want, "%u : jump pool-%s", (unsigned)uid, pool);
    for (at = strstr(out, want); at; at = strstr(at + 1, want)) {
        char before = at == out ? ' ' : at[-1], after = at[w];
        if ((before == ' ' || before == '{' || before == ',' || before == '\t' || before == '\n')
            && (after == ' ' || after == ',' || after == '}' || after == '\n'))
            return 1;
    }
    return 0;
}

/* nftables' ruleset generation (NFT_MSG_GETGEN over netlink, no program run): every
 * committed change of any table makes a new one. 0 when unknown. */
static uint32_t ruleset_generation(void) {
    struct { struct nlmsghdr nh; struct nfgenmsg nf; } req;
    union { struct nlmsghdr nh; char raw[1024]; } ans;
    struct sockaddr_nl kernel = { .nl_family = AF_NETLINK }, from;
    socklen_t fromlen = sizeof from;
    struct timeval wait = { 1, 0 };
    uint32_t gen = 0, be;
    ssize_t n;
    int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_NETFILTER);
    if (fd < 0) return 0;
    memset(&req, 0, sizeof req);
    req.nh.nlmsg_len = sizeof req;
    req.nh.nlmsg_type = (NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_GETGEN;
    req.nh.nlmsg_flags = NLM_F_REQUEST;
    req.nh.nlmsg_seq = 1;
    req.nf.nfgen_family = AF_UNSPEC;
    req.nf.version = NFNETLINK_V0;
    (void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof wait);
    if (sendto(fd, &req, sizeof req, 0, (struct sockaddr *)&kernel, sizeof kernel) == (ssize_t)sizeof req
        && (n = recvfrom(fd, &ans, sizeof ans, 0, (struct sockaddr *)&from, &fromlen)) > 0
        && fromlen == sizeof from && from.nl_pid == 0      /* the kernel's answer ... */
        && NLMSG_OK(&ans.nh, (size_t)n) && ans.nh.nlmsg_seq == req.nh.nlmsg_seq  /* ... to us */
        && ans.nh.nlmsg_type == ((NFNL_SUBSYS_NFTABLES << 8) | NFT_MSG_NEWGEN)
        && ans.nh.nlmsg_len >= NLMSG_LENGTH(sizeof(struct nfgenmsg))) {
        size_t at = NLMSG_LENGTH(sizeof(struct nfgenmsg)), end = ans.nh.nlmsg_len;
        at = NLMSG_ALIGN(at);
        while (at + NLA_HDRLEN <= end) {
            struct nlattr attr;
            memcpy(&attr, ans.raw + at, sizeof attr);
            if (attr.nla_len < NLA_HDRLEN || at + attr.nla_len > end) break;
            if ((attr.nla_type & NLA_TYPE_MASK) == NFTA_GEN_ID && attr.nla_len >= NLA_HDRLEN + 4) {
                memcpy(&be, ans.raw + at + NLA_HDRLEN, 4);
                gen = ntohl(be);
            }
            at += NLA_ALIGN(attr.nla_len);
        }
    }
    close(fd);
    return gen;
}

#ifndef RULESET_GENERATION
#define RULESET_GENERATION 1     /* tests with a stand-in for nft build with 0 */
#endif
/* Which load of nf_tables runs: its /sys/module directory, made anew (a new kernfs
 * inode) by every load of the module, whose generation count starts again at 1.
 * (0, 0) when there is none: nf_tables built into the kernel, which no unload resets. */
static void nf_tables_load(dev_t *dev, ino_t *ino) {
    struct stat st;
    if (stat("/sys/module/nf_tables", &st) == 0) {
        *dev = st.st_dev;
        *ino = st.st_ino;
    } else {
        *dev = 0;
        *ino = 0;
    }
}

/* The ruleset generation (and load of nf_tables) in which this launcher last found its
 * element: while the kernel reports the same, no transaction has changed any table
 * since, and the check (`nft get element`, ~11 ms at 1,000 pools: nft dumps the whole
 * map) is skipped. Relies on phphost's map changing only by transactions (no element
 * timeouts, no dynamic updates, no table owned by a process), as render/nftables.py
 * writes it. Not closed: a check that reads the old contents while a commit is
 * between raising the generation and making the new contents live would keep a
 * stale answer for that one generation. */
static uint32_t policy_seen_in;
static dev_t policy_seen_dev;
static ino_t policy_seen_ino;

/* NULL when table inet phphost has the pool's chain (loading conf with `nft -f` first
 * if it has not); else why no master may start. A missing conf fails closed. */
static const char *network_policy_problem(const char *pool, uid_t uid, const char *conf) {
    static char out[4096], why[600];
    char *argv[] = { NFT, "-f", (char *)conf, NULL };
    uint32_t gen;
    dev_t dev;
    ino_t ino;
    if (access(conf, F_OK) != 0) {
        snprintf(why, sizeof why, "the network policy %s is missing (%s); run `phphost apply`",
                 conf, strerror(errno));
        return why;
    }
    gen = RULESET_GENERATION ? ruleset_generation() : 0;
    nf_tables_load(&dev, &ino);
    if (gen != 0 && gen == policy_seen_in && dev == policy_seen_dev && ino == policy_seen_ino)
        return NULL;
    if (policy_has(pool, uid)) {
        /* kept only if nothing changed while nft looked */
        if (gen != 0 && ruleset_generation() == gen) {
            policy_seen_in = gen;
            policy_seen_dev = dev;
            policy_seen_ino = ino;
        }
        return NULL;
    }
    if (run_capture(argv, out, sizeof out) == 0 && policy_has(pool, uid)) return NULL;
    snprintf(why, sizeof why, "the network policy is not loaded and `nft -f %s` did not load it "
             "(its map pools does not send uid %u to chain pool-%s); run `phphost apply`",
             conf, (unsigned)uid, pool);
    return why;
}

/* ------------------------------------------------------------------ the activation socket */

struct sock {
    int fd;          /* listening, CLOEXEC */
    int dir_fd;      /* O_PATH of its directory */
    char name[108];  /* last component */
    ino_t ino;
    dev_t dev;
};

static int split_parent(const char *path, char *dir, size_t dn, char *name, size_t nn) {
    const char *slash = strrchr(path, '/');
    size_t len = (size_t)(slash - path);
    if (slash == NULL || !slash[1] || len >= dn || strlen(slash + 1) >= nn) return -1;
    memcpy(dir, path, len);
    dir[len ? len : 1] = '\0';
    if (!len) dir[0] = '/';
    strcpy(name, slash + 1);
    return 0;
}

/* O_PATH fd of dir, every component of which (/ included) is a real directory, root's
 * and writable by no one else: nobody but root can then change what the path names. */
static int trusted_dir(const char *dir) {
    char *copy = xstrdup(dir), *save = NULL, *part;
    int fd = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
    struct stat st;
    for (part = strtok_r(copy, "/", &save);; part = strtok_r(NULL, "/", &save)) {
        if (fd < 0 || fstat(fd, &st) != 0) fail("socket directory %s: %s", dir, strerror(errno));
        if (!S_ISDIR(st.st_mode) || st.st_uid != 0 || (st.st_mode & 022))
            fail("socket directory %s: every directory on the way must be root's and "
                 "writable by no one else (not a symlink)", dir);
        if (part == NULL) break;
        {
            int sub = openat(fd, part, O_PATH | O_NOFOLLOW | O_DIRECTORY | O_CLOEXEC);
            close(fd);
            fd = sub;
        }
    }
    free(copy);
    return fd;
}

/* Bind and listen on plan->socket as FPM would with listen.owner = root,
 * listen.group, listen.mode, in a directory only root can change (trusted_dir), so
 * the absolute path names what the directory fd holds (and `ss` shows the path). A
 * socket file left by a dead process is replaced; one that answers is refused. */
static void open_socket(const struct plan *pl, struct sock *s) {
    char dir[108];
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    struct stat st;
    struct group *gr = getgrnam(pl->socket_group);
    mode_t old;
    if (gr == NULL) fail("--socket-group %s: no such group", pl->socket_group);
    if (split_parent(pl->socket, dir, sizeof dir, s->name, sizeof s->name) != 0)
        fail("--socket '%s': expected a path with a directory", pl->socket);
    s->dir_fd = trusted_dir(dir);
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", pl->socket);
    if (fstatat(s->dir_fd, s->name, &st, AT_SYMLINK_NOFOLLOW) == 0) {
        int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), live;
        if (!S_ISSOCK(st.st_mode)) fail("%s exists and is not a socket", pl->socket);
        live = connect(probe, (struct sockaddr *)&sa, sizeof sa) == 0;
        close(probe);
        if (live) fail("another process listens on %s", pl->socket);
        if (unlinkat(s->dir_fd, s->name, 0) != 0) fail("cannot remove the stale %s: %s", pl->socket, strerror(errno));
    }
    s->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s->fd < 0) fail("socket: %s", strerror(errno));
    old = umask(0777 & ~pl->socket_mode);
    if (bind(s->fd, (struct sockaddr *)&sa, sizeof sa) != 0) fail("bind %s: %s", pl->socket, strerror(errno));
    umask(old);
    if (fchownat(s->dir_fd, s->name, 0, gr->gr_gid, AT_SYMLINK_NOFOLLOW) != 0)
        fail("chown %s: %s", pl->socket, strerror(errno));
    if (fstatat(s->dir_fd, s->name, &st, AT_SYMLINK_NOFOLLOW) != 0 || !S_ISSOCK(st.st_mode))
        fail("%s vanished after bind", pl->socket);
    s->ino = st.st_ino;
    s->dev = st.st_dev;
    if (listen(s->fd, pl->backlog) != 0) fail("listen %s: %s", pl->socket, strerror(errno));
}

/* When the launcher ends: remove the socket path if it is still ours. */
static void close_socket(struct sock *s) {
    struct stat st;
    if (s->fd < 0) return;
    if (fstatat(s->dir_fd, s->name, &st, AT_SYMLINK_NOFOLLOW) == 0 && st.st_ino == s->ino && st.st_dev == s->dev)
        unlinkat(s->dir_fd, s->name, 0);
    close(s->fd);
    s->fd = -1;
}

/* In the master's namespace: the socket path bind-mounted onto itself, so FPM's
 * unlink() of it at exit fails (EBUSY) and the launcher's socket stays reachable.
 * Opened afresh from this namespace's root (a descriptor opened before unshare
 * belongs to the host's mounts, which mount(2) refuses), no symlink followed. */
static void pin_socket(const struct plan *pl, const struct sock *s) {
    char a[64], dir[108], name[108], shown[300];
    int slash = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC), dfd, fd;
    struct stat st;
    if (slash < 0 || split_parent(pl->socket, dir, sizeof dir, name, sizeof name) != 0)
        fail("cannot open / or split %s", pl->socket);
    snprintf(shown, sizeof shown, "socket directory %s", dir);
    dfd = open_nofollow(slash, dir, 0, 1, shown);
    fd = openat(dfd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
    if (fd < 0 || fstat(fd, &st) != 0 || st.st_ino != s->ino || st.st_dev != s->dev)
        fail("the socket file %s was replaced", pl->socket);
    do_mount(fdpath(fd, a, sizeof a), a, NULL, MS_BIND, NULL, "pinning the socket path");
    close(fd);
    close(dfd);
    close(slash);
}

/* ------------------------------------------------------------------ the master */

static int sigfd = -1;
static sigset_t handled;

static void exec_command(const struct plan *pl) {
    execv(pl->command[0], pl->command);
    fprintf(stderr, "phphost-launch[%s]: cannot run %s: %s\n", pl->pool, pl->command[0], strerror(errno));
    _exit(127);
}

/* The child side: PID 1 of its own PID namespace; never returns. */
static void become_master(const struct plan *pl, const struct sock *s) {
    sigset_t none;
    if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) != 0) fail("prctl: %s", strerror(errno));
    if (UNSHARE_IPC && unshare(UNSHARE_IPC) != 0) fail("unshare(CLONE_NEWIPC): %s", strerror(errno));
    set_up(pl);
    if (s != NULL) {
        char env[300];
        pin_socket(pl, s);
        if (s->fd == INHERITED_FD) {
            if (fcntl(INHERITED_FD, F_SETFD, 0) != 0) fail("fcntl: %s", strerror(errno));
        } else if (dup2(s->fd, INHERITED_FD) != INHERITED_FD) {
            fail("dup2: %s", strerror(errno));
        }
        snprintf(env, sizeof env, "%s=%d", pl->socket, INHERITED_FD);
        setenv("FPM_SOCKETS", env, 1);
    }
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    exec_command(pl);
}

static pid_t start_master(const struct plan *pl, const struct sock *s) {
    pid_t pid = (pid_t)syscall(SYS_clone, CLONE_NEWPID | SIGCHLD, NULL, NULL, NULL, NULL);
    if (pid < 0) fail("clone(CLONE_NEWPID): %s", strerror(errno));
    if (pid == 0) {
        close(sigfd);
        become_master(pl, s);
    }
    return pid;
}

/* Has the master no worker? (its children, from /proc; CONFIG_PROC_CHILDREN) */
static int has_no_children(pid_t master) {
    char path[64], buf[16];
    int fd;
    ssize_t n;
    snprintf(path, sizeof path, "/proc/%d/task/%d/children", (int)master, (int)master);
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    n = read(fd, buf, sizeof buf);
    close(fd);
    return n == 0;
}

static int pending(int fd) {
    struct pollfd p = { .fd = fd, .events = POLLIN };
    return poll(&p, 1, 0) > 0 && (p.revents & POLLIN);
}

/* One more arrival on the socket, for a master that missed one (above): a connection
 * of our own, closed at once. Non-blocking: a full backlog refuses it, and then the
 * restart after STUCK_RESTART_SECONDS is what helps. */
static void nudge(const char *path) {
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) return;
    snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
    (void)connect(fd, (struct sockaddr *)&sa, sizeof sa);
    close(fd);
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int exit_code(int status) {
    return WIFEXITED(status) ? WEXITSTATUS(status) : WIFSIGNALED(status) ? 128 + WTERMSIG(status) : 1;
}

enum { ASLEEP, AWAKE };

/* The supervised process: starts masters (at once, or on the first connection with
 * --socket), forwards signals, puts an idle master to sleep. */
static int supervise(const struct plan *pl, struct sock *s) {
    pid_t master = -1;
    int state = ASLEEP, stopping = 0, idle_quit = 0, had_worker = 0;
    double idle_since = 0, stuck_since = 0;
    if (s == NULL) { master = start_master(pl, NULL); state = AWAKE; }
    for (;;) {
        struct pollfd fds[2] = { { .fd = sigfd, .events = POLLIN }, { .fd = s ? s->fd : -1, .events = POLLIN } };
        int nfds = state == ASLEEP ? 2 : 1, timeout = state == AWAKE && s ? TICK_MS : -1;
        struct signalfd_siginfo si;
        int r = poll(fds, (nfds_t)nfds, timeout);
        if (r < 0 && errno != EINTR) fail("poll: %s", strerror(errno));
        if (r > 0 && (fds[0].revents & POLLIN) && read(sigfd, &si, sizeof si) == sizeof si) {
            int sig = (int)si.ssi_signo;
            if (sig == SIGCHLD) {
                int status;
                pid_t done;
                while ((done = waitpid(-1, &status, WNOHANG)) > 0) {
                    if (done != master) continue;
                    master = -1;
                    if (stopping || !idle_quit || s == NULL) {
                        if (s) close_socket(s);
                        return exit_code(status);
                    }
                    state = ASLEEP;
                    idle_quit = 0;
                    note("master stopped; asleep, holding %s", pl->socket);
                }
            } else if (state == ASLEEP) {
                if (sig == SIGTERM || sig == SIGINT || sig == SIGQUIT) {
                    close_socket(s);
                    return 0;
                }
                if (sig != SIGWINCH)
                    note("asleep: signal %d has no master to go to (the next one starts afresh)", sig);
            } else if (sig == SIGWINCH) {
                if (s != NULL && !idle_quit && !stopping) {
                    idle_quit = 1;
                    kill(master, SIGQUIT);
                }
            } else {
                if (sig == SIGTERM || sig == SIGINT || sig == SIGQUIT) stopping = 1;
                if (!idle_quit || stopping) kill(master, sig);
            }
            continue;
        }
        if (state == ASLEEP && r > 0 && (fds[1].revents & POLLIN)) {
            /* every wake checks the policy again (a ruleset flushed while the pool slept):
             * without it no master; the launcher ends (socket removed, waiting connections
             * refused) and supervisord's restart, which checks again, retries with backoff */
            const char *why = pl->policy ? network_policy_problem(pl->pool, pl->policy_uid, pl->policy) : NULL;
            if (why != NULL) {
                close_socket(s);
                fail("%s", why);
            }
            master = start_master(pl, s);
            state = AWAKE;
            idle_since = stuck_since = 0;
            had_worker = 0;
            continue;
        }
        if (state == AWAKE && s != NULL && !idle_quit && !stopping) {
            int no_worker = has_no_children(master), waiting = pending(s->fd);
            double t = now();
            had_worker |= !no_worker;
            if (no_worker && waiting) {          /* a missed arrival (see the top) */
                if (stuck_since == 0) stuck_since = t;
                if (NUDGE_STUCK) nudge(pl->socket);
                if (RESTART_STUCK && had_worker && t - stuck_since >= STUCK_RESTART_SECONDS) {
                    note("a connection waited %.0fs with no worker forked for it: "
                         "restarting the master", t - stuck_since);
                    idle_quit = 1;
                    kill(master, SIGQUIT);
                }
            } else {
                stuck_since = 0;
            }
            if (no_worker && !waiting) {
                if (idle_since == 0) idle_since = t;
                if (!idle_quit && t - idle_since >= (double)pl->idle_timeout) {
                    idle_quit = 1;
                    kill(master, SIGQUIT);
                }
            } else {
                idle_since = 0;
            }
        }
    }
}

int main(int argc, char **argv) {
    struct plan pl;
    struct sock s = { .fd = -1, .dir_fd = -1 };
    memset(&pl, 0, sizeof pl);
    /* whatever the launcher inherited above stderr stays out of the master and its
       workers (supervisord passes none; a launcher run by hand or by another tool might) */
    (void)syscall(SYS_close_range, 3U, ~0U, LAUNCH_CLOSE_RANGE_CLOEXEC);
    for (int i = 1; i + 1 < argc && strcmp(argv[i], "--"); i++)
        if (!strcmp(argv[i], "--pool")) { pool_name = argv[i + 1]; break; }
    parse_args(&pl, argc, argv);
    if (pl.policy) {
        const char *why = network_policy_problem(pl.pool, pl.policy_uid, pl.policy);
        if (why != NULL) fail("%s", why);
    }
    join_cgroups(&pl);
    if (!pl.pid_ns) {
        if (UNSHARE_IPC && unshare(UNSHARE_IPC) != 0) fail("unshare(CLONE_NEWIPC): %s", strerror(errno));
        set_up(&pl);
        exec_command(&pl);
    }
    sigemptyset(&handled);
    sigaddset(&handled, SIGTERM); sigaddset(&handled, SIGINT); sigaddset(&handled, SIGQUIT);
    sigaddset(&handled, SIGUSR1); sigaddset(&handled, SIGUSR2); sigaddset(&handled, SIGHUP);
    sigaddset(&handled, SIGCHLD); sigaddset(&handled, SIGWINCH);
    if (sigprocmask(SIG_BLOCK, &handled, NULL) != 0) fail("sigprocmask: %s", strerror(errno));
    sigfd = signalfd(-1, &handled, SFD_CLOEXEC);
    if (sigfd < 0) fail("signalfd: %s", strerror(errno));
    if (pl.socket) open_socket(&pl, &s);
    return supervise(&pl, pl.socket ? &s : NULL);
}
