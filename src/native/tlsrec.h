/*
 * The TLS record layer of an established TLS 1.2 or 1.3 connection, for the engine's I/O
 * threads (src/native/tlsrec.c). Node runs the handshake; its key material (the `keylog`
 * event) and record counts reach the engine through JS (src/ftp/tls-gate.ts), and from then on
 * the engine seals and opens the connection's records itself: the work kernel TLS would do,
 * done in user space because this kernel has no `tls` module.
 *
 * AEAD suites only: AES-128-GCM, AES-256-GCM, ChaCha20-Poly1305. OpenSSL's EVP functions are
 * Node's own, looked up at run time, so an addon loaded into a Node.js without them keeps its
 * other paths and only loses this one (tlsrec_available).
 */
#ifndef FTPDLIB_TLSREC_H
#define FTPDLIB_TLSREC_H

#include <stddef.h>
#include <sys/types.h>
#include <stdint.h>

enum { TLSREC_AES128GCM = 0, TLSREC_AES256GCM = 1, TLSREC_CHACHA20 = 2 };

/* Largest record on the wire: header, 2^14 bytes, and the most expansion either version allows. */
#define TLSREC_MAX_PLAIN 16384
#define TLSREC_MAX_BODY (TLSREC_MAX_PLAIN + 2048)
#define TLSREC_HDR 5
/* Most bytes sealing adds to a record: header, TLS 1.2 explicit nonce, tag, TLS 1.3 type byte. */
#define TLSREC_OVERHEAD (TLSREC_HDR + 8 + 16 + 1)

typedef struct tlsrec tlsrec_t;

/* One direction's keys as JS hands them over. */
typedef struct {
  const uint8_t *key; /* 16 or 32 bytes */
  const uint8_t *iv;  /* 12 bytes (TLS 1.3, ChaCha20), or TLS 1.2 GCM's 4-byte salt */
  const uint8_t *secret; /* TLS 1.3: the traffic secret (for KeyUpdate); NULL for TLS 1.2 */
  uint64_t seq;
} tlsrec_keys_t;

/* 1 when Node's OpenSSL provides everything this needs (looked up once). */
int tlsrec_available(void);

/* NULL on a bad argument or out of memory. `version` 12 or 13; `sha384`: the suite's hash. */
tlsrec_t *tlsrec_new(int version, int aead, int sha384, const tlsrec_keys_t *rd, const tlsrec_keys_t *wr);
void tlsrec_free(tlsrec_t *t);

/*
 * Seal `len` (<= TLSREC_MAX_PLAIN) bytes of content `type` (23 data, 21 alert, 22 handshake)
 * into one record at `out` (room for len + TLSREC_OVERHEAD). Returns the record's size, or -1.
 */
ssize_t tlsrec_seal(tlsrec_t *t, int type, const uint8_t *in, size_t len, uint8_t *out);

/*
 * Open the complete record at `rec` (header included, body `len` bytes) into `out` (room for
 * `len`). Returns the plaintext length and sets *type, or -1 when it does not authenticate or
 * is malformed.
 */
ssize_t tlsrec_open(tlsrec_t *t, const uint8_t *rec, size_t len, uint8_t *out, int *type);

/* TLS 1.3 KeyUpdate: move the read (or write) side to its next traffic secret. 0, or -1. */
int tlsrec_update(tlsrec_t *t, int write_side);

/* The version this state was made for (12 or 13). */
int tlsrec_version(const tlsrec_t *t);

/* Bytes of explicit nonce before a record's ciphertext: 8 for TLS 1.2 with AES-GCM, else 0. */
size_t tlsrec_explicit_nonce(const tlsrec_t *t);

#endif
