# The zero-copy transfer engine. Built by `npm run build:native`
# (node-gyp rebuild --directory=src/native); output in build/Release/.
{
  "targets": [
    {
      "target_name": "ftpdlib_native",
      "sources": ["engine.c", "tlsrec.c"],
      "defines": ["NAPI_VERSION=8", "_GNU_SOURCE", "_FILE_OFFSET_BITS=64"],
      "cflags!": ["-O3", "-O0"],
      "cflags": ["-O2", "-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter", "-fvisibility=hidden"],
      "libraries": ["-lpthread", "-ldl"],
      "configurations": {
        "Release": { "cflags!": ["-O3"], "cflags": ["-O2"] }
      }
    },
    # V8's memory-pressure call (heap.cc, src/native/heap.ts): its own addon because it uses
    # V8's C++ API, tied to the Node.js it was built for; if it fails to load, only that call
    # is lost, not the engine.
    {
      "target_name": "ftpdlib_heap",
      "sources": ["heap.cc"],
      "defines": ["NAPI_VERSION=8"],
      "cflags_cc": ["-O2", "-Wall", "-Wextra", "-fvisibility=hidden"]
    }
  ],
  # System users (src/native/unix.c, for src/auth/unix.ts and src/fs/as-user.ts): a second
  # addon, built only where libcrypt's header is (Debian: apt-get install libcrypt-dev), so a
  # system without it still gets the engine.
  "variables": {
    "have_crypt_h": "<!(echo '#include <crypt.h>' | ${CC:-cc} -E -x c - >/dev/null 2>&1 && echo 1 || echo 0)"
  },
  "conditions": [
    ["have_crypt_h==1", {
      "targets": [
        {
          "target_name": "ftpdlib_unix",
          "sources": ["unix.c", "md5crypt.c"],
          "defines": ["NAPI_VERSION=8", "_GNU_SOURCE", "_FILE_OFFSET_BITS=64"],
          "cflags!": ["-O3", "-O0"],
          "cflags": ["-O2", "-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter", "-fvisibility=hidden"],
          "libraries": ["-lcrypt", "-lm"]
        }
      ]
    }]
  ]
}
