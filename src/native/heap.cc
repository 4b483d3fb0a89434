/*
 * ftpdlib's heap addon (ftpdlib_heap.node): one call into V8 that N-API does not offer.
 *
 * memoryPressure(level) tells V8 that memory is wanted back (v8::Isolate::
 * MemoryPressureNotification): 1 "moderate" starts an incremental, mostly concurrent
 * mark-compact that reduces the heap's footprint (V8 shrinks the young generation back to
 * its first size and gives the freed pages to the kernel) and returns at once; 2 "critical"
 * runs that collection now, on the calling thread. The server calls it (src/ftp/memory-trim.ts)
 * once connection activity has paused and V8 holds much more memory than it uses: a burst of
 * logins grows the young generation up to 2 x 16 MiB, and V8 by itself keeps it resident.
 *
 * It is a separate addon because it uses V8's C++ API, which, unlike N-API, is tied to the
 * Node.js it was built against (npm install builds it for the Node.js running npm); if it
 * fails to load, say after Node.js was upgraded without a rebuild, only this call is lost.
 * Registration and arguments still go through N-API; the isolate is the calling thread's
 * (the main thread's, or a worker's).
 */
#include <node_api.h>
#include <v8.h>

static napi_value MemoryPressure(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  int32_t level = 1;
  bool ok = false;
  if (napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr) == napi_ok && argc >= 1) {
    napi_get_value_int32(env, argv[0], &level);
  }
  v8::Isolate* isolate = v8::Isolate::GetCurrent();
  if (isolate != nullptr && (level == 1 || level == 2)) {
    isolate->MemoryPressureNotification(level == 2 ? v8::MemoryPressureLevel::kCritical
                                                   : v8::MemoryPressureLevel::kModerate);
    ok = true;
  }
  napi_value r;
  napi_get_boolean(env, ok, &r);
  return r;
}

NAPI_MODULE_INIT() {
  napi_value fn;
  if (napi_create_function(env, "memoryPressure", NAPI_AUTO_LENGTH, MemoryPressure, nullptr, &fn) != napi_ok ||
      napi_set_named_property(env, exports, "memoryPressure", fn) != napi_ok) {
    return nullptr;
  }
  return exports;
}
