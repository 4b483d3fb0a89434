/*
 * ftpdlib's system-user addon (ftpdlib_unix.node), used by src/auth/unix.ts and
 * src/fs/as-user.ts. Separate from the transfer engine so that a system without
 * libcrypt's headers still gets the engine.
 *
 * It offers these, each off the event loop (napi_async_work on the libuv
 * pool) unless its name ends in Sync:
 *
 *   lookup(name)            the passwd entry (getpwnam_r), the shadow entry
 *                           (getspnam_r) and the group list (getgrouplist), through
 *                           NSS, so whatever the system's nsswitch.conf says counts;
 *   verify(password, hash)  crypt_rn(3) of the password with the stored hash as the
 *                           setting, compared with the hash in constant time;
 *   crypt(password, setting), gensaltSync(prefix, count)  to make dummy hashes;
 *   apr1(password, salt)    Apache's MD5-crypt (md5crypt.c), which libcrypt lacks;
 *   fsop(creds, op, ...)    one filesystem operation performed with the user's
 *                           filesystem credentials (see below);
 *   dupSync(fd)             a duplicate descriptor, for a stream to own.
 *
 * Acting as a user. Linux keeps credentials per thread; glibc makes setuid(),
 * setgroups() and friends process-wide by signalling every thread, but the raw
 * system calls change the calling thread only. A filesystem operation here runs on
 * a pool thread which, for the duration of that one operation:
 *   1. saves its supplementary groups and fs ids,
 *   2. sets the user's supplementary groups (SYS_setgroups), fsgid and fsuid
 *      (SYS_setfsgid, SYS_setfsuid; a nonzero fsuid drops the filesystem
 *      capabilities CAP_DAC_OVERRIDE, CAP_FOWNER... from the thread's effective set),
 *   3. performs the operation, so the kernel checks permissions as for the user and
 *      new files belong to the user,
 *   4. restores what it saved (fsuid 0 brings the capabilities back).
 * Each change is read back; if restoring ever failed the thread would stay a
 * different user for whatever the pool runs next, so that aborts the process.
 * The process's real, effective and saved ids never change, and no other thread
 * is affected. Descriptors opened this way are ordinary descriptors: the kernel
 * checked access when it opened them, so reads and writes through them (by the
 * zero-copy engine or by streams) need no switch.
 */
#include <node_api.h>

#include <crypt.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <pwd.h>
#include <shadow.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "md5crypt.h"

/* 32-bit ids on the architectures that kept 16-bit calls under the plain names. */
#if defined(SYS_setfsuid32)
#define NR_SETFSUID SYS_setfsuid32
#define NR_SETFSGID SYS_setfsgid32
#define NR_SETGROUPS SYS_setgroups32
#define NR_GETGROUPS SYS_getgroups32
#else
#define NR_SETFSUID SYS_setfsuid
#define NR_SETFSGID SYS_setfsgid
#define NR_SETGROUPS SYS_setgroups
#define NR_GETGROUPS SYS_getgroups
#endif

#define MAX_GROUPS 65536
#define CHECK(call)                                                                                  \
  do {                                                                                               \
    if ((call) != napi_ok) return NULL;                                                              \
  } while (0)

/* ---------------------------------------------------------------- helpers */

static napi_value throw_type(napi_env env, const char *msg) {
  napi_throw_type_error(env, NULL, msg);
  return NULL;
}

/* A JS string (UTF-8) or Buffer as a NUL-terminated heap copy; *len without the NUL. */
static char *get_bytes(napi_env env, napi_value v, size_t *len) {
  napi_valuetype t;
  if (napi_typeof(env, v, &t) != napi_ok) return NULL;
  if (t == napi_string) {
    size_t n;
    if (napi_get_value_string_utf8(env, v, NULL, 0, &n) != napi_ok) return NULL;
    char *s = malloc(n + 1);
    if (!s) return NULL;
    if (napi_get_value_string_utf8(env, v, s, n + 1, &n) != napi_ok) {
      free(s);
      return NULL;
    }
    if (len) *len = n;
    return s;
  }
  bool isbuf = false;
  if (napi_is_buffer(env, v, &isbuf) != napi_ok || !isbuf) return NULL;
  void *data;
  size_t n;
  if (napi_get_buffer_info(env, v, &data, &n) != napi_ok) return NULL;
  char *s = malloc(n + 1);
  if (!s) return NULL;
  memcpy(s, data, n);
  s[n] = '\0';
  if (len) *len = n;
  return s;
}

/* Wipe then free a secret. */
static void free_secret(char *s, size_t n) {
  if (!s) return;
  explicit_bzero(s, n);
  free(s);
}

static napi_value make_string(napi_env env, const char *s) {
  napi_value v;
  if (napi_create_string_utf8(env, s ? s : "", NAPI_AUTO_LENGTH, &v) != napi_ok) return NULL;
  return v;
}

static napi_value make_number(napi_env env, double d) {
  napi_value v;
  if (napi_create_double(env, d, &v) != napi_ok) return NULL;
  return v;
}

static bool set_prop(napi_env env, napi_value obj, const char *key, napi_value v) {
  return v != NULL && napi_set_named_property(env, obj, key, v) == napi_ok;
}

/* The common shape of an async job: a promise and its work. */
typedef struct job job_t;
typedef void (*exec_fn)(job_t *);
typedef napi_value (*done_fn)(napi_env, job_t *);

/* ---------------------------------------------------------------- lookup */

typedef struct {
  int found;
  int err; /* errno of a failed lookup, 0 when found or absent */
  char *name, *home, *shell, *pwfield;
  uid_t uid;
  gid_t gid;
  int ngroups;
  gid_t *groups;
  int has_shadow;
  char *hash;
  long lastchg, min, max, warn, inact, expire;
} user_t;

static void user_free(user_t *u) {
  free(u->name);
  free(u->home);
  free(u->shell);
  if (u->pwfield) free_secret(u->pwfield, strlen(u->pwfield));
  if (u->hash) free_secret(u->hash, strlen(u->hash));
  free(u->groups);
  memset(u, 0, sizeof *u);
}

static long buf_size(int which) {
  long n = sysconf(which);
  return n > 0 ? n : 16384;
}

static void do_lookup(const char *name, user_t *u) {
  memset(u, 0, sizeof *u);
  struct passwd pw, *pwp = NULL;
  long size = buf_size(_SC_GETPW_R_SIZE_MAX);
  char *buf = NULL;
  int rc;
  for (;;) {
    char *nb = realloc(buf, (size_t)size);
    if (!nb) {
      u->err = ENOMEM;
      goto out;
    }
    buf = nb;
    rc = getpwnam_r(name, &pw, buf, (size_t)size, &pwp);
    if (rc != ERANGE || size >= (1L << 24)) break;
    size *= 2;
  }
  if (pwp == NULL) {
    /* Not found is 0 or one of the "no entry" codes, depending on the NSS module. */
    if (rc != 0 && rc != ENOENT && rc != ESRCH && rc != EBADF && rc != EPERM) u->err = rc;
    goto out;
  }
  u->found = 1;
  u->name = strdup(pw.pw_name);
  u->home = strdup(pw.pw_dir ? pw.pw_dir : "");
  u->shell = strdup(pw.pw_shell ? pw.pw_shell : "");
  u->pwfield = strdup(pw.pw_passwd ? pw.pw_passwd : "");
  u->uid = pw.pw_uid;
  u->gid = pw.pw_gid;
  if (!u->name || !u->home || !u->shell || !u->pwfield) {
    u->err = ENOMEM;
    goto out;
  }

  int ng = 32;
  for (;;) {
    gid_t *g = realloc(u->groups, sizeof(gid_t) * (size_t)ng);
    if (!g) {
      u->err = ENOMEM;
      goto out;
    }
    u->groups = g;
    int n = ng;
    if (getgrouplist(u->name, u->gid, u->groups, &n) >= 0) {
      u->ngroups = n;
      break;
    }
    if (n <= ng || n > MAX_GROUPS) {
      u->err = EOVERFLOW;
      goto out;
    }
    ng = n;
  }

  struct spwd sp, *spp = NULL;
  size = buf_size(_SC_GETPW_R_SIZE_MAX);
  for (;;) {
    char *nb = realloc(buf, (size_t)size);
    if (!nb) {
      u->err = ENOMEM;
      goto out;
    }
    buf = nb;
    rc = getspnam_r(u->name, &sp, buf, (size_t)size, &spp);
    if (rc != ERANGE || size >= (1L << 24)) break;
    size *= 2;
  }
  if (spp != NULL) {
    u->has_shadow = 1;
    u->hash = strdup(sp.sp_pwdp ? sp.sp_pwdp : "");
    if (!u->hash) {
      u->err = ENOMEM;
      goto out;
    }
    u->lastchg = sp.sp_lstchg;
    u->min = sp.sp_min;
    u->max = sp.sp_max;
    u->warn = sp.sp_warn;
    u->inact = sp.sp_inact;
    u->expire = sp.sp_expire;
  } else if (rc != 0 && rc != ENOENT) {
    /* EACCES when not root: say so rather than pretend there is no shadow entry. */
    u->err = rc;
  }
out:
  if (buf) {
    explicit_bzero(buf, (size_t)size);
    free(buf);
  }
}

static napi_value user_to_js(napi_env env, user_t *u) {
  napi_value obj, groups, shadow, nul;
  CHECK(napi_get_null(env, &nul));
  if (!u->found) return nul;
  CHECK(napi_create_object(env, &obj));
  if (!set_prop(env, obj, "name", make_string(env, u->name)) || !set_prop(env, obj, "uid", make_number(env, u->uid)) ||
      !set_prop(env, obj, "gid", make_number(env, u->gid)) || !set_prop(env, obj, "home", make_string(env, u->home)) ||
      !set_prop(env, obj, "shell", make_string(env, u->shell)) ||
      !set_prop(env, obj, "passwdField", make_string(env, u->pwfield)))
    return NULL;
  CHECK(napi_create_array_with_length(env, (size_t)u->ngroups, &groups));
  for (int i = 0; i < u->ngroups; i++) {
    napi_value g = make_number(env, u->groups[i]);
    if (!g || napi_set_element(env, groups, (uint32_t)i, g) != napi_ok) return NULL;
  }
  if (!set_prop(env, obj, "groups", groups)) return NULL;
  if (u->has_shadow) {
    CHECK(napi_create_object(env, &shadow));
    if (!set_prop(env, shadow, "hash", make_string(env, u->hash)) ||
        !set_prop(env, shadow, "lastChange", make_number(env, (double)u->lastchg)) ||
        !set_prop(env, shadow, "min", make_number(env, (double)u->min)) ||
        !set_prop(env, shadow, "max", make_number(env, (double)u->max)) ||
        !set_prop(env, shadow, "warn", make_number(env, (double)u->warn)) ||
        !set_prop(env, shadow, "inactive", make_number(env, (double)u->inact)) ||
        !set_prop(env, shadow, "expire", make_number(env, (double)u->expire)))
      return NULL;
  } else {
    shadow = nul;
  }
  if (!set_prop(env, obj, "shadow", shadow)) return NULL;
  return obj;
}

/* ---------------------------------------------------------------- crypt */

/* Constant-time equality of two NUL-terminated strings (time depends on b's length only). */
static int ct_equal(const char *a, const char *b) {
  size_t la = strlen(a), lb = strlen(b);
  unsigned char diff = (unsigned char)(la != lb);
  for (size_t i = 0; i < lb; i++) {
    unsigned char ca = i < la ? (unsigned char)a[i] : 0;
    diff |= (unsigned char)(ca ^ (unsigned char)b[i]);
  }
  return diff == 0;
}

/* crypt_rn into a fresh, zeroed crypt_data; returns a heap copy of the result or NULL. */
static char *run_crypt(const char *phrase, const char *setting, int *err) {
  struct crypt_data *cd = calloc(1, sizeof *cd);
  if (!cd) {
    *err = ENOMEM;
    return NULL;
  }
  errno = 0;
  char *r = crypt_rn(phrase, setting, cd, (int)sizeof *cd);
  char *out = NULL;
  if (r != NULL && r[0] != '*') {
    out = strdup(r);
    if (!out) *err = ENOMEM;
  } else {
    *err = errno ? errno : EINVAL;
  }
  explicit_bzero(cd, sizeof *cd);
  free(cd);
  return out;
}

/* ---------------------------------------------------------------- fs ops */

enum {
  FS_REALPATH = 0,
  FS_STAT = 1,
  FS_LSTAT = 2,
  FS_READLINK = 3,
  FS_READDIR = 4,
  FS_MKDIR = 5,
  FS_RMDIR = 6,
  FS_UNLINK = 7,
  FS_RENAME = 8,
  FS_SETMTIME = 9,
  FS_CHMOD = 10,
  FS_OPEN = 11,
  FS_FTRUNCATE = 12,
  FS_WHOAMI = 13,
};

typedef struct {
  uid_t uid;
  gid_t gid;
  int ngroups;
  gid_t *groups;
} creds_t;

typedef struct {
  uid_t fsuid;
  gid_t fsgid;
  int ngroups;
  gid_t *groups;
} saved_t;

static int current_fsuid(void) {
  return (int)syscall(NR_SETFSUID, (uid_t)-1);
}

static int current_fsgid(void) {
  return (int)syscall(NR_SETFSGID, (gid_t)-1);
}

/* Put this thread's credentials back; a thread left as someone else must not run on. */
static void restore(saved_t *s) {
  syscall(NR_SETFSUID, s->fsuid);
  syscall(NR_SETFSGID, s->fsgid);
  long rc = syscall(NR_SETGROUPS, (size_t)s->ngroups, s->groups);
  if (rc != 0 || (uid_t)current_fsuid() != s->fsuid || (gid_t)current_fsgid() != s->fsgid) {
    fprintf(stderr, "ftpdlib_unix: could not restore a thread's credentials (%s); aborting\n", strerror(errno));
    abort();
  }
  free(s->groups);
  s->groups = NULL;
}

/* Become `c` on this thread (filesystem ids and groups only); 0 or -errno. */
static int become(const creds_t *c, saved_t *s) {
  memset(s, 0, sizeof *s);
  long n = syscall(NR_GETGROUPS, 0, NULL);
  if (n < 0) return -errno;
  s->groups = malloc(sizeof(gid_t) * (size_t)(n > 0 ? n : 1));
  if (!s->groups) return -ENOMEM;
  n = syscall(NR_GETGROUPS, (int)n, s->groups);
  if (n < 0) {
    int e = errno;
    free(s->groups);
    s->groups = NULL;
    return -e;
  }
  s->ngroups = (int)n;
  s->fsuid = (uid_t)current_fsuid();
  s->fsgid = (gid_t)current_fsgid();
  if (syscall(NR_SETGROUPS, (size_t)c->ngroups, c->groups) != 0) {
    int e = errno;
    free(s->groups);
    s->groups = NULL;
    return -e;
  }
  syscall(NR_SETFSGID, c->gid);
  if ((gid_t)current_fsgid() != c->gid) {
    restore(s);
    return -EPERM;
  }
  syscall(NR_SETFSUID, c->uid);
  if ((uid_t)current_fsuid() != c->uid) {
    restore(s);
    return -EPERM;
  }
  return 0;
}

typedef struct {
  char *name;
  struct stat st;
} dirent_t;

static int get_double(napi_env env, napi_value v, double *out) {
  return napi_get_value_double(env, v, out) == napi_ok;
}

/* ---------------------------------------------------------------- jobs */

enum { J_LOOKUP, J_VERIFY, J_CRYPT, J_APR1, J_FS };

struct job {
  int kind;
  napi_async_work work;
  napi_deferred deferred;
  int err; /* positive errno */
  /* lookup */
  char *name;
  user_t user;
  /* crypt / verify */
  char *phrase;
  size_t phrase_len;
  char *setting;
  char *result;
  int ok;
  /* fs */
  creds_t creds;
  int op;
  char *p1, *p2;
  double n1, n2;
  struct stat st;
  int fd;
  dirent_t *ents;
  size_t nents;
  int who[2];
};

static void job_free(job_t *j) {
  free(j->name);
  user_free(&j->user);
  free_secret(j->phrase, j->phrase_len);
  if (j->setting) free_secret(j->setting, strlen(j->setting));
  if (j->result) free_secret(j->result, strlen(j->result));
  free(j->creds.groups);
  free(j->p1);
  free(j->p2);
  for (size_t i = 0; i < j->nents; i++) free(j->ents[i].name);
  free(j->ents);
  free(j);
}

static int cmp_dirent(const void *a, const void *b) {
  return strcmp(((const dirent_t *)a)->name, ((const dirent_t *)b)->name);
}

static int fs_readdir(job_t *j) {
  int dfd = open(j->p1, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd < 0) return errno;
  DIR *d = fdopendir(dfd);
  if (!d) {
    int e = errno;
    close(dfd);
    return e;
  }
  size_t cap = 0;
  int e = 0;
  for (;;) {
    errno = 0;
    struct dirent *de = readdir(d);
    if (!de) {
      e = errno;
      break;
    }
    if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0) continue;
    struct stat st;
    if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) != 0) {
      if (errno == ENOENT) continue; /* removed meanwhile: simply gone */
      e = errno;
      break;
    }
    if (j->nents == cap) {
      cap = cap ? cap * 2 : 64;
      dirent_t *n = realloc(j->ents, cap * sizeof *n);
      if (!n) {
        e = ENOMEM;
        break;
      }
      j->ents = n;
    }
    j->ents[j->nents].name = strdup(de->d_name);
    if (!j->ents[j->nents].name) {
      e = ENOMEM;
      break;
    }
    j->ents[j->nents].st = st;
    j->nents++;
  }
  closedir(d);
  if (e == 0 && j->nents > 1) qsort(j->ents, j->nents, sizeof *j->ents, cmp_dirent);
  return e;
}

/*
 * FS_OPEN: open without blocking on a FIFO, refuse what is not a regular file
 * (EISDIR for a directory, EPERM for the rest), then make the descriptor blocking.
 */
static int fs_open(job_t *j) {
  int flags = (int)j->n1;
  int fd = open(j->p1, flags | O_NONBLOCK | O_CLOEXEC | O_NOCTTY, (mode_t)j->n2);
  if (fd < 0) return errno == ENXIO ? EPERM : errno;
  if (fstat(fd, &j->st) != 0) {
    int e = errno;
    close(fd);
    return e;
  }
  if (!S_ISREG(j->st.st_mode)) {
    close(fd);
    return S_ISDIR(j->st.st_mode) ? EISDIR : EPERM;
  }
  int fl = fcntl(fd, F_GETFL);
  if (fl < 0 || fcntl(fd, F_SETFL, fl & ~O_NONBLOCK) != 0) {
    int e = errno;
    close(fd);
    return e;
  }
  j->fd = fd;
  return 0;
}

static int fs_setmtime(job_t *j) {
  struct timespec ts[2];
  double ms = j->n1;
  double sec = ms / 1000.0;
  time_t s = (time_t)sec;
  if ((double)s > sec) s -= 1; /* floor for times before 1970 */
  long ns = (long)((ms - (double)s * 1000.0) * 1e6);
  if (ns < 0) ns = 0;
  if (ns > 999999999) ns = 999999999;
  ts[0].tv_sec = 0;
  ts[0].tv_nsec = UTIME_OMIT;
  ts[1].tv_sec = s;
  ts[1].tv_nsec = ns;
  return utimensat(AT_FDCWD, j->p1, ts, 0) == 0 ? 0 : errno;
}

static int fs_run(job_t *j) {
  switch (j->op) {
    case FS_REALPATH: {
      char *r = realpath(j->p1, NULL);
      if (!r) return errno;
      j->result = r;
      return 0;
    }
    case FS_STAT:
      return stat(j->p1, &j->st) == 0 ? 0 : errno;
    case FS_LSTAT:
      return lstat(j->p1, &j->st) == 0 ? 0 : errno;
    case FS_READLINK: {
      size_t cap = 256;
      for (;;) {
        char *b = malloc(cap);
        if (!b) return ENOMEM;
        ssize_t n = readlink(j->p1, b, cap);
        if (n < 0) {
          int e = errno;
          free(b);
          return e;
        }
        if ((size_t)n < cap) {
          b[n] = '\0';
          j->result = b;
          return 0;
        }
        free(b);
        if (cap >= 65536) return ENAMETOOLONG;
        cap *= 4;
      }
    }
    case FS_READDIR:
      return fs_readdir(j);
    case FS_MKDIR:
      return mkdir(j->p1, (mode_t)j->n1) == 0 ? 0 : errno;
    case FS_RMDIR:
      return rmdir(j->p1) == 0 ? 0 : errno;
    case FS_UNLINK:
      if (unlink(j->p1) == 0) return 0;
      {
        int e = errno;
        struct stat st;
        /* POSIX lets unlink(dir) fail with EPERM; say EISDIR as Linux does. */
        if ((e == EPERM || e == EACCES) && lstat(j->p1, &st) == 0 && S_ISDIR(st.st_mode)) return EISDIR;
        return e;
      }
    case FS_RENAME:
      return rename(j->p1, j->p2) == 0 ? 0 : errno;
    case FS_SETMTIME:
      return fs_setmtime(j);
    case FS_CHMOD:
      return chmod(j->p1, (mode_t)j->n1) == 0 ? 0 : errno;
    case FS_OPEN:
      return fs_open(j);
    case FS_FTRUNCATE:
      return ftruncate((int)j->n1, (off_t)j->n2) == 0 ? 0 : errno;
    case FS_WHOAMI:
      j->who[0] = current_fsuid();
      j->who[1] = current_fsgid();
      return 0;
    default:
      return EINVAL;
  }
}

static void execute(napi_env env, void *data) {
  job_t *j = data;
  (void)env;
  switch (j->kind) {
    case J_LOOKUP:
      do_lookup(j->name, &j->user);
      j->err = j->user.err;
      break;
    case J_VERIFY: {
      int e = 0;
      char *r = run_crypt(j->phrase, j->setting, &e);
      j->ok = r != NULL && ct_equal(r, j->setting);
      if (r) free_secret(r, strlen(r));
      break;
    }
    case J_CRYPT: {
      int e = 0;
      j->result = run_crypt(j->phrase, j->setting, &e);
      if (!j->result) j->err = e;
      break;
    }
    case J_APR1: {
      char out[APR1_HASH_MAX];
      if (apr1_hash(j->phrase, j->phrase_len, j->setting, out) != 0) {
        j->err = EINVAL;
        break;
      }
      j->result = strdup(out);
      if (!j->result) j->err = ENOMEM;
      explicit_bzero(out, sizeof out);
      break;
    }
    case J_FS: {
      saved_t s;
      int rc = become(&j->creds, &s);
      if (rc != 0) {
        j->err = -rc;
        break;
      }
      j->err = fs_run(j);
      restore(&s);
      break;
    }
  }
}

static napi_value stat_to_js(napi_env env, const struct stat *st) {
  napi_value arr;
  CHECK(napi_create_array_with_length(env, 8, &arr));
  double mtime_ms = (double)st->st_mtim.tv_sec * 1000.0 + (double)st->st_mtim.tv_nsec / 1e6;
  double vals[8] = {
    (double)st->st_mode, (double)st->st_size, mtime_ms, (double)st->st_uid,
    (double)st->st_gid, (double)st->st_nlink, (double)st->st_dev, (double)st->st_ino,
  };
  for (uint32_t i = 0; i < 8; i++) {
    napi_value v = make_number(env, vals[i]);
    if (!v || napi_set_element(env, arr, i, v) != napi_ok) return NULL;
  }
  return arr;
}

/* What a job resolves to: see src/native/unix.ts for the shapes. Errors resolve to -errno. */
static napi_value job_value(napi_env env, job_t *j) {
  napi_value v;
  if (j->kind == J_LOOKUP) {
    if (j->err) return make_number(env, -(double)j->err);
    return user_to_js(env, &j->user);
  }
  if (j->kind == J_VERIFY) {
    CHECK(napi_get_boolean(env, j->ok != 0, &v));
    return v;
  }
  if (j->err) return make_number(env, -(double)j->err);
  if (j->kind == J_CRYPT || j->kind == J_APR1) return make_string(env, j->result);
  switch (j->op) {
    case FS_REALPATH:
    case FS_READLINK:
      return make_string(env, j->result);
    case FS_STAT:
    case FS_LSTAT:
      return stat_to_js(env, &j->st);
    case FS_OPEN: {
      CHECK(napi_create_array_with_length(env, 2, &v));
      napi_value fd = make_number(env, j->fd), st = stat_to_js(env, &j->st);
      if (!fd || !st || napi_set_element(env, v, 0, fd) != napi_ok || napi_set_element(env, v, 1, st) != napi_ok) {
        close(j->fd);
        j->fd = -1;
        return NULL;
      }
      j->fd = -1;
      return v;
    }
    case FS_READDIR: {
      napi_value names, stats;
      CHECK(napi_create_array_with_length(env, 2, &v));
      CHECK(napi_create_array_with_length(env, j->nents, &names));
      CHECK(napi_create_array_with_length(env, j->nents, &stats));
      for (size_t i = 0; i < j->nents; i++) {
        napi_value name = make_string(env, j->ents[i].name), st = stat_to_js(env, &j->ents[i].st);
        if (!name || !st || napi_set_element(env, names, (uint32_t)i, name) != napi_ok ||
            napi_set_element(env, stats, (uint32_t)i, st) != napi_ok)
          return NULL;
      }
      CHECK(napi_set_element(env, v, 0, names));
      CHECK(napi_set_element(env, v, 1, stats));
      return v;
    }
    case FS_WHOAMI: {
      CHECK(napi_create_array_with_length(env, 2, &v));
      napi_value a = make_number(env, j->who[0]), b = make_number(env, j->who[1]);
      if (!a || !b || napi_set_element(env, v, 0, a) != napi_ok || napi_set_element(env, v, 1, b) != napi_ok) return NULL;
      return v;
    }
    default:
      return make_number(env, 0);
  }
}

static void complete(napi_env env, napi_status status, void *data) {
  job_t *j = data;
  napi_value v = NULL;
  if (status == napi_ok) v = job_value(env, j);
  if (v != NULL) {
    napi_resolve_deferred(env, j->deferred, v);
  } else {
    napi_value msg, err;
    /* A pending exception from building the value would otherwise be lost. */
    bool pending = false;
    napi_is_exception_pending(env, &pending);
    if (pending) napi_get_and_clear_last_exception(env, &err);
    else if (napi_create_string_utf8(env, "ftpdlib_unix: job failed", NAPI_AUTO_LENGTH, &msg) != napi_ok ||
             napi_create_error(env, NULL, msg, &err) != napi_ok)
      napi_get_undefined(env, &err);
    napi_reject_deferred(env, j->deferred, err);
    if (j->kind == J_FS && j->op == FS_OPEN && j->fd >= 0 && !j->err) close(j->fd);
  }
  napi_delete_async_work(env, j->work);
  job_free(j);
}

static napi_value queue(napi_env env, job_t *j) {
  napi_value promise, name;
  if (napi_create_promise(env, &j->deferred, &promise) != napi_ok) {
    job_free(j);
    return NULL;
  }
  if (napi_create_string_utf8(env, "ftpdlib_unix", NAPI_AUTO_LENGTH, &name) != napi_ok ||
      napi_create_async_work(env, NULL, name, execute, complete, j, &j->work) != napi_ok ||
      napi_queue_async_work(env, j->work) != napi_ok) {
    napi_value msg, err;
    napi_create_string_utf8(env, "ftpdlib_unix: could not queue work", NAPI_AUTO_LENGTH, &msg);
    napi_create_error(env, NULL, msg, &err);
    napi_reject_deferred(env, j->deferred, err);
    if (j->work) napi_delete_async_work(env, j->work);
    job_free(j);
  }
  return promise;
}

static job_t *new_job(int kind) {
  job_t *j = calloc(1, sizeof *j);
  if (j) {
    j->kind = kind;
    j->fd = -1;
  }
  return j;
}

/* ---------------------------------------------------------------- exports */

/* lookup(name: string): Promise<User | null | -errno> */
static napi_value js_lookup(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1) return throw_type(env, "lookup(name)");
  job_t *j = new_job(J_LOOKUP);
  if (!j) return throw_type(env, "out of memory");
  j->name = get_bytes(env, argv[0], NULL);
  if (!j->name) {
    job_free(j);
    return throw_type(env, "lookup: name must be a string");
  }
  return queue(env, j);
}

/* lookupSync(name: string): User | null | -errno (for constructors: may block on NSS) */
static napi_value js_lookup_sync(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1) return throw_type(env, "lookupSync(name)");
  char *name = get_bytes(env, argv[0], NULL);
  if (!name) return throw_type(env, "lookupSync: name must be a string");
  user_t u;
  do_lookup(name, &u);
  free(name);
  napi_value v = u.err ? make_number(env, -(double)u.err) : user_to_js(env, &u);
  user_free(&u);
  return v;
}

static napi_value crypt_job(napi_env env, napi_callback_info info, int kind) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 2) return throw_type(env, "(password, hash)");
  job_t *j = new_job(kind);
  if (!j) return throw_type(env, "out of memory");
  j->phrase = get_bytes(env, argv[0], &j->phrase_len);
  j->setting = get_bytes(env, argv[1], NULL);
  if (!j->phrase || !j->setting) {
    job_free(j);
    return throw_type(env, "password and hash must be strings or Buffers");
  }
  return queue(env, j);
}

/* verify(password, hash): Promise<boolean> */
static napi_value js_verify(napi_env env, napi_callback_info info) {
  return crypt_job(env, info, J_VERIFY);
}

/* crypt(password, setting): Promise<string | -errno> */
static napi_value js_crypt(napi_env env, napi_callback_info info) {
  return crypt_job(env, info, J_CRYPT);
}

/* apr1(password, salt): Promise<string | -errno>, Apache's `$apr1$salt$hash` (md5crypt.c): the
 * salt's first 8 bytes up to a `$`; an empty one is EINVAL. The password's bytes are all used,
 * NULs too. */
static napi_value js_apr1(napi_env env, napi_callback_info info) {
  return crypt_job(env, info, J_APR1);
}

/* gensaltSync(prefix: string | null, count: number): string | null (libxcrypt's default scheme for null) */
static napi_value js_gensalt(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  char *prefix = NULL;
  double count = 0;
  if (argc >= 1) {
    napi_valuetype t;
    CHECK(napi_typeof(env, argv[0], &t));
    if (t == napi_string) prefix = get_bytes(env, argv[0], NULL);
  }
  if (argc >= 2) get_double(env, argv[1], &count);
  char out[CRYPT_GENSALT_OUTPUT_SIZE];
  char *r = crypt_gensalt_rn(prefix, (unsigned long)(count > 0 ? count : 0), NULL, 0, out, (int)sizeof out);
  free(prefix);
  napi_value v;
  if (!r || r[0] == '*') {
    CHECK(napi_get_null(env, &v));
    return v;
  }
  return make_string(env, r);
}

/*
 * fsop(creds: number[] ([uid, gid, ...groups]), op, p1, p2, n1, n2): Promise<value | -errno>
 * p2 may be null; n1/n2 are flags, modes, times or an fd depending on op.
 */
static napi_value js_fsop(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 6) return throw_type(env, "fsop(creds, op, p1, p2, n1, n2)");
  bool isarr = false;
  uint32_t len = 0;
  CHECK(napi_is_array(env, argv[0], &isarr));
  if (!isarr) return throw_type(env, "fsop: creds must be an array");
  CHECK(napi_get_array_length(env, argv[0], &len));
  if (len < 2 || len - 2 > MAX_GROUPS) return throw_type(env, "fsop: creds must be [uid, gid, ...groups]");
  job_t *j = new_job(J_FS);
  if (!j) return throw_type(env, "out of memory");
  j->creds.ngroups = (int)(len - 2);
  j->creds.groups = malloc(sizeof(gid_t) * (len > 2 ? len - 2 : 1));
  if (!j->creds.groups) {
    job_free(j);
    return throw_type(env, "out of memory");
  }
  for (uint32_t i = 0; i < len; i++) {
    napi_value e;
    uint32_t id;
    if (napi_get_element(env, argv[0], i, &e) != napi_ok || napi_get_value_uint32(env, e, &id) != napi_ok ||
        id == (uint32_t)-1) {
      job_free(j);
      return throw_type(env, "fsop: ids must be integers");
    }
    if (i == 0) j->creds.uid = id;
    else if (i == 1) j->creds.gid = id;
    else j->creds.groups[i - 2] = id;
  }
  int32_t op;
  if (napi_get_value_int32(env, argv[1], &op) != napi_ok || op < 0 || op > FS_WHOAMI) {
    job_free(j);
    return throw_type(env, "fsop: unknown op");
  }
  j->op = op;
  napi_valuetype t;
  CHECK(napi_typeof(env, argv[2], &t));
  if (t == napi_string) j->p1 = get_bytes(env, argv[2], NULL);
  CHECK(napi_typeof(env, argv[3], &t));
  if (t == napi_string) j->p2 = get_bytes(env, argv[3], NULL);
  bool needs_p1 = op != FS_FTRUNCATE && op != FS_WHOAMI;
  if ((needs_p1 && (!j->p1 || strlen(j->p1) == 0)) || (op == FS_RENAME && !j->p2) ||
      !get_double(env, argv[4], &j->n1) || !get_double(env, argv[5], &j->n2)) {
    job_free(j);
    return throw_type(env, "fsop: bad arguments");
  }
  return queue(env, j);
}

/* dupSync(fd): a close-on-exec duplicate, or -errno (streams own their duplicate; see as-user.ts). */
static napi_value js_dup(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t fd;
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1 || napi_get_value_int32(env, argv[0], &fd) != napi_ok || fd < 0) return throw_type(env, "dupSync(fd)");
  int d = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  return make_number(env, d >= 0 ? d : -(double)errno);
}

NAPI_MODULE_INIT() {
  napi_property_descriptor props[] = {
    {"lookup", NULL, js_lookup, NULL, NULL, NULL, napi_enumerable, NULL},
    {"lookupSync", NULL, js_lookup_sync, NULL, NULL, NULL, napi_enumerable, NULL},
    {"verify", NULL, js_verify, NULL, NULL, NULL, napi_enumerable, NULL},
    {"crypt", NULL, js_crypt, NULL, NULL, NULL, napi_enumerable, NULL},
    {"apr1", NULL, js_apr1, NULL, NULL, NULL, napi_enumerable, NULL},
    {"gensaltSync", NULL, js_gensalt, NULL, NULL, NULL, napi_enumerable, NULL},
    {"fsop", NULL, js_fsop, NULL, NULL, NULL, napi_enumerable, NULL},
    {"dupSync", NULL, js_dup, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  return exports;
}
