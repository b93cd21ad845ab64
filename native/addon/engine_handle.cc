#include "engine_handle.h"

#include <sched.h>

#include <cmath>
#include <exception>
#include <new>
#include <stdexcept>
#include <string>
#include <system_error>

#include "completion_arena.h"
#include "soft_device.h"

#include "addon_data.h"
#include "args.h"
#include "batch_plan.h"
#include "copy_executor.h"
#include "errors.h"
#include "event_channel.h"
#include "queue_opener.h"

namespace dmacopy_addon {

using dmacopy::BufferSpan;
using dmacopy::CopyMode;
using dmacopy::CopyRegion;
using dmacopy::StoreKind;

namespace {

constexpr uint32_t kListForm = static_cast<uint32_t>(dmacopy::TableForm::List);
constexpr uint32_t kSync = static_cast<uint32_t>(CopyMode::Sync);
constexpr uint32_t kAsync = static_cast<uint32_t>(CopyMode::Async);

// Writes an op's summed events into a Float64Array in event layout (ignored if `out` is not one).
void write_totals(const Napi::Value& out, const dmacopy::EventRecord& totals) {
  if (!out.IsTypedArray() || out.As<Napi::TypedArray>().TypedArrayType() != napi_float64_array) return;
  Napi::Float64Array arr = out.As<Napi::Float64Array>();
  for (size_t i = 0; i < kEventFields && i < arr.ElementLength(); ++i) arr[i] = totals.f[i];
}

// One software DSA queue from the (already validated and completed) emulator settings of lib/.
std::unique_ptr<dmacopy::WorkQueue> soft_queue(const Napi::Object& q) {
  auto u32 = [&](const char* key, double max) { return static_cast<uint32_t>(bounded(q, key, max)); };
  dmacopy::SoftDeviceConfig c;
  c.name = required_string(q, "name");
  c.engines = u32("engines", 64);
  c.wq_size = u32("wqSize", 4096);
  c.mode = mode_of(q);
  c.max_transfer_size = bounded(q, "maxTransferSize", 4294967296.0);
  // (maxBatchSize is not read: the engine never submits BATCH descriptors.)
  c.seed = bounded(q, "seed", 9007199254740991.0);
  c.latency_us = u32("latencyUs", 1e7);
  c.jitter_us = u32("jitterUs", 1e7);
  Napi::Object f = required_object(q, "faults");
  c.faults.page_fault = required_number(f, "pageFault");
  c.faults.backward = required_number(f, "backward");
  c.faults.error = required_number(f, "error");
  c.faults.hang = required_number(f, "hang");
  c.faults.hang_ms = static_cast<uint32_t>(bounded(f, "hangMs", 600000));
  c.faults.lost_record = required_number(f, "lostRecord");
  c.faults.late = required_number(f, "late");
  c.faults.late_ms = static_cast<uint32_t>(bounded(f, "lateMs", 600000));
  c.faults.retry = required_number(f, "retry");
  c.faults.disable = required_number(f, "disable");
  c.faults.real_page_faults = required_bool(f, "realPageFaults");
  // Queues given the same device name share its software-error latch (one device, several
  // queues or engines), as every client of a real device does.
  c.errors = dmacopy::soft_error_latch(required_string(q, "device"));
  try {
    return std::make_unique<dmacopy::SoftWorkQueue>(c);
  } catch (const std::invalid_argument& e) {
    // lib/ validates these ranges first; a value the core refuses must not abort the process.
    throw coded_range_error(q.Env(), "ERR_DMACOPY_OUT_OF_RANGE", e.what());
  }
}

Napi::Error closed_error(Napi::Env env) {
  return coded_error(env, "ERR_DMACOPY_CLOSED", "The engine is closed: open a new one with openEngine().");
}

// Works a bounds table describes: k+1 (folio, offset) pairs.
size_t works_of_bounds(Napi::Env env, const DoubleTable& bounds) {
  if (bounds.length < 4 || bounds.length % 2 != 0)
    throw coded_range_error(env, "ERR_DMACOPY_OUT_OF_RANGE", "bounds must hold at least two (folio, offset) pairs");
  return bounds.length / 2 - 1;
}

uint64_t plan_bytes(const dmacopy::WorkPieces& pieces) {
  uint64_t total = 0;
  for (const CopyRegion& r : pieces.pieces) total += r.len;
  return total;
}

// Batches at least non_temporal_min_bytes large stream their stores.
StoreKind store_for(const EngineResources& core, uint64_t bytes) {
  return bytes >= core.non_temporal_min_bytes ? StoreKind::NonTemporal : StoreKind::Cached;
}

}  // namespace

void EngineResources::shutdown() {
  closed = true;
  // The DSA channels first: it drains its queues and may still hand fallbacks to the CPU copy pool.
  if (dsa) dsa->close();
  if (cpu) cpu->shutdown();
}

Napi::Function EngineHandle::Define(Napi::Env env) {
  return DefineClass(env, "NativeEngine",
                     {InstanceMethod<&EngineHandle::Guarded<&EngineHandle::Copy>>("copy"),
                      InstanceMethod<&EngineHandle::Guarded<&EngineHandle::Stats>>("stats"),
                      InstanceMethod<&EngineHandle::Guarded<&EngineHandle::Close>>("close"),
                      InstanceMethod<&EngineHandle::Guarded<&EngineHandle::Queues>>("queues"),
                      InstanceMethod<&EngineHandle::Guarded<&EngineHandle::EndBatch>>("endBatch"),
                      InstanceMethod<&EngineHandle::Guarded<&EngineHandle::RegisterSync>>("registerSync"),
                      InstanceMethod<&EngineHandle::Guarded<&EngineHandle::WaitSync>>("waitSync"),
                      InstanceMethod<&EngineHandle::Guarded<&EngineHandle::Prepare>>("prepare"),
                      InstanceMethod<&EngineHandle::Guarded<&EngineHandle::RunPrepared>>("runPrepared"),
                      InstanceMethod<&EngineHandle::Guarded<&EngineHandle::ReleasePrepared>>("releasePrepared")});
}

namespace {

// What the guard makes of a C++ exception that is not already a coded Napi::Error.
Napi::Error coded_from(Napi::Env env, const std::exception_ptr& ep) {
  try {
    std::rethrow_exception(ep);
  } catch (const std::bad_alloc&) {
    return coded_error(env, "ERR_DMACOPY_RESOURCES",
                       "out of memory in the native engine; the call did not complete: use smaller batches, or give "
                       "the process more memory");
  } catch (const std::system_error& e) {
    return coded_error(
        env, "ERR_DMACOPY_RESOURCES",
        std::string("the system refused the native engine a resource (") + e.what() + "); the call did not complete");
  } catch (const std::exception& e) {
    return coded_error(env, "ERR_DMACOPY_INTERNAL", std::string("native engine: ") + e.what() + ": please report this");
  } catch (...) {
    return coded_error(env, "ERR_DMACOPY_INTERNAL", "native engine: unknown exception: please report this");
  }
}

}  // namespace

template <Napi::Value (EngineHandle::*Method)(const Napi::CallbackInfo&)>
Napi::Value EngineHandle::Guarded(const Napi::CallbackInfo& info) {
  try {
    return (this->*Method)(info);
  } catch (const Napi::Error&) {
    throw;
  } catch (...) {
    throw coded_from(info.Env(), std::current_exception());
  }
}

namespace {

// The system refused a thread (EAGAIN at a task limit: ulimit -u, systemd TasksMax, a container's
// pids limit). node-addon-api turns only Napi::Error into an exception; anything else aborts.
Napi::Error threads_refused(Napi::Env env, const std::string& which, const std::system_error& e) {
  return coded_error(env, "ERR_DMACOPY_RESOURCES",
                     "the system refused to start " + which + " (" + e.what() +
                         "): lower cpuThreads (or emulator.engines), or raise the process's task limit (ulimit -u, "
                         "systemd TasksMax, a container's pids limit)");
}

}  // namespace

EngineHandle::EngineHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<EngineHandle>(info) {
  try {
    Init(info);
  } catch (const Napi::Error&) {
    throw;
  } catch (...) {
    throw coded_from(info.Env(), std::current_exception());
  }
}

void EngineHandle::Init(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject())
    throw coded_type_error(env, "ERR_DMACOPY_INVALID_ARG", "NativeEngine options must be an object");
  Napi::Object opts = info[0].As<Napi::Object>();
  // /dev/dsa queues opened off this thread (queue_opener.h) are taken before anything else, so
  // that a constructor that throws below (copy threads refused, a bad option) releases them here
  // instead of leaving them open until the handle is collected: a dedicated queue stays busy
  // (EBUSY) for as long as it is open, also to the retry the error message advises.
  OpenedQueues opened;
  Napi::Value dsa_value = opts.Get("dsa");
  if (dsa_value.IsObject()) {
    Napi::Value kind = dsa_value.As<Napi::Object>().Get("kind");
    if (kind.IsString() && kind.As<Napi::String>().Utf8Value() == "user")
      opened = take_opened_queues(env, dsa_value.As<Napi::Object>().Get("opened"));
  }
  uint32_t threads = uint32_arg(opts.Get("threads"), "threads");
  if (threads < 1 || threads > 1024)
    throw coded_range_error(env, "ERR_DMACOPY_OUT_OF_RANGE", "threads must be from 1 to 1024");
  double nt = number_arg(opts.Get("nonTemporalMinBytes"), "nonTemporalMinBytes");
  const double timeout_ms = required_number(opts, "timeoutMs");
  // Optional: an older lib/ (or a test) that does not know the option leaves the threads alone.
  Napi::Value nice_value = opts.Get("cpuNice");
  uint32_t nice = nice_value.IsUndefined() ? 0 : uint32_arg(nice_value, "cpuNice");
  if (nice > 19) throw coded_range_error(env, "ERR_DMACOPY_OUT_OF_RANGE", "cpuNice must be from 0 to 19");
  core_ = std::make_shared<EngineResources>();
  Napi::Value idle_value = opts.Get("cpuIdle");
  const bool idle = idle_value.IsBoolean() && idle_value.As<Napi::Boolean>().Value();
  // CPUs to bind the copy threads to (lib/host/cpu-topology.ts decides); absent or empty: none.
  std::vector<int> pin_cpus;
  Napi::Value pin_value = opts.Get("pinCpus");
  if (!pin_value.IsUndefined()) {
    if (!pin_value.IsArray()) throw coded_type_error(env, "ERR_DMACOPY_INVALID_ARG", "pinCpus must be an array");
    Napi::Array pins = pin_value.As<Napi::Array>();
    for (uint32_t i = 0; i < pins.Length(); ++i) {
      const uint32_t cpu = uint32_arg(pins.Get(i), "pinCpus entry");
      if (cpu >= CPU_SETSIZE)
        throw coded_range_error(env, "ERR_DMACOPY_OUT_OF_RANGE", "pinCpus entries must be CPU numbers");
      pin_cpus.push_back(static_cast<int>(cpu));
    }
  }
  try {
    core_->cpu = std::make_unique<dmacopy::CpuCopyPool>(threads, static_cast<int>(nice), idle, std::move(pin_cpus));
  } catch (const std::system_error& e) {
    throw threads_refused(env, "the engine's " + std::to_string(threads) + " copy threads", e);
  }
  core_->non_temporal_min_bytes = nt >= 1.8e19 ? UINT64_MAX : static_cast<uint64_t>(nt < 0 ? 0 : nt);

  Napi::Value dv = opts.Get("dsa");
  if (dv.IsObject()) {
    Napi::Object d = dv.As<Napi::Object>();
    std::string kind = required_string(d, "kind");
    if (!d.Get("queues").IsArray())
      throw coded_type_error(env, "ERR_DMACOPY_INVALID_ARG", "dsa.queues must be an array");
    Napi::Array qs = d.Get("queues").As<Napi::Array>();
    std::vector<std::unique_ptr<dmacopy::WorkQueue>> queues;
    if (kind == "emulated") {
      for (uint32_t i = 0; i < qs.Length(); ++i) {
        Napi::Value qv = qs.Get(i);
        if (!qv.IsObject())
          throw coded_type_error(env, "ERR_DMACOPY_INVALID_ARG", "dsa.queues entries must be objects");
        try {
          queues.push_back(soft_queue(qv.As<Napi::Object>()));
        } catch (const std::system_error& e) {
          throw threads_refused(env, "the software device's engine threads", e);
        }
      }
    } else if (kind == "user") {
      // Opened and probed off this thread by openUserQueues() (queue_opener.h), taken above.
      core_->open_results = std::move(opened.results);
      for (auto& q : opened.queues) queues.push_back(std::move(q));
    } else {
      throw coded_range_error(env, "ERR_DMACOPY_OUT_OF_RANGE", "dsa.kind must be 'emulated' or 'user'");
    }
    dmacopy::DsaChannelOptions o;
    Napi::Object oo = required_object(d, "options");
    o.cache_control = required_bool(oo, "cacheControl");
    o.page_fault_retries = static_cast<uint32_t>(bounded(oo, "pageFaultRetries", 255));
    o.quarantine_after = static_cast<uint32_t>(bounded(oo, "quarantineAfter", 1e6));
    o.drain_timeout_ms = static_cast<uint32_t>(bounded(oo, "drainTimeoutMs", 600000));
    o.releases = AddonData::of(env).releases();
    if (!queues.empty()) {
      // Completion events go through this environment's channel, which lib/ installed first.
      EventChannel& events = AddonData::of(env).events(env);
      try {
        core_->dsa = std::make_unique<dmacopy::DsaChannels>(std::move(queues), core_->cpu.get(), &events.router(), o);
      } catch (const std::invalid_argument& e) {
        throw coded_range_error(env, "ERR_DMACOPY_OUT_OF_RANGE", e.what());
      } catch (const std::system_error& e) {
        throw threads_refused(env, "the DSA completion poller's thread", e);
      }
    }
  }
  core_->executor = std::make_unique<dmacopy::CopyExecutor>(*core_->cpu, core_->dsa.get(), timeout_ms);
  AddonData::of(env).register_engine(core_);
}

EngineHandle::~EngineHandle() {
  // The JS handle was collected; if close() was never called, threads still need joining.
  if (core_) core_->shutdown();
}

Napi::Value EngineHandle::Copy(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (core_->closed) throw closed_error(env);
  const uint32_t mode = uint32_arg(info[0], "mode");
  const double op_id = number_arg(info[1], "opId");
  std::vector<BufferSpan> spans = buffer_spans(info[2]);
  const uint32_t form = uint32_arg(info[3], "form");
  DoubleTable table = double_table(info[4], "table");
  DoubleTable bounds = double_table(info[5], "bounds");
  if (mode > kAsync) throw coded_range_error(env, "ERR_DMACOPY_OUT_OF_RANGE", "unknown copy mode or table form");
  const size_t k = works_of_bounds(env, bounds);

  std::shared_ptr<dmacopy::WorkPieces> pieces = pieces_pool_->take();
  // A chunk of a larger batch is checked against the chunks before it, not only itself.
  const bool chunked = info[7].IsBoolean() && info[7].As<Napi::Boolean>().Value();
  dmacopy::PlanStatus st;
  std::vector<CopyRegion>& folios = folios_scratch_;
  if (chunked) {
    folios.clear();
    if (form != kListForm || table.length % dmacopy::kListFields != 0)
      throw coded_range_error(env, "ERR_DMACOPY_OUT_OF_RANGE", "a chunk must be a list table of 5 numbers per folio");
    st = dmacopy::plan_list(spans.data(), spans.size(), table.data, table.length / dmacopy::kListFields, folios);
    if (st.ok()) {
      auto it = trackers_.find(static_cast<uint64_t>(op_id));
      if (it == trackers_.end())
        it = trackers_.emplace(static_cast<uint64_t>(op_id), dmacopy::OverlapTracker(std::move(tracker_spare_))).first;
      st = it->second.add(folios);
    }
    if (st.ok()) st = dmacopy::split_works(folios, bounds.data, k, *pieces);
  } else {
    // With no device the CPU copies each work as one stream: a region form is planned per work.
    st = dmacopy::plan_works(static_cast<dmacopy::TableForm>(form), spans.data(), spans.size(), table.data,
                             table.length, bounds.data, k, *pieces, folios, !core_->dsa);
  }
  if (folios.capacity() > dmacopy::WorkPiecesPool::kMaxKeptPieces) std::vector<CopyRegion>().swap(folios);
  if (!st.ok()) throw plan_error(env, st);

  dmacopy::CopyRequest req;
  req.op_id = static_cast<uint64_t>(op_id);
  req.mode = static_cast<CopyMode>(mode);
  req.bytes = plan_bytes(*pieces);
  req.store = store_for(*core_, req.bytes);
  // Device engines: works from cpuWorksFrom on are the CPU's share, run beside the device.
  req.cpu_works_from = info[8].IsNumber() ? uint32_arg(info[8], "cpuWorksFrom") : k;
  req.plan = std::move(pieces);

  Napi::Uint32Array counts = Napi::Uint32Array::New(env, k);
  dmacopy::EventRecord totals{};
  execute(env, req, counts.Data(), &totals);
  // Synchronous device copies: the sum of the op's events, for lib/ to apply as one event.
  if (core_->dsa && mode == kSync) write_totals(info[6], totals);
  return counts;
}

void EngineHandle::execute(Napi::Env env, const dmacopy::CopyRequest& req, uint32_t* counts,
                           dmacopy::EventRecord* totals) {
  // Events go to this environment's channel (which lib/ installed first); an inline copy, and
  // a synchronous one on the CPU alone, post none.
  const bool needs_events = req.mode == CopyMode::Async || (core_->dsa && req.mode == CopyMode::Sync);
  dmacopy::EventRouter* events = needs_events ? &AddonData::of(env).events(env).router() : nullptr;
  try {
    core_->executor->run(req, counts, events, totals);
  } catch (const std::bad_alloc&) {
    // run() returns only after what it had queued finished: no copy outlives this call.
    throw coded_error(env, "ERR_DMACOPY_INTERNAL", "out of memory while queueing a copy; the batch was not completed");
  } catch (const std::exception& e) {
    // node-addon-api turns only Napi::Error into a JavaScript exception; anything else would abort.
    throw coded_error(env, "ERR_DMACOPY_INTERNAL", std::string("copy failed: ") + e.what());
  }
}

namespace {

// What a prepared batch keeps between runs. Owned by the External handed to lib/.
struct PreparedPlan {
  std::weak_ptr<EngineResources> engine;  // the engine it was planned for (and counted in)
  const EngineResources* owner = nullptr;
  std::vector<BufferSpan> spans;                    // the memory it was planned on: every run must see exactly this
  std::shared_ptr<const dmacopy::WorkPieces> plan;  // null once released
  // Device backends: the device works' descriptors, built here once (a run only takes records).
  std::shared_ptr<const dmacopy::PreparedDescriptors> descriptors;
  dmacopy::StoreKind store = StoreKind::Cached;
  uint64_t bytes = 0;
  size_t works = 0;
  size_t cpu_works_from = 0;

  void release() {
    if (!plan) return;
    plan.reset();
    descriptors.reset();  // a run still in flight keeps its own reference (WorkState::keep)
    if (auto e = engine.lock()) e->prepared_live.fetch_sub(1, std::memory_order_relaxed);
  }
  ~PreparedPlan() { release(); }
};

// Tags our Externals, so a foreign External is refused instead of being cast.
const napi_type_tag kPreparedTag = {0x646d61636f707970ull, 0x7072657061726564ull};

PreparedPlan* prepared_arg(Napi::Env env, const Napi::Value& v) {
  bool ours = false;
  if (v.IsExternal()) NAPI_THROW_IF_FAILED(env, napi_check_object_type_tag(env, v, &kPreparedTag, &ours), nullptr);
  if (!ours) throw coded_type_error(env, "ERR_DMACOPY_INVALID_ARG", "plan must come from prepare()");
  return v.As<Napi::External<PreparedPlan>>().Data();
}

}  // namespace

Napi::Value EngineHandle::Prepare(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (core_->closed) throw closed_error(env);
  auto p = std::make_unique<PreparedPlan>();
  p->spans = buffer_spans(info[0]);
  const uint32_t form = uint32_arg(info[1], "form");
  DoubleTable table = double_table(info[2], "table");
  DoubleTable bounds = double_table(info[3], "bounds");
  p->works = works_of_bounds(env, bounds);
  auto pieces = std::make_shared<dmacopy::WorkPieces>();
  std::vector<CopyRegion> folios;
  dmacopy::PlanStatus st =
      dmacopy::plan_works(static_cast<dmacopy::TableForm>(form), p->spans.data(), p->spans.size(), table.data,
                          table.length, bounds.data, p->works, *pieces, folios, !core_->dsa);
  if (!st.ok()) throw plan_error(env, st);
  p->bytes = plan_bytes(*pieces);
  p->store = store_for(*core_, p->bytes);
  p->cpu_works_from = info[4].IsNumber() ? uint32_arg(info[4], "cpuWorksFrom") : p->works;
  if (core_->dsa) {
    try {
      p->descriptors = core_->dsa->prepare(pieces, p->cpu_works_from);
    } catch (const std::bad_alloc&) {
      throw coded_error(env, "ERR_DMACOPY_INTERNAL",
                        "out of memory building the prepared batch's descriptors (64 bytes each); nothing was copied");
    }
  }
  p->plan = std::move(pieces);
  p->engine = core_;
  p->owner = core_.get();
  core_->prepared_live.fetch_add(1, std::memory_order_relaxed);
  auto ext = Napi::External<PreparedPlan>::New(env, p.get(), [](Napi::Env, PreparedPlan* q) { delete q; });
  p.release();  // the External owns it now
  NAPI_THROW_IF_FAILED(env, napi_type_tag_object(env, ext, &kPreparedTag), Napi::Value());
  return ext;
}

Napi::Value EngineHandle::RunPrepared(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (core_->closed) throw closed_error(env);
  PreparedPlan* p = prepared_arg(env, info[0]);
  if (!p->plan)
    throw coded_error(env, "ERR_DMACOPY_RELEASED", "this prepared batch was released: prepare the batch again");
  if (p->owner != core_.get())
    throw coded_type_error(env, "ERR_DMACOPY_INVALID_ARG", "plan was prepared by another engine");
  const uint32_t mode = uint32_arg(info[1], "mode");
  if (mode > kAsync) throw coded_range_error(env, "ERR_DMACOPY_OUT_OF_RANGE", "unknown copy mode");
  const double op_id = number_arg(info[2], "opId");
  std::vector<BufferSpan> now = buffer_spans(info[3]);
  size_t changed =
      now.size() == p->spans.size() ? dmacopy::first_changed_span(p->spans.data(), now.data(), now.size()) : 0;
  if (changed != p->spans.size() || now.size() != p->spans.size()) {
    if (changed < now.size() && now[changed].len == 0 && p->spans[changed].len != 0)
      throw coded_type_error(env, "ERR_DMACOPY_DETACHED",
                             "a buffer of this prepared batch was detached (transferred): nothing was copied; "
                             "prepare the batch again over buffers this thread keeps");
    throw coded_error(env, "ERR_DMACOPY_INTERNAL", "prepared batch run over other buffers: please report this");
  }
  if (!info[4].IsTypedArray() || info[4].As<Napi::TypedArray>().TypedArrayType() != napi_uint32_array ||
      info[4].As<Napi::Uint32Array>().ElementLength() < p->works)
    throw coded_type_error(env, "ERR_DMACOPY_INVALID_ARG", "counts must be a Uint32Array with one entry per work");
  uint32_t* counts = info[4].As<Napi::Uint32Array>().Data();

  dmacopy::CopyRequest req;
  req.op_id = static_cast<uint64_t>(op_id);
  req.mode = static_cast<CopyMode>(mode);
  req.store = p->store;
  req.bytes = p->bytes;
  req.cpu_works_from = p->cpu_works_from;
  req.plan = p->plan;  // co-owned by the run's jobs: a release() meanwhile frees nothing they use
  req.prebuilt = p->descriptors;
  dmacopy::EventRecord totals{};
  execute(env, req, counts, &totals);
  if (core_->dsa && mode == kSync) write_totals(info[5], totals);
  double sum = 0;
  for (size_t w = 0; w < p->works; ++w) sum += counts[w];
  return Napi::Number::New(env, sum);
}

Napi::Value EngineHandle::ReleasePrepared(const Napi::CallbackInfo& info) {
  prepared_arg(info.Env(), info[0])->release();
  return info.Env().Undefined();
}

Napi::Value EngineHandle::Stats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  dmacopy::CpuCopyPoolStats s = core_->cpu->stats();
  o.Set("cpuJobs", Napi::Number::New(env, static_cast<double>(s.jobs)));
  o.Set("cpuRegions", Napi::Number::New(env, static_cast<double>(s.regions)));
  o.Set("cpuBytes", Napi::Number::New(env, static_cast<double>(s.bytes)));
  o.Set("cpuCopies", Napi::Number::New(env, static_cast<double>(s.copies)));
  o.Set("cpuThreads", Napi::Number::New(env, core_->cpu->threads()));
  o.Set("cpuNice", Napi::Number::New(env, core_->cpu->nice()));
  o.Set("cpuIdle", Napi::Boolean::New(env, core_->cpu->idle()));
  o.Set("cpuNiceFailures", Napi::Number::New(env, s.nice_failures));
  o.Set("cpuNiceErrno", Napi::Number::New(env, s.nice_errno));
  std::vector<int> pins = core_->cpu->pinned_cpus();
  Napi::Array pa = Napi::Array::New(env, pins.size());
  for (uint32_t i = 0; i < pins.size(); ++i) pa.Set(i, Napi::Number::New(env, pins[i]));
  o.Set("cpuPins", pa);
  o.Set("cpuPinFailures", Napi::Number::New(env, s.pin_failures));
  o.Set("inFlightJobs", Napi::Number::New(env, static_cast<double>(core_->cpu->in_flight())));
  o.Set("preparedPlans", Napi::Number::New(env, static_cast<double>(core_->prepared_live.load())));
  if (core_->dsa) {
    dmacopy::DsaChannelsStats d = core_->dsa->stats();
    auto num = [&](uint64_t v) { return Napi::Number::New(env, static_cast<double>(v)); };
    Napi::Object ds = Napi::Object::New(env);
    ds.Set("works", num(d.works));
    ds.Set("descriptors", num(d.descriptors));
    ds.Set("submitted", num(d.submitted));
    ds.Set("deviceCompleted", num(d.device_completed));
    ds.Set("deviceBytes", num(d.device_bytes));
    ds.Set("cpuBytes", num(d.cpu_bytes));
    ds.Set("pageFaults", num(d.page_faults));
    ds.Set("pageFaultRetries", num(d.page_fault_retries));
    ds.Set("errors", num(d.errors));
    ds.Set("retries", num(d.retries));
    ds.Set("timeouts", num(d.timeouts));
    ds.Set("unhealthy", num(d.unhealthy));
    ds.Set("outOfOrder", num(d.out_of_order));
    ds.Set("prebuiltDescriptors", num(d.prebuilt));
    ds.Set("quarantines", num(d.quarantines));
    ds.Set("drains", num(d.drains));
    ds.Set("lostRecords", num(d.lost_records));
    ds.Set("foreignErrors", num(d.foreign_errors));
    ds.Set("wedged", num(d.wedged));
    ds.Set("wedgedPieces", num(d.wedged_pieces));
    // Process-wide audit of the software device (0 with real queues, which cannot be audited).
    ds.Set("recordsReusedWhileOwned", num(dmacopy::CompletionArena::reused_while_owned()));
    ds.Set("eventsPosted", num(d.events_posted));
    ds.Set("eventBatches", num(d.event_batches));
    Napi::Array chans = Napi::Array::New(env, d.channels.size());
    for (size_t i = 0; i < d.channels.size(); ++i) {
      const dmacopy::ChannelStats& c = d.channels[i];
      Napi::Object co = Napi::Object::New(env);
      co.Set("name", Napi::String::New(env, c.name));
      co.Set("submitted", num(c.submitted));
      co.Set("completed", num(c.completed));
      co.Set("deviceBytes", num(c.device_bytes));
      co.Set("cpuBytes", num(c.cpu_bytes));
      co.Set("timeouts", num(c.timeouts));
      co.Set("errors", num(c.errors));
      co.Set("pageFaults", num(c.page_faults));
      co.Set("retries", num(c.retries));
      co.Set("drains", num(c.drains));
      co.Set("outOfOrder", num(c.out_of_order));
      co.Set("maxInFlight", num(c.max_in_flight));
      co.Set("quarantined", Napi::Boolean::New(env, c.quarantined));
      co.Set("lostRecords", num(c.lost_records));
      co.Set("foreignErrors", num(c.foreign_errors));
      co.Set("wedged", Napi::Boolean::New(env, c.wedged));
      chans.Set(static_cast<uint32_t>(i), co);
    }
    ds.Set("channels", chans);
    o.Set("dsa", ds);
  }
  return o;
}

Napi::Value EngineHandle::EndBatch(const Napi::CallbackInfo& info) {
  auto it = trackers_.find(static_cast<uint64_t>(number_arg(info[0], "opId")));
  if (it == trackers_.end()) return info.Env().Undefined();
  std::vector<CopyRegion> storage = it->second.take_storage();
  trackers_.erase(it);
  if (storage.capacity() <= dmacopy::WorkPiecesPool::kMaxKeptPieces && storage.capacity() > tracker_spare_.capacity())
    tracker_spare_ = std::move(storage);
  return info.Env().Undefined();
}

Napi::Value EngineHandle::RegisterSync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const uint64_t op = static_cast<uint64_t>(number_arg(info[0], "opId"));
  dmacopy::EventRouter& router = AddonData::of(env).events(env).router();
  sync_registrations_.erase(op);  // a stale registration of the same id is undone first
  sync_registrations_.emplace(op, std::make_unique<dmacopy::SyncRegistration>(router, op));
  return env.Undefined();
}

Napi::Value EngineHandle::WaitSync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const uint64_t op = static_cast<uint64_t>(number_arg(info[0], "opId"));
  const double expected = number_arg(info[1], "expected");
  if (!(expected >= 0 && expected <= 9007199254740991.0) || expected != std::floor(expected))
    throw coded_range_error(env, "ERR_DMACOPY_OUT_OF_RANGE", "expected must be a whole number of descriptors");
  auto it = sync_registrations_.find(op);
  if (it == sync_registrations_.end())
    throw coded_error(env, "ERR_DMACOPY_INTERNAL", "waitSync without registerSync: please report this");
  dmacopy::EventRecord totals = it->second->waiter().wait_for(static_cast<uint64_t>(expected));
  sync_registrations_.erase(it);  // unregisters
  write_totals(info[2], totals);
  return env.Undefined();
}

Napi::Value EngineHandle::Queues(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Array out = Napi::Array::New(env, core_->open_results.size());
  for (size_t i = 0; i < core_->open_results.size(); ++i) {
    const dmacopy::OpenResult& r = core_->open_results[i];
    Napi::Object o = Napi::Object::New(env);
    o.Set("ok", Napi::Boolean::New(env, r.ok));
    o.Set("code", Napi::String::New(env, dmacopy::to_string(r.code)));
    o.Set("errno", Napi::Number::New(env, r.err));
    o.Set("path", Napi::String::New(env, dmacopy::to_string(r.path)));
    o.Set("instruction", Napi::String::New(env, dmacopy::to_string(r.instruction)));
    o.Set("mmapErrno", Napi::Number::New(env, r.mmap_errno));
    o.Set("probeStatus", Napi::Number::New(env, r.probe_status));
    o.Set("swerrAtOpen", Napi::Boolean::New(env, r.swerr_at_open));
    out.Set(static_cast<uint32_t>(i), o);
  }
  return out;
}

Napi::Value EngineHandle::Close(const Napi::CallbackInfo& info) {
  // Joins the threads after they finished every queued job: nothing writes after this returns.
  core_->shutdown();
  AddonData::of(info.Env()).unregister_engine(core_);
  return info.Env().Undefined();
}

}  // namespace dmacopy_addon
