# The zero-copy transfer engine. Built by `npm run build:native`
# (node-gyp rebuild --directory=src/native); output in build/Release/.
{
  "targets": [
    {
      "target_name": "ftpdlib_native",
      "sources": ["engine.c"],
      "defines": ["NAPI_VERSION=8", "_GNU_SOURCE", "_FILE_OFFSET_BITS=64"],
      "cflags!": ["-O3", "-O0"],
      "cflags": ["-O2", "-std=gnu11", "-Wall", "-Wextra", "-Wno-unused-parameter", "-fvisibility=hidden"],
      "libraries": ["-lpthread"],
      "configurations": {
        "Release": { "cflags!": ["-O3"], "cflags": ["-O2"] }
      }
    }
  ]
}
