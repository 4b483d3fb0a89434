/*
 * MD5 (RFC 1321) and Apache's apr1 variant of MD5-crypt, for src/native/unix.c: htpasswd's
 * default scheme (`htpasswd -m`) checked on a pool thread (0.31 ms) instead of the event loop
 * (1,000 rounds through node:crypto: 1.8 ms of it, warm). libxcrypt has MD5-crypt only under the
 * `$1$` prefix, and the prefix is hashed in, so apr1 is computed here. src/auth/htpasswd.ts keeps the
 * same algorithm in JS (apr1Crypt) for a system without this addon; the tests compare the two.
 */
#include "md5crypt.h"

#include <math.h>
#include <pthread.h>
#include <string.h>

/* ---------------------------------------------------------------- MD5 */

typedef struct {
  uint32_t h[4];
  uint64_t len; /* bytes taken so far */
  uint8_t block[64];
  size_t used; /* bytes waiting in block */
} md5_t;

/* The sine table, K[i] = floor(|sin(i + 1)| * 2^32), and the per-step rotations. */
static uint32_t K[64];
static const uint8_t R[64] = {
  7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22,
  5, 9,  14, 20, 5, 9,  14, 20, 5, 9,  14, 20, 5, 9,  14, 20,
  4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23,
  6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
};
static pthread_once_t k_once = PTHREAD_ONCE_INIT;

static void fill_k(void) {
  /* Exact in double precision for every i: the table RFC 1321 lists. */
  for (int i = 0; i < 64; i++) K[i] = (uint32_t)floor(fabs(sin((double)(i + 1))) * 4294967296.0);
}

static uint32_t rotl(uint32_t x, int c) {
  return (x << c) | (x >> (32 - c));
}

static void md5_block(md5_t *m, const uint8_t *p) {
  uint32_t w[16];
  for (int i = 0; i < 16; i++)
    w[i] = (uint32_t)p[4 * i] | (uint32_t)p[4 * i + 1] << 8 | (uint32_t)p[4 * i + 2] << 16 | (uint32_t)p[4 * i + 3] << 24;
  uint32_t a = m->h[0], b = m->h[1], c = m->h[2], d = m->h[3];
  for (int i = 0; i < 64; i++) {
    uint32_t f;
    int g;
    switch (i >> 4) {
      case 0:
        f = (b & c) | (~b & d);
        g = i;
        break;
      case 1:
        f = (d & b) | (~d & c);
        g = (5 * i + 1) & 15;
        break;
      case 2:
        f = b ^ c ^ d;
        g = (3 * i + 5) & 15;
        break;
      default:
        f = c ^ (b | ~d);
        g = (7 * i) & 15;
        break;
    }
    uint32_t t = d;
    d = c;
    c = b;
    b = b + rotl(a + f + K[i] + w[g], R[i]);
    a = t;
  }
  m->h[0] += a;
  m->h[1] += b;
  m->h[2] += c;
  m->h[3] += d;
  /* The block may hold the password. */
  explicit_bzero(w, sizeof w);
}

static void md5_init(md5_t *m) {
  m->h[0] = 0x67452301u;
  m->h[1] = 0xefcdab89u;
  m->h[2] = 0x98badcfeu;
  m->h[3] = 0x10325476u;
  m->len = 0;
  m->used = 0;
}

static void md5_update(md5_t *m, const void *data, size_t n) {
  const uint8_t *p = data;
  m->len += n;
  if (m->used > 0) {
    size_t take = 64 - m->used < n ? 64 - m->used : n;
    memcpy(m->block + m->used, p, take);
    m->used += take;
    p += take;
    n -= take;
    if (m->used < 64) return;
    md5_block(m, m->block);
    m->used = 0;
  }
  for (; n >= 64; p += 64, n -= 64) md5_block(m, p);
  memcpy(m->block, p, n);
  m->used = n;
}

static void md5_final(md5_t *m, uint8_t out[16]) {
  uint64_t bits = m->len * 8;
  uint8_t pad[72] = {0x80};
  size_t padlen = (m->used < 56 ? 56 : 120) - m->used;
  md5_update(m, pad, padlen);
  uint8_t lenle[8];
  for (int i = 0; i < 8; i++) lenle[i] = (uint8_t)(bits >> (8 * i));
  md5_update(m, lenle, 8);
  for (int i = 0; i < 4; i++) {
    out[4 * i] = (uint8_t)m->h[i];
    out[4 * i + 1] = (uint8_t)(m->h[i] >> 8);
    out[4 * i + 2] = (uint8_t)(m->h[i] >> 16);
    out[4 * i + 3] = (uint8_t)(m->h[i] >> 24);
  }
}

/* ---------------------------------------------------------------- apr1 */

static const char ITOA64[] = "./0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

static char *put64(char *o, uint32_t v, int n) {
  while (n-- > 0) {
    *o++ = ITOA64[v & 0x3f];
    v >>= 6;
  }
  return o;
}

int apr1_hash(const char *pw, size_t pwlen, const char *salt_in, char out[APR1_HASH_MAX]) {
  static const char magic[] = "$apr1$";
  const size_t mlen = sizeof magic - 1;
  pthread_once(&k_once, fill_k);
  /* The salt: up to a `$`, at most 8 bytes (as Apache cuts it). */
  size_t slen = 0;
  while (slen < APR1_SALT_MAX && salt_in[slen] && salt_in[slen] != '$') slen++;
  if (slen == 0) return -1;

  uint8_t fin[16];
  md5_t m, alt;
  md5_init(&alt);
  md5_update(&alt, pw, pwlen);
  md5_update(&alt, salt_in, slen);
  md5_update(&alt, pw, pwlen);
  md5_final(&alt, fin);

  md5_init(&m);
  md5_update(&m, pw, pwlen);
  md5_update(&m, magic, mlen);
  md5_update(&m, salt_in, slen);
  for (size_t left = pwlen; left > 0; left -= left > 16 ? 16 : left) md5_update(&m, fin, left > 16 ? 16 : left);
  /* The bits of the length pick a NUL byte (set) or the password's first byte (clear). */
  static const uint8_t zero = 0;
  for (size_t i = pwlen; i; i >>= 1) md5_update(&m, (i & 1) ? (const void *)&zero : (const void *)pw, 1);
  md5_final(&m, fin);

  for (int i = 0; i < 1000; i++) {
    md5_init(&m);
    if (i & 1)
      md5_update(&m, pw, pwlen);
    else
      md5_update(&m, fin, 16);
    if (i % 3) md5_update(&m, salt_in, slen);
    if (i % 7) md5_update(&m, pw, pwlen);
    if (i & 1)
      md5_update(&m, fin, 16);
    else
      md5_update(&m, pw, pwlen);
    md5_final(&m, fin);
  }

  char *o = out;
  memcpy(o, magic, mlen);
  o += mlen;
  memcpy(o, salt_in, slen);
  o += slen;
  *o++ = '$';
  o = put64(o, (uint32_t)fin[0] << 16 | (uint32_t)fin[6] << 8 | fin[12], 4);
  o = put64(o, (uint32_t)fin[1] << 16 | (uint32_t)fin[7] << 8 | fin[13], 4);
  o = put64(o, (uint32_t)fin[2] << 16 | (uint32_t)fin[8] << 8 | fin[14], 4);
  o = put64(o, (uint32_t)fin[3] << 16 | (uint32_t)fin[9] << 8 | fin[15], 4);
  o = put64(o, (uint32_t)fin[4] << 16 | (uint32_t)fin[10] << 8 | fin[5], 4);
  o = put64(o, fin[11], 2);
  *o = '\0';
  /* The intermediate digests are as secret as the password. */
  explicit_bzero(fin, sizeof fin);
  explicit_bzero(&m, sizeof m);
  explicit_bzero(&alt, sizeof alt);
  return 0;
}
