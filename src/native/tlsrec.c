/*
 * The TLS record layer (tlsrec.h): AEAD sealing and opening with Node's OpenSSL, per
 * RFC 8446 section 5 (TLS 1.3) and RFC 5246 section 6.2.3.3 with RFC 5288 and RFC 7905
 * (TLS 1.2 GCM and ChaCha20-Poly1305).
 */
#include "tlsrec.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* The few EVP calls needed, resolved from the process (Node exports its OpenSSL). */
typedef void evp_ctx;
typedef const void evp_cipher;
typedef const void evp_md;
static struct {
  evp_ctx *(*ctx_new)(void);
  void (*ctx_free)(evp_ctx *);
  int (*init)(evp_ctx *, evp_cipher *, void *, const unsigned char *, const unsigned char *, int);
  int (*update)(evp_ctx *, unsigned char *, int *, const unsigned char *, int);
  int (*final)(evp_ctx *, unsigned char *, int *);
  int (*ctrl)(evp_ctx *, int, int, void *);
  evp_cipher *(*aes128gcm)(void);
  evp_cipher *(*aes256gcm)(void);
  evp_cipher *(*chacha)(void);
  unsigned char *(*hmac)(evp_md *, const void *, int, const unsigned char *, size_t, unsigned char *, unsigned int *);
  evp_md *(*sha256)(void);
  evp_md *(*sha384)(void);
} E;
static int loaded = -1;
static pthread_once_t once = PTHREAD_ONCE_INIT;

#define CTRL_AEAD_SET_IVLEN 0x9
#define CTRL_AEAD_GET_TAG 0x10
#define CTRL_AEAD_SET_TAG 0x11
#define TAG 16

static void load(void) {
#define SYM(field, name) (*(void **)&E.field = dlsym(RTLD_DEFAULT, name)) != NULL
  loaded = SYM(ctx_new, "EVP_CIPHER_CTX_new") && SYM(ctx_free, "EVP_CIPHER_CTX_free") &&
           SYM(init, "EVP_CipherInit_ex") && SYM(update, "EVP_CipherUpdate") && SYM(final, "EVP_CipherFinal_ex") &&
           SYM(ctrl, "EVP_CIPHER_CTX_ctrl") && SYM(aes128gcm, "EVP_aes_128_gcm") && SYM(aes256gcm, "EVP_aes_256_gcm") &&
           SYM(chacha, "EVP_chacha20_poly1305") && SYM(hmac, "HMAC") && SYM(sha256, "EVP_sha256") &&
           SYM(sha384, "EVP_sha384");
#undef SYM
}

int tlsrec_available(void) {
  pthread_once(&once, load);
  return loaded == 1;
}

typedef struct {
  evp_ctx *ctx;
  uint8_t iv[12];
  uint8_t secret[48];
  int has_secret;
  uint64_t seq;
} side_t;

struct tlsrec {
  int v13, aead, sha384;
  size_t klen, hlen;
  side_t rd, wr;
};

int tlsrec_version(const tlsrec_t *t) { return t->v13 ? 13 : 12; }

static evp_cipher *cipher_of(int aead) {
  return aead == TLSREC_AES128GCM ? E.aes128gcm() : aead == TLSREC_AES256GCM ? E.aes256gcm() : E.chacha();
}

size_t tlsrec_explicit_nonce(const tlsrec_t *t) {
  return (!t->v13 && t->aead != TLSREC_CHACHA20) ? 8 : 0;
}

static int side_key(tlsrec_t *t, side_t *s, const uint8_t *key, int enc) {
  if (!s->ctx) {
    s->ctx = E.ctx_new();
    if (!s->ctx) return -1;
    if (E.init(s->ctx, cipher_of(t->aead), NULL, NULL, NULL, enc) != 1) return -1;
    if (E.ctrl(s->ctx, CTRL_AEAD_SET_IVLEN, 12, NULL) != 1) return -1;
  }
  return E.init(s->ctx, NULL, NULL, key, NULL, enc) == 1 ? 0 : -1;
}

/* TLS 1.3 and TLS 1.2 ChaCha20 XOR the sequence number into the IV; TLS 1.2 GCM uses a 4-byte
 * salt and an explicit 8-byte nonce (here, as everywhere, the sequence number). */
static void nonce(const tlsrec_t *t, const side_t *s, uint64_t seq, const uint8_t *explicit_nonce, uint8_t out[12]) {
  if (!t->v13 && t->aead != TLSREC_CHACHA20) {
    memcpy(out, s->iv, 4);
    memcpy(out + 4, explicit_nonce, 8);
    return;
  }
  memcpy(out, s->iv, 12);
  for (int i = 0; i < 8; i++) out[4 + i] ^= (uint8_t)(seq >> (56 - 8 * i));
}

static void be64(uint8_t *p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (56 - 8 * i));
}

/* HKDF-Expand-Label(secret, label, "", len) for len <= the hash length (RFC 8446 7.1). */
static int expand_label(const tlsrec_t *t, const uint8_t *secret, const char *label, uint8_t *out, size_t len) {
  uint8_t info[64];
  size_t ll = strlen(label), n = 0;
  info[n++] = (uint8_t)(len >> 8);
  info[n++] = (uint8_t)len;
  info[n++] = (uint8_t)(6 + ll);
  memcpy(info + n, "tls13 ", 6);
  n += 6;
  memcpy(info + n, label, ll);
  n += ll;
  info[n++] = 0; /* empty context */
  info[n++] = 1; /* HKDF-Expand's first (and only) block counter */
  uint8_t md[64];
  unsigned int mdlen = 0;
  if (!E.hmac(t->sha384 ? E.sha384() : E.sha256(), secret, (int)t->hlen, info, n, md, &mdlen) || mdlen < len) return -1;
  memcpy(out, md, len);
  return 0;
}

static int side_init(tlsrec_t *t, side_t *s, const tlsrec_keys_t *k, int enc) {
  memcpy(s->iv, k->iv, (!t->v13 && t->aead != TLSREC_CHACHA20) ? 4 : 12);
  if (k->secret) {
    memcpy(s->secret, k->secret, t->hlen);
    s->has_secret = 1;
  }
  s->seq = k->seq;
  return side_key(t, s, k->key, enc);
}

tlsrec_t *tlsrec_new(int version, int aead, int sha384, const tlsrec_keys_t *rd, const tlsrec_keys_t *wr) {
  if (!tlsrec_available() || (version != 12 && version != 13) || aead < 0 || aead > TLSREC_CHACHA20) return NULL;
  tlsrec_t *t = calloc(1, sizeof *t);
  if (!t) return NULL;
  t->v13 = version == 13;
  t->aead = aead;
  t->sha384 = sha384 != 0;
  t->klen = aead == TLSREC_AES128GCM ? 16 : 32;
  t->hlen = t->sha384 ? 48 : 32;
  if (side_init(t, &t->rd, rd, 0) < 0 || side_init(t, &t->wr, wr, 1) < 0) {
    tlsrec_free(t);
    return NULL;
  }
  return t;
}

void tlsrec_free(tlsrec_t *t) {
  if (!t) return;
  if (t->rd.ctx) E.ctx_free(t->rd.ctx);
  if (t->wr.ctx) E.ctx_free(t->wr.ctx);
  memset(t, 0, sizeof *t);
  free(t);
}

ssize_t tlsrec_seal(tlsrec_t *t, int type, const uint8_t *in, size_t len, uint8_t *out) {
  if (len > TLSREC_MAX_PLAIN) return -1;
  side_t *s = &t->wr;
  uint8_t n[12], ex[8], aad[13];
  be64(ex, s->seq);
  nonce(t, s, s->seq, ex, n);
  size_t body;
  uint8_t *p = out + TLSREC_HDR;
  int ol = 0, fl = 0;
  if (E.init(s->ctx, NULL, NULL, NULL, n, 1) != 1) return -1;
  if (t->v13) {
    body = len + 1 + TAG;
    out[0] = 23;
    out[1] = 3;
    out[2] = 3;
    out[3] = (uint8_t)(body >> 8);
    out[4] = (uint8_t)body;
    if (E.update(s->ctx, NULL, &ol, out, TLSREC_HDR) != 1) return -1;
    if (len && E.update(s->ctx, p, &ol, in, (int)len) != 1) return -1;
    uint8_t ct = (uint8_t)type;
    if (E.update(s->ctx, p + len, &ol, &ct, 1) != 1) return -1;
    if (E.final(s->ctx, p + len + 1, &fl) != 1) return -1;
    if (E.ctrl(s->ctx, CTRL_AEAD_GET_TAG, TAG, p + len + 1) != 1) return -1;
  } else {
    size_t exn = t->aead != TLSREC_CHACHA20 ? 8 : 0;
    body = exn + len + TAG;
    out[0] = (uint8_t)type;
    out[1] = 3;
    out[2] = 3;
    out[3] = (uint8_t)(body >> 8);
    out[4] = (uint8_t)body;
    be64(aad, s->seq);
    aad[8] = (uint8_t)type;
    aad[9] = 3;
    aad[10] = 3;
    aad[11] = (uint8_t)(len >> 8);
    aad[12] = (uint8_t)len;
    memcpy(p, ex, exn);
    p += exn;
    if (E.update(s->ctx, NULL, &ol, aad, 13) != 1) return -1;
    if (len && E.update(s->ctx, p, &ol, in, (int)len) != 1) return -1;
    if (E.final(s->ctx, p + len, &fl) != 1) return -1;
    if (E.ctrl(s->ctx, CTRL_AEAD_GET_TAG, TAG, p + len) != 1) return -1;
  }
  s->seq++;
  return (ssize_t)(TLSREC_HDR + body);
}

ssize_t tlsrec_open(tlsrec_t *t, const uint8_t *rec, size_t len, uint8_t *out, int *type) {
  side_t *s = &t->rd;
  const uint8_t *body = rec + TLSREC_HDR;
  size_t exn = (!t->v13 && t->aead != TLSREC_CHACHA20) ? 8 : 0;
  /* RFC 8446 5.2: a TLS 1.3 record's body is at most 2^14 + 256 bytes; RFC 5246 6.2.3: 2^14 + 2048. */
  if (len < exn + TAG || len > (t->v13 ? TLSREC_MAX_PLAIN + 256 : TLSREC_MAX_BODY)) return -1;
  size_t ctlen = len - exn - TAG;
  /* Plaintext: at most 2^14 bytes (TLS 1.3: TLSInnerPlaintext, the type byte added, at most 2^14 + 1). */
  if (ctlen > TLSREC_MAX_PLAIN + (t->v13 ? 1 : 0)) return -1;
  uint8_t n[12], aad[13];
  nonce(t, s, s->seq, body, n);
  int ol = 0, fl = 0;
  if (E.init(s->ctx, NULL, NULL, NULL, n, 0) != 1) return -1;
  if (E.ctrl(s->ctx, CTRL_AEAD_SET_TAG, TAG, (void *)(body + len - TAG)) != 1) return -1;
  if (t->v13) {
    if (rec[0] != 23) return -1; /* every protected TLS 1.3 record says application_data outside */
    if (E.update(s->ctx, NULL, &ol, rec, TLSREC_HDR) != 1) return -1;
  } else {
    be64(aad, s->seq);
    aad[8] = rec[0];
    aad[9] = rec[1];
    aad[10] = rec[2];
    aad[11] = (uint8_t)(ctlen >> 8);
    aad[12] = (uint8_t)ctlen;
    if (E.update(s->ctx, NULL, &ol, aad, 13) != 1) return -1;
  }
  if (ctlen && E.update(s->ctx, out, &ol, body + exn, (int)ctlen) != 1) return -1;
  if (E.final(s->ctx, out + ctlen, &fl) != 1) return -1;
  s->seq++;
  if (!t->v13) {
    *type = rec[0];
    return (ssize_t)ctlen;
  }
  /* TLSInnerPlaintext: content, then the real type, then zero padding. */
  size_t i = ctlen;
  while (i > 0 && out[i - 1] == 0) i--;
  if (i == 0) return -1;
  *type = out[i - 1];
  return (ssize_t)(i - 1);
}

int tlsrec_update(tlsrec_t *t, int write_side) {
  side_t *s = write_side ? &t->wr : &t->rd;
  if (!t->v13 || !s->has_secret) return -1;
  uint8_t next[48], key[32];
  if (expand_label(t, s->secret, "traffic upd", next, t->hlen) < 0) return -1;
  memcpy(s->secret, next, t->hlen);
  if (expand_label(t, s->secret, "key", key, t->klen) < 0 || expand_label(t, s->secret, "iv", s->iv, 12) < 0) return -1;
  s->seq = 0;
  int r = side_key(t, s, key, write_side);
  memset(key, 0, sizeof key);
  memset(next, 0, sizeof next);
  return r;
}
