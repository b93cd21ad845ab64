// Built instead of the real addon where DSA and the tuned copy loops cannot exist (not Linux, not
// x86-64). The build succeeds and lib/ reports the reason; the CPU path then runs in JavaScript.
#include <napi.h>

namespace {
Napi::Object Init(Napi::Env env, Napi::Object exports) {
  exports.Set("unsupported", Napi::String::New(env, "dmacopy's native engine supports Linux on x86-64 only"));
  return exports;
}
}  // namespace

NODE_API_MODULE(dmacopy, Init)
