#include "queue_opener.h"

#include <exception>
#include <string>
#include <system_error>
#include <thread>
#include <utility>

#include "queue_reaper.h"
#include "thread_name.h"

#include "args.h"
#include "errors.h"

namespace dmacopy_addon {

namespace {

// One /dev/dsa queue from what lib/host/discovery.ts read.
dmacopy::UserQueueConfig user_queue_config(const Napi::Object& q) {
  dmacopy::UserQueueConfig c;
  c.device_path = required_string(q, "devicePath");
  c.info.name = required_string(q, "name");
  c.info.mode = mode_of(q);
  c.info.size = static_cast<uint32_t>(bounded(q, "size", 4096));
  c.info.max_transfer_size = bounded(q, "maxTransferSize", 4294967296.0);
  c.info.cache_control = required_bool(q, "cacheControl");
  c.wq_state_path = required_string(q, "wqStatePath");
  c.device_state_path = required_string(q, "deviceStatePath");
  c.device_errors_path = required_string(q, "deviceErrorsPath");
  std::string path = required_string(q, "submission");
  if (path != "auto" && path != "portal" && path != "write")
    throw coded_range_error(q.Env(), "ERR_DMACOPY_OUT_OF_RANGE", "submission must be 'auto', 'portal' or 'write'");
  c.submission = path == "portal"  ? dmacopy::SubmissionPath::Portal
                 : path == "write" ? dmacopy::SubmissionPath::Write
                                   : dmacopy::SubmissionPath::Auto;
  // Not a policy lib sets: the NOOP probe's bound stays the core's (user_queue.h) unless given.
  if (!q.Get("probeTimeoutMs").IsUndefined())
    c.probe_timeout_ms = static_cast<uint32_t>(bounded(q, "probeTimeoutMs", 600000));
  return c;
}

// Tags our Externals, so a foreign External is refused instead of being cast.
const napi_type_tag kOpenedTag = {0x646d61636f707970ull, 0x6f70656e65647771ull};

class OpenWorker : public Napi::AsyncWorker {
 public:
  OpenWorker(Napi::Env env, std::vector<dmacopy::UserQueueConfig> configs)
      : Napi::AsyncWorker(env, "dmacopy-open-queues"),
        deferred_(Napi::Promise::Deferred::New(env)),
        configs_(std::move(configs)) {}

  Napi::Promise promise() const { return deferred_.Promise(); }

  // A libuv pool thread. Each queue's probe may wait its full timeout on a device that does not
  // answer, so the queues open side by side (N such queues cost one timeout, not N), each on a
  // thread of its own; one the system refuses a thread for opens here, after the others started.
  void Execute() override {
    const size_t n = configs_.size();
    opened_.results.resize(n);
    std::vector<std::unique_ptr<dmacopy::UserWorkQueue>> queues(n);
    std::vector<std::string> failures(n);
    auto open_one = [&](size_t i) {
      try {
        auto q = std::make_unique<dmacopy::UserWorkQueue>(configs_[i]);
        opened_.results[i] = q->open();
        if (opened_.results[i].ok) queues[i] = std::move(q);
      } catch (const std::exception& e) {
        failures[i] = e.what();  // out of memory: the call fails, what opened is released below
      }
    };
    std::vector<std::thread> threads;
    threads.reserve(n);  // no allocation between starting a thread and keeping it
    std::vector<size_t> here;
    here.reserve(n);
    for (size_t i = 1; i < n; ++i) {
      try {
        threads.emplace_back([&open_one, i] {
          dmacopy::name_this_thread("dmacopy-open");  // never the pool thread: libuv's, not ours to name
          open_one(i);
        });
      } catch (...) {  // no thread (a task limit, or no memory for one): open it here instead
        here.push_back(i);
      }
    }
    if (n > 0) open_one(0);
    for (size_t i : here) open_one(i);
    for (std::thread& t : threads) t.join();
    for (auto& q : queues)
      if (q) opened_.queues.push_back(std::move(q));
    for (const std::string& f : failures)
      if (!f.empty()) return SetError("opening the DSA queues failed: " + f);
  }

  void OnOK() override {
    Napi::Env env = Env();
    auto holder = std::make_unique<OpenedQueues>(std::move(opened_));
    auto ext = Napi::External<OpenedQueues>::New(env, holder.get(), [](Napi::Env, OpenedQueues* o) { delete o; });
    holder.release();  // the External owns it now
    if (napi_type_tag_object(env, ext, &kOpenedTag) != napi_ok) {
      deferred_.Reject(coded_error(env, "ERR_DMACOPY_INTERNAL", "could not tag the opened queues' handle").Value());
      return;
    }
    deferred_.Resolve(ext);
  }

  void OnError(const Napi::Error& e) override {
    deferred_.Reject(coded_error(Env(), "ERR_DMACOPY_RESOURCES", e.Message() + "; nothing was kept open").Value());
  }

 private:
  Napi::Promise::Deferred deferred_;
  std::vector<dmacopy::UserQueueConfig> configs_;
  OpenedQueues opened_;  // what Execute opened; released with the worker if never handed over
};

}  // namespace

OpenedQueues::~OpenedQueues() {
  // An open queue's release may wait for the device (the kernel drains on the last close), so it
  // never runs on the thread that frees this (the JavaScript thread, in a finalizer).
  for (auto& q : queues)
    if (q) dmacopy::QueueReaper::retire(std::move(q), nullptr);
}

namespace {

Napi::Value open_user_queues(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsArray()) throw coded_type_error(env, "ERR_DMACOPY_INVALID_ARG", "queues must be an array");
  Napi::Array qs = info[0].As<Napi::Array>();
  std::vector<dmacopy::UserQueueConfig> configs;
  for (uint32_t i = 0; i < qs.Length(); ++i) {
    Napi::Value qv = qs.Get(i);
    if (!qv.IsObject()) throw coded_type_error(env, "ERR_DMACOPY_INVALID_ARG", "queues entries must be objects");
    configs.push_back(user_queue_config(qv.As<Napi::Object>()));
  }
  auto* worker = new OpenWorker(env, std::move(configs));  // deletes itself once settled
  Napi::Promise p = worker->promise();
  worker->Queue();
  return p;
}

}  // namespace

Napi::Value OpenUserQueues(const Napi::CallbackInfo& info) {
  // node-addon-api turns only Napi::Error into a JavaScript exception; anything else would abort.
  try {
    return open_user_queues(info);
  } catch (const Napi::Error&) {
    throw;
  } catch (const std::exception& e) {
    throw coded_error(info.Env(), "ERR_DMACOPY_RESOURCES",
                      std::string("could not start opening the DSA queues (") + e.what() + "); nothing was opened");
  }
}

Napi::Value ReleaseOpenedQueues(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bool ours = false;
  if (info[0].IsExternal()) NAPI_THROW_IF_FAILED(env, napi_check_object_type_tag(env, info[0], &kOpenedTag, &ours), {});
  if (!ours) throw coded_type_error(env, "ERR_DMACOPY_INVALID_ARG", "handle must come from openUserQueues()");
  if (!info[0].As<Napi::External<OpenedQueues>>().Data()->taken) {
    OpenedQueues gone = take_opened_queues(env, info[0]);  // released as it goes out of scope
  }
  return env.Undefined();
}

OpenedQueues take_opened_queues(Napi::Env env, const Napi::Value& handle) {
  bool ours = false;
  if (handle.IsExternal()) NAPI_THROW_IF_FAILED(env, napi_check_object_type_tag(env, handle, &kOpenedTag, &ours), {});
  if (!ours) throw coded_type_error(env, "ERR_DMACOPY_INVALID_ARG", "dsa.opened must come from openUserQueues()");
  OpenedQueues* o = handle.As<Napi::External<OpenedQueues>>().Data();
  if (o->taken)
    throw coded_error(env, "ERR_DMACOPY_INVALID_ARG", "these queues were already taken by an engine: open them again");
  OpenedQueues out = std::move(*o);
  o->queues.clear();
  o->taken = true;
  out.taken = true;
  return out;
}

}  // namespace dmacopy_addon
