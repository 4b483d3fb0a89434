/*
 * ftpbench: a small plain-FTP load client for bench/run.js.
 *
 *   ftpbench MODE --port P [--host 127.0.0.1] [--user bench] [--pass bench] [options]
 *
 *   retr   --file NAME [--count K]         download one file (K times in a row), discard the data
 *                                          (recv MSG_TRUNC)
 *   stor   --file NAME --bytes N           upload N bytes sent with sendfile() from a memfd
 *   many   --file NAME --clients C --count K [--login-concurrency L]
 *                                          C threads, each logs in once, then K x RETR; at most L
 *                                          (default 16) of them connect and log in at a time
 *          [--event]                       the same sessions, logged in the same way, but driven after
 *                                          login by one thread with epoll instead of one thread each
 *          [--event-threads N]             --event with N such threads, each driving every Nth session
 *   idle   --sessions N                    hold N logged-in sessions; prints a JSON line with
 *                                          "ready", then waits for a line (or EOF) on stdin, then QUITs
 *   logins --clients C --seconds T         C threads loop connect/USER/PASS/QUIT for T seconds
 *   --tls (retr, stor): explicit FTPS (AUTH TLS, PBSZ 0, PROT P); the data connection resumes the
 *          control connection's TLS session; certificates are not verified. Only when built with
 *          -DFTPBENCH_TLS -lssl -lcrypto (bench/run.js does so when OpenSSL's headers are there).
 *   --sync (retr, stor, many): print {"phase":"ready"} after logging in and {"phase":"done"}
 *          after the measured phase, each time waiting for a line on stdin before going on
 *
 * Every mode prints one JSON object on stdout with the figures and the client's own CPU use
 * (getrusage user+sys over the measured phase), so the runner can show the client is not the
 * bottleneck. Bounded: --timeout S (default 600) aborts the process with SIGALRM.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#ifdef FTPBENCH_TLS
#include <openssl/err.h>
#include <openssl/ssl.h>
#endif

static const char *g_host = "127.0.0.1";
static int g_port = 0;
static const char *g_user = "bench";
static const char *g_pass = "bench";
static const char *g_file = "big.bin";
static long long g_bytes = 0;
static int g_clients = 1;
static int g_count = 1;
static int g_sessions = 1;
static double g_seconds = 1.0;
static int g_timeout = 600;
static int g_verbose = 0;
static int g_sync = 0; /* --sync: stop before and after the measured phase, see sync_point() */
static int g_tls = 0;  /* --tls: explicit FTPS with PROT P (retr, stor) */
static int g_event = 0; /* many --event: one thread drives every session with epoll */
static int g_event_threads = 1; /* many --event-threads N: N such threads, each with its share */
/*
 * many: how many clients connect and log in at once, before the measured phase. All 100 at the
 * same instant overflow a listen backlog of 32 (vsftpd's, fixed in its source): with SYN
 * cookies the client's ACK is then dropped without a trace on the server, the client believes
 * it is connected and waits for a greeting that never comes. The burst is not what "many"
 * measures, and real clients do not arrive within one millisecond.
 */
static int g_login_concurrency = 16;
static sem_t g_login_slots;

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static double cpu_s(void) {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

static void die(const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  fprintf(stderr, "ftpbench: ");
  vfprintf(stderr, fmt, ap);
  fprintf(stderr, "\n");
  va_end(ap);
  exit(2);
}

static void on_alarm(int sig) {
  (void)sig;
  static const char msg[] = "ftpbench: timeout\n";
  ssize_t r = write(2, msg, sizeof msg - 1);
  (void)r;
  _exit(3);
}

/* With --sync, print {"phase":NAME} and wait for a line on stdin: the runner samples the
 * server's CPU there, so logins and QUITs stay outside the measured window. */
static void sync_point(const char *phase) {
  if (!g_sync) return;
  printf("{\"phase\":\"%s\"}\n", phase);
  fflush(stdout);
  char line[64];
  if (!fgets(line, sizeof line, stdin)) {}
}

/* ---------- control connection ---------- */

typedef struct {
  int fd;
  void *ssl;        /* SSL * once AUTH TLS succeeded (--tls), else NULL */
  char buf[8192];
  int len;          /* bytes buffered */
  char last[1024];  /* last reply line, for error messages */
} ctl_t;

static int tcp_connect(const char *host, int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  inet_pton(AF_INET, host, &sa.sin_addr);
  for (int attempt = 0; attempt < 50; attempt++) {
    if (connect(fd, (struct sockaddr *)&sa, sizeof sa) == 0) {
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      /* a session that stops answering fails after 30 s instead of stalling the run */
      struct timeval tv = {30, 0};
      setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      return fd;
    }
    /* transient: listen backlog full or ephemeral ports in TIME_WAIT */
    if (errno == EAGAIN || errno == EADDRNOTAVAIL || errno == ETIMEDOUT || (errno == ECONNREFUSED && attempt < 3)) {
      close(fd);
      usleep(2000 * (attempt + 1));
      fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
      if (fd < 0) return -1;
      continue;
    }
    break;
  }
  close(fd);
  return -1;
}

/* Take one complete reply from the buffer if it is all there: 1 (*code set), 0 (not yet). */
static int take_reply(ctl_t *c, int *code) {
  int off = 0, first = -1;
  for (;;) {
    char *line = c->buf + off;
    char *nl = memchr(line, '\n', (size_t)(c->len - off));
    if (!nl) {
      if (c->len == (int)sizeof c->buf) c->len = 0; /* absurd reply: drop */
      return 0;
    }
    int linelen = (int)(nl - line) + 1;
    off += linelen;
    if (linelen >= 4 && line[0] >= '0' && line[0] <= '9' && line[1] >= '0' && line[1] <= '9' && line[2] >= '0' &&
        line[2] <= '9') {
      int lc = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
      if (first < 0) first = lc;
      if (line[3] == ' ' && lc == first) {
        int n = linelen < (int)sizeof c->last - 1 ? linelen : (int)sizeof c->last - 1;
        memcpy(c->last, line, (size_t)n);
        c->last[n] = 0;
        memmove(c->buf, c->buf + off, (size_t)(c->len - off));
        c->len -= off;
        *code = first;
        return 1;
      }
    }
  }
}

/* Read one complete (possibly multi-line) reply; returns the 3-digit code or -1. */
static int read_reply(ctl_t *c) {
  int code;
  for (;;) {
    if (take_reply(c, &code)) return code;
    ssize_t r;
#ifdef FTPBENCH_TLS
    if (c->ssl) {
      r = SSL_read((SSL *)c->ssl, c->buf + c->len, (int)(sizeof c->buf - (size_t)c->len));
      if (r <= 0) {
        int e = SSL_get_error((SSL *)c->ssl, (int)r);
        snprintf(c->last, sizeof c->last, "control connection closed (TLS error %d, %s)", e, e == SSL_ERROR_SYSCALL ? strerror(errno) : "ssl");
        return -1;
      }
      c->len += (int)r;
      continue;
    }
#endif
    r = recv(c->fd, c->buf + c->len, sizeof c->buf - (size_t)c->len, 0);
    if (r <= 0) {
      if (r < 0 && errno == EINTR) continue;
      snprintf(c->last, sizeof c->last, "control connection closed (%s)", r < 0 ? strerror(errno) : "EOF");
      return -1;
    }
    c->len += (int)r;
  }
}

static int send_cmd(ctl_t *c, const char *fmt, ...) {
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(line, sizeof line - 2, fmt, ap);
  va_end(ap);
  line[n++] = '\r';
  line[n++] = '\n';
#ifdef FTPBENCH_TLS
  if (c->ssl) return SSL_write((SSL *)c->ssl, line, n) == n ? 0 : -1;
#endif
  int off = 0;
  while (off < n) {
    ssize_t w = send(c->fd, line + off, (size_t)(n - off), MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    off += (int)w;
  }
  return 0;
}

static int cmd(ctl_t *c, const char *fmt, ...) {
  char line[1024];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (send_cmd(c, "%s", line) < 0) return -1;
  return read_reply(c);
}

/* ---------- TLS (--tls) ---------- */

#ifdef FTPBENCH_TLS
static SSL_CTX *g_ctx;
/* what the last data connection negotiated, for the JSON result */
static int g_tls_resumed = -1; /* -1: no data handshake yet; 0/1 = SSL_session_reused */
static char g_tls_version[32] = "";
static char g_tls_cipher[64] = "";
static char g_tls_ctl_version[32] = "";
static int g_tls_login_retries = 0;

static const char *ssl_errstr(void) {
  static char b[256];
  unsigned long e = ERR_get_error();
  if (!e) return "no OpenSSL error";
  ERR_error_string_n(e, b, sizeof b);
  return b;
}

static void tls_init(void) {
  OPENSSL_init_ssl(0, NULL);
  g_ctx = SSL_CTX_new(TLS_client_method());
  if (!g_ctx) die("SSL_CTX_new: %s", ssl_errstr());
  SSL_CTX_set_verify(g_ctx, SSL_VERIFY_NONE, NULL); /* the bench's certificate is self-signed */
  SSL_CTX_set_min_proto_version(g_ctx, TLS1_2_VERSION);
  /* the client keeps the sessions itself (SSL_get1_session), no internal cache needed */
  SSL_CTX_set_session_cache_mode(g_ctx, SSL_SESS_CACHE_CLIENT | SSL_SESS_CACHE_NO_INTERNAL_STORE);
  /* read whole socket buffers, not one record header + body per recv() */
  SSL_CTX_set_read_ahead(g_ctx, 1);
  SSL_CTX_set_default_read_buffer_len(g_ctx, 1 << 20);
  SSL_CTX_set_mode(g_ctx, SSL_MODE_AUTO_RETRY);
}

/* AUTH TLS + handshake on the control connection. 0 or -1 (message in c->last). */
static int tls_control(ctl_t *c, int delay_ms) {
  int code = cmd(c, "AUTH TLS");
  if (code != 234) return -1;
  if (delay_ms) usleep((useconds_t)delay_ms * 1000);
  SSL *ssl = SSL_new(g_ctx);
  if (!ssl) {
    snprintf(c->last, sizeof c->last, "SSL_new: %s", ssl_errstr());
    return -1;
  }
  SSL_set_fd(ssl, c->fd);
  if (SSL_connect(ssl) != 1) {
    snprintf(c->last, sizeof c->last, "control TLS handshake: %s", ssl_errstr());
    SSL_free(ssl);
    return -1;
  }
  c->ssl = ssl;
  snprintf(g_tls_ctl_version, sizeof g_tls_ctl_version, "%s", SSL_get_version(ssl));
  return 0;
}

/* TLS client handshake on a data socket, resuming the control connection's session (taken now:
   with TLS 1.3 its tickets arrive after the handshake, and replies have been read since). */
static SSL *tls_data(ctl_t *c, int dfd) {
  SSL *ssl = SSL_new(g_ctx);
  if (!ssl) {
    snprintf(c->last, sizeof c->last, "SSL_new: %s", ssl_errstr());
    return NULL;
  }
  SSL_SESSION *sess = SSL_get1_session((SSL *)c->ssl);
  if (sess) {
    SSL_set_session(ssl, sess);
    SSL_SESSION_free(sess);
  }
  SSL_set_fd(ssl, dfd);
  if (SSL_connect(ssl) != 1) {
    snprintf(c->last, sizeof c->last, "data TLS handshake: %s", ssl_errstr());
    SSL_free(ssl);
    return NULL;
  }
  g_tls_resumed = SSL_session_reused(ssl);
  snprintf(g_tls_version, sizeof g_tls_version, "%s", SSL_get_version(ssl));
  snprintf(g_tls_cipher, sizeof g_tls_cipher, "%s", SSL_get_cipher_name(ssl));
  return ssl;
}

/* the JSON fields added by --tls (empty without it) */
static const char *tls_json(void) {
  static char b[256];
  if (!g_tls) return "";
  snprintf(b, sizeof b, ",\"tls_control_version\":\"%s\",\"tls_version\":\"%s\",\"tls_cipher\":\"%s\",\"tls_data_resumed\":%s,\"tls_login_retries\":%d",
           g_tls_ctl_version, g_tls_version, g_tls_cipher, g_tls_resumed == 1 ? "true" : "false", g_tls_login_retries);
  return b;
}
#else
static const char *tls_json(void) { return ""; }
#endif

/* connect + banner (+ AUTH TLS with --tls) + USER/PASS (+ PBSZ 0/PROT P with --tls) (+ TYPE I
   when type_i). Returns 0 or -1 (message in c->last). */
static int ftp_login_once(ctl_t *c, int type_i, int auth_delay_ms) {
  c->len = 0;
  c->ssl = NULL;
  c->fd = tcp_connect(g_host, g_port);
  if (c->fd < 0) {
    snprintf(c->last, sizeof c->last, "connect: %s", strerror(errno));
    return -1;
  }
  int code = read_reply(c);
  if (code != 220) goto fail;
#ifdef FTPBENCH_TLS
  if (g_tls && tls_control(c, auth_delay_ms) < 0) goto fail;
#endif
  code = cmd(c, "USER %s", g_user);
  if (code == 331) code = cmd(c, "PASS %s", g_pass);
  if (code != 230) goto fail;
  if (g_tls) {
    code = cmd(c, "PBSZ 0");
    if (code != 200) goto fail;
    code = cmd(c, "PROT P");
    if (code != 200) goto fail;
  }
  if (type_i) {
    code = cmd(c, "TYPE I");
    if (code != 200) goto fail;
  }
  return 0;
fail:
#ifdef FTPBENCH_TLS
  if (c->ssl) SSL_free((SSL *)c->ssl);
#endif
  c->ssl = NULL;
  close(c->fd);
  c->fd = -1;
  return -1;
}

/* With --tls, a failed control handshake is retried twice, the ClientHello then sent 20/100 ms
   after the 234: ftp-srv 4.6 replies 234 and only then (a few ticks later) puts its TLS socket on
   the connection, so a ClientHello sent at once is sometimes read as a plain command and answered
   in plain text ("wrong version number"). */
static int ftp_login(ctl_t *c, int type_i) {
  int rc = ftp_login_once(c, type_i, 0);
#ifdef FTPBENCH_TLS
  static const int delays[] = {20, 100};
  for (int i = 0; rc < 0 && g_tls && i < 2 && strstr(c->last, "control TLS handshake"); i++) {
    if (g_verbose) fprintf(stderr, "ftpbench: %s; retrying the login (ClientHello %d ms after the 234)\n", c->last, delays[i]);
    g_tls_login_retries++;
    rc = ftp_login_once(c, type_i, delays[i]);
  }
#endif
  return rc;
}

static void ftp_quit(ctl_t *c) {
  if (c->fd < 0) return;
  cmd(c, "QUIT");
#ifdef FTPBENCH_TLS
  if (c->ssl) SSL_free((SSL *)c->ssl);
#endif
  c->ssl = NULL;
  close(c->fd);
  c->fd = -1;
}

/* EPSV (falling back to PASV), then connect the data socket. */
static int open_data(ctl_t *c) {
  int code = cmd(c, "EPSV");
  int port = -1;
  if (code == 229) {
    char *p = strstr(c->last, "(|||");
    if (p) port = atoi(p + 4);
  } else {
    code = cmd(c, "PASV");
    if (code == 227) {
      char *p = strchr(c->last, '(');
      int h1, h2, h3, h4, p1, p2;
      if (p && sscanf(p + 1, "%d,%d,%d,%d,%d,%d", &h1, &h2, &h3, &h4, &p1, &p2) == 6) port = p1 * 256 + p2;
    }
  }
  if (port <= 0) return -1;
  return tcp_connect(g_host, port);
}

/* Drain a data socket to EOF, discarding bytes in the kernel (MSG_TRUNC: no copy to user space). */
static long long drain(int dfd) {
  static __thread char *fallback = NULL;
  long long total = 0;
  int use_trunc = 1;
  for (;;) {
    ssize_t r;
    if (use_trunc) {
      r = recv(dfd, NULL, 1 << 22, MSG_TRUNC);
      if (r < 0 && (errno == EFAULT || errno == EINVAL)) {
        use_trunc = 0;
        continue;
      }
    } else {
      if (!fallback) fallback = malloc(1 << 20);
      r = recv(dfd, fallback, 1 << 20, 0);
    }
    if (r == 0) break;
    if (r < 0) {
      if (errno == EINTR) continue;
      return -1;
    }
    total += r;
  }
  return total;
}

/* Open the data connection and send RETR; the data socket, or -1. *t0 = when RETR was sent. */
static int start_retr(ctl_t *c, const char *name, double *t0) {
  int dfd = open_data(c);
  if (dfd < 0) {
    snprintf(c->last, sizeof c->last, "data connection failed");
    return -1;
  }
  *t0 = now_s();
  if (send_cmd(c, "RETR %s", name) < 0) {
    close(dfd);
    return -1;
  }
  return dfd;
}

/* One RETR; returns bytes, sets *lat to seconds from RETR sent to the final reply. */
static long long do_retr(ctl_t *c, const char *name, double *lat) {
  double t0;
  int dfd = start_retr(c, name, &t0);
  if (dfd < 0) return -1;
  int code = read_reply(c);
  if (code != 150 && code != 125) {
    close(dfd);
    return -1;
  }
  long long n = drain(dfd);
  close(dfd);
  code = read_reply(c);
  *lat = now_s() - t0;
  if (code != 226 && code != 250) return -1;
  return n;
}

#ifdef FTPBENCH_TLS
/* RETR over a PROT P data connection: the handshake starts right after RETR is sent (before the
   150 is read: some servers reply only once the data connection is secured, others only start
   TLS after their 150), then SSL_read into 1 MiB until the server's close_notify or EOF. */
static long long do_retr_tls(ctl_t *c, const char *name, double *lat) {
  static char *buf = NULL;
  if (!buf) buf = malloc(1 << 20);
  double t0;
  int dfd = start_retr(c, name, &t0);
  if (dfd < 0) return -1;
  SSL *ssl = tls_data(c, dfd);
  if (!ssl) {
    close(dfd);
    return -1;
  }
  int code = read_reply(c);
  if (code != 150 && code != 125) {
    SSL_free(ssl);
    close(dfd);
    return -1;
  }
  long long n = 0;
  for (;;) {
    int r = SSL_read(ssl, buf, 1 << 20);
    if (r > 0) {
      n += r;
      continue;
    }
    int e = SSL_get_error(ssl, r);
    if (e == SSL_ERROR_ZERO_RETURN) break;                /* close_notify */
    if (e == SSL_ERROR_SYSCALL && ERR_peek_error() == 0) break; /* EOF without close_notify */
#ifdef SSL_R_UNEXPECTED_EOF_WHILE_READING /* OpenSSL 3: EOF without close_notify */
    if (e == SSL_ERROR_SSL && ERR_GET_REASON(ERR_peek_error()) == SSL_R_UNEXPECTED_EOF_WHILE_READING) break;
#endif
    snprintf(c->last, sizeof c->last, "SSL_read: error %d: %s", e, ssl_errstr());
    SSL_free(ssl);
    close(dfd);
    return -1;
  }
  ERR_clear_error();
  SSL_shutdown(ssl); /* our close_notify; the server's has been read (or it closed) */
  SSL_free(ssl);
  close(dfd);
  code = read_reply(c);
  *lat = now_s() - t0;
  if (code != 226 && code != 250) return -1;
  return n;
}

/* STOR over a PROT P data connection: N bytes with SSL_write from a 1 MiB buffer, then
   close_notify (servers treat an upload without it as truncated), then FIN, then the 226. */
static void stor_tls(ctl_t *c) {
  const size_t chunk = 1u << 20;
  unsigned char *m = malloc(chunk);
  uint32_t x = 2463534242u;
  for (size_t i = 0; i < chunk; i += 4) {
    x ^= x << 13; x ^= x >> 17; x ^= x << 5;
    memcpy(m + i, &x, 4);
  }
  int dfd = open_data(c);
  if (dfd < 0) die("data connection failed: %s", c->last);
  double c0 = cpu_s(), t0 = now_s();
  if (send_cmd(c, "STOR %s", g_file) < 0) die("send failed");
  SSL *ssl = tls_data(c, dfd);
  if (!ssl) die("%s", c->last);
  int code = read_reply(c);
  if (code != 150 && code != 125) die("STOR refused: %s", c->last);
  long long left = g_bytes;
  while (left > 0) {
    int want = left < (long long)chunk ? (int)left : (int)chunk;
    int w = SSL_write(ssl, m, want);
    if (w <= 0) die("SSL_write: error %d: %s", SSL_get_error(ssl, w), ssl_errstr());
    left -= w;
  }
  if (SSL_shutdown(ssl) < 0) die("SSL_shutdown: %s", ssl_errstr());
  shutdown(dfd, SHUT_WR);
  /* wait for the server to close its side (its close_notify, if any, is discarded) so the 226
     follows the last byte */
  char tmp[4096];
  while (recv(dfd, tmp, sizeof tmp, 0) > 0) {}
  SSL_free(ssl);
  close(dfd);
  code = read_reply(c);
  double t1 = now_s(), c1 = cpu_s();
  if (code != 226 && code != 250) die("STOR failed: %s", c->last);
  double s = t1 - t0;
  printf("{\"mode\":\"stor\",\"bytes\":%lld,\"seconds\":%.6f,\"mbps\":%.2f,\"client_cpu_s\":%.4f,\"client_cpu_pct\":%.1f%s}\n",
         g_bytes, s, g_bytes / s / 1e6, c1 - c0, (c1 - c0) / s * 100, tls_json());
  free(m);
}
#endif

/* ---------- modes ---------- */

static void mode_retr(void) {
  ctl_t c;
  if (ftp_login(&c, 1) < 0) die("login failed: %s", c.last);
  sync_point("ready");
  /* --count K: K downloads in a row in this session; the figures are their sums (RETR to 226
     each, so the data connections' set-up between them is not counted) */
  double secs = 0, c0 = cpu_s();
  long long n = 0;
  for (int i = 0; i < g_count; i++) {
    double lat = 0;
#ifdef FTPBENCH_TLS
    long long one = g_tls ? do_retr_tls(&c, g_file, &lat) : do_retr(&c, g_file, &lat);
#else
    long long one = do_retr(&c, g_file, &lat);
#endif
    if (one < 0) die("RETR %d of %d failed: %s", i + 1, g_count, c.last);
    n += one;
    secs += lat;
  }
  double c1 = cpu_s();
  printf("{\"mode\":\"retr\",\"count\":%d,\"bytes\":%lld,\"seconds\":%.6f,\"mbps\":%.2f,\"client_cpu_s\":%.4f,\"client_cpu_pct\":%.1f%s}\n",
         g_count, n, secs, n / secs / 1e6, c1 - c0, (c1 - c0) / secs * 100, tls_json());
  sync_point("done");
  ftp_quit(&c);
}

static void mode_stor(void) {
#ifdef FTPBENCH_TLS
  if (g_tls) {
    ctl_t tc;
    if (ftp_login(&tc, 1) < 0) die("login failed: %s", tc.last);
    sync_point("ready");
    stor_tls(&tc);
    sync_point("done");
    ftp_quit(&tc);
    return;
  }
#endif
  /* 16 MiB of non-constant bytes in a memfd, sent with sendfile() over and over */
  const size_t chunk = 16u << 20;
  int mfd = memfd_create("ftpbench", MFD_CLOEXEC);
  if (mfd < 0) die("memfd_create: %s", strerror(errno));
  if (ftruncate(mfd, (off_t)chunk) < 0) die("ftruncate: %s", strerror(errno));
  unsigned char *m = mmap(NULL, chunk, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
  if (m == MAP_FAILED) die("mmap: %s", strerror(errno));
  uint32_t x = 2463534242u;
  for (size_t i = 0; i < chunk; i += 4) {
    x ^= x << 13; x ^= x >> 17; x ^= x << 5;
    memcpy(m + i, &x, 4);
  }
  munmap(m, chunk);

  ctl_t c;
  if (ftp_login(&c, 1) < 0) die("login failed: %s", c.last);
  sync_point("ready");
  int dfd = open_data(&c);
  if (dfd < 0) die("data connection failed: %s", c.last);
  double c0 = cpu_s(), t0 = now_s();
  if (send_cmd(&c, "STOR %s", g_file) < 0) die("send failed");
  int code = read_reply(&c);
  if (code != 150 && code != 125) die("STOR refused: %s", c.last);
  long long left = g_bytes;
  while (left > 0) {
    off_t off = 0;
    size_t want = left < (long long)chunk ? (size_t)left : chunk;
    while (want > 0) {
      ssize_t w = sendfile(dfd, mfd, &off, want);
      if (w < 0) {
        if (errno == EINTR) continue;
        die("sendfile: %s", strerror(errno));
      }
      want -= (size_t)w;
      left -= w;
    }
  }
  shutdown(dfd, SHUT_WR);
  /* wait for the server to close its side so the 226 follows the last byte */
  char tmp[256];
  while (recv(dfd, tmp, sizeof tmp, 0) > 0) {}
  close(dfd);
  code = read_reply(&c);
  double t1 = now_s(), c1 = cpu_s();
  if (code != 226 && code != 250) die("STOR failed: %s", c.last);
  double s = t1 - t0;
  printf("{\"mode\":\"stor\",\"bytes\":%lld,\"seconds\":%.6f,\"mbps\":%.2f,\"client_cpu_s\":%.4f,\"client_cpu_pct\":%.1f}\n",
         g_bytes, s, g_bytes / s / 1e6, c1 - c0, (c1 - c0) / s * 100);
  sync_point("done");
  ftp_quit(&c);
}

typedef struct {
  int idx;
  double *lat;      /* many: K latencies, RETR sent to 226 */
  double *cyc;      /* many: K latencies, EPSV/PASV sent to 226 (the whole file) */
  int done;         /* many: files ok; logins: count */
  int errors;
  long long bytes;
  char err[256];
} worker_t;

static pthread_barrier_t g_barrier, g_b_go, g_b_done, g_b_quit;
static volatile int g_stop = 0;
static double g_deadline = 0;

static void *many_worker(void *arg) {
  worker_t *w = arg;
  ctl_t c;
  while (sem_wait(&g_login_slots) < 0 && errno == EINTR) {
  }
  int ok = ftp_login(&c, 1) == 0;
  sem_post(&g_login_slots);
  if (!ok) {
    snprintf(w->err, sizeof w->err, "login: %s", c.last);
    w->errors++;
  }
  pthread_barrier_wait(&g_barrier); /* all logged in */
  pthread_barrier_wait(&g_b_go);    /* measured phase starts */
  for (int i = 0; ok && i < g_count; i++) {
    double lat, t = now_s();
    long long n = do_retr(&c, g_file, &lat);
    if (n < 0) {
      snprintf(w->err, sizeof w->err, "RETR: %s", c.last);
      w->errors++;
      break; /* control state is unknown now */
    }
    w->cyc[w->done] = now_s() - t;
    w->lat[w->done++] = lat;
    w->bytes += n;
  }
  pthread_barrier_wait(&g_b_done);
  pthread_barrier_wait(&g_b_quit);
  if (ok) ftp_quit(&c);
  return NULL;
}

/* copy of s safe to embed in a JSON string */
static const char *json_esc(const char *s, char *out, size_t n) {
  size_t j = 0;
  for (size_t i = 0; s[i] && j + 1 < n; i++)
    if ((unsigned char)s[i] >= 32 && s[i] != '"' && s[i] != '\\') out[j++] = s[i];
  out[j] = 0;
  return out;
}

static int cmp_double(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

static double pct(const double *v, int n, double p) {
  if (n == 0) return 0;
  int i = (int)(p / 100.0 * n + 0.5) - 1;
  if (i < 0) i = 0;
  if (i >= n) i = n - 1;
  return v[i];
}

/* The JSON line of "many": the sessions' counts summed, their downloads' latencies pooled and sorted. */
static void many_report(const worker_t *w, int C, double s, double cpu) {
  int total = 0, errors = 0;
  long long bytes = 0;
  const char *firsterr = "";
  for (int i = 0; i < C; i++) {
    total += w[i].done;
    errors += w[i].errors;
    bytes += w[i].bytes;
    if (w[i].errors && !*firsterr) firsterr = w[i].err;
  }
  double *all = calloc((size_t)total + 1, sizeof(double));
  double *cyc = calloc((size_t)total + 1, sizeof(double));
  int k = 0;
  for (int i = 0; i < C; i++)
    for (int j = 0; j < w[i].done; j++, k++) {
      all[k] = w[i].lat[j];
      cyc[k] = w[i].cyc[j];
    }
  qsort(all, (size_t)total, sizeof(double), cmp_double);
  qsort(cyc, (size_t)total, sizeof(double), cmp_double);
  printf("{\"mode\":\"many\",\"client\":\"%s\",\"event_threads\":%d,\"clients\":%d,\"per_client\":%d,\"files\":%d,\"errors\":%d,\"bytes\":%lld,"
         "\"seconds\":%.6f,\"files_per_s\":%.1f,\"mbps\":%.2f,\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"max_ms\":%.3f,"
         "\"file_p50_ms\":%.3f,\"file_p99_ms\":%.3f,"
         "\"client_cpu_s\":%.4f,\"client_cpu_pct\":%.1f,\"first_error\":\"%s\"}\n",
         g_event ? "event" : "threads", g_event ? g_event_threads : 0, C, g_count, total, errors, bytes, s, total / s, bytes / s / 1e6, pct(all, total, 50) * 1e3,
         pct(all, total, 99) * 1e3, total ? all[total - 1] * 1e3 : 0, pct(cyc, total, 50) * 1e3, pct(cyc, total, 99) * 1e3,
         cpu, cpu / s * 100, json_esc(firsterr, (char[256]){0}, 256));
  free(all);
  free(cyc);
}

/* C sessions' records for "many", each with room for --count latencies. */
static worker_t *many_workers(int C) {
  worker_t *w = calloc((size_t)C, sizeof *w);
  for (int i = 0; i < C; i++) {
    w[i].idx = i;
    w[i].lat = calloc((size_t)g_count, sizeof(double));
    w[i].cyc = calloc((size_t)g_count, sizeof(double));
  }
  return w;
}

static void mode_many(void) {
  int C = g_clients;
  pthread_t *th = calloc((size_t)C, sizeof *th);
  worker_t *w = many_workers(C);
  pthread_barrier_init(&g_barrier, NULL, (unsigned)C + 1);
  pthread_barrier_init(&g_b_go, NULL, (unsigned)C + 1);
  pthread_barrier_init(&g_b_done, NULL, (unsigned)C + 1);
  pthread_barrier_init(&g_b_quit, NULL, (unsigned)C + 1);
  sem_init(&g_login_slots, 0, (unsigned)g_login_concurrency);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 256 * 1024);
  for (int i = 0; i < C; i++)
    if (pthread_create(&th[i], &attr, many_worker, &w[i]) != 0) die("pthread_create");
  pthread_barrier_wait(&g_barrier); /* everyone is logged in (or failed) */
  sync_point("ready");
  double t0 = now_s(), c0 = cpu_s();
  pthread_barrier_wait(&g_b_go);
  pthread_barrier_wait(&g_b_done);
  double t1 = now_s(), c1 = cpu_s();
  many_report(w, C, t1 - t0, c1 - c0);
  sync_point("done");
  pthread_barrier_wait(&g_b_quit);
  for (int i = 0; i < C; i++) pthread_join(th[i], NULL);
}

/* ---------- many --event ---------- */

/*
 * The threaded "many" gives each session a thread that blocks on its sockets, so every reply
 * and every end of a download wakes a thread of its own: on a machine where client and server
 * share the cores, those wake-ups take CPU from the server's threads (100 client threads used
 * 74-89% of a core in "many"). Here the sessions log in as there (threads, at most
 * --login-concurrency at a time), then epoll threads drive them (--event-threads N, each every
 * Nth session): fewer threads to wake, as a client on another machine would not take the
 * server's cores at all. Each session does the same steps:
 * EPSV (PASV where refused), a non-blocking connect, RETR, the data discarded in the kernel
 * (recv MSG_TRUNC) until EOF, and the 226; the next EPSV goes out when both the EOF and the 226
 * are in. Latencies are measured at the same points as the threaded client's.
 */
enum { EV_EPSV, EV_PASV, EV_CONNECTING, EV_RETR, EV_DONE };

typedef struct {
  ctl_t c;
  worker_t *w;
  int ep; /* the epoll set of the thread that drives this session */
  int dfd;
  int st;
  int got150, got226, eof;
  double t_file, t_retr;
  long long n;
} evs_t;

static void *login_only(void *arg) {
  evs_t *e = arg;
  while (sem_wait(&g_login_slots) < 0 && errno == EINTR) {
  }
  int ok = ftp_login(&e->c, 1) == 0;
  sem_post(&g_login_slots);
  if (!ok) {
    snprintf(e->w->err, sizeof e->w->err, "login: %s", e->c.last);
    e->w->errors++;
    e->st = EV_DONE;
  }
  return NULL;
}

static void set_nonblock(int fd, int on) {
  int fl = fcntl(fd, F_GETFL);
  fcntl(fd, F_SETFL, on ? fl | O_NONBLOCK : fl & ~O_NONBLOCK);
}

static void ev_fail(evs_t *e, const char *what) {
  snprintf(e->w->err, sizeof e->w->err, "%s: %s", what, e->c.last);
  e->w->errors++;
  if (e->dfd >= 0) close(e->dfd);
  e->dfd = -1;
  epoll_ctl(e->ep, EPOLL_CTL_DEL, e->c.fd, NULL);
  e->st = EV_DONE;
}

static void ev_epsv(evs_t *e) {
  e->t_file = now_s();
  e->st = EV_EPSV;
  if (send_cmd(&e->c, "EPSV") < 0) ev_fail(e, "EPSV");
}

static void ev_send_retr(evs_t *e) {
  struct epoll_event ev = {.events = EPOLLIN, .data.u64 = ((uint64_t)e->w->idx << 1) | 1};
  epoll_ctl(e->ep, EPOLL_CTL_MOD, e->dfd, &ev);
  e->got150 = e->got226 = e->eof = 0;
  e->n = 0;
  e->st = EV_RETR;
  e->t_retr = now_s();
  if (send_cmd(&e->c, "RETR %s", g_file) < 0) ev_fail(e, "RETR");
}

static void ev_connect(evs_t *e, int port) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) {
    snprintf(e->c.last, sizeof e->c.last, "socket: %s", strerror(errno));
    ev_fail(e, "data connection");
    return;
  }
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  inet_pton(AF_INET, g_host, &sa.sin_addr);
  int r = connect(fd, (struct sockaddr *)&sa, sizeof sa);
  if (r < 0 && errno != EINPROGRESS) {
    snprintf(e->c.last, sizeof e->c.last, "connect: %s", strerror(errno));
    close(fd);
    ev_fail(e, "data connection");
    return;
  }
  e->dfd = fd;
  struct epoll_event ev = {.events = EPOLLOUT, .data.u64 = ((uint64_t)e->w->idx << 1) | 1};
  epoll_ctl(e->ep, EPOLL_CTL_ADD, fd, &ev);
  e->st = EV_CONNECTING;
}

/* Both the data's EOF and the 226 are in: one download done; the next one starts. */
static void ev_maybe_done(evs_t *e) {
  if (!e->eof || !e->got226) return;
  double t = now_s();
  worker_t *w = e->w;
  w->lat[w->done] = t - e->t_retr;
  w->cyc[w->done++] = t - e->t_file;
  w->bytes += e->n;
  if (w->done < g_count) ev_epsv(e);
  else {
    e->st = EV_DONE;
    epoll_ctl(e->ep, EPOLL_CTL_DEL, e->c.fd, NULL);
  }
}

static void ev_reply(evs_t *e, int code) {
  switch (e->st) {
    case EV_EPSV:
      if (code == 229) {
        char *p = strstr(e->c.last, "(|||");
        if (p && atoi(p + 4) > 0) ev_connect(e, atoi(p + 4));
        else ev_fail(e, "EPSV");
      } else {
        e->st = EV_PASV;
        if (send_cmd(&e->c, "PASV") < 0) ev_fail(e, "PASV");
      }
      return;
    case EV_PASV: {
      char *p = strchr(e->c.last, '(');
      int h1, h2, h3, h4, p1, p2;
      if (code == 227 && p && sscanf(p + 1, "%d,%d,%d,%d,%d,%d", &h1, &h2, &h3, &h4, &p1, &p2) == 6) ev_connect(e, p1 * 256 + p2);
      else ev_fail(e, "PASV");
      return;
    }
    case EV_RETR:
      if (!e->got150 && (code == 150 || code == 125)) e->got150 = 1;
      else if (e->got150 && (code == 226 || code == 250)) {
        e->got226 = 1;
        ev_maybe_done(e);
      } else ev_fail(e, "RETR");
      return;
    default:
      ev_fail(e, "unexpected reply");
  }
}

static void ev_control(evs_t *e) {
  for (;;) {
    if (e->c.len == (int)sizeof e->c.buf) e->c.len = 0;
    ssize_t r = recv(e->c.fd, e->c.buf + e->c.len, sizeof e->c.buf - (size_t)e->c.len, MSG_DONTWAIT);
    if (r > 0) {
      e->c.len += (int)r;
      continue;
    }
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    snprintf(e->c.last, sizeof e->c.last, "control connection closed (%s)", r < 0 ? strerror(errno) : "EOF");
    ev_fail(e, "control");
    return;
  }
  int code;
  while (e->st != EV_DONE && take_reply(&e->c, &code)) ev_reply(e, code);
}

static void ev_data(evs_t *e) {
  if (e->st == EV_CONNECTING) {
    int err = 0;
    socklen_t len = sizeof err;
    getsockopt(e->dfd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err) {
      snprintf(e->c.last, sizeof e->c.last, "connect: %s", strerror(err));
      ev_fail(e, "data connection");
    } else ev_send_retr(e);
    return;
  }
  if (e->st != EV_RETR || e->eof) return;
  for (;;) {
    ssize_t r = recv(e->dfd, NULL, 1 << 22, MSG_TRUNC | MSG_DONTWAIT);
    if (r > 0) {
      e->n += r;
      continue;
    }
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return;
    if (r < 0) {
      snprintf(e->c.last, sizeof e->c.last, "data: %s", strerror(errno));
      ev_fail(e, "RETR");
      return;
    }
    break; /* EOF */
  }
  close(e->dfd); /* also takes it out of the epoll set */
  e->dfd = -1;
  e->eof = 1;
  ev_maybe_done(e);
}

/* One driving thread: sessions idx, idx + N, idx + 2N, ... of es[], all on its own epoll set. */
typedef struct {
  evs_t *es;
  int first, step, C;
  int ep;
} driver_t;

static pthread_barrier_t g_ev_go;

static void *ev_driver(void *arg) {
  driver_t *d = arg;
  pthread_barrier_wait(&g_ev_go);
  for (int i = d->first; i < d->C; i += d->step)
    if (d->es[i].st != EV_DONE) ev_epsv(&d->es[i]);
  struct epoll_event evs[256];
  for (;;) {
    int left = 0;
    for (int i = d->first; i < d->C; i += d->step) left += d->es[i].st != EV_DONE;
    if (!left) break;
    int n = epoll_wait(d->ep, evs, 256, 30000);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      for (int i = d->first; i < d->C; i += d->step)
        if (d->es[i].st != EV_DONE) {
          snprintf(d->es[i].c.last, sizeof d->es[i].c.last, "no event for 30 s");
          ev_fail(&d->es[i], "stalled");
        }
      break;
    }
    for (int k = 0; k < n; k++) {
      evs_t *e = &d->es[evs[k].data.u64 >> 1];
      if (e->st == EV_DONE) continue;
      if (evs[k].data.u64 & 1) {
        if (e->dfd >= 0) ev_data(e);
      } else ev_control(e);
    }
  }
  return NULL;
}

static void mode_many_event(void) {
  int C = g_clients, N = g_event_threads < C ? g_event_threads : C;
  pthread_t *th = calloc((size_t)C, sizeof *th);
  worker_t *w = many_workers(C);
  evs_t *es = calloc((size_t)C, sizeof *es);
  driver_t *d = calloc((size_t)N, sizeof *d);
  sem_init(&g_login_slots, 0, (unsigned)g_login_concurrency);
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setstacksize(&attr, 256 * 1024);
  for (int i = 0; i < C; i++) {
    es[i].w = &w[i];
    es[i].dfd = -1;
    es[i].c.fd = -1;
    if (pthread_create(&th[i], &attr, login_only, &es[i]) != 0) die("pthread_create");
  }
  for (int i = 0; i < C; i++) pthread_join(th[i], NULL);
  pthread_barrier_init(&g_ev_go, NULL, (unsigned)N + 1);
  for (int k = 0; k < N; k++) {
    d[k] = (driver_t){.es = es, .first = k, .step = N, .C = C, .ep = epoll_create1(EPOLL_CLOEXEC)};
    if (d[k].ep < 0) die("epoll_create1: %s", strerror(errno));
  }
  for (int i = 0; i < C; i++) {
    es[i].ep = d[i % N].ep;
    if (es[i].st == EV_DONE) continue;
    set_nonblock(es[i].c.fd, 1);
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = (uint64_t)i << 1};
    epoll_ctl(es[i].ep, EPOLL_CTL_ADD, es[i].c.fd, &ev);
  }
  for (int k = 0; k < N; k++)
    if (pthread_create(&th[k], &attr, ev_driver, &d[k]) != 0) die("pthread_create");
  sync_point("ready");
  double t0 = now_s(), c0 = cpu_s();
  pthread_barrier_wait(&g_ev_go);
  for (int k = 0; k < N; k++) pthread_join(th[k], NULL);
  double t1 = now_s(), c1 = cpu_s();
  many_report(w, C, t1 - t0, c1 - c0);
  sync_point("done");
  for (int k = 0; k < N; k++) close(d[k].ep);
  for (int i = 0; i < C; i++) {
    if (es[i].c.fd < 0) continue;
    set_nonblock(es[i].c.fd, 0);
    if (es[i].c.len == 0 && !w[i].errors) ftp_quit(&es[i].c);
    else {
      close(es[i].c.fd);
      es[i].c.fd = -1;
    }
  }
}

/* idle: open sessions with a few threads, hold them, then QUIT */
static ctl_t *g_idle;
static int g_idle_threads;

static void *idle_open(void *arg) {
  worker_t *w = arg;
  for (int i = w->idx; i < g_sessions; i += g_idle_threads) {
    if (ftp_login(&g_idle[i], 0) < 0) {
      snprintf(w->err, sizeof w->err, "%s", g_idle[i].last);
      w->errors++;
    } else {
      w->done++;
    }
  }
  return NULL;
}

static void *idle_close(void *arg) {
  worker_t *w = arg;
  for (int i = w->idx; i < g_sessions; i += g_idle_threads) ftp_quit(&g_idle[i]);
  return NULL;
}

static void mode_idle(void) {
  int N = g_sessions;
  g_idle = calloc((size_t)N, sizeof *g_idle);
  for (int i = 0; i < N; i++) g_idle[i].fd = -1;
  g_idle_threads = N < 16 ? N : 16;
  pthread_t th[16];
  worker_t w[16];
  memset(w, 0, sizeof w);
  double t0 = now_s(), c0 = cpu_s();
  for (int i = 0; i < g_idle_threads; i++) {
    w[i].idx = i;
    pthread_create(&th[i], NULL, idle_open, &w[i]);
  }
  int ok = 0, errors = 0;
  const char *firsterr = "";
  for (int i = 0; i < g_idle_threads; i++) {
    pthread_join(th[i], NULL);
    ok += w[i].done;
    errors += w[i].errors;
    if (w[i].errors && !*firsterr) firsterr = w[i].err;
  }
  double t1 = now_s(), c1 = cpu_s();
  char esc[256];
  int j = 0;
  for (int i = 0; firsterr[i] && j < 250; i++)
    if (firsterr[i] >= 32 && firsterr[i] != '"' && firsterr[i] != '\\') esc[j++] = firsterr[i];
  esc[j] = 0;
  printf("{\"mode\":\"idle\",\"ready\":%d,\"errors\":%d,\"open_seconds\":%.4f,\"client_cpu_s\":%.4f,\"first_error\":\"%s\"}\n",
         ok, errors, t1 - t0, c1 - c0, esc);
  fflush(stdout);
  /* hold until the runner says so (a line or EOF on stdin) */
  char line[64];
  if (!fgets(line, sizeof line, stdin)) {}
  for (int i = 0; i < g_idle_threads; i++) {
    w[i].idx = i;
    pthread_create(&th[i], NULL, idle_close, &w[i]);
  }
  for (int i = 0; i < g_idle_threads; i++) pthread_join(th[i], NULL);
  printf("{\"mode\":\"idle\",\"closed\":%d}\n", ok);
}

static void *login_worker(void *arg) {
  worker_t *w = arg;
  while (!g_stop && now_s() < g_deadline && w->done < 10000000) {
    ctl_t c;
    double t = now_s();
    if (ftp_login(&c, 0) < 0) {
      w->errors++;
      snprintf(w->err, sizeof w->err, "%s", c.last);
      if (w->errors > 100) break;
      continue;
    }
    int code = cmd(&c, "QUIT");
    close(c.fd);
    if (code != 221) {
      w->errors++;
      continue;
    }
    if (w->done < 200000) w->lat[w->done] = now_s() - t;
    w->done++;
  }
  return NULL;
}

static void mode_logins(void) {
  int C = g_clients;
  pthread_t *th = calloc((size_t)C, sizeof *th);
  worker_t *w = calloc((size_t)C, sizeof *w);
  for (int i = 0; i < C; i++) w[i].lat = calloc(200000, sizeof(double));
  double t0 = now_s(), c0 = cpu_s();
  g_deadline = t0 + g_seconds;
  for (int i = 0; i < C; i++) pthread_create(&th[i], NULL, login_worker, &w[i]);
  for (int i = 0; i < C; i++) pthread_join(th[i], NULL);
  double t1 = now_s(), c1 = cpu_s();
  int total = 0, errors = 0, nlat = 0;
  const char *firsterr = "";
  for (int i = 0; i < C; i++) {
    total += w[i].done;
    errors += w[i].errors;
    nlat += w[i].done < 200000 ? w[i].done : 200000;
    if (w[i].errors && !*firsterr) firsterr = w[i].err;
  }
  double *all = calloc((size_t)nlat + 1, sizeof(double));
  int k = 0;
  for (int i = 0; i < C; i++)
    for (int j = 0; j < w[i].done && j < 200000; j++) all[k++] = w[i].lat[j];
  qsort(all, (size_t)nlat, sizeof(double), cmp_double);
  char esc[256];
  int j = 0;
  for (int i = 0; firsterr[i] && j < 250; i++)
    if (firsterr[i] >= 32 && firsterr[i] != '"' && firsterr[i] != '\\') esc[j++] = firsterr[i];
  esc[j] = 0;
  double s = t1 - t0;
  printf("{\"mode\":\"logins\",\"clients\":%d,\"logins\":%d,\"errors\":%d,\"seconds\":%.4f,\"logins_per_s\":%.1f,"
         "\"p50_ms\":%.3f,\"p99_ms\":%.3f,\"client_cpu_s\":%.4f,\"client_cpu_pct\":%.1f,\"first_error\":\"%s\"}\n",
         C, total, errors, s, total / s, pct(all, nlat, 50) * 1e3, pct(all, nlat, 99) * 1e3, c1 - c0,
         (c1 - c0) / s * 100, esc);
}

int main(int argc, char **argv) {
  if (argc < 2) die("usage: ftpbench retr|stor|many|idle|logins --port P [options]");
  const char *mode = argv[1];
  for (int i = 2; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define OPT(name) (strcmp(a, name) == 0 && v && (i++, 1))
    if (OPT("--host")) g_host = v;
    else if (OPT("--port")) g_port = atoi(v);
    else if (OPT("--user")) g_user = v;
    else if (OPT("--pass")) g_pass = v;
    else if (OPT("--file")) g_file = v;
    else if (OPT("--bytes")) g_bytes = atoll(v);
    else if (OPT("--clients")) g_clients = atoi(v);
    else if (OPT("--count")) g_count = atoi(v);
    else if (OPT("--sessions")) g_sessions = atoi(v);
    else if (OPT("--seconds")) g_seconds = atof(v);
    else if (OPT("--timeout")) g_timeout = atoi(v);
    else if (OPT("--login-concurrency")) g_login_concurrency = atoi(v);
    else if (strcmp(a, "-v") == 0) g_verbose = 1;
    else if (strcmp(a, "--sync") == 0) g_sync = 1;
    else if (strcmp(a, "--tls") == 0) g_tls = 1;
    else if (strcmp(a, "--event") == 0) g_event = 1;
    else if (OPT("--event-threads")) g_event = 1, g_event_threads = atoi(v);
    else die("unknown option %s", a);
#undef OPT
  }
  if (g_port <= 0) die("--port is required");
  if (g_tls) {
#ifdef FTPBENCH_TLS
    if (strcmp(mode, "retr") != 0 && strcmp(mode, "stor") != 0) die("--tls is supported by the retr and stor modes only");
    tls_init();
#else
    die("--tls: this ftpbench was built without OpenSSL (build with -DFTPBENCH_TLS ... -lssl -lcrypto)");
#endif
  }
  if (g_clients < 1 || g_clients > 5000 || g_sessions < 1 || g_sessions > 20000 || g_count < 1 || g_count > 1000000 ||
      g_login_concurrency < 1 || g_login_concurrency > 5000 || g_event_threads < 1 || g_event_threads > 64)
    die("argument out of range");
  /* enough descriptors for idle sessions */
  struct rlimit rl;
  if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
    rl.rlim_cur = rl.rlim_max;
    setrlimit(RLIMIT_NOFILE, &rl);
  }
  signal(SIGPIPE, SIG_IGN);
  signal(SIGALRM, on_alarm);
  alarm((unsigned)g_timeout);
  if (strcmp(mode, "retr") == 0) mode_retr();
  else if (strcmp(mode, "stor") == 0) mode_stor();
  else if (strcmp(mode, "many") == 0) g_event ? mode_many_event() : mode_many();
  else if (strcmp(mode, "idle") == 0) mode_idle();
  else if (strcmp(mode, "logins") == 0) mode_logins();
  else die("unknown mode %s", mode);
  fflush(stdout);
  return 0;
}
