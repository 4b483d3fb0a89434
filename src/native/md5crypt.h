/* Apache's apr1 MD5-crypt (md5crypt.c). */
#ifndef FTPDLIB_MD5CRYPT_H
#define FTPDLIB_MD5CRYPT_H

#include <stddef.h>
#include <stdint.h>

/* Salt bytes taken at most (Apache's cut); the output: "$apr1$", the salt, "$", 22 characters, NUL. */
#define APR1_SALT_MAX 8
#define APR1_HASH_MAX (6 + APR1_SALT_MAX + 1 + 22 + 1)

/* The apr1 hash of the `pwlen` bytes at `pw` with `salt` (its first APR1_SALT_MAX bytes, up to
 * a `$` or NUL) into `out`. Returns 0, or -1 for an empty salt. Thread-safe. */
int apr1_hash(const char *pw, size_t pwlen, const char *salt, char out[APR1_HASH_MAX]);

#endif
