// Module entry: per-environment instance data and the functions lib/native/abi.ts binds to.
// Context-aware (NAPI_MODULE_INIT via NODE_API_MODULE): every worker thread loads its own copy.
#include <napi.h>

#include <algorithm>

#include "addon_data.h"
#include "diagnostic_hooks.h"
#include "engine_handle.h"
#include "errors.h"
#include "queue_opener.h"

namespace dmacopy_addon {

// The calling convention between lib/native/abi.ts and this addon (ABI_VERSION there): bumped
// whenever the two change together, so that lib/ refuses an addon built from other sources (an
// old build/Release, a stale prebuild) instead of calling what it lacks.
constexpr int kAbiVersion = 2;

// How long the main thread's teardown waits for queue releases (see ~AddonData).
constexpr uint64_t kMainThreadReleaseWaitMs = 2000;

AddonData::~AddonData() {
  for (auto& w : engines_)
    if (auto core = w.lock()) core->shutdown();
  engines_.clear();
  // A queue found wedged is released on a thread of its own, and the device may write the
  // wedged batches' destinations until that release returns. JavaScript keeps those buffers
  // referenced (lib/engine/wedged.ts), but an environment's buffers are freed with it, right
  // after this. So a worker waits here for the releases, as long as the device takes (forever
  // on a device that never finishes, as the kernel's own release would at process exit), and
  // runs any release no thread could be started for. The main thread's teardown is the
  // process's exit: it waits a bounded time, so that a device that never finishes cannot keep
  // the process from exiting (the kernel drains at exit anyway).
  if (main_thread_) releases_->wait_all(kMainThreadReleaseWaitMs, false);
  else releases_->wait_all(dmacopy::ReleaseSet::kForever, true);
  if (events_) events_->close();
}

void AddonData::set_event_handler(Napi::Env env, Napi::Function handler, bool main_thread) {
  // Once per environment: device engines and synchronous waits hold this channel's router, so
  // replacing it would free memory they still write (lib/ sets it once, completions.ts).
  if (events_)
    throw coded_error(env, "ERR_DMACOPY_INTERNAL", "the completion event handler is already set for this thread");
  events_ = std::make_unique<EventChannel>(env, handler);
  main_thread_ = main_thread;
}

EventChannel& AddonData::events(Napi::Env env) {
  if (!events_)
    throw coded_error(env, "ERR_DMACOPY_INTERNAL", "no event handler registered before an asynchronous copy");
  return *events_;
}

void AddonData::register_engine(const std::shared_ptr<EngineResources>& core) {
  engines_.erase(std::remove_if(engines_.begin(), engines_.end(),
                                [](const std::weak_ptr<EngineResources>& w) { return w.expired(); }),
                 engines_.end());
  engines_.push_back(core);
}

void AddonData::unregister_engine(const std::shared_ptr<EngineResources>& core) {
  engines_.erase(std::remove_if(engines_.begin(), engines_.end(),
                                [&](const std::weak_ptr<EngineResources>& w) {
                                  auto p = w.lock();
                                  return !p || p == core;
                                }),
                 engines_.end());
}

namespace {

Napi::Value SetEventHandler(const Napi::CallbackInfo& info) {
  if (!info[0].IsFunction())
    throw coded_type_error(info.Env(), "ERR_DMACOPY_INVALID_ARG", "handler must be a function");
  if (!info[1].IsBoolean())
    throw coded_type_error(info.Env(), "ERR_DMACOPY_INVALID_ARG", "isMainThread must be a boolean");
  AddonData::of(info.Env()).set_event_handler(info.Env(), info[0].As<Napi::Function>(), info[1].As<Napi::Boolean>());
  return info.Env().Undefined();
}

// Called by lib/ when the number of copies in flight goes from 0 to 1 and back.
Napi::Value RefEvents(const Napi::CallbackInfo& info) {
  AddonData::of(info.Env()).events(info.Env()).ref(info.Env());
  return info.Env().Undefined();
}

Napi::Value UnrefEvents(const Napi::CallbackInfo& info) {
  AddonData::of(info.Env()).events(info.Env()).unref(info.Env());
  return info.Env().Undefined();
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  env.SetInstanceData<AddonData>(new AddonData());
  exports.Set("NativeEngine", EngineHandle::Define(env));
  exports.Set("openUserQueues", Napi::Function::New<OpenUserQueues>(env, "openUserQueues"));
  exports.Set("releaseOpenedQueues", Napi::Function::New<ReleaseOpenedQueues>(env, "releaseOpenedQueues"));
  exports.Set("abiVersion", Napi::Number::New(env, kAbiVersion));
  exports.Set("setEventHandler", Napi::Function::New<SetEventHandler>(env, "setEventHandler"));
  exports.Set("refEvents", Napi::Function::New<RefEvents>(env, "refEvents"));
  exports.Set("unrefEvents", Napi::Function::New<UnrefEvents>(env, "unrefEvents"));
  exports.Set("eventFields", Napi::Number::New(env, kEventFields));
  exports.Set("memcpyBound", Napi::Function::New<MemcpyBound>(env, "memcpyBound"));
  exports.Set("cpuFeatures", Napi::Function::New<CpuFeatures>(env, "cpuFeatures"));
  return exports;
}

}  // namespace
}  // namespace dmacopy_addon

static Napi::Object InitDmacopy(Napi::Env env, Napi::Object exports) { return dmacopy_addon::Init(env, exports); }

NODE_API_MODULE(dmacopy, InitDmacopy)
