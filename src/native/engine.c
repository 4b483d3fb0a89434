/*
 * ftpdlib's native transfer engine.
 *
 * Moves bytes between a file and a data socket without the event loop:
 *   send    (RETR)      file -> socket  with sendfile(2), splice(2) through a
 *                                       pipe, or a pread/send copy loop;
 *   receive (STOR/APPE) socket -> file  with splice(2) through a pipe, or a
 *                                       recv/pwrite copy loop.
 *
 * Each environment (main thread or worker) owns an `engine` kept in N-API
 * instance data. The engine runs one or more I/O threads of its own; each has
 * an epoll set, an eventfd to be woken for new jobs, cancels and shutdown, a
 * run queue of jobs that can make progress, and a list of jobs sleeping for a
 * throttle. A socket that is not ready parks in epoll (edge-triggered), so no
 * thread ever waits on a slow client and the libuv pool is never used.
 *
 * A job works on dup()s of the caller's socket and file descriptors, so the
 * caller keeps owning (and may close) its own descriptors. Progress and
 * completion reach JS through one thread-safe function per environment,
 * which is unreferenced whenever no job is active.
 *
 * Ownership of a job: the main thread allocates it and frees it when it
 * handles the job's final message (or at environment cleanup). The I/O
 * thread stops touching a job once it has queued that final message.
 */
#include <node_api.h>

#include "tlsrec.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#if !defined(_FILE_OFFSET_BITS) || _FILE_OFFSET_BITS != 64
#error "build with _FILE_OFFSET_BITS=64 (see binding.gyp)"
#endif

enum { DIR_SEND = 0, DIR_RECV = 1 };
enum { M_SENDFILE = 0, M_SPLICE = 1, M_COPY = 2, M_TLS = 3, M_COUNT = 4 };
enum { MSG_PROGRESS = 0, MSG_OK = 1, MSG_ERROR = 2, MSG_ABORTED = 3 };
enum {
  OP_NONE, OP_SENDFILE, OP_SPLICE_IN, OP_SPLICE_OUT, OP_PREAD, OP_SEND,
  OP_RECV, OP_PWRITE, OP_EPOLL, OP_PIPE, OP_ALLOC, OP_TLS, OP_TLS_CLOSE, OP_TLS_ALERT
};
static const char *const op_names[] = {
  "", "sendfile", "splice", "splice", "pread", "send",
  "recv", "pwrite", "epoll_ctl", "pipe", "malloc", "TLS record",
  "TLS close_notify missing", "TLS alert from the peer"
};

/* What a step of a job asks the loop to do next. */
enum { STEP_PARK, STEP_AGAIN, STEP_SLEEP, STEP_DONE };

#define MAX_THREADS 16
/* th[SOLO]: the I/O thread at the starting thread's own priority, for a job that starts alone (js_start). */
#define SOLO MAX_THREADS
#define ALL_SLOTS (MAX_THREADS + 1)
#define MIN_SIZE ((size_t)4096)
#define MAX_SIZE ((size_t)64 << 20)
#define MIN_COPY_CAP ((size_t)64 << 10)
#define STEP_BUDGET ((uint64_t)4 << 20) /* bytes per turn before other jobs get theirs */
#define PROGRESS_NS 100000000ull
#define PACE_CREDIT_NS 250000000ull /* a throttled job behind its pace may catch up this much */
#define MAX_EVENTS 256

typedef struct engine engine_t;
typedef struct ioth ioth_t;
typedef struct job job_t;

struct job {
  /* Owned by the main thread. */
  uint32_t id;
  napi_ref cb;
  job_t *live_prev, *live_next;
  ioth_t *th;
  atomic_int cancel;
  atomic_uint_least64_t rate_req; /* setRate: a new bytes/s for the I/O thread to take; 0: none */

  /* Fixed at start, read by the I/O thread. */
  int sock, file;
  int dir, mech;
  int want_progress;
  size_t chunk, pipe_size;
  double bps;
  int64_t size_at_start;
  int start_errno, start_op;

  /* Owned by the I/O thread. */
  job_t *all_prev, *all_next;
  job_t *run_next;
  int queued;
  job_t *sleep_next;
  int sleeping;
  uint64_t wake_ns;
  job_t *inbox_next;
  int registered;
  int cork, sndbuf, rcvbuf; /* asked for by start, applied by check_job */
  int corked;      /* TCP_CORK set by check_job (send jobs); cleared in drop_job_fds */
  int fin;         /* send: shutdown(SHUT_WR) when the file is all sent (the FIN goes out at once) */
  int64_t off;          /* file offset of the next byte to move */
  uint64_t moved;       /* file bytes delivered (send) or written (receive) */
  uint64_t consumed;    /* bytes taken from the source (file or socket) */
  uint64_t t0, last_prog_ns, last_prog_bytes;
  uint64_t rate_moved;  /* `moved` when the pace at `bps` started (t0) */
  int prog_pending;     /* bytes moved that a progress report has not told yet */
  int pr, pw;           /* send-side splice pipe */
  size_t pcap, in_pipe;
  int file_eof;
  size_t copy_cap;      /* adaptive read size of the send copy loop */

  /* M_TLS: the connection's record layer (tlsrec.h) and this job's own buffer: the records
   * waiting for the socket (send), or the received bytes of a record not yet complete
   * (receive). The plaintext passes through the thread's buf. */
  tlsrec_t *tls;
  uint8_t *tbuf;
  size_t tcap, tlen, toff;
  uint64_t tplain;      /* send: file bytes in the records waiting in tbuf */
  int tls_done;         /* send: close_notify queued; receive: close_notify received */
  int tls_peer_fin;     /* receive: the peer's FIN came */
  int tls_update_owed;  /* receive: the peer asked for our KeyUpdate (TLS 1.3) */
};

struct ioth {
  engine_t *eng;
  pthread_t tid;
  int started;
  int nice;             /* added to the thread's nice value when it starts (set before) */
  atomic_int ktid;      /* the thread's kernel id once running; 0 before */
  int epfd, evfd;
  pthread_mutex_t mu;
  job_t *inbox;         /* guarded by mu */
  int stop;             /* guarded by mu */
  atomic_int cancel_pending;
  atomic_int wake_pending; /* the eventfd has been written and the thread has not read it yet */
  int load;             /* main thread: jobs assigned and not yet reported */

  /* Owned by the thread. */
  job_t *all;
  job_t *runq_head, *runq_tail;
  job_t *sleepers;
  uint64_t prog_due;    /* when the earliest held-back progress report is due; 0: none */
  char *buf;
  size_t buflen;
  int rpr, rpw;         /* receive-side splice pipe, shared by the thread's jobs */
  size_t rpcap;
};

struct engine {
  napi_env env;
  napi_threadsafe_function tsfn;
  int tsfn_refd;
  int nthreads;
  int io_nice;          /* see js_configure */
  int solo;             /* see js_configure */
  int stopped;
  ioth_t th[ALL_SLOTS];
  job_t *live;
  uint32_t next_id;
  double by_mech[M_COUNT];
  double jobs_total;
  int active;
  /* Descriptors the I/O threads keep between jobs: each started thread's epoll and eventfd, and
   * its receive pipe while it has one. Tests subtract them when they look for leaked fds. */
  atomic_int held_fds;
};

typedef struct {
  job_t *job;
  int kind;
  int err;
  int op;
  int mech;
  double bytes;
  double consumed;
  double size_at_start;
} msg_t;

static uint64_t mono_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void close_fd(int *fd) {
  if (*fd >= 0) {
    close(*fd);
    *fd = -1;
  }
}

static void wake(ioth_t *th) {
  /* A wake the thread has not taken yet covers this one too: it clears the flag before it
   * reads its inbox, stop and cancels, so whatever was put there before this call is seen.
   * In a burst of requests handled in one turn of the event loop, only the first writes. */
  if (atomic_exchange(&th->wake_pending, 1)) return;
  uint64_t one = 1;
  ssize_t r;
  do {
    r = write(th->evfd, &one, sizeof one);
  } while (r < 0 && errno == EINTR);
  /* EAGAIN means the counter is already non-zero: the thread will wake. */
}

/* ---------- I/O thread: queues ---------- */

static void runq_push(ioth_t *th, job_t *j) {
  if (j->queued) return;
  j->queued = 1;
  j->run_next = NULL;
  if (th->runq_tail) th->runq_tail->run_next = j;
  else th->runq_head = j;
  th->runq_tail = j;
}

static void all_link(ioth_t *th, job_t *j) {
  j->all_prev = NULL;
  j->all_next = th->all;
  if (th->all) th->all->all_prev = j;
  th->all = j;
}

static void all_unlink(ioth_t *th, job_t *j) {
  if (j->all_prev) j->all_prev->all_next = j->all_next;
  else th->all = j->all_next;
  if (j->all_next) j->all_next->all_prev = j->all_prev;
  j->all_prev = j->all_next = NULL;
}

static void post(engine_t *eng, msg_t *m) {
  if (napi_call_threadsafe_function(eng->tsfn, m, napi_tsfn_nonblocking) != napi_ok) free(m);
}

static void post_msg(ioth_t *th, job_t *j, int kind, int err, int op) {
  msg_t *m = calloc(1, sizeof *m);
  if (!m) return; /* out of memory: the job stays unreported until cleanup */
  m->job = j;
  m->kind = kind;
  m->err = err;
  m->op = op;
  m->mech = j->mech;
  m->bytes = (double)j->moved;
  m->consumed = (double)j->consumed;
  m->size_at_start = (double)j->size_at_start;
  post(th->eng, m);
}

static void maybe_progress(ioth_t *th, job_t *j, uint64_t now) {
  if (!j->want_progress || j->moved == j->last_prog_bytes) return;
  if (now - j->last_prog_ns < PROGRESS_NS) {
    /* Too soon: hold it back, but make sure it goes out once due, even if the
     * job then parks with nothing more to move (STAT must not show stale bytes). */
    uint64_t due = j->last_prog_ns + PROGRESS_NS;
    j->prog_pending = 1;
    if (!th->prog_due || due < th->prog_due) th->prog_due = due;
    return;
  }
  j->last_prog_ns = now;
  j->last_prog_bytes = j->moved;
  j->prog_pending = 0;
  post_msg(th, j, MSG_PROGRESS, 0, OP_NONE);
}

/* Send the held-back progress reports that are due. */
static void flush_progress(ioth_t *th) {
  if (!th->prog_due) return;
  uint64_t now = mono_ns();
  if (now < th->prog_due) return;
  th->prog_due = 0;
  for (job_t *j = th->all; j; j = j->all_next)
    if (j->prog_pending) maybe_progress(th, j, now);
}

/* ---------- I/O thread: pipes and buffers ---------- */

static size_t set_pipe_size(int fd, size_t want) {
  int got = fcntl(fd, F_SETPIPE_SZ, (int)want);
  if (got < 0) got = fcntl(fd, F_GETPIPE_SZ);
  return got > 0 ? (size_t)got : 4096;
}

static int new_pipe(int *r, int *w, size_t want, size_t *cap) {
  int p[2];
  if (pipe2(p, O_CLOEXEC | O_NONBLOCK) < 0) return -1;
  *r = p[0];
  *w = p[1];
  *cap = set_pipe_size(p[1], want);
  return 0;
}

/*
 * A send-side splice job owns its pipe from its first move to its end: bytes
 * the socket could not take yet wait in it. (A pool of idle pipes was tried;
 * creating one costs a few microseconds per transfer, not worth the state.)
 */
static int acquire_job_pipe(ioth_t *th, job_t *j) {
  return new_pipe(&j->pr, &j->pw, j->pipe_size, &j->pcap);
}

static void release_job_pipe(ioth_t *th, job_t *j) {
  close_fd(&j->pr);
  close_fd(&j->pw);
  j->in_pipe = 0;
}

static int ensure_rpipe(ioth_t *th, size_t want) {
  if (th->rpr < 0) {
    if (new_pipe(&th->rpr, &th->rpw, want, &th->rpcap) < 0) return -1;
    atomic_fetch_add(&th->eng->held_fds, 2);
    return 0;
  }
  if (th->rpcap < want) th->rpcap = set_pipe_size(th->rpw, want);
  return 0;
}

static void close_rpipe(ioth_t *th) {
  if (th->rpr < 0) return;
  close_fd(&th->rpr);
  close_fd(&th->rpw);
  atomic_fetch_sub(&th->eng->held_fds, 2);
}

static int ensure_buf(ioth_t *th, size_t want) {
  if (th->buflen >= want) return 0;
  char *b = realloc(th->buf, want);
  if (!b) return -1;
  th->buf = b;
  th->buflen = want;
  return 0;
}

/* ---------- I/O thread: moving bytes ---------- */

/*
 * One move of at most `want` bytes. Returns bytes moved (> 0), 0 at the end
 * (file EOF on send, the peer's FIN on receive) or -errno. Sets *op to the
 * failing call, and *full when the socket was seen full (park without
 * another try).
 */
static ssize_t move_sendfile(job_t *j, size_t want, int *op) {
  off_t o = j->off;
  ssize_t n = sendfile(j->sock, j->file, &o, want);
  if (n > 0) {
    j->off = o;
    j->moved += (uint64_t)n;
    j->consumed += (uint64_t)n;
    return n;
  }
  if (n == 0) return 0;
  *op = OP_SENDFILE;
  return -errno;
}

static ssize_t move_splice_send(ioth_t *th, job_t *j, size_t want, int *op) {
  if (j->pr < 0 && acquire_job_pipe(th, j) < 0) {
    *op = OP_PIPE;
    return -errno;
  }
  size_t target = want < j->pcap ? want : j->pcap;
  if (!j->file_eof && j->in_pipe < target) {
    loff_t o = j->off;
    ssize_t n = splice(j->file, &o, j->pw, NULL, target - j->in_pipe, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
    if (n > 0) {
      j->off = o;
      j->in_pipe += (size_t)n;
      j->consumed += (uint64_t)n;
    } else if (n == 0) {
      j->file_eof = 1;
    } else if (errno == EINTR) {
      return -EINTR;
    } else if (errno != EAGAIN || j->in_pipe == 0) {
      /* EAGAIN with an empty pipe cannot be "pipe full": treat it as a failure. */
      *op = OP_SPLICE_IN;
      return errno == EAGAIN ? -EIO : -errno;
    }
  }
  if (j->in_pipe == 0) return 0; /* file EOF and everything delivered */
  ssize_t m = splice(j->pr, NULL, j->sock, NULL, j->in_pipe, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
  if (m > 0) {
    j->in_pipe -= (size_t)m;
    j->moved += (uint64_t)m;
    return m;
  }
  *op = OP_SPLICE_OUT;
  return m == 0 ? -EPIPE : -errno;
}

static ssize_t move_copy_send(ioth_t *th, job_t *j, size_t want, int *op, int *full) {
  size_t cap = want < j->copy_cap ? want : j->copy_cap;
  ssize_t n = pread(j->file, th->buf, cap, j->off);
  if (n == 0) return 0;
  if (n < 0) {
    *op = OP_PREAD;
    return -errno;
  }
  ssize_t sent = 0;
  while (sent < n) {
    ssize_t m = send(j->sock, th->buf + sent, (size_t)(n - sent), MSG_NOSIGNAL | MSG_DONTWAIT);
    if (m > 0) {
      sent += m;
      continue;
    }
    if (m < 0 && errno == EINTR) continue;
    if (m < 0 && errno == EAGAIN) {
      /* Socket full: the unsent tail is read again later (page cache),
       * and later reads are sized to what the socket took. */
      size_t c = (size_t)sent;
      j->copy_cap = c > MIN_COPY_CAP ? c : MIN_COPY_CAP;
      if (sent == 0) return -EAGAIN;
      *full = 1;
      break;
    }
    if (sent == 0) {
      *op = OP_SEND;
      return m < 0 ? -errno : -EPIPE;
    }
    break; /* report what went; the next call meets the error again */
  }
  j->off += sent;
  j->moved += (uint64_t)sent;
  j->consumed += (uint64_t)sent;
  if (!*full && j->copy_cap < j->chunk) {
    size_t c = j->copy_cap * 2;
    j->copy_cap = c < j->chunk ? c : j->chunk;
  }
  return sent;
}

/* pwrite all `n` bytes of `buf` at the job's offset, moving the offset and the bytes moved.
 * 0, or -errno with *op = OP_PWRITE. */
static int write_at_job(job_t *j, const char *buf, size_t n, int *op) {
  size_t w = 0;
  while (w < n) {
    ssize_t k = pwrite(j->file, buf + w, n - w, j->off);
    if (k > 0) {
      w += (size_t)k;
      j->off += k;
      j->moved += (uint64_t)k;
      continue;
    }
    if (k < 0 && errno == EINTR) continue;
    *op = OP_PWRITE;
    return k < 0 ? -errno : -EIO;
  }
  return 0;
}

static ssize_t move_copy_recv(ioth_t *th, job_t *j, size_t want, int *op) {
  ssize_t n = recv(j->sock, th->buf, want, MSG_DONTWAIT);
  if (n == 0) return 0;
  if (n < 0) {
    *op = OP_RECV;
    return -errno;
  }
  j->consumed += (uint64_t)n;
  int r = write_at_job(j, th->buf, (size_t)n, op);
  return r < 0 ? r : n;
}

/* Read `left` bytes out of the thread's receive pipe and pwrite them at the job's offset.
 * 0 when all are in the file, or -errno (the pipe then holds what was not written). */
static int rescue_rpipe(ioth_t *th, job_t *j, size_t left, int *op) {
  while (left > 0) {
    ssize_t n = read(th->rpr, th->buf, left < th->buflen ? left : th->buflen);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      /* The pipe holds `left` bytes, so neither an end nor EAGAIN can come; if one did, it
       * must not read as "socket not ready" to the caller, which would park the job. */
      *op = OP_SPLICE_OUT;
      return n < 0 && errno != EAGAIN ? -errno : -EIO;
    }
    left -= (size_t)n;
    int r = write_at_job(j, th->buf, (size_t)n, op);
    if (r < 0) return r;
  }
  return 0;
}

/* Whether the socket's next byte is TCP urgent data (or urgent data announced and not yet in). */
static int at_urgent_mark(int sock) {
  int mark = 0;
  return ioctl(sock, SIOCATMARK, &mark) == 0 && mark;
}

static ssize_t move_splice_recv(ioth_t *th, job_t *j, size_t want, int *op) {
  if (ensure_rpipe(th, j->pipe_size) < 0) {
    *op = OP_PIPE;
    return -errno;
  }
  size_t len = want < th->rpcap ? want : th->rpcap;
  ssize_t n = splice(j->sock, NULL, th->rpw, NULL, len, SPLICE_F_MOVE | SPLICE_F_NONBLOCK);
  if (n <= 0) {
    int e = n < 0 ? errno : 0;
    /* splice stops at TCP urgent data (MSG_OOB) and never gets past it: it answers EAGAIN, or
     * 0 once the FIN is in, with the upload's rest still queued behind the mark. recv moves past
     * it, dropping the urgent byte as a read of the stream path does (unless SO_OOBINLINE), and
     * splice works again after it. */
    if ((e == 0 || e == EAGAIN) && at_urgent_mark(j->sock)) {
      if (ensure_buf(th, j->chunk) < 0) {
        *op = OP_ALLOC;
        return -ENOMEM;
      }
      return move_copy_recv(th, j, want < th->buflen ? want : th->buflen, op);
    }
    if (n == 0) return 0;
    *op = OP_SPLICE_IN;
    return -e;
  }
  j->consumed += (uint64_t)n;
  size_t left = (size_t)n;
  while (left > 0) {
    loff_t o = j->off;
    ssize_t k = splice(th->rpr, NULL, j->file, &o, left, SPLICE_F_MOVE);
    if (k > 0) {
      j->off = o;
      j->moved += (uint64_t)k;
      left -= (size_t)k;
      continue;
    }
    if (k < 0 && errno == EINTR) continue;
    /* EAGAIN here is the file's (the pipe is full of our bytes), never the socket's: returned
     * as is it would park the job on the socket with bytes lost in the pipe. */
    int e = k < 0 && errno != EAGAIN ? errno : EIO;
    *op = OP_SPLICE_OUT;
    /* A file that does not take splice (its filesystem has no splice_write) refuses the first
     * write: the socket's bytes are already in the pipe, so write them out by hand and copy
     * from here on, rather than fail an upload that the copy loop can do. */
    if ((e == EINVAL || e == ENOSYS || e == EOPNOTSUPP) && j->moved == 0 && ensure_buf(th, j->chunk) == 0) {
      int r = rescue_rpipe(th, j, left, op);
      if (r == 0) {
        j->mech = M_COPY;
        j->copy_cap = j->chunk;
        return n;
      }
      e = -r; /* and *op says where the rescue failed */
    }
    /* Bytes are stuck in the shared pipe: replace it. */
    close_rpipe(th);
    return -e;
  }
  return n;
}

/*
 * TLS send: read up to `want` file bytes, seal them into records of at most 16 KiB in the job's
 * buffer, and send; at the file's end one more record, the close_notify alert. Records the
 * socket did not take wait in the buffer, and a file byte counts as moved once its record is
 * all sent.
 */
static ssize_t move_tls_send(ioth_t *th, job_t *j, size_t want, int *op, int *full) {
  if (j->toff == j->tlen) {
    if (j->tls_done) return 0; /* the close_notify is out too */
    j->toff = j->tlen = 0;
    j->tplain = 0;
    size_t room = (j->tcap / (TLSREC_MAX_PLAIN + TLSREC_OVERHEAD)) * TLSREC_MAX_PLAIN;
    size_t cap = want < room ? want : room;
    if (cap > th->buflen) cap = th->buflen;
    ssize_t n = pread(j->file, th->buf, cap, j->off);
    if (n < 0) {
      *op = OP_PREAD;
      return -errno;
    }
    if (n == 0) {
      static const uint8_t close_notify[2] = {1, 0}; /* warning, close_notify */
      ssize_t r = tlsrec_seal(j->tls, 21, close_notify, 2, j->tbuf);
      if (r < 0) {
        *op = OP_TLS;
        return -EPROTO;
      }
      j->tlen = (size_t)r;
      j->tls_done = 1;
    } else {
      for (ssize_t o = 0; o < n; o += TLSREC_MAX_PLAIN) {
        size_t part = (size_t)(n - o) < TLSREC_MAX_PLAIN ? (size_t)(n - o) : TLSREC_MAX_PLAIN;
        ssize_t r = tlsrec_seal(j->tls, 23, (uint8_t *)th->buf + o, part, j->tbuf + j->tlen);
        if (r < 0) {
          *op = OP_TLS;
          return -EPROTO;
        }
        j->tlen += (size_t)r;
      }
      j->off += n;
      j->consumed += (uint64_t)n;
      j->tplain = (uint64_t)n;
    }
  }
  ssize_t m = send(j->sock, j->tbuf + j->toff, j->tlen - j->toff, MSG_NOSIGNAL | MSG_DONTWAIT);
  if (m < 0) {
    if (errno == EAGAIN || errno == EINTR) return -errno;
    *op = OP_SEND;
    return -errno;
  }
  if (m == 0) {
    *op = OP_SEND;
    return -EPIPE;
  }
  j->toff += (size_t)m;
  if (j->toff == j->tlen) {
    j->moved += j->tplain;
    j->tplain = 0;
  } else {
    *full = 1;
  }
  return m;
}

/* Write `len` bytes of plaintext at the job's offset. 0, or -errno with *op set. */
static int tls_put(job_t *j, const char *p, size_t len, int *op) {
  size_t w = 0;
  while (w < len) {
    ssize_t k = pwrite(j->file, p + w, len - w, j->off);
    if (k > 0) {
      w += (size_t)k;
      j->off += k;
      j->moved += (uint64_t)k;
      continue;
    }
    if (k < 0 && errno == EINTR) continue;
    *op = OP_PWRITE;
    return k < 0 ? -errno : -EIO;
  }
  return 0;
}

/*
 * TLS receive: read up to `want` bytes, open every complete record, and write their data to
 * the file in one pwrite per pass. The upload ends cleanly only with the peer's close_notify;
 * a FIN before it (or inside a record) is a truncated upload. A TLS 1.3 KeyUpdate moves the
 * read keys on (and owes ours when asked); any other record is an error.
 */
static ssize_t move_tls_recv(ioth_t *th, job_t *j, size_t want, int *op) {
  if (j->tls_done) return 0;
  ssize_t got = 0;
  if (!j->tls_peer_fin) {
    size_t room = j->tcap - j->tlen;
    if (room > want) room = want;
    if (room > 0) {
      ssize_t n = recv(j->sock, j->tbuf + j->tlen, room, MSG_DONTWAIT);
      if (n > 0) {
        j->tlen += (size_t)n;
        j->consumed += (uint64_t)n;
        got = n;
      } else if (n == 0) {
        j->tls_peer_fin = 1;
      } else if (errno == EINTR) {
        return -EINTR;
      } else if (errno != EAGAIN) {
        *op = OP_RECV;
        return -errno;
      }
    }
  }
  size_t pos = 0, plen = 0;
  int err = 0;
  while (j->tlen - pos >= TLSREC_HDR) {
    const uint8_t *rec = j->tbuf + pos;
    size_t len = ((size_t)rec[3] << 8) | rec[4];
    if (len > TLSREC_MAX_BODY) {
      err = -EBADMSG;
      *op = OP_TLS;
      break;
    }
    if (j->tlen - pos < TLSREC_HDR + len) break;
    if (th->buflen - plen < len) {
      if ((err = tls_put(j, th->buf, plen, op)) < 0) break;
      plen = 0;
    }
    int type = 0;
    ssize_t pl = tlsrec_open(j->tls, rec, len, (uint8_t *)th->buf + plen, &type);
    if (pl < 0) {
      err = -EBADMSG;
      *op = OP_TLS;
      break;
    }
    pos += TLSREC_HDR + len;
    const uint8_t *pt = (const uint8_t *)th->buf + plen;
    if (type == 23) {
      plen += (size_t)pl;
    } else if (type == 21 && pl == 2 && pt[1] == 0) {
      j->tls_done = 1; /* close_notify: what follows it is not ours to read */
      break;
    } else if (type == 21) {
      err = -ECONNRESET;
      *op = OP_TLS_ALERT;
      break;
    } else if (type == 22 && tlsrec_version(j->tls) == 13 && pl == 5 && pt[0] == 24 && pt[1] == 0 && pt[2] == 0 &&
               pt[3] == 1 && pt[4] <= 1) {
      if (pt[4] == 1) j->tls_update_owed = 1;
      if (tlsrec_update(j->tls, 0) < 0) {
        err = -EPROTO;
        *op = OP_TLS;
        break;
      }
    } else {
      err = -EPROTO; /* renegotiation, a second handshake, anything unexpected */
      *op = OP_TLS;
      break;
    }
  }
  if (pos > 0) {
    memmove(j->tbuf, j->tbuf + pos, j->tlen - pos);
    j->tlen -= pos;
  }
  if (plen > 0) {
    int e = tls_put(j, th->buf, plen, op);
    if (!err) err = e;
  }
  if (err) return err;
  if (j->tls_done) return 0;
  if (j->tls_peer_fin) {
    *op = OP_TLS_CLOSE;
    return -ECONNRESET;
  }
  if (got == 0 && pos == 0) return -EAGAIN;
  return got > 0 ? got : (ssize_t)pos;
}

/* After a clean TLS upload: our KeyUpdate if the peer asked for one, then our close_notify. */
static void tls_say_goodbye(job_t *j) {
  uint8_t out[2 * (TLSREC_OVERHEAD + 8)];
  size_t n = 0;
  if (j->tls_update_owed) {
    static const uint8_t ku[5] = {24, 0, 0, 1, 0}; /* KeyUpdate, update_not_requested */
    ssize_t r = tlsrec_seal(j->tls, 22, ku, sizeof ku, out);
    if (r < 0 || tlsrec_update(j->tls, 1) < 0) return;
    n += (size_t)r;
  }
  static const uint8_t close_notify[2] = {1, 0};
  ssize_t r = tlsrec_seal(j->tls, 21, close_notify, 2, out + n);
  if (r < 0) return;
  n += (size_t)r;
  /* A few dozen bytes into a socket that has taken nothing from us since the handshake. */
  while (send(j->sock, out, n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0 && errno == EINTR) {
  }
}

static ssize_t move_once(ioth_t *th, job_t *j, size_t want, int *op, int *full) {
  if (j->dir == DIR_SEND) {
    switch (j->mech) {
      case M_SENDFILE: return move_sendfile(j, want, op);
      case M_SPLICE: return move_splice_send(th, j, want, op);
      case M_TLS: return move_tls_send(th, j, want, op, full);
      default: return move_copy_send(th, j, want, op, full);
    }
  }
  switch (j->mech) {
    case M_SPLICE: return move_splice_recv(th, j, want, op);
    case M_TLS: return move_tls_recv(th, j, want, op);
    default: return move_copy_recv(th, j, want, op);
  }
}

/* ---------- I/O thread: job life ---------- */

static void drop_job_fds(ioth_t *th, job_t *j) {
  if (j->registered) {
    /* Always deregister: the caller's fd keeps the socket open, so closing
     * our dup alone would leave the registration (and this pointer) alive. */
    epoll_ctl(th->epfd, EPOLL_CTL_DEL, j->sock, NULL);
    j->registered = 0;
  }
  if (j->corked && j->sock >= 0) {
    /* Push the tail now (and leave the caller's socket as it was, for a stream fallback). */
    int zero = 0;
    setsockopt(j->sock, IPPROTO_TCP, TCP_CORK, &zero, sizeof zero);
    j->corked = 0;
  }
  close_fd(&j->sock);
  close_fd(&j->file);
  release_job_pipe(th, j);
  if (j->tls) {
    tlsrec_free(j->tls);
    j->tls = NULL;
  }
  free(j->tbuf);
  j->tbuf = NULL;
}

static int finish(ioth_t *th, job_t *j, int kind, int err, int op) {
  /* The end of a download: FIN now (it also pushes a corked tail), before the main thread
   * even hears of it. A failure here (the client already left) changes nothing. */
  if (kind == MSG_OK && j->fin && j->sock >= 0 && shutdown(j->sock, SHUT_WR) == 0)
    j->corked = 0; /* the FIN pushed the tail, and no stream will write after it: no uncork */
  if (kind == MSG_OK && j->mech == M_TLS && j->dir == DIR_RECV && j->sock >= 0) tls_say_goodbye(j);
  drop_job_fds(th, j);
  all_unlink(th, j);
  post_msg(th, j, kind, err, op); /* last touch of j on this thread */
  return STEP_DONE;
}

static int switch_to_copy(ioth_t *th, job_t *j) {
  release_job_pipe(th, j);
  j->file_eof = 0;
  if (ensure_buf(th, j->chunk) < 0) return -1;
  j->mech = M_COPY;
  j->copy_cap = j->chunk;
  return 0;
}

/*
 * Wait for the socket: join epoll on the first wait. Edge-triggered, and adding an fd that is
 * already ready queues its event at once, so nothing between the EAGAIN and here is lost.
 */
static int park_job(ioth_t *th, job_t *j) {
  if (!j->registered) {
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = (j->dir == DIR_SEND ? EPOLLOUT : EPOLLIN | EPOLLRDHUP) | EPOLLET;
    ev.data.ptr = j;
    if (epoll_ctl(th->epfd, EPOLL_CTL_ADD, j->sock, &ev) < 0) return finish(th, j, MSG_ERROR, errno, OP_EPOLL);
    j->registered = 1;
  }
  return STEP_PARK;
}

/* When the pace at `bps` lets the next byte go (bps > 0). */
static uint64_t pace_due(const job_t *j) {
  return j->t0 + (uint64_t)((double)(j->moved - j->rate_moved) * 1e9 / j->bps);
}

/*
 * A new rate from setRate (a user's limit re-divided as their transfers start and end): pace at
 * `bps` from where the old pace had got to, or from now when the job is behind it. Starting from
 * the old pace's due time keeps what the job sent ahead of it counted, so a change never lets
 * more through than the old rate allowed until then.
 */
static void retime(job_t *j, double bps) {
  uint64_t now = mono_ns(), from = now;
  if (j->bps > 0) {
    uint64_t due = pace_due(j);
    if (due > now) from = due;
  }
  j->t0 = from;
  j->rate_moved = j->moved;
  j->bps = bps;
}

static int step(ioth_t *th, job_t *j) {
  if (atomic_load(&j->cancel)) return finish(th, j, MSG_ABORTED, 0, OP_NONE);
  if (j->start_errno) return finish(th, j, MSG_ERROR, j->start_errno, j->start_op);
  uint64_t rate = atomic_exchange_explicit(&j->rate_req, 0, memory_order_relaxed);
  if (rate) retime(j, (double)rate);
  uint64_t budget = j->chunk > STEP_BUDGET ? j->chunk : STEP_BUDGET;
  uint64_t done = 0;
  for (;;) {
    size_t want = j->chunk;
    if (j->bps > 0) {
      uint64_t now = mono_ns();
      if (now > pace_due(j) + PACE_CREDIT_NS) {
        /* Behind the pace (a client that stopped reading, a busy thread): keep a quarter
         * second's credit, so that a stop does not come back as a burst at full speed. */
        j->t0 = now - PACE_CREDIT_NS;
        j->rate_moved = j->moved;
      }
      /* Pace in slices of about a tenth of a second's worth. */
      double s = j->bps / 10;
      size_t slice = s < 1 ? 1 : (s > (double)want ? want : (size_t)s);
      want = slice;
    }
    int op = OP_NONE, full = 0;
    ssize_t r = move_once(th, j, want, &op, &full);
    if (r == -EINTR) continue;
    if (r == -EAGAIN) {
      maybe_progress(th, j, mono_ns());
      return park_job(th, j);
    }
    if (r < 0) {
      int e = (int)-r;
      if ((e == EINVAL || e == ENOSYS || e == EOPNOTSUPP) && (j->mech == M_SENDFILE || j->mech == M_SPLICE) && j->moved == 0 &&
          j->consumed == 0) {
        /* This file or socket does not do sendfile/splice: copy instead. */
        if (switch_to_copy(th, j) == 0) continue;
        return finish(th, j, MSG_ERROR, ENOMEM, OP_ALLOC);
      }
      return finish(th, j, MSG_ERROR, e, op);
    }
    if (r == 0) return finish(th, j, MSG_OK, 0, OP_NONE);
    done += (uint64_t)r;
    if (j->bps > 0) {
      uint64_t now = mono_ns();
      uint64_t due = pace_due(j);
      if (due > now) {
        j->wake_ns = due;
        maybe_progress(th, j, now);
        return STEP_SLEEP;
      }
    }
    if (full) {
      maybe_progress(th, j, mono_ns());
      return park_job(th, j);
    }
    if (done >= budget) {
      maybe_progress(th, j, mono_ns());
      return STEP_AGAIN;
    }
    if (atomic_load_explicit(&j->cancel, memory_order_relaxed)) return finish(th, j, MSG_ABORTED, 0, OP_NONE);
  }
}

/*
 * What start() hands over unchecked, checked where it costs the event loop nothing (each of
 * these syscalls took about 1 µs on the 2-vCPU machine this was measured on, and a download
 * used to pay five of them on the loop): the socket is a non-blocking socket, the file is open
 * for the job's direction and is not a directory. Then the file's size at the start, TCP_CORK
 * and the buffer sizes. A failure is the job's start error, before any byte moved: JS retries
 * the transfer on streams (FTPD_ERR_NATIVE_START), as it did when start() threw it.
 */
static void check_job(job_t *j) {
  struct stat st;
  int fl = fcntl(j->sock, F_GETFL);
  if (fstat(j->sock, &st) < 0 || !S_ISSOCK(st.st_mode)) {
    j->start_errno = ENOTSOCK;
    return;
  }
  if (fl < 0 || !(fl & O_NONBLOCK)) {
    /* The I/O thread must never block on the socket; Node's are non-blocking. */
    j->start_errno = EINVAL;
    return;
  }
  int ffl = fcntl(j->file, F_GETFL);
  int acc = ffl & O_ACCMODE;
  if (ffl < 0 || (j->dir == DIR_SEND && acc == O_WRONLY) || (j->dir == DIR_RECV && acc == O_RDONLY) ||
      fstat(j->file, &st) < 0 || S_ISDIR(st.st_mode)) {
    j->start_errno = EBADF;
    return;
  }
  j->size_at_start = S_ISREG(st.st_mode) ? (int64_t)st.st_size : -1;
  /* splice(2) refuses O_APPEND files. pwrite takes them, but on Linux writes at the file's end
   * whatever the offset: for APPE, what is wanted (the job's offset then only counts). */
  if (j->dir == DIR_RECV && j->mech == M_SPLICE && (ffl & O_APPEND)) j->mech = M_COPY;
  /* Send: TCP_CORK while the job runs, so every segment leaves full (nginx's tcp_nopush);
   * the tail is pushed when the job uncorks at its end (drop_job_fds). Measured on loopback:
   * sendfile of 1 GiB took 17% less server CPU and ran 25% faster corked (bench/RESULTS.md). */
  if (j->cork) {
    int one = 1;
    j->corked = setsockopt(j->sock, IPPROTO_TCP, TCP_CORK, &one, sizeof one) == 0;
  }
  if (j->sndbuf > 0) setsockopt(j->sock, SOL_SOCKET, SO_SNDBUF, &j->sndbuf, sizeof j->sndbuf);
  if (j->rcvbuf > 0) setsockopt(j->sock, SOL_SOCKET, SO_RCVBUF, &j->rcvbuf, sizeof j->rcvbuf);
}

static void adopt(ioth_t *th, job_t *j) {
  j->t0 = j->last_prog_ns = mono_ns();
  all_link(th, j);
  check_job(j);
  /* A TLS job's plaintext passes through buf: room for a chunk and one more record. */
  size_t need = j->mech == M_TLS ? j->chunk + TLSREC_MAX_BODY : j->chunk;
  if (!j->start_errno && (j->mech == M_COPY || j->mech == M_TLS) && ensure_buf(th, need) < 0) {
    j->start_errno = ENOMEM;
    j->start_op = OP_ALLOC;
  }
  /* Not in epoll yet: most downloads of small files end in their first step, and a job
   * joins epoll only when it must wait (park_job). */
  runq_push(th, j);
}

static void *io_main(void *arg) {
  ioth_t *th = arg;
  struct epoll_event evs[MAX_EVENTS];
  /* Bulk work yields to the event loop when both want a CPU (js_configure). Linux keeps a nice
     value per thread; raising one's own needs no privilege. */
  pid_t ktid = (pid_t)syscall(SYS_gettid);
  /* A name for top -H, ps -L and /proc/PID/task/TID/comm (15 characters at most). */
  prctl(PR_SET_NAME, th == &th->eng->th[SOLO] ? "ftpdlib-io-solo" : "ftpdlib-io", 0, 0, 0);
  if (th->nice > 0) {
    errno = 0;
    int cur = getpriority(PRIO_PROCESS, (id_t)ktid);
    if (errno == 0) setpriority(PRIO_PROCESS, (id_t)ktid, cur + th->nice > 19 ? 19 : cur + th->nice);
  }
  atomic_store(&th->ktid, (int)ktid);
  for (;;) {
    int timeout = -1;
    if (th->runq_head) {
      timeout = 0;
    } else if (th->sleepers || th->prog_due) {
      uint64_t now = mono_ns(), first = th->prog_due ? th->prog_due : UINT64_MAX;
      for (job_t *s = th->sleepers; s; s = s->sleep_next)
        if (s->wake_ns < first) first = s->wake_ns;
      timeout = first <= now ? 0 : (int)((first - now + 999999) / 1000000);
    }
    int n = epoll_wait(th->epfd, evs, MAX_EVENTS, timeout);
    if (n < 0) n = 0; /* EINTR */
    int woken = 0;
    for (int i = 0; i < n; i++) {
      job_t *j = evs[i].data.ptr;
      if (!j) {
        woken = 1;
        continue;
      }
      if (!j->sleeping) runq_push(th, j);
    }
    if (woken) {
      uint64_t v;
      while (read(th->evfd, &v, sizeof v) < 0 && errno == EINTR) {
      }
      atomic_store(&th->wake_pending, 0); /* from here a wake() writes the eventfd again */
      pthread_mutex_lock(&th->mu);
      job_t *in = th->inbox;
      th->inbox = NULL;
      int stop = th->stop;
      pthread_mutex_unlock(&th->mu);
      /* start() pushes at the head: turn the list round so jobs start in the order they came.
         Newest first would make the first of a burst of requests wait for all the others. */
      job_t *fifo = NULL;
      while (in) {
        job_t *next = in->inbox_next;
        in->inbox_next = fifo;
        fifo = in;
        in = next;
      }
      while (fifo) {
        job_t *next = fifo->inbox_next;
        fifo->inbox_next = NULL;
        adopt(th, fifo);
        fifo = next;
      }
      if (stop) break;
      if (atomic_exchange(&th->cancel_pending, 0)) {
        /* Sleepers are handled below; everyone else gets a step, which ends them. */
        for (job_t *j = th->all; j; j = j->all_next)
          if (atomic_load(&j->cancel) && !j->sleeping) runq_push(th, j);
      }
    }
    flush_progress(th);
    if (th->sleepers) {
      uint64_t now = mono_ns();
      job_t **pp = &th->sleepers;
      while (*pp) {
        job_t *s = *pp;
        if (s->wake_ns <= now || atomic_load(&s->cancel)) {
          *pp = s->sleep_next;
          s->sleep_next = NULL;
          s->sleeping = 0;
          runq_push(th, s);
        } else {
          pp = &s->sleep_next;
        }
      }
    }
    job_t *q = th->runq_head;
    th->runq_head = th->runq_tail = NULL;
    while (q) {
      job_t *next = q->run_next;
      q->run_next = NULL;
      q->queued = 0;
      switch (step(th, q)) {
        case STEP_AGAIN:
          runq_push(th, q);
          break;
        case STEP_SLEEP:
          q->sleeping = 1;
          q->sleep_next = th->sleepers;
          th->sleepers = q;
          break;
        default:
          break;
      }
      q = next;
      if (q && atomic_load_explicit(&th->cancel_pending, memory_order_relaxed)) {
        /* A cancel is waiting: put the rest of this pass back on the queue
         * and go round, so a parked job is not left running behind a long pass. */
        while (q) {
          next = q->run_next;
          q->run_next = NULL;
          q->queued = 0;
          runq_push(th, q);
          q = next;
        }
      }
    }
  }

  /* Shutdown: close everything; the main thread frees the jobs. */
  pthread_mutex_lock(&th->mu);
  job_t *in = th->inbox;
  th->inbox = NULL;
  pthread_mutex_unlock(&th->mu);
  for (; in; in = in->inbox_next) {
    close_fd(&in->sock);
    close_fd(&in->file);
  }
  while (th->all) {
    job_t *j = th->all;
    drop_job_fds(th, j);
    all_unlink(th, j);
  }
  close_rpipe(th);
  free(th->buf);
  th->buf = NULL;
  th->buflen = 0;
  return NULL;
}

/* ---------- main thread: threads ---------- */

static int start_thread(ioth_t *th) {
  if (th->started) return 0;
  th->epfd = epoll_create1(EPOLL_CLOEXEC);
  if (th->epfd < 0) return -1;
  th->evfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (th->evfd < 0) goto fail;
  struct epoll_event ev;
  memset(&ev, 0, sizeof ev);
  ev.events = EPOLLIN;
  ev.data.ptr = NULL;
  if (epoll_ctl(th->epfd, EPOLL_CTL_ADD, th->evfd, &ev) < 0) goto fail;
  th->rpr = th->rpw = -1;
  th->inbox = NULL;
  th->stop = 0;
  th->nice = th == &th->eng->th[SOLO] ? 0 : th->eng->io_nice;
  atomic_store(&th->ktid, 0);
  atomic_store(&th->cancel_pending, 0);
  atomic_store(&th->wake_pending, 0);
  if (pthread_mutex_init(&th->mu, NULL) != 0) goto fail;
  /* The thread takes no signals: they belong to Node's threads. */
  sigset_t all, old;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  int rc = pthread_create(&th->tid, NULL, io_main, th);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (rc != 0) {
    pthread_mutex_destroy(&th->mu);
    errno = rc;
    goto fail;
  }
  th->started = 1;
  atomic_fetch_add(&th->eng->held_fds, 2);
  return 0;
fail: {
  int e = errno;
  close_fd(&th->evfd);
  close_fd(&th->epfd);
  errno = e;
  return -1;
}
}

static void engine_stop(engine_t *eng) {
  if (eng->stopped) return;
  eng->stopped = 1;
  for (int i = 0; i < ALL_SLOTS; i++) {
    ioth_t *th = &eng->th[i];
    if (!th->started) continue;
    pthread_mutex_lock(&th->mu);
    th->stop = 1;
    pthread_mutex_unlock(&th->mu);
    wake(th);
    pthread_join(th->tid, NULL);
    pthread_mutex_destroy(&th->mu);
    close_fd(&th->evfd);
    close_fd(&th->epfd);
    atomic_fetch_sub(&eng->held_fds, 2);
    th->started = 0;
  }
}

static void cleanup_hook(void *arg) {
  engine_t *eng = arg;
  engine_stop(eng);
  while (eng->live) {
    job_t *j = eng->live;
    eng->live = j->live_next;
    if (j->cb) napi_delete_reference(eng->env, j->cb);
    free(j);
  }
  eng->active = 0;
}

static void finalize_engine(napi_env env, void *data, void *hint) {
  engine_t *eng = data;
  if (!eng->stopped) {
    napi_remove_env_cleanup_hook(env, cleanup_hook, eng);
    cleanup_hook(eng);
  }
  free(eng);
}

/* ---------- main thread: messages ---------- */

static void call_js(napi_env env, napi_value unused, void *ctx, void *data) {
  msg_t *m = data;
  engine_t *eng = ctx;
  /* env is NULL when the function is being torn down: drop the message. */
  if (!env || eng->stopped) {
    free(m);
    return;
  }
  job_t *j = m->job;
  napi_value cb, undef, argv[8];
  if (napi_get_reference_value(env, j->cb, &cb) != napi_ok || !cb) cb = NULL;
  if (m->kind != MSG_PROGRESS) {
    /* Final message: forget the job before calling out, so a throwing
     * callback cannot leave it half-released. */
    if (j->live_prev) j->live_prev->live_next = j->live_next;
    else eng->live = j->live_next;
    if (j->live_next) j->live_next->live_prev = j->live_prev;
    eng->active--;
    j->th->load--;
    if (m->mech >= 0 && m->mech < M_COUNT) eng->by_mech[m->mech] += 1;
    if (eng->active == 0 && eng->tsfn_refd) {
      napi_unref_threadsafe_function(env, eng->tsfn);
      eng->tsfn_refd = 0;
    }
    napi_delete_reference(env, j->cb);
    free(j);
  }
  if (cb) {
    napi_get_undefined(env, &undef);
    napi_create_int32(env, m->kind, &argv[0]);
    napi_create_double(env, m->bytes, &argv[1]);
    napi_create_int32(env, m->err, &argv[2]);
    napi_create_string_utf8(env, op_names[m->op], NAPI_AUTO_LENGTH, &argv[3]);
    napi_create_string_utf8(env, m->err ? strerror(m->err) : "", NAPI_AUTO_LENGTH, &argv[4]);
    napi_create_int32(env, m->mech, &argv[5]);
    napi_create_double(env, m->consumed, &argv[6]);
    napi_create_double(env, m->size_at_start, &argv[7]);
    napi_call_function(env, undef, cb, 8, argv, NULL);
  }
  free(m);
}

/* ---------- main thread: JS API ---------- */

static engine_t *get_engine(napi_env env) {
  void *p = NULL;
  napi_get_instance_data(env, &p);
  return p;
}

static napi_value throw_start(napi_env env, const char *what, int err) {
  char msg[256];
  snprintf(msg, sizeof msg, "native engine could not start: %s: %s", what, strerror(err));
  napi_throw_error(env, "FTPD_ERR_NATIVE_START", msg);
  return NULL;
}

static int64_t arg_i64(napi_env env, napi_value v, int64_t dflt) {
  int64_t x;
  return napi_get_value_int64(env, v, &x) == napi_ok ? x : dflt;
}

static double arg_f64(napi_env env, napi_value v, double dflt) {
  double x;
  return napi_get_value_double(env, v, &x) == napi_ok ? x : dflt;
}

static size_t clamp_size(int64_t v) {
  if (v < (int64_t)MIN_SIZE) return MIN_SIZE;
  if (v > (int64_t)MAX_SIZE) return MAX_SIZE;
  return (size_t)v;
}

/* A Buffer property of `o` of exactly `len` bytes (any length when len is 0), or NULL. */
static const uint8_t *buf_prop(napi_env env, napi_value o, const char *k, size_t len, size_t *got) {
  napi_value v;
  bool is = false;
  void *data = NULL;
  size_t n = 0;
  if (napi_get_named_property(env, o, k, &v) != napi_ok || napi_is_buffer(env, v, &is) != napi_ok || !is) return NULL;
  if (napi_get_buffer_info(env, v, &data, &n) != napi_ok || (len && n != len)) return NULL;
  if (got) *got = n;
  return data ? data : (const uint8_t *)"";
}

static int64_t num_prop(napi_env env, napi_value o, const char *k, int64_t dflt) {
  napi_value v;
  return napi_get_named_property(env, o, k, &v) == napi_ok ? arg_i64(env, v, dflt) : dflt;
}

/*
 * The record layer for a TLS job from JS's description (src/native/index.ts, TlsRecordState):
 * { version: 12|13, aead: 0|1|2, sha384: 0|1, readKey, readIv, writeKey, writeIv,
 *   readSecret?, writeSecret? (TLS 1.3), readSeq, writeSeq }. NULL when it does not describe one.
 */
static tlsrec_t *tls_from_js(napi_env env, napi_value o) {
  int version = (int)num_prop(env, o, "version", 0), aead = (int)num_prop(env, o, "aead", -1);
  int sha384 = (int)num_prop(env, o, "sha384", 0);
  int64_t rseq = num_prop(env, o, "readSeq", -1), wseq = num_prop(env, o, "writeSeq", -1);
  size_t klen = aead == TLSREC_AES128GCM ? 16 : 32, ivlen = (version == 12 && aead != TLSREC_CHACHA20) ? 4 : 12;
  size_t hlen = sha384 ? 48 : 32;
  tlsrec_keys_t rd = {0}, wr = {0};
  rd.key = buf_prop(env, o, "readKey", klen, NULL);
  rd.iv = buf_prop(env, o, "readIv", ivlen, NULL);
  wr.key = buf_prop(env, o, "writeKey", klen, NULL);
  wr.iv = buf_prop(env, o, "writeIv", ivlen, NULL);
  if (!rd.key || !rd.iv || !wr.key || !wr.iv || rseq < 0 || wseq < 0) return NULL;
  if (version == 13) {
    rd.secret = buf_prop(env, o, "readSecret", hlen, NULL);
    wr.secret = buf_prop(env, o, "writeSecret", hlen, NULL);
    if (!rd.secret || !wr.secret) return NULL;
  }
  rd.seq = (uint64_t)rseq;
  wr.seq = (uint64_t)wseq;
  return tlsrec_new(version, aead, sha384, &rd, &wr);
}

/*
 * start(sockFd, fileFd, offset, direction, mechanism, chunk, pipeSize,
 *       bytesPerSecond, sndbuf, rcvbuf, wantProgress, callback[, cork[, fin[, tlsState[, early]]]]) -> job id
 * callback(kind, bytes, errno, syscall, errorText, mechanism, consumed, sizeAtStart)
 */
static napi_value js_start(napi_env env, napi_callback_info info) {
  engine_t *eng = get_engine(env);
  size_t argc = 16;
  napi_value argv[16];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  napi_valuetype t;
  if (argc < 12 || napi_typeof(env, argv[11], &t) != napi_ok || t != napi_function) {
    napi_throw_type_error(env, NULL, "start: 12 arguments expected, the last a function");
    return NULL;
  }
  if (!eng || eng->stopped) return throw_start(env, "engine stopped", ESHUTDOWN);
  int sock_in = (int)arg_i64(env, argv[0], -1);
  int file_in = (int)arg_i64(env, argv[1], -1);
  int64_t offset = arg_i64(env, argv[2], -1);
  int dir = (int)arg_i64(env, argv[3], -1);
  int mech = (int)arg_i64(env, argv[4], -1);
  size_t chunk = clamp_size(arg_i64(env, argv[5], 0));
  size_t pipe_size = clamp_size(arg_i64(env, argv[6], 0));
  double bps = arg_f64(env, argv[7], 0);
  int sndbuf = (int)arg_i64(env, argv[8], 0);
  int rcvbuf = (int)arg_i64(env, argv[9], 0);
  bool want_progress = false;
  napi_get_value_bool(env, argv[10], &want_progress);
  bool cork = false; /* optional 13th argument */
  if (argc >= 13) napi_get_value_bool(env, argv[12], &cork);
  bool fin = false; /* optional 14th: send, on success shutdown(SHUT_WR) before reporting */
  if (argc >= 14) napi_get_value_bool(env, argv[13], &fin);
  if (sock_in < 0 || file_in < 0 || offset < 0 || (dir != DIR_SEND && dir != DIR_RECV) || mech < 0 ||
      mech >= M_COUNT || !(bps >= 0)) {
    napi_throw_range_error(env, NULL, "start: bad argument");
    return NULL;
  }
  if (dir == DIR_RECV && mech == M_SENDFILE) mech = M_COPY;
  /* M_TLS: the 15th argument describes the record layer, the optional 16th holds bytes already
   * read from the socket (records that came in behind the handshake). */
  tlsrec_t *tls = NULL;
  const uint8_t *early = NULL;
  size_t early_len = 0, tcap = 0;
  if (mech == M_TLS) {
    napi_valuetype tt;
    if (!tlsrec_available()) return throw_start(env, "TLS records (no EVP functions in this process)", ENOSYS);
    if (argc < 15 || napi_typeof(env, argv[14], &tt) != napi_ok || tt != napi_object || !(tls = tls_from_js(env, argv[14]))) {
      napi_throw_range_error(env, NULL, "start: a TLS job needs its record state");
      return NULL;
    }
    if (argc >= 16) {
      bool is = false;
      if (napi_is_buffer(env, argv[15], &is) == napi_ok && is) {
        void *d = NULL;
        napi_get_buffer_info(env, argv[15], &d, &early_len);
        early = d;
      }
    }
    if (early_len > 0 && dir == DIR_SEND) early_len = 0; /* a download never reads the socket */
    /* Receive: one chunk and one more whole record; send: a chunk's records. */
    tcap = dir == DIR_RECV ? chunk + TLSREC_HDR + TLSREC_MAX_BODY
                                  : ((chunk + TLSREC_MAX_PLAIN - 1) / TLSREC_MAX_PLAIN + 1) * (TLSREC_MAX_PLAIN + TLSREC_OVERHEAD);
    if (early_len > tcap) tcap = early_len + TLSREC_HDR + TLSREC_MAX_BODY;
    uint8_t *tb = malloc(tcap);
    if (!tb) {
      tlsrec_free(tls);
      return throw_start(env, "TLS buffer", ENOMEM);
    }
    if (early_len) memcpy(tb, early, early_len);
    early = tb; /* handed to the job below */
  }

  int sock = -1, file = -1;
#define TLS_DROP() \
  do { \
    tlsrec_free(tls); \
    free((void *)(mech == M_TLS ? early : NULL)); \
  } while (0)
  /* Only the dups are made here: checking what they are, the file's size, TCP_CORK and the
   * buffer sizes are the I/O thread's first step (check_job), off the event loop. */
  sock = fcntl(sock_in, F_DUPFD_CLOEXEC, 3);
  if (sock < 0) {
    int e = errno;
    TLS_DROP();
    return throw_start(env, "dup(socket)", e);
  }
  file = fcntl(file_in, F_DUPFD_CLOEXEC, 3);
  if (file < 0) {
    int e = errno;
    close(sock);
    TLS_DROP();
    return throw_start(env, "dup(file)", e);
  }

  /* A job that starts while no other runs goes to the solo thread, at the event loop's own
   * priority: one big transfer then moves as fast as any other process would move it, however
   * busy the rest of the machine. Otherwise the least loaded of the (lower priority) threads. */
  ioth_t *th = &eng->th[0];
  if (eng->solo && eng->io_nice > 0 && eng->active == 0) {
    th = &eng->th[SOLO];
  } else {
    for (int i = 1; i < eng->nthreads; i++)
      if (eng->th[i].load < th->load) th = &eng->th[i];
  }
  if (start_thread(th) < 0) {
    int e = errno;
    close(sock);
    close(file);
    TLS_DROP();
    return throw_start(env, "I/O thread", e);
  }

  job_t *j = calloc(1, sizeof *j);
  if (!j) {
    close(sock);
    close(file);
    TLS_DROP();
    return throw_start(env, "job", ENOMEM);
  }
  if (napi_create_reference(env, argv[11], 1, &j->cb) != napi_ok) {
    free(j);
    close(sock);
    close(file);
    TLS_DROP();
    return throw_start(env, "callback", EINVAL);
  }
#undef TLS_DROP
  if (mech == M_TLS) {
    j->tls = tls;
    j->tbuf = (uint8_t *)early;
    j->tcap = tcap;
    j->tlen = early_len;
  }
  j->id = ++eng->next_id;
  if (j->id == 0) j->id = ++eng->next_id;
  j->th = th;
  atomic_init(&j->cancel, 0);
  atomic_init(&j->rate_req, 0);
  j->sock = sock;
  j->cork = cork && dir == DIR_SEND;
  j->sndbuf = sndbuf;
  j->rcvbuf = rcvbuf;
  j->fin = fin && dir == DIR_SEND;
  j->file = file;
  j->dir = dir;
  j->mech = mech;
  j->want_progress = want_progress;
  j->chunk = chunk;
  j->pipe_size = pipe_size;
  j->bps = bps;
  j->size_at_start = -1; /* check_job */
  j->off = offset;
  j->pr = j->pw = -1;
  j->copy_cap = chunk;

  j->live_prev = NULL;
  j->live_next = eng->live;
  if (eng->live) eng->live->live_prev = j;
  eng->live = j;
  th->load++;
  eng->active++;
  eng->jobs_total += 1;
  if (!eng->tsfn_refd) {
    napi_ref_threadsafe_function(env, eng->tsfn);
    eng->tsfn_refd = 1;
  }

  pthread_mutex_lock(&th->mu);
  j->inbox_next = th->inbox;
  th->inbox = j;
  pthread_mutex_unlock(&th->mu);
  wake(th);

  napi_value id;
  napi_create_uint32(env, j->id, &id);
  return id;
}

/* The running job `id` (main thread), or NULL when it has ended or never was. */
static job_t *live_job(engine_t *eng, uint32_t id) {
  for (job_t *j = eng ? eng->live : NULL; j; j = j->live_next)
    if (j->id == id) return j;
  return NULL;
}

/* cancel(id) -> true when the job was still running. */
static napi_value js_cancel(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  uint32_t id = 0;
  job_t *j = argc >= 1 && napi_get_value_uint32(env, argv[0], &id) == napi_ok ? live_job(get_engine(env), id) : NULL;
  if (j && !atomic_exchange(&j->cancel, 1)) {
    atomic_store(&j->th->cancel_pending, 1);
    wake(j->th);
  }
  napi_value r;
  napi_get_boolean(env, j != NULL, &r);
  return r;
}

/*
 * setRate(id, bytesPerSecond) -> true when the job was still running. The I/O thread takes the
 * new rate at the job's next step, so nothing needs waking: a paced job steps after each slice
 * (a tenth of a second's worth of bytes), or when its socket takes bytes again. Whole bytes per
 * second, at least 1.
 */
static napi_value js_set_rate(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  uint32_t id = 0;
  double bps = 0;
  job_t *j = NULL;
  if (argc >= 2 && napi_get_value_uint32(env, argv[0], &id) == napi_ok && napi_get_value_double(env, argv[1], &bps) == napi_ok &&
      bps >= 1 && bps <= 1e15)
    j = live_job(get_engine(env), id);
  if (j) atomic_store_explicit(&j->rate_req, (uint64_t)bps, memory_order_relaxed);
  napi_value r;
  napi_get_boolean(env, j != NULL, &r);
  return r;
}

static void set_num(napi_env env, napi_value obj, const char *k, double v) {
  napi_value x;
  napi_create_double(env, v, &x);
  napi_set_named_property(env, obj, k, x);
}

/* stats() -> { sendfile, splice, copy, active, jobs, threads, heldFds, ioThreadIds } */
static napi_value js_stats(napi_env env, napi_callback_info info) {
  engine_t *eng = get_engine(env);
  napi_value o;
  napi_create_object(env, &o);
  int started = 0;
  for (int i = 0; i < ALL_SLOTS; i++) started += eng->th[i].started;
  set_num(env, o, "sendfile", eng->by_mech[M_SENDFILE]);
  set_num(env, o, "splice", eng->by_mech[M_SPLICE]);
  set_num(env, o, "copy", eng->by_mech[M_COPY]);
  set_num(env, o, "tls", eng->by_mech[M_TLS]);
  set_num(env, o, "active", eng->active);
  set_num(env, o, "jobs", eng->jobs_total);
  set_num(env, o, "threads", started);
  set_num(env, o, "heldFds", atomic_load(&eng->held_fds));
  /* The started I/O threads' kernel ids (/proc/self/task/ID), for tests and diagnostics. */
  napi_value ids;
  napi_create_array(env, &ids);
  uint32_t k = 0;
  for (int i = 0; i < ALL_SLOTS; i++) {
    int id = eng->th[i].started ? atomic_load(&eng->th[i].ktid) : 0;
    if (id > 0) {
      napi_value v;
      napi_create_int32(env, id, &v);
      napi_set_element(env, ids, k++, v);
    }
  }
  napi_set_named_property(env, o, "ioThreadIds", ids);
  return o;
}

/*
 * configure(threads[, ioNice[, solo]]) -> threads in effect. threads and ioNice only before the
 * first job starts a thread. ioNice (0..19, default 10): how much lower the I/O threads'
 * scheduling priority is than the thread that starts them (setpriority on their own thread id).
 * On a machine short of CPU the event loop, which serves every session's commands, then gets a
 * core before the threads moving file bytes (src/native/bench/RESULTS.md, "The I/O thread's
 * priority"). solo (0 or 1, default 1; any time): a job that starts while no other runs goes to
 * th[SOLO], which keeps the starting thread's priority, so that one big transfer is not left a
 * tenth of a core by busy neighbours in the same scheduling group ("The solo thread").
 */
static napi_value js_configure(napi_env env, napi_callback_info info) {
  engine_t *eng = get_engine(env);
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int started = 0;
  for (int i = 0; i < ALL_SLOTS; i++) started += eng->th[i].started;
  int64_t n = argc >= 1 ? arg_i64(env, argv[0], 0) : 0;
  if (!started && n >= 1) eng->nthreads = n > MAX_THREADS ? MAX_THREADS : (int)n;
  int64_t nice = argc >= 2 ? arg_i64(env, argv[1], -1) : -1;
  if (!started && nice >= 0 && nice <= 19) eng->io_nice = (int)nice;
  int64_t solo = argc >= 3 ? arg_i64(env, argv[2], -1) : -1;
  if (solo == 0 || solo == 1) eng->solo = (int)solo;
  napi_value r;
  napi_create_int32(env, eng->nthreads, &r);
  return r;
}

/*
 * A socket switch JS sets on a descriptor it owns: (fd) turns it on, (fd, on) sets it as told
 * when `from_arg`. Returns whether setsockopt succeeded.
 */
static napi_value set_socket_flag(napi_env env, napi_callback_info info, int level, int name, bool from_arg) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd = -1;
  bool on = true;
  bool ok = false;
  if (argc >= 1 && napi_get_value_int32(env, argv[0], &fd) == napi_ok && fd >= 0 &&
      (!from_arg || (argc >= 2 && napi_get_value_bool(env, argv[1], &on) == napi_ok))) {
    int v = on ? 1 : 0;
    ok = setsockopt(fd, level, name, &v, sizeof v) == 0;
  }
  napi_value r;
  napi_get_boolean(env, ok, &r);
  return r;
}

/* setOobInline(fd) -> boolean: urgent data (Telnet "ABOR" with MSG_OOB) stays in-band. */
static napi_value js_set_oob_inline(napi_env env, napi_callback_info info) {
  return set_socket_flag(env, info, SOL_SOCKET, SO_OOBINLINE, false);
}

/*
 * setCork(fd, on) -> whether TCP_CORK is now `on` on the socket. The control connection's last
 * reply is written corked right before close(2), which then sends it and the FIN in one segment
 * (tcp_send_fin tacks the FIN onto a segment not yet sent): one packet, one wake-up of the
 * client fewer per session.
 */
static napi_value js_set_cork(napi_env env, napi_callback_info info) {
  return set_socket_flag(env, info, IPPROTO_TCP, TCP_CORK, true);
}

/*
 * The first argument of a call that takes a descriptor (and `want` - 1 more, left in argv[1..],
 * undefined when missing): the descriptor, or -1 when it is missing or not a number >= 0.
 */
static int32_t fd_arg(napi_env env, napi_callback_info info, size_t want, napi_value *argv) {
  size_t argc = want;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  int32_t fd = -1;
  if (argc < want || napi_get_value_int32(env, argv[0], &fd) != napi_ok) return -1;
  return fd;
}

/*
 * setCongestion(fd, name) -> whether the TCP socket now uses congestion control `name`
 * (TCP_CONGESTION: ENOENT when the kernel has no such algorithm, EPERM when it is not in
 * net.ipv4.tcp_allowed_congestion_control and the process lacks CAP_NET_ADMIN). On a listener
 * it is what the connections it accepts start with (Linux copies a choice made by setsockopt).
 * congestionOf(fd) -> the algorithm in use, or null (not a TCP socket, or no such call).
 */
static napi_value js_set_congestion(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  int32_t fd = fd_arg(env, info, 2, argv);
  char name[32];
  size_t len = 0;
  bool ok = false;
  if (fd >= 0 && napi_get_value_string_utf8(env, argv[1], name, sizeof name, &len) == napi_ok && len > 0 && len < 16) {
#ifdef TCP_CONGESTION
    ok = setsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, name, (socklen_t)len) == 0;
#endif
  }
  napi_value r;
  napi_get_boolean(env, ok, &r);
  return r;
}

static napi_value js_congestion_of(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd = fd_arg(env, info, 1, argv);
  napi_value r;
  napi_get_null(env, &r);
#ifdef TCP_CONGESTION
  char name[32] = {0};
  socklen_t len = sizeof name - 1;
  if (fd >= 0 && getsockopt(fd, IPPROTO_TCP, TCP_CONGESTION, name, &len) == 0 && len > 0)
    napi_create_string_utf8(env, name, strnlen(name, sizeof name - 1), &r);
#else
  (void)fd;
#endif
  return r;
}

/*
 * trimMemory() -> 1 if glibc gave memory back to the kernel, 0 if it had none to give, -1
 * where there is no malloc_trim (another C library). malloc_trim(0) releases the free
 * pages inside every arena (madvise DONTNEED), not only the top of the heap: after a burst
 * of connections the short-lived 64 KiB read buffers leave free holes between long-lived
 * handles, resident until then.
 */
static napi_value js_trim_memory(napi_env env, napi_callback_info info) {
  (void)info;
  int r = -1;
#if defined(__GLIBC__)
  r = malloc_trim(0);
#endif
  napi_value v;
  napi_create_int32(env, r, &v);
  return v;
}

/*
 * socketReset(fd) -> boolean: the peer reset the connection (TCP state CLOSE, or a
 * pending socket error). libuv can report a reset that arrives with the last data as a
 * plain end of stream; checked when 'end' arrives (state CLOSE_WAIT after a clean FIN),
 * this tells a cut upload from a complete one.
 */
static napi_value js_socket_reset(napi_env env, napi_callback_info info) {
  napi_value argv[1];
  int32_t fd = fd_arg(env, info, 1, argv);
  bool reset = false;
  if (fd >= 0) {
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err != 0) reset = true;
    struct tcp_info ti;
    socklen_t tlen = sizeof ti;
    if (!reset && getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &tlen) == 0 && ti.tcpi_state == TCP_CLOSE) reset = true;
  }
  napi_value r;
  napi_get_boolean(env, reset, &r);
  return r;
}

/* ---------- filesystem operations jailed under a root (libuv pool) ---------- */

/*
 * fsop(op, root, rel, flags, mode, cb) runs one filesystem operation on a libuv
 * pool thread (napi_async_work) and calls cb(errno, fd, stat) with stat an array
 * [mode, size, mtimeMs, uid, gid, nlink, dev, ino] (fstat of the result), or
 * null. errno 0 means success; a negative errno is a final answer (only -ENOENT
 * for FSOP_STAT, when the parent resolves beneath the root and the last segment
 * is not there at all); a positive one means "not done here": the caller then
 * takes its portable path, which decides the real answer (a symlink leaving the
 * root, a dangling link, a missing parent...). So the semantics stay those of
 * the portable path.
 *
 * `rel` is resolved under `root` with openat2(RESOLVE_BENEATH |
 * RESOLVE_NO_MAGICLINKS): no "..", absolute symlink or magic link can leave the
 * root, and the check and the open are one system call (no window between them).
 * Absolute symlinks that stay inside the root fail here with EXDEV and are left
 * to the portable path. Kernels before 5.6 answer ENOSYS.
 *
 *   FSOP_STAT   follow the path, fstat it (no fd returned)
 *   FSOP_READ   open a regular file read-only
 *   FSOP_WRITE  open or create a regular file write-only; flags may add O_CREAT,
 *               O_TRUNC, O_APPEND (APPE: every write lands at the end, so two
 *               uploads appending at once do not overwrite each other; the engine
 *               receives into such a file by copy, as splice refuses it), or
 *               O_CREAT | O_EXCL (create only: anything already there, a symlink
 *               included, is left to the portable path, which answers EEXIST)
 *   FSOP_CLOSE  close(fd) with fd in `flags`
 *
 * A path is first opened O_PATH (no side effect, whatever it is) and fstat'ed,
 * and only a regular file is then opened for real, so a FIFO or a device is
 * never opened. The real open must find the same inode, or it is undone.
 */
enum { FSOP_STAT = 0, FSOP_READ = 1, FSOP_WRITE = 2, FSOP_CLOSE = 3 };

#ifndef SYS_openat2
#define SYS_openat2 437
#endif
#ifndef RESOLVE_BENEATH
struct open_how {
  uint64_t flags;
  uint64_t mode;
  uint64_t resolve;
};
#define RESOLVE_NO_MAGICLINKS 0x02
#define RESOLVE_BENEATH 0x08
#endif
#ifndef RESOLVE_CACHED
#define RESOLVE_CACHED 0x20
#endif

typedef struct {
  napi_async_work work;
  napi_ref cb;
  int op;
  char *root, *rel;
  int flags, mode;
  int err, fd;
  struct stat st;
  int have_st;
} fsop_t;

static int openat2_how(int dirfd, const char *rel, int flags, int mode, uint64_t resolve) {
  struct open_how how;
  memset(&how, 0, sizeof how);
  how.flags = (uint64_t)(flags | O_CLOEXEC);
  how.mode = (flags & O_CREAT) ? (uint64_t)mode : 0;
  how.resolve = resolve;
  long r;
  do {
    r = syscall(SYS_openat2, dirfd, rel, &how, sizeof how);
  } while (r < 0 && errno == EINTR);
  return (int)r;
}

#define BENEATH (RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS)

static int openat2_beneath(int dirfd, const char *rel, int flags, int mode) {
  return openat2_how(dirfd, rel, flags, mode, BENEATH);
}

/*
 * Opens of what should be a regular file add O_NONBLOCK, which a regular file ignores: a FIFO
 * swapped in after the check would otherwise make open(2) wait for its other end, holding a
 * pool thread (or, for fsopCached, the event loop). Cleared once the fd is known regular.
 * `flags` are those of the open: F_SETFL changes only O_APPEND, O_ASYNC, O_DIRECT, O_NOATIME
 * and O_NONBLOCK, so no F_GETFL is needed first (one syscall less per open).
 */
static void clear_nonblock(int fd, int flags) {
  fcntl(fd, F_SETFL, flags & ~O_NONBLOCK);
}

/*
 * Open `rel` (already known to be the regular file `want`) with `flags`, resolved with
 * BENEATH plus `resolve` (RESOLVE_CACHED for fsopCached); -errno on failure.
 */
static int reopen_same(int rootfd, const char *rel, int flags, int mode, uint64_t resolve, const struct stat *want,
                       struct stat *got) {
  /* O_TRUNC only once the file is known to be the one checked: a file swapped in meanwhile
   * must not be cut before the check below undoes the open. */
  int fd = openat2_how(rootfd, rel, (flags & ~O_TRUNC) | O_NOCTTY | O_NONBLOCK, mode, BENEATH | resolve);
  if (fd < 0) return -errno;
  if (fstat(fd, got) < 0 || !S_ISREG(got->st_mode) || got->st_dev != want->st_dev || got->st_ino != want->st_ino) {
    close(fd); /* replaced meanwhile */
    return -ESTALE;
  }
  if (flags & O_TRUNC) { /* also at size 0: the open's O_TRUNC set mtime, as the stream path does */
    if (ftruncate(fd, 0) < 0) {
      int e = errno;
      close(fd);
      return -e;
    }
    got->st_size = 0;
  }
  clear_nonblock(fd, flags);
  return fd;
}

/*
 * Whether `rel` is missing in the plainest way: its parent resolves beneath the
 * root and its last segment is not there at all (not even a dangling symlink,
 * which the portable path follows to tell ENOENT from a jail escape).
 */
static int missing_beneath(int rootfd, const char *rel) {
  const char *slash = strrchr(rel, '/');
  int dirfd = rootfd;
  const char *name = rel;
  if (slash) {
    size_t n = (size_t)(slash - rel);
    char *parent = malloc(n + 1);
    if (!parent) return 0;
    memcpy(parent, rel, n);
    parent[n] = 0;
    dirfd = openat2_beneath(rootfd, parent, O_PATH | O_DIRECTORY, 0);
    free(parent);
    if (dirfd < 0) return 0;
    name = slash + 1;
  }
  struct stat st;
  if (!name[0]) {
    if (dirfd != rootfd) close(dirfd);
    return 0;
  }
  int missing = fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) < 0 && errno == ENOENT;
  if (dirfd != rootfd) close(dirfd);
  return missing;
}

static void fsop_execute(napi_env env, void *data) {
  fsop_t *r = data;
  r->fd = -1;
  if (r->op == FSOP_CLOSE) {
    r->err = close(r->flags) < 0 && errno != EINTR ? errno : 0;
    return;
  }
  int rootfd = open(r->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (rootfd < 0) {
    r->err = errno;
    return;
  }
  struct stat pst;
  int pfd = openat2_beneath(rootfd, r->rel, O_PATH, 0);
  if (pfd < 0) {
    int e = errno;
    if (r->op == FSOP_STAT && e == ENOENT && missing_beneath(rootfd, r->rel)) {
      r->err = -ENOENT; /* final */
    } else if (r->op == FSOP_WRITE && e == ENOENT && (r->flags & O_CREAT)) {
      /* A new file: create it (through a dangling link, its target is created,
       * as long as it stays beneath the root; with O_EXCL a link there is EEXIST,
       * which the portable path answers). Then it must be a regular file. */
      int fd = openat2_beneath(rootfd, r->rel, O_WRONLY | O_CREAT | O_NOCTTY | O_NONBLOCK | (r->flags & (O_TRUNC | O_EXCL | O_APPEND)), r->mode);
      if (fd < 0) {
        r->err = errno == ENXIO ? EPERM : errno; /* ENXIO: a FIFO with no reader appeared there */
      } else if (fstat(fd, &r->st) < 0 || !S_ISREG(r->st.st_mode)) {
        r->err = EPERM;
        close(fd);
      } else {
        clear_nonblock(fd, O_WRONLY | (r->flags & O_APPEND));
        r->fd = fd;
        r->have_st = 1;
        r->err = 0;
      }
    } else {
      r->err = e;
    }
    close(rootfd);
    return;
  }
  if (fstat(pfd, &pst) < 0) {
    r->err = errno;
    close(pfd);
    close(rootfd);
    return;
  }
  close(pfd);
  if (r->op == FSOP_WRITE && (r->flags & O_EXCL)) {
    /* Something is there already: an exclusive create is the portable path's EEXIST. */
    r->err = EEXIST;
    close(rootfd);
    return;
  }
  if (r->op == FSOP_STAT) {
    r->st = pst;
    r->have_st = 1;
    r->err = 0;
    close(rootfd);
    return;
  }
  if (!S_ISREG(pst.st_mode)) {
    /* Directories, FIFOs, devices: the portable path says EISDIR or EPERM. */
    r->err = S_ISDIR(pst.st_mode) ? EISDIR : EPERM;
    close(rootfd);
    return;
  }
  /* It exists: no O_CREAT, so a file removed meanwhile is not made anew here. */
  int flags = r->op == FSOP_READ ? O_RDONLY : O_WRONLY | (r->flags & (O_TRUNC | O_APPEND));
  int fd = reopen_same(rootfd, r->rel, flags, r->mode, 0, &pst, &r->st);
  close(rootfd);
  if (fd < 0) {
    r->err = -fd;
    return;
  }
  r->fd = fd;
  r->have_st = 1;
  r->err = 0;
}

static void fsop_complete(napi_env env, napi_status status, void *data) {
  fsop_t *r = data;
  napi_value cb = NULL, undef, argv[3];
  if (napi_get_reference_value(env, r->cb, &cb) != napi_ok) cb = NULL;
  if (status != napi_ok && r->fd >= 0) {
    close(r->fd);
    r->fd = -1;
    r->err = ECANCELED;
  }
  if (cb) {
    napi_get_undefined(env, &undef);
    napi_create_int32(env, status == napi_ok ? r->err : ECANCELED, &argv[0]);
    napi_create_int32(env, r->fd, &argv[1]);
    if (r->have_st && r->err == 0) {
      double v[8] = {
        (double)r->st.st_mode,
        (double)r->st.st_size,
        (double)r->st.st_mtim.tv_sec * 1e3 + (double)r->st.st_mtim.tv_nsec / 1e6,
        (double)r->st.st_uid,
        (double)r->st.st_gid,
        (double)r->st.st_nlink,
        (double)r->st.st_dev,
        (double)r->st.st_ino,
      };
      napi_create_array_with_length(env, 8, &argv[2]);
      for (uint32_t i = 0; i < 8; i++) {
        napi_value x;
        napi_create_double(env, v[i], &x);
        napi_set_element(env, argv[2], i, x);
      }
    } else {
      napi_get_null(env, &argv[2]);
    }
    napi_call_function(env, undef, cb, 3, argv, NULL);
  } else if (r->fd >= 0) {
    close(r->fd); /* nobody to hand it to */
  }
  napi_delete_reference(env, r->cb);
  napi_delete_async_work(env, r->work);
  free(r->root);
  free(r->rel);
  free(r);
}

static char *arg_str(napi_env env, napi_value v) {
  size_t len = 0;
  if (napi_get_value_string_utf8(env, v, NULL, 0, &len) != napi_ok) return NULL;
  char *s = malloc(len + 1);
  if (!s) return NULL;
  if (napi_get_value_string_utf8(env, v, s, len + 1, &len) != napi_ok || strlen(s) != len) {
    free(s); /* an embedded NUL would cut the path short: refuse */
    return NULL;
  }
  return s;
}

/*
 * fsopCached(op, root, rel) -> [fd, mode, size, mtimeMs, uid, gid, nlink, dev, ino] or undefined.
 *
 * The same FSOP_STAT / FSOP_READ as fsop, done at once on the calling (event loop) thread,
 * but only when no step can wait on a disk or a network: every lookup is made with
 * RESOLVE_CACHED (Linux 5.12+), which fails with EAGAIN instead of reading a directory
 * from disk. Anything but a plain success (not cached, missing, not a regular file for
 * READ, a symlink leaving the root, an old kernel) answers undefined, and the caller
 * queues the ordinary fsop, whose answer is authoritative. The caller uses this only on
 * local filesystems, where opening a cached regular file read-only and fstat do no I/O
 * (on NFS or FUSE an open or a getattr may call the server even with a cached path).
 * fd is -1 for FSOP_STAT.
 */
static int cached_works = 1;
static napi_value js_fsop_cached(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc < 3 || !cached_works) return NULL;
  int op = (int)arg_i64(env, argv[0], -1);
  if (op != FSOP_STAT && op != FSOP_READ) return NULL;
  char *root = arg_str(env, argv[1]);
  char *rel = arg_str(env, argv[2]);
  napi_value out = NULL;
  int rootfd = -1, pfd = -1, fd = -1;
  struct stat pst, st;
  const uint64_t beneath = BENEATH | RESOLVE_CACHED;
  if (!root || !rel || !rel[0] || rel[0] == '/' || root[0] != '/') goto done;
  rootfd = openat2_how(AT_FDCWD, root, O_PATH | O_DIRECTORY, 0, RESOLVE_CACHED);
  if (rootfd < 0) {
    if (errno == EINVAL || errno == ENOSYS || errno == E2BIG) cached_works = 0; /* no RESOLVE_CACHED here */
    goto done;
  }
  pfd = openat2_how(rootfd, rel, O_PATH, 0, beneath);
  if (pfd < 0 || fstat(pfd, &pst) < 0) goto done;
  if (op == FSOP_STAT) {
    st = pst;
  } else {
    if (!S_ISREG(pst.st_mode)) goto done;
    fd = reopen_same(rootfd, rel, O_RDONLY, 0, RESOLVE_CACHED, &pst, &st);
    if (fd < 0) {
      fd = -1; /* not cached, or replaced meanwhile: let the pool path decide */
      goto done;
    }
  }
  {
    double v[9] = {
      (double)fd,
      (double)st.st_mode,
      (double)st.st_size,
      (double)st.st_mtim.tv_sec * 1e3 + (double)st.st_mtim.tv_nsec / 1e6,
      (double)st.st_uid,
      (double)st.st_gid,
      (double)st.st_nlink,
      (double)st.st_dev,
      (double)st.st_ino,
    };
    if (napi_create_array_with_length(env, 9, &out) != napi_ok) {
      out = NULL;
      if (fd >= 0) close(fd);
      goto done;
    }
    for (uint32_t i = 0; i < 9; i++) {
      napi_value x;
      napi_create_double(env, v[i], &x);
      napi_set_element(env, out, i, x);
    }
  }
done:
  if (pfd >= 0) close(pfd);
  if (rootfd >= 0) close(rootfd);
  free(root);
  free(rel);
  return out;
}

/* Read `n` arguments into argv, the last of which must be a function: 0, or -1 with a TypeError thrown. */
static int args_with_callback(napi_env env, napi_callback_info info, napi_value *argv, size_t n, const char *what) {
  size_t argc = n;
  napi_valuetype t;
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  if (argc >= n && napi_typeof(env, argv[n - 1], &t) == napi_ok && t == napi_function) return 0;
  char msg[96];
  snprintf(msg, sizeof msg, "%s: %zu arguments expected, the last a function", what, n);
  napi_throw_type_error(env, NULL, msg);
  return -1;
}

/*
 * Queue `execute` on the libuv pool with `complete` after it, holding a reference to the
 * callback `cb` in *ref. 0 when queued; otherwise -1, with nothing left behind but `data`,
 * which the caller frees.
 */
static int queue_pool_work(napi_env env, const char *what, napi_value cb, napi_async_execute_callback execute,
                           napi_async_complete_callback complete, void *data, napi_ref *ref, napi_async_work *work) {
  napi_value name;
  napi_create_string_utf8(env, what, NAPI_AUTO_LENGTH, &name);
  if (napi_create_reference(env, cb, 1, ref) == napi_ok &&
      napi_create_async_work(env, NULL, name, execute, complete, data, work) == napi_ok &&
      napi_queue_async_work(env, *work) == napi_ok)
    return 0;
  if (*ref) napi_delete_reference(env, *ref);
  if (*work) napi_delete_async_work(env, *work);
  *ref = NULL;
  *work = NULL;
  return -1;
}

/* fsop(op, root, rel, flags, mode, cb) -> undefined; see above. */
static napi_value js_fsop(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  if (args_with_callback(env, info, argv, 6, "fsop") != 0) return NULL;
  fsop_t *r = calloc(1, sizeof *r);
  if (!r) {
    napi_throw_error(env, NULL, "fsop: out of memory");
    return NULL;
  }
  r->op = (int)arg_i64(env, argv[0], -1);
  r->flags = (int)arg_i64(env, argv[3], 0);
  r->mode = (int)arg_i64(env, argv[4], 0666);
  r->fd = -1;
  if (r->op != FSOP_CLOSE) {
    r->root = arg_str(env, argv[1]);
    r->rel = arg_str(env, argv[2]);
  }
  if (r->op < FSOP_STAT || r->op > FSOP_CLOSE || (r->op != FSOP_CLOSE && (!r->root || !r->rel || !r->rel[0] || r->rel[0] == '/')) ||
      (r->op == FSOP_CLOSE && r->flags < 0)) {
    free(r->root);
    free(r->rel);
    free(r);
    napi_throw_range_error(env, NULL, "fsop: bad argument");
    return NULL;
  }
  if (queue_pool_work(env, "ftpdlib:fsop", argv[5], fsop_execute, fsop_complete, r, &r->cb, &r->work) != 0) {
    free(r->root);
    free(r->rel);
    free(r);
    napi_throw_error(env, NULL, "fsop: could not queue");
    return NULL;
  }
  return NULL;
}

/*
 * lstatMany(dir, names, cb) lstats each name of `names` (strings, or Buffers for names that are
 * not UTF-8; none may hold '/' or NUL) in the directory `dir` on one libuv pool thread:
 * dir is opened O_PATH | O_DIRECTORY once, then fstatat(AT_SYMLINK_NOFOLLOW) per name.
 * A listing's batch of 256 entries is one pool round trip instead of 256, and no fs.Stats
 * is made for it. cb(errno, values): errno is 0 or the open's positive errno; values is a
 * Float64Array of LSTAT_FIELDS numbers per name: the name's errno (0 when stat'ed), then
 * mode, size, mtime in ms, uid, gid, nlink, dev, ino (as the fsop answer).
 * The caller passes a path it has pinned (src/fs/pin.ts), so `dir` is what it checked.
 */
#define LSTAT_FIELDS 9
#define LSTAT_MAX_NAMES 4096

typedef struct {
  napi_async_work work;
  napi_ref cb;
  char *dir;
  char *names; /* n NUL-terminated names, one after another */
  uint32_t n;
  double *out;
  int err;
} lstatmany_t;

static void lstatmany_execute(napi_env env, void *data) {
  (void)env;
  lstatmany_t *r = data;
  int dirfd = open(r->dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (dirfd < 0) {
    r->err = errno;
    return;
  }
  const char *name = r->names;
  for (uint32_t i = 0; i < r->n; i++) {
    struct stat st;
    double *v = r->out + (size_t)i * LSTAT_FIELDS;
    if (fstatat(dirfd, name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
      v[0] = (double)errno;
    } else {
      v[0] = 0;
      v[1] = (double)st.st_mode;
      v[2] = (double)st.st_size;
      v[3] = (double)st.st_mtim.tv_sec * 1e3 + (double)st.st_mtim.tv_nsec / 1e6;
      v[4] = (double)st.st_uid;
      v[5] = (double)st.st_gid;
      v[6] = (double)st.st_nlink;
      v[7] = (double)st.st_dev;
      v[8] = (double)st.st_ino;
    }
    name += strlen(name) + 1;
  }
  close(dirfd);
  r->err = 0;
}

static void lstatmany_free(lstatmany_t *r) {
  free(r->dir);
  free(r->names);
  free(r->out);
  free(r);
}

static void lstatmany_complete(napi_env env, napi_status status, void *data) {
  lstatmany_t *r = data;
  napi_value cb = NULL, undef, argv[2];
  if (napi_get_reference_value(env, r->cb, &cb) != napi_ok) cb = NULL;
  if (cb) {
    napi_get_undefined(env, &undef);
    int err = status == napi_ok ? r->err : ECANCELED;
    napi_create_int32(env, err, &argv[0]);
    size_t bytes = (size_t)r->n * LSTAT_FIELDS * sizeof(double);
    void *ab_data = NULL;
    napi_value ab;
    if (err == 0 && napi_create_arraybuffer(env, bytes, &ab_data, &ab) == napi_ok) {
      if (bytes) memcpy(ab_data, r->out, bytes);
      napi_create_typedarray(env, napi_float64_array, (size_t)r->n * LSTAT_FIELDS, ab, 0, &argv[1]);
    } else {
      napi_get_null(env, &argv[1]);
      if (err == 0) napi_create_int32(env, ENOMEM, &argv[0]);
    }
    napi_call_function(env, undef, cb, 2, argv, NULL);
  }
  napi_delete_reference(env, r->cb);
  napi_delete_async_work(env, r->work);
  lstatmany_free(r);
}

/* The bytes of a name (a string as UTF-8, or a Buffer) into dst (NULL: measure); -1 if unusable. */
static int64_t name_bytes(napi_env env, napi_value v, char *dst, size_t room) {
  bool is = false;
  size_t n = 0;
  if (napi_is_buffer(env, v, &is) == napi_ok && is) {
    void *data = NULL;
    if (napi_get_buffer_info(env, v, &data, &n) != napi_ok) return -1;
    if (dst) {
      if (n + 1 > room) return -1;
      memcpy(dst, data, n);
      dst[n] = 0;
    }
    if (n == 0 || memchr(data, 0, n) || memchr(data, '/', n)) return -1;
    return (int64_t)n;
  }
  if (napi_get_value_string_utf8(env, v, dst, dst ? room : 0, &n) != napi_ok) return -1;
  if (dst && (n == 0 || strlen(dst) != n || strchr(dst, '/'))) return -1;
  return (int64_t)n;
}

/* lstatMany(dir, names, cb) -> undefined; see above. */
static napi_value js_lstat_many(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  if (args_with_callback(env, info, argv, 3, "lstatMany") != 0) return NULL;
  bool is_array = false;
  uint32_t n = 0;
  if (napi_is_array(env, argv[1], &is_array) != napi_ok || !is_array || napi_get_array_length(env, argv[1], &n) != napi_ok ||
      n > LSTAT_MAX_NAMES) {
    napi_throw_range_error(env, NULL, "lstatMany: names must be an array of at most 4096 names");
    return NULL;
  }
  lstatmany_t *r = calloc(1, sizeof *r);
  if (!r) goto oom;
  r->n = n;
  r->dir = arg_str(env, argv[0]);
  size_t total = 0;
  for (uint32_t i = 0; i < n; i++) {
    napi_value v;
    int64_t len = napi_get_element(env, argv[1], i, &v) == napi_ok ? name_bytes(env, v, NULL, 0) : -1;
    if (len < 0) goto bad;
    total += (size_t)len + 1;
  }
  if (!r->dir || !r->dir[0]) goto bad;
  r->names = malloc(total ? total : 1);
  r->out = calloc((size_t)(n ? n : 1) * LSTAT_FIELDS, sizeof(double));
  if (!r->names || !r->out) goto oom;
  char *at = r->names;
  for (uint32_t i = 0; i < n; i++) {
    napi_value v;
    if (napi_get_element(env, argv[1], i, &v) != napi_ok) goto bad;
    int64_t len = name_bytes(env, v, at, total - (size_t)(at - r->names));
    if (len < 0) goto bad;
    at += len + 1;
  }
  if (queue_pool_work(env, "ftpdlib:lstatMany", argv[2], lstatmany_execute, lstatmany_complete, r, &r->cb, &r->work) != 0) {
    lstatmany_free(r);
    napi_throw_error(env, NULL, "lstatMany: could not queue");
  }
  return NULL;
bad:
  lstatmany_free(r);
  napi_throw_range_error(env, NULL, "lstatMany: bad argument (a directory, and names without '/' or NUL)");
  return NULL;
oom:
  if (r) lstatmany_free(r);
  napi_throw_error(env, NULL, "lstatMany: out of memory");
  return NULL;
}

/*
 * copyRange(infd, outfd, inOff, outOff, len, cb) copies up to `len` bytes from `infd` at
 * `inOff` to `outfd` at `outOff`, file to file, on a libuv pool thread, for the server-side
 * copy (SITE CPFR/CPTO). Neither descriptor's file position moves. It uses copy_file_range(2):
 * the bytes stay in the kernel, and a filesystem that can (btrfs and XFS reflinks, NFS 4.2 and
 * SMB server-side copy) shares extents or copies on the server instead. Where the kernel or
 * the pair of filesystems refuses it (ENOSYS, EXDEV, EOPNOTSUPP, EINVAL), or where it reports
 * no bytes at the start (some virtual filesystems do), it falls back to pread/pwrite through a
 * 1 MiB buffer. It stops early at the end of the source.
 * cb(errno, copied, via): errno 0 or positive; via 0 = copy_file_range, 1 = pread/pwrite.
 * The caller asks for a bounded `len` per call (tens of MiB), so one copy never holds a pool
 * thread for long.
 */
#define COPY_BUF (1 << 20)

typedef struct {
  napi_async_work work;
  napi_ref cb;
  int infd, outfd;
  int64_t inoff, outoff, len, copied;
  int err, via;
} copyop_t;

static int copy_by_rw(copyop_t *r) {
  char *buf = malloc(COPY_BUF);
  if (!buf) return ENOMEM;
  int err = 0;
  while (r->copied < r->len) {
    size_t want = (size_t)(r->len - r->copied < COPY_BUF ? r->len - r->copied : COPY_BUF);
    ssize_t n = pread(r->infd, buf, want, (off_t)(r->inoff + r->copied));
    if (n < 0) {
      if (errno == EINTR) continue;
      err = errno;
      break;
    }
    if (n == 0) break;
    ssize_t done = 0;
    while (done < n) {
      ssize_t w = pwrite(r->outfd, buf + done, (size_t)(n - done), (off_t)(r->outoff + r->copied + done));
      if (w < 0) {
        if (errno == EINTR) continue;
        err = errno;
        break;
      }
      done += w;
    }
    r->copied += done;
    if (err) break;
  }
  free(buf);
  return err;
}

static void copyop_execute(napi_env env, void *data) {
  copyop_t *r = data;
  r->err = 0;
  r->via = 0;
  while (r->copied < r->len) {
    loff_t in = (loff_t)(r->inoff + r->copied), out = (loff_t)(r->outoff + r->copied);
    int64_t left = r->len - r->copied;
    ssize_t n = copy_file_range(r->infd, &in, r->outfd, &out, (size_t)(left > (1 << 30) ? (1 << 30) : left), 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (errno == ENOSYS || errno == EXDEV || errno == EOPNOTSUPP || errno == EINVAL) {
        r->via = 1;
        r->err = copy_by_rw(r);
      } else {
        r->err = errno;
      }
      return;
    }
    if (n == 0) {
      /* The end of the source; or, before any byte, a filesystem that reports no data to
       * copy_file_range: read/write decides which. */
      if (r->copied == 0) {
        r->via = 1;
        r->err = copy_by_rw(r);
      }
      return;
    }
    r->copied += n;
  }
}

static void copyop_complete(napi_env env, napi_status status, void *data) {
  copyop_t *r = data;
  napi_value cb = NULL, undef, argv[3];
  if (napi_get_reference_value(env, r->cb, &cb) == napi_ok && cb) {
    napi_get_undefined(env, &undef);
    napi_create_int32(env, status == napi_ok ? r->err : ECANCELED, &argv[0]);
    napi_create_double(env, (double)r->copied, &argv[1]);
    napi_create_int32(env, r->via, &argv[2]);
    napi_call_function(env, undef, cb, 3, argv, NULL);
  }
  napi_delete_reference(env, r->cb);
  napi_delete_async_work(env, r->work);
  free(r);
}

static napi_value js_copy_range(napi_env env, napi_callback_info info) {
  napi_value argv[6];
  if (args_with_callback(env, info, argv, 6, "copyRange") != 0) return NULL;
  copyop_t *r = calloc(1, sizeof *r);
  if (!r) {
    napi_throw_error(env, NULL, "copyRange: out of memory");
    return NULL;
  }
  r->infd = (int)arg_i64(env, argv[0], -1);
  r->outfd = (int)arg_i64(env, argv[1], -1);
  r->inoff = arg_i64(env, argv[2], -1);
  r->outoff = arg_i64(env, argv[3], -1);
  r->len = arg_i64(env, argv[4], -1);
  if (r->infd < 0 || r->outfd < 0 || r->inoff < 0 || r->outoff < 0 || r->len < 0) {
    free(r);
    napi_throw_range_error(env, NULL, "copyRange: bad argument");
    return NULL;
  }
  if (queue_pool_work(env, "ftpdlib:copy", argv[5], copyop_execute, copyop_complete, r, &r->cb, &r->work) != 0) {
    free(r);
    napi_throw_error(env, NULL, "copyRange: could not queue");
    return NULL;
  }
  return NULL;
}

/*
 * A download's records sealed on the main thread (src/ftp/data/tls-seal.ts): for what the
 * engine does not carry (a listing, TYPE A, another filesystem, useSendfile off), JS writes the
 * plaintext here instead of into Node's TLS socket over the gate, whose every flush Node copies
 * into a new buffer. The state comes from the gate as for a TLS job (tls_from_js).
 */
static void finalize_sealer(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  tlsrec_free(data);
}

/* Marks the objects tlsSealer returns, so that tlsSeal takes nothing else for a record layer. */
static const napi_type_tag SEALER_TAG = {0x6674706c69627365ULL, 0x616c657230303031ULL};

/* The record state a tlsSealer object wraps, or NULL when `v` is not one. */
static tlsrec_t *sealer_arg(napi_env env, napi_value v) {
  bool tagged = false;
  tlsrec_t *tls = NULL;
  if (napi_check_object_type_tag(env, v, &SEALER_TAG, &tagged) != napi_ok || !tagged || napi_unwrap(env, v, (void **)&tls) != napi_ok) return NULL;
  return tls;
}

/* tlsSealer(state) -> an object holding the record layer; throws when state does not describe one. */
static napi_value js_tls_sealer(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  napi_valuetype t;
  tlsrec_t *tls = NULL;
  if (!tlsrec_available() || argc < 1 || napi_typeof(env, argv[0], &t) != napi_ok || t != napi_object ||
      !(tls = tls_from_js(env, argv[0]))) {
    napi_throw_range_error(env, NULL, "tlsSealer: a record state expected");
    return NULL;
  }
  napi_value obj;
  if (napi_create_object(env, &obj) != napi_ok || napi_wrap(env, obj, tls, finalize_sealer, NULL, NULL) != napi_ok) {
    tlsrec_free(tls);
    napi_throw_error(env, NULL, "tlsSealer: wrap");
    return NULL;
  }
  napi_type_tag_object(env, obj, &SEALER_TAG);
  return obj;
}

/* One record into out at *at (room checked by the caller). 0, or -1. */
static int seal_one(tlsrec_t *tls, int type, const uint8_t *in, size_t len, uint8_t *out, size_t *at) {
  ssize_t r = tlsrec_seal(tls, type, in, len, out + *at);
  if (r < 0) return -1;
  *at += (size_t)r;
  return 0;
}

/*
 * tlsSeal(sealer, chunks, out, at, flags) -> where the records end in out. `chunks`: an array
 * of Buffers, sealed as application data in records of 16 KiB (a record spanning two chunks is
 * put together in a buffer on the stack first). flags 1: a TLS 1.3 KeyUpdate first
 * (update_not_requested), after which the write keys move on; 2: a close_notify last. Throws
 * when out has no room for the worst case or a record cannot be sealed.
 */
static napi_value js_tls_seal(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  tlsrec_t *tls = NULL;
  bool is_array = false;
  void *outp = NULL;
  size_t cap = 0;
  uint32_t n = 0;
  if (argc < 5 || !(tls = sealer_arg(env, argv[0])) || napi_is_array(env, argv[1], &is_array) != napi_ok || !is_array || napi_get_array_length(env, argv[1], &n) != napi_ok ||
      napi_get_buffer_info(env, argv[2], &outp, &cap) != napi_ok) {
    napi_throw_type_error(env, NULL, "tlsSeal: (sealer, Buffer[], Buffer, offset, flags) expected");
    return NULL;
  }
  int64_t at0 = arg_i64(env, argv[3], -1);
  int flags = (int)arg_i64(env, argv[4], 0);
  if (at0 < 0 || (size_t)at0 > cap) {
    napi_throw_range_error(env, NULL, "tlsSeal: bad offset");
    return NULL;
  }
  /* The chunks, checked and summed before anything is sealed: a refusal for them or for the room
     leaves no sequence number used (a record that fails to seal later does, and the connection
     is then closed). */
  size_t total = 0;
  for (uint32_t i = 0; i < n; i++) {
    napi_value v;
    void *d = NULL;
    size_t len = 0;
    bool is = false;
    if (napi_get_element(env, argv[1], i, &v) != napi_ok || napi_is_buffer(env, v, &is) != napi_ok || !is ||
        napi_get_buffer_info(env, v, &d, &len) != napi_ok) {
      napi_throw_type_error(env, NULL, "tlsSeal: chunks must be Buffers");
      return NULL;
    }
    total += len;
  }
  size_t records = (total + TLSREC_MAX_PLAIN - 1) / TLSREC_MAX_PLAIN + 2;
  if (cap - (size_t)at0 < total + records * (TLSREC_OVERHEAD + 8)) {
    napi_throw_range_error(env, NULL, "tlsSeal: no room in the output buffer");
    return NULL;
  }
  uint8_t *out = outp;
  size_t at = (size_t)at0;
  int bad = 0;
  if ((flags & 1) && tlsrec_version(tls) == 13) {
    static const uint8_t ku[5] = {24, 0, 0, 1, 0}; /* KeyUpdate, update_not_requested */
    bad = seal_one(tls, 22, ku, sizeof ku, out, &at) || tlsrec_update(tls, 1);
  }
  uint8_t stage[TLSREC_MAX_PLAIN];
  size_t fill = 0, seen = 0;
  for (uint32_t i = 0; i < n && !bad; i++) {
    napi_value v;
    void *d = NULL;
    size_t len = 0;
    if (napi_get_element(env, argv[1], i, &v) != napi_ok || napi_get_buffer_info(env, v, &d, &len) != napi_ok) len = 0;
    /* An element read twice is the same Buffer unless JS ran in between (an accessor): never
       seal more than the room was checked for. */
    if (len > total - seen) {
      bad = 1;
      break;
    }
    seen += len;
    const uint8_t *p = d;
    size_t off = 0;
    if (fill) { /* complete the record begun in the chunks before */
      size_t take = len < TLSREC_MAX_PLAIN - fill ? len : TLSREC_MAX_PLAIN - fill;
      if (take) memcpy(stage + fill, p, take);
      fill += take;
      off = take;
      if (fill == TLSREC_MAX_PLAIN) {
        bad = seal_one(tls, 23, stage, fill, out, &at);
        fill = 0;
      }
    }
    for (; !bad && len - off >= TLSREC_MAX_PLAIN; off += TLSREC_MAX_PLAIN) bad = seal_one(tls, 23, p + off, TLSREC_MAX_PLAIN, out, &at);
    if (bad || off == len) continue;
    if (i + 1 == n) { /* the last chunk's tail: its own record */
      bad = seal_one(tls, 23, p + off, len - off, out, &at);
    } else {
      memcpy(stage, p + off, len - off);
      fill = len - off;
    }
  }
  if (!bad && fill) bad = seal_one(tls, 23, stage, fill, out, &at);
  if (!bad && (flags & 2)) {
    static const uint8_t close_notify[2] = {1, 0};
    bad = seal_one(tls, 21, close_notify, sizeof close_notify, out, &at);
  }
  if (bad) {
    napi_throw_error(env, "EPROTO", "tlsSeal: a record could not be sealed");
    return NULL;
  }
  napi_value r;
  napi_create_double(env, (double)at, &r);
  return r;
}

/*
 * tlsOpen(state, buf, start, end, spans) -> where the records opened end in buf. Opens the whole
 * records of buf[start, end) in place, with the read keys of `state` (a tlsSealer object: one
 * state serves both directions), until an incomplete record, an alert, or spans is full.
 * spans, an Int32Array of 1 + 3k: spans[0] the records opened, then for each its content type
 * (23 data, 21 alert, 22 a TLS 1.3 KeyUpdate, after which the read keys have moved on), where
 * its plaintext starts in buf and its length. Throws on a record that is too long or does not
 * authenticate (code EBADMSG), or is not one of those (EPROTO: a TLS 1.2 renegotiation, any other
 * handshake message); spans then holds the records opened before it.
 */
static napi_value js_tls_open(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  napi_get_cb_info(env, info, &argc, argv, NULL, NULL);
  tlsrec_t *tls = NULL;
  bool is_ta = false;
  void *bufp = NULL, *spp = NULL;
  size_t cap = 0, slen = 0, soff = 0;
  napi_typedarray_type tt;
  napi_value ab;
  if (argc < 5 || !(tls = sealer_arg(env, argv[0])) || napi_get_buffer_info(env, argv[1], &bufp, &cap) != napi_ok ||
      napi_is_typedarray(env, argv[4], &is_ta) != napi_ok || !is_ta ||
      napi_get_typedarray_info(env, argv[4], &tt, &slen, &spp, &ab, &soff) != napi_ok || tt != napi_int32_array || slen < 4) {
    napi_throw_type_error(env, NULL, "tlsOpen: (state, Buffer, start, end, Int32Array) expected");
    return NULL;
  }
  int64_t start = arg_i64(env, argv[2], -1), end = arg_i64(env, argv[3], -1);
  if (start < 0 || end < start || (size_t)end > cap) {
    napi_throw_range_error(env, NULL, "tlsOpen: bad range");
    return NULL;
  }
  uint8_t *buf = bufp;
  int32_t *spans = spp;
  size_t at = (size_t)start, max = (slen - 1) / 3;
  int32_t k = 0;
  /* The engine's codes for the same failures (tls_read): EBADMSG for a record that is not one
     or does not open, EPROTO for one that should not be there. */
  const char *bad = NULL, *code = "EPROTO";
  int v13 = tlsrec_version(tls) == 13;
  while ((size_t)k < max && (size_t)end - at >= TLSREC_HDR) {
    uint8_t *rec = buf + at;
    size_t len = ((size_t)rec[3] << 8) | rec[4];
    if (rec[1] != 3 || len > TLSREC_MAX_BODY) {
      bad = "tlsOpen: not a TLS record";
      code = "EBADMSG";
      break;
    }
    if ((size_t)end - at < TLSREC_HDR + len) break;
    /* The plaintext goes where the ciphertext was (TLS 1.2 GCM's after its explicit nonce). */
    uint8_t *out = rec + TLSREC_HDR + tlsrec_explicit_nonce(tls);
    int type = 0;
    ssize_t n = tlsrec_open(tls, rec, len, out, &type);
    if (n < 0) {
      bad = "tlsOpen: a record did not authenticate";
      code = "EBADMSG";
      break;
    }
    if (type == 22) {
      /* After the handshake only TLS 1.3's KeyUpdate is taken: the read keys move on now, for
         the records after it. */
      if (!v13 || n != 5 || out[0] != 24 || out[1] != 0 || out[2] != 0 || out[3] != 1 || out[4] > 1 || tlsrec_update(tls, 0) < 0) {
        bad = "tlsOpen: an unexpected handshake message";
        break;
      }
    } else if (type != 23 && type != 21) {
      bad = "tlsOpen: an unexpected record type";
      break;
    }
    spans[1 + 3 * k] = type;
    spans[2 + 3 * k] = (int32_t)(out - buf);
    spans[3 + 3 * k] = (int32_t)n;
    k++;
    at += TLSREC_HDR + len;
    if (type == 21) break;
  }
  spans[0] = k; /* also when it throws: the records before the bad one are opened */
  if (bad) {
    napi_value msg, err, errcode;
    napi_create_string_utf8(env, bad, NAPI_AUTO_LENGTH, &msg);
    napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &errcode);
    napi_create_error(env, errcode, msg, &err);
    napi_throw(env, err);
    return NULL;
  }
  napi_value r;
  napi_create_double(env, (double)at, &r);
  return r;
}

NAPI_MODULE_INIT() {
  engine_t *eng = calloc(1, sizeof *eng);
  if (!eng) {
    napi_throw_error(env, NULL, "ftpdlib native: out of memory");
    return NULL;
  }
  eng->env = env;
  long cpus = sysconf(_SC_NPROCESSORS_ONLN);
  eng->nthreads = cpus >= 4 ? 2 : 1;
  eng->io_nice = 10;
  eng->solo = 1;
  for (int i = 0; i < ALL_SLOTS; i++) {
    eng->th[i].eng = eng;
    eng->th[i].epfd = eng->th[i].evfd = eng->th[i].rpr = eng->th[i].rpw = -1;
  }
  if (napi_set_instance_data(env, eng, finalize_engine, NULL) != napi_ok) {
    free(eng);
    napi_throw_error(env, NULL, "ftpdlib native: instance data");
    return NULL;
  }
  napi_add_env_cleanup_hook(env, cleanup_hook, eng);

  napi_value name;
  napi_create_string_utf8(env, "ftpdlib-native-engine", NAPI_AUTO_LENGTH, &name);
  if (napi_create_threadsafe_function(env, NULL, NULL, name, 0, 1, NULL, NULL, eng, call_js, &eng->tsfn) !=
      napi_ok) {
    napi_throw_error(env, NULL, "ftpdlib native: threadsafe function");
    return NULL;
  }
  napi_unref_threadsafe_function(env, eng->tsfn);

  napi_property_descriptor props[] = {
    {"start", NULL, js_start, NULL, NULL, NULL, napi_enumerable, NULL},
    {"cancel", NULL, js_cancel, NULL, NULL, NULL, napi_enumerable, NULL},
    {"setRate", NULL, js_set_rate, NULL, NULL, NULL, napi_enumerable, NULL},
    {"stats", NULL, js_stats, NULL, NULL, NULL, napi_enumerable, NULL},
    {"configure", NULL, js_configure, NULL, NULL, NULL, napi_enumerable, NULL},
    {"setOobInline", NULL, js_set_oob_inline, NULL, NULL, NULL, napi_enumerable, NULL},
    {"setCork", NULL, js_set_cork, NULL, NULL, NULL, napi_enumerable, NULL},
    {"setCongestion", NULL, js_set_congestion, NULL, NULL, NULL, napi_enumerable, NULL},
    {"congestionOf", NULL, js_congestion_of, NULL, NULL, NULL, napi_enumerable, NULL},
    {"socketReset", NULL, js_socket_reset, NULL, NULL, NULL, napi_enumerable, NULL},
    {"trimMemory", NULL, js_trim_memory, NULL, NULL, NULL, napi_enumerable, NULL},
    {"fsop", NULL, js_fsop, NULL, NULL, NULL, napi_enumerable, NULL},
    {"fsopCached", NULL, js_fsop_cached, NULL, NULL, NULL, napi_enumerable, NULL},
    {"lstatMany", NULL, js_lstat_many, NULL, NULL, NULL, napi_enumerable, NULL},
    {"copyRange", NULL, js_copy_range, NULL, NULL, NULL, napi_enumerable, NULL},
    {"tlsSealer", NULL, js_tls_sealer, NULL, NULL, NULL, napi_enumerable, NULL},
    {"tlsSeal", NULL, js_tls_seal, NULL, NULL, NULL, napi_enumerable, NULL},
    {"tlsOpen", NULL, js_tls_open, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  napi_value tls_ok;
  napi_get_boolean(env, tlsrec_available(), &tls_ok);
  napi_set_named_property(env, exports, "tlsRecords", tls_ok);
  return exports;
}
