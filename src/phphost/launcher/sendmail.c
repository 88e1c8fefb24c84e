/*
 * phphost-sendmail: the sendmail program of a phphost jail.
 *
 * Reads one message on stdin and hands it to an SMTP server (host:port from
 * /etc/phphost-sendmail.conf, or -C FILE). Made for chrooted PHP:
 *   - no passwd lookup: the default envelope sender comes from the config file;
 *   - `-f sender` (two arguments) and `-fsender`; -t, -i, -oi; -F, -o*, -B, -N, -R,
 *     -V ignored; other options are a usage error (exit 64);
 *   - headers are passed on as they are (`From: Real Name <a@b>` stays intact); Bcc
 *     is removed; From (from the envelope sender) and Date are added when missing;
 *   - with -t, recipients are read from To, Cc and Bcc (quoted names, comments and
 *     groups understood) in addition to those on the command line;
 *   - any SMTP failure: a message on stderr and a non-zero sysexits code
 *     (75 temporary failure, 69 rejected, 76 protocol error, 64 usage, 78 config).
 *
 * In a jail it is setgid phphost-mail (docs/network.md): only that group's sockets
 * reach the SMTP relay, so PHP sends mail through this program and never speaks SMTP
 * itself. Run setgid, it refuses -C (the server is the root-owned config's).
 *
 * Called as "sh" (installed as /bin/sh in jails without the shell feature) it is a
 * mail-only shell: `sh -c "CMD"` runs CMD only if it is a sendmail command line made
 * of plain words (quotes and backslashes understood, no operators or expansions);
 * anything else exits 127 with a message. PHP's mail() runs sendmail_path through
 * `/bin/sh -c`, so mail() works while exec(), system() and popen() do not.
 *
 * Build: gcc -O2 -Wall -Wextra -Werror -D_FORTIFY_SOURCE=2 -fstack-protector-strong
 *        -fPIE -pie -Wl,-z,relro,-z,now -o phphost-sendmail sendmail.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sysexits.h>
#include <time.h>
#include <unistd.h>

#define CONF_DEFAULT "/etc/phphost-sendmail.conf"
#define MAX_MESSAGE (32u * 1024u * 1024u)
#define MAX_RCPT 1000
#define MAX_ADDR 320
#define TIMEOUT_S 60

static const char *prog = "sendmail";

static void die(int code, const char *fmt, ...) __attribute__((noreturn, format(printf, 2, 3)));
static void die(int code, const char *fmt, ...) {
    va_list ap;
    fprintf(stderr, "%s: ", prog);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    exit(code);
}

/* ------------------------------------------------------------------ buffers */

struct buf { char *p; size_t len, cap; };

static void buf_add(struct buf *b, const char *s, size_t n) {
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (b->len + n + 1 > cap) cap *= 2;
        char *p = realloc(b->p, cap);
        if (!p) die(EX_OSERR, "out of memory");
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void buf_str(struct buf *b, const char *s) { buf_add(b, s, strlen(s)); }

/* ------------------------------------------------------------------ config */

struct config {
    char host[256];
    char port[8];
    char sender[MAX_ADDR + 1];
    char helo[256];
};

static void copy_field(char *dst, size_t size, const char *src, const char *what) {
    if (strlen(src) >= size) die(EX_CONFIG, "%s too long in config", what);
    strcpy(dst, src);
}

static void set_server(struct config *c, const char *v) {
    const char *colon = strrchr(v, ':');
    if (!colon || colon == v || !colon[1]) die(EX_CONFIG, "server %s is not host:port", v);
    size_t n = (size_t)(colon - v);
    if (v[0] == '[' && n >= 2 && v[n - 1] == ']') { v++; n -= 2; }
    if (n >= sizeof c->host || strlen(colon + 1) >= sizeof c->port)
        die(EX_CONFIG, "server address too long");
    memcpy(c->host, v, n);
    c->host[n] = '\0';
    strcpy(c->port, colon + 1);
}

static void read_config(const char *path, struct config *c) {
    FILE *f = fopen(path, "r");
    if (!f) die(EX_CONFIG, "cannot read %s: %s", path, strerror(errno));
    char line[1024];
    while (fgets(line, sizeof line, f)) {
        char *key = line + strspn(line, " \t");
        key[strcspn(key, "\r\n")] = '\0';
        if (!*key || *key == '#') continue;
        char *val = key + strcspn(key, " \t");
        if (*val) *val++ = '\0';
        val += strspn(val, " \t");
        if (!strcmp(key, "server")) set_server(c, val);
        else if (!strcmp(key, "sender")) copy_field(c->sender, sizeof c->sender, val, "sender");
        else if (!strcmp(key, "helo")) copy_field(c->helo, sizeof c->helo, val, "helo");
        else die(EX_CONFIG, "%s: unknown setting %s", path, key);
    }
    fclose(f);
    if (!c->host[0]) die(EX_CONFIG, "%s: no server line", path);
}

/* ------------------------------------------------------------------ addresses */

struct rcpts { char *v[MAX_RCPT]; int n; };

static int addr_ok(const char *a) {
    size_t n = strlen(a);
    if (n == 0 || n > MAX_ADDR) return 0;
    for (const char *p = a; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == '<' || *p == '>' || *p == 0x7f) return 0;
    return 1;
}

static void add_rcpt(struct rcpts *r, const char *a) {
    if (!addr_ok(a)) die(EX_DATAERR, "bad recipient address '%s'", a);
    for (int i = 0; i < r->n; i++)
        if (!strcmp(r->v[i], a)) return;
    if (r->n == MAX_RCPT) die(EX_DATAERR, "more than %d recipients", MAX_RCPT);
    r->v[r->n] = strdup(a);
    if (!r->v[r->n]) die(EX_OSERR, "out of memory");
    r->n++;
}

/* One address from "Name <a@b>", "a@b (comment)", "<a@b>" or "a@b". */
static void flush_addr(struct rcpts *r, struct buf *bare, struct buf *angle, int has_angle) {
    struct buf *use = has_angle ? angle : bare;
    if (use->len) add_rcpt(r, use->p);
    bare->len = angle->len = 0;
    if (bare->p) bare->p[0] = '\0';
    if (angle->p) angle->p[0] = '\0';
}

/* RFC 5322 address list: commas split items except inside quotes, comments and <>;
 * "group: a, b;" yields a and b. */
static void parse_address_list(const char *s, struct rcpts *r) {
    struct buf bare = {0}, angle = {0};
    int quote = 0, depth = 0, in_angle = 0, has_angle = 0;
    for (const char *p = s; *p; p++) {
        char c = *p;
        if (quote) {
            if (c == '\\' && p[1]) { if (in_angle) buf_add(&angle, p, 2); p++; continue; }
            if (c == '"') quote = 0;
            if (in_angle) buf_add(&angle, &c, 1);
            continue;
        }
        if (depth) {
            if (c == '\\' && p[1]) p++;
            else if (c == '(') depth++;
            else if (c == ')') depth--;
            continue;
        }
        if (c == '"') { quote = 1; if (in_angle) buf_add(&angle, &c, 1); continue; }
        if (c == '(') { depth = 1; continue; }
        if (c == '<' && !in_angle) { in_angle = has_angle = 1; angle.len = 0; continue; }
        if (c == '>' && in_angle) { in_angle = 0; continue; }
        if (!in_angle && (c == ',' || c == ';')) {
            flush_addr(r, &bare, &angle, has_angle);
            has_angle = 0;
            continue;
        }
        if (!in_angle && c == ':' && !has_angle) { bare.len = 0; continue; } /* group name */
        if (c == ' ' || c == '\t' || c == '\r' || c == '\n') continue;
        buf_add(in_angle ? &angle : &bare, &c, 1);
    }
    flush_addr(r, &bare, &angle, has_angle);
    free(bare.p);
    free(angle.p);
}

/* "-f a@b", "-f '<a@b>'", "-f 'Name <a@b>'", "-f <>" -> the bare address ("" = null). */
static void parse_sender(const char *in, char *out) {
    const char *lt = strchr(in, '<');
    const char *start = lt ? lt + 1 : in;
    const char *end = lt ? strchr(start, '>') : in + strlen(in);
    if (!end) die(EX_USAGE, "bad sender address '%s'", in);
    while (start < end && (*start == ' ' || *start == '\t')) start++;
    while (end > start && (end[-1] == ' ' || end[-1] == '\t')) end--;
    size_t n = (size_t)(end - start);
    if (n > MAX_ADDR) die(EX_USAGE, "sender address too long");
    memcpy(out, start, n);
    out[n] = '\0';
    if (n && !addr_ok(out)) die(EX_USAGE, "bad sender address '%s'", in);
}

/* ------------------------------------------------------------------ message */

struct header { const char *start; size_t len; };  /* one logical header, with folds */

static int header_is(const struct header *h, const char *name) {
    size_t n = strlen(name);
    return h->len > n && !strncasecmp(h->start, name, n) && h->start[n] == ':';
}

static char *header_value(const struct header *h) {
    const char *colon = memchr(h->start, ':', h->len);
    size_t n = h->len - (size_t)(colon + 1 - h->start);
    char *v = strndup(colon + 1, n);
    if (!v) die(EX_OSERR, "out of memory");
    return v;
}

static size_t line_end(const char *s, size_t len, size_t i) {
    while (i < len && s[i] != '\n') i++;
    return i < len ? i + 1 : i;
}

static int is_blank_line(const char *s, size_t from, size_t to) {
    size_t n = to - from;
    return (n == 1 && s[from] == '\n') || (n == 2 && s[from] == '\r' && s[from + 1] == '\n')
           || n == 0;
}

/* Split msg into headers (returns count) and the offset of the body (after the
 * blank line, or where the first non-header line starts). */
static int split_headers(const char *m, size_t len, struct header *h, int max, size_t *body) {
    int n = 0;
    size_t i = 0;
    while (i < len) {
        size_t e = line_end(m, len, i);
        if (is_blank_line(m, i, e)) { *body = e; return n; }
        if ((m[i] == ' ' || m[i] == '\t') && n > 0) {
            h[n - 1].len = e - (size_t)(h[n - 1].start - m);
        } else {
            const char *colon = memchr(m + i, ':', e - i);
            if (!colon || colon == m + i || memchr(m + i, ' ', (size_t)(colon - m - i))) {
                *body = i;   /* not a header: the body starts without a blank line */
                return n;
            }
            if (n == max) die(EX_DATAERR, "too many header lines");
            h[n].start = m + i;
            h[n].len = e - i;
            n++;
        }
        i = e;
    }
    *body = len;
    return n;
}

static void read_message(struct buf *msg, int dot_ends) {
    char chunk[8192];
    if (!dot_ends) {
        size_t n;
        while ((n = fread(chunk, 1, sizeof chunk, stdin)) > 0) {
            buf_add(msg, chunk, n);
            if (msg->len > MAX_MESSAGE) die(EX_DATAERR, "message larger than %u bytes", MAX_MESSAGE);
        }
        if (ferror(stdin)) die(EX_IOERR, "reading the message: %s", strerror(errno));
        return;
    }
    int line_start = 1;
    while (fgets(chunk, sizeof chunk, stdin)) {
        if (line_start && (!strcmp(chunk, ".\n") || !strcmp(chunk, ".\r\n") || !strcmp(chunk, ".")))
            break;
        size_t n = strlen(chunk);
        line_start = n > 0 && chunk[n - 1] == '\n';
        buf_add(msg, chunk, n);
        if (msg->len > MAX_MESSAGE) die(EX_DATAERR, "message larger than %u bytes", MAX_MESSAGE);
    }
}

/* Lines end in CRLF; a leading dot is doubled (SMTP transparency). A bare CR ends a
   line too: "x\r.\r" must not reach a relay that takes it for the end of the data
   (SMTP smuggling), so it becomes CRLF and the dot after it is doubled. */
static void add_smtp_lines(struct buf *out, const char *s, size_t len) {
    size_t i = 0;
    while (i < len) {
        size_t e = line_end(s, len, i);
        size_t text_end = e;
        if (text_end > i && s[text_end - 1] == '\n') text_end--;
        if (text_end > i && s[text_end - 1] == '\r') text_end--;
        int start = 1;
        for (size_t k = i; k < text_end; k++) {
            if (start && s[k] == '.') buf_add(out, ".", 1);
            start = s[k] == '\r';
            if (start) buf_add(out, "\r\n", 2);
            else buf_add(out, s + k, 1);
        }
        buf_add(out, "\r\n", 2);
        i = e;
    }
}

/* ------------------------------------------------------------------ SMTP */

struct smtp { int fd; FILE *in; const char *server; char reply[1024]; int eightbit; };

static int smtp_reply(struct smtp *s) {
    char line[1024];
    int code = -1;
    s->reply[0] = '\0';
    for (;;) {
        errno = 0;
        if (!fgets(line, sizeof line, s->in))
            die(EX_TEMPFAIL, "SMTP server %s closed the connection or timed out%s%s", s->server,
                errno ? ": " : "", errno ? strerror(errno) : "");
        line[strcspn(line, "\r\n")] = '\0';
        if (strlen(line) < 3 || line[0] < '1' || line[0] > '5')
            die(EX_PROTOCOL, "SMTP server %s sent '%s', not an SMTP reply", s->server, line);
        code = atoi(line);
        if (strlen(line) > 4 && !strcasecmp(line + 4, "8BITMIME")) s->eightbit = 1;
        snprintf(s->reply, sizeof s->reply, "%s", line);
        if (line[3] != '-') return code;
    }
}

static void smtp_send(struct smtp *s, const char *data, size_t len) {
    while (len) {
        ssize_t n = send(s->fd, data, len, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR) continue;
            die(EX_TEMPFAIL, "writing to SMTP server %s: %s", s->server, strerror(errno));
        }
        data += n;
        len -= (size_t)n;
    }
}

static void smtp_cmd(struct smtp *s, int want, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void smtp_cmd(struct smtp *s, int want, const char *fmt, ...) {
    char cmd[1024];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(cmd, sizeof cmd - 2, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof cmd - 2) die(EX_SOFTWARE, "SMTP command too long");
    int code;
    if (n > 0) {
        memcpy(cmd + n, "\r\n", 3);
        smtp_send(s, cmd, (size_t)n + 2);
        cmd[n] = '\0';
    }
    code = smtp_reply(s);
    if (code / 100 == want / 100) return;
    die(code / 100 == 4 ? EX_TEMPFAIL : EX_UNAVAILABLE,
        "SMTP server %s answered '%s' to %s", s->server, s->reply, n > 0 ? cmd : "the connection");
}

static int smtp_try(struct smtp *s, const char *fmt, const char *arg) {
    char cmd[512];
    int n = snprintf(cmd, sizeof cmd, fmt, arg);
    if (n < 0 || (size_t)n >= sizeof cmd - 2) die(EX_SOFTWARE, "SMTP command too long");
    memcpy(cmd + n, "\r\n", 3);
    smtp_send(s, cmd, (size_t)n + 2);
    return smtp_reply(s);
}

static void smtp_connect(struct smtp *s, const struct config *c) {
    struct addrinfo hints = {0}, *res, *ai;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_NUMERICSERV;
    int rc = getaddrinfo(c->host, c->port, &hints, &res);
    if (rc) die(EX_NOHOST, "cannot resolve SMTP server %s: %s", s->server, gai_strerror(rc));
    int err = 0;
    s->fd = -1;
    for (ai = res; ai; ai = ai->ai_next) {
        int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
        if (fd < 0) { err = errno; continue; }
        struct timeval tv = {TIMEOUT_S, 0};
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
        setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
        if (connect(fd, ai->ai_addr, ai->ai_addrlen) == 0) { s->fd = fd; break; }
        err = errno;
        close(fd);
    }
    freeaddrinfo(res);
    if (s->fd < 0) die(EX_TEMPFAIL, "cannot connect to SMTP server %s: %s", s->server, strerror(err));
    s->in = fdopen(dup(s->fd), "r");
    if (!s->in) die(EX_OSERR, "fdopen: %s", strerror(errno));
}

/* ------------------------------------------------------------------ sendmail */

struct opts { const char *conf; char sender[MAX_ADDR + 1]; int have_sender, use_headers, dot_ends; };

static const char *opt_value(int argc, char **argv, int *i) {
    const char *a = argv[*i];
    if (a[2]) return a + 2;
    if (*i + 1 >= argc) die(EX_USAGE, "option %s needs a value", a);
    return argv[++*i];
}

static void parse_args(int argc, char **argv, struct opts *o, struct rcpts *r) {
    int i, done = 0;
    for (i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (done || a[0] != '-' || !a[1]) { add_rcpt(r, a); continue; }
        if (!strcmp(a, "--")) { done = 1; continue; }
        switch (a[1]) {
        case 'f': parse_sender(opt_value(argc, argv, &i), o->sender); o->have_sender = 1; break;
        case 'C':
            /* setgid phphost-mail in a jail: the relay of the root-owned config only */
            if (getegid() != getgid()) die(EX_USAGE, "-C is refused when run setgid");
            o->conf = opt_value(argc, argv, &i);
            break;
        case 'F': case 'B': case 'N': case 'R': case 'V': case 'O': case 'L':
            (void)opt_value(argc, argv, &i); break;             /* accepted, ignored */
        case 'o': if (!strcmp(a, "-oi")) o->dot_ends = 0; break; /* other -oX ignored */
        case 'b':
            if (strcmp(a, "-bm")) die(EX_USAGE, "mode %s is not supported (only -bm)", a);
            break;
        default:
            for (const char *p = a + 1; *p; p++) {
                if (*p == 't') o->use_headers = 1;
                else if (*p == 'i') o->dot_ends = 0;
                else if (!strchr("vUnm", *p)) die(EX_USAGE, "unknown option %s", a);
            }
        }
    }
}

static void build_data(struct buf *data, const struct buf *msg, const char *sender,
                       int use_headers, struct rcpts *r) {
    static struct header h[1000];
    size_t body = 0;
    int n = split_headers(msg->p ? msg->p : "", msg->len, h, 1000, &body);
    int have_from = 0, have_date = 0;
    struct buf head = {0};
    for (int k = 0; k < n; k++) {
        int bcc = header_is(&h[k], "Bcc");
        if (use_headers && (header_is(&h[k], "To") || header_is(&h[k], "Cc") || bcc)) {
            char *v = header_value(&h[k]);
            parse_address_list(v, r);
            free(v);
        }
        have_from |= header_is(&h[k], "From");
        have_date |= header_is(&h[k], "Date");
        if (!bcc) buf_add(&head, h[k].start, h[k].len);
    }
    if (!have_from && sender[0]) { buf_str(data, "From: "); buf_str(data, sender); buf_str(data, "\r\n"); }
    if (!have_date) {
        char date[64];
        time_t now = time(NULL);
        strftime(date, sizeof date, "Date: %a, %d %b %Y %H:%M:%S +0000\r\n", gmtime(&now));
        buf_str(data, date);
    }
    if (head.len) add_smtp_lines(data, head.p, head.len);
    buf_add(data, "\r\n", 2);
    if (msg->len > body) add_smtp_lines(data, msg->p + body, msg->len - body);
    free(head.p);
}

static int has_8bit(const struct buf *b) {
    for (size_t i = 0; i < b->len; i++)
        if ((unsigned char)b->p[i] & 0x80) return 1;
    return 0;
}

static void deliver(const struct config *c, const char *sender, struct rcpts *r, struct buf *data) {
    char server[300];
    snprintf(server, sizeof server, strchr(c->host, ':') ? "[%s]:%s" : "%s:%s", c->host, c->port);
    struct smtp s = {.server = server};
    smtp_connect(&s, c);
    smtp_cmd(&s, 220, "%s", "");
    if (smtp_try(&s, "EHLO %s", c->helo) / 100 != 2) smtp_cmd(&s, 250, "HELO %s", c->helo);
    const char *body = (has_8bit(data) && s.eightbit) ? " BODY=8BITMIME" : "";
    smtp_cmd(&s, 250, "MAIL FROM:<%s>%s", sender, body);
    for (int k = 0; k < r->n; k++) smtp_cmd(&s, 250, "RCPT TO:<%s>", r->v[k]);
    smtp_cmd(&s, 354, "DATA");
    smtp_send(&s, data->p, data->len);
    smtp_cmd(&s, 250, ".");
    smtp_send(&s, "QUIT\r\n", 6);
    fclose(s.in);
    close(s.fd);
}

static int sendmail_main(int argc, char **argv) {
    struct opts o = {.conf = CONF_DEFAULT, .dot_ends = 1};
    static struct rcpts r;
    static struct config c;
    parse_args(argc, argv, &o, &r);
    read_config(o.conf, &c);
    if (!c.helo[0] && gethostname(c.helo, sizeof c.helo - 1) != 0) strcpy(c.helo, "localhost");
    if (!c.helo[0] || strpbrk(c.helo, " \t\r\n")) strcpy(c.helo, "localhost");
    const char *sender = o.have_sender ? o.sender : c.sender;
    struct buf msg = {0}, data = {0};
    read_message(&msg, o.dot_ends);
    build_data(&data, &msg, sender, o.use_headers, &r);
    if (r.n == 0) die(EX_USAGE, "no recipients: give them as arguments or use -t with To/Cc/Bcc");
    deliver(&c, sender, &r, &data);
    return EX_OK;
}

/* ------------------------------------------------------------------ mail-only sh */

static void sh_refuse(const char *cmd, const char *why) __attribute__((noreturn));
static void sh_refuse(const char *cmd, const char *why) {
    fprintf(stderr, "sh: cannot run '%s': %s; this jail has no shell, only sendmail "
                    "(add the 'shell' jail feature to run programs)\n", cmd, why);
    exit(127);
}

/* Split a command line into words the way sh would for plain words; refuse
 * operators, redirections, expansions and globs. */
static int sh_words(const char *cmd, char **words, int max) {
    int n = 0;
    const char *p = cmd;
    for (;;) {
        while (*p == ' ' || *p == '\t' || (*p == '\\' && p[1] == '\n')) p += (*p == '\\') ? 2 : 1;
        if (*p == '\n') {
            if (p[strspn(p, " \t\n")] != '\0') sh_refuse(cmd, "more than one command");
            break;
        }
        if (!*p) break;
        struct buf w = {0};
        buf_add(&w, "", 0);
        while (*p && *p != ' ' && *p != '\t' && *p != '\n') {
            if (*p == '\\') {
                if (!p[1]) sh_refuse(cmd, "trailing backslash");
                if (p[1] != '\n') buf_add(&w, p + 1, 1);
                p += 2;
            } else if (*p == '\'') {
                const char *e = strchr(p + 1, '\'');
                if (!e) sh_refuse(cmd, "unterminated quote");
                buf_add(&w, p + 1, (size_t)(e - p - 1));
                p = e + 1;
            } else if (*p == '"') {
                for (p++; *p != '"'; p++) {
                    if (!*p) sh_refuse(cmd, "unterminated quote");
                    if (*p == '$' || *p == '`') sh_refuse(cmd, "expansions are not supported");
                    if (*p == '\\' && p[1] && strchr("\\\"$`\n", p[1])) {
                        p++;
                        if (*p == '\n') continue;
                    }
                    buf_add(&w, p, 1);
                }
                p++;
            } else if (strchr("|&;<>()$`*?[#~", *p)) {
                sh_refuse(cmd, "shell operators, expansions and globs are not supported");
            } else {
                buf_add(&w, p++, 1);
            }
        }
        if (n == max) sh_refuse(cmd, "too many words");
        words[n++] = w.p;
    }
    words[n] = NULL;
    return n;
}

static int sh_main(int argc, char **argv) {
    static char *words[1024];
    prog = "sh";
    if (argc != 3 || strcmp(argv[1], "-c"))
        sh_refuse(argc > 1 ? argv[1] : "", "only `sh -c COMMAND` is supported");
    int n = sh_words(argv[2], words, 1023);
    if (n == 0) return 0;
    const char *base = strrchr(words[0], '/');
    base = base ? base + 1 : words[0];
    if (strcmp(base, "sendmail")) sh_refuse(argv[2], "it is not sendmail");
    prog = "sendmail";
    return sendmail_main(n, words);
}

int main(int argc, char **argv) {
    signal(SIGPIPE, SIG_IGN);
    const char *base = argc > 0 ? strrchr(argv[0], '/') : NULL;
    base = base ? base + 1 : (argc > 0 ? argv[0] : "");
    if (!strcmp(base, "sh")) return sh_main(argc, argv);
    return sendmail_main(argc, argv);
}
