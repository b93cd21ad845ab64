#include "engine_handle.h"

#include <time.h>

#include <condition_variable>
#include <mutex>
#include <string>

#include "soft_device.h"

#include "addon_data.h"
#include "args.h"
#include "batch_plan.h"
#include "errors.h"
#include "event_channel.h"

namespace dmacopy_addon {

using dmacopy::BufferSpan;
using dmacopy::CopyRegion;
using dmacopy::CpuCopyJob;
using dmacopy::StoreKind;

namespace {

enum CopyMode : uint32_t { kInline = 0, kSync = 1, kAsync = 2 };
enum TableForm : uint32_t { kListForm = 0, kRegionForm = 1 };

// Counts down the jobs of a synchronous batch; the calling thread waits on it.
class Latch {
 public:
  explicit Latch(size_t n) : n_(n) {}
  void count_down() {
    std::lock_guard<std::mutex> lock(mu_);
    if (--n_ == 0) cv_.notify_all();
  }
  void wait() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [&] { return n_ == 0; });
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  size_t n_;
};

uint64_t monotonic_ns() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000000ull + static_cast<uint64_t>(ts.tv_nsec);
}

double number_or(const Napi::Object& o, const char* key, double dflt) {
  Napi::Value v = o.Get(key);
  return v.IsUndefined() ? dflt : number_arg(v, key);
}

bool bool_or(const Napi::Object& o, const char* key, bool dflt) {
  Napi::Value v = o.Get(key);
  return v.IsUndefined() ? dflt : v.ToBoolean().Value();
}

std::string string_or(const Napi::Object& o, const char* key, const std::string& dflt) {
  Napi::Value v = o.Get(key);
  if (v.IsUndefined()) return dflt;
  if (!v.IsString()) throw coded_type_error(o.Env(), "ERR_DMACOPY_INVALID_ARG", std::string(key) + " must be a string");
  return v.As<Napi::String>().Utf8Value();
}

dmacopy::WqMode mode_of(const Napi::Object& o) {
  std::string m = string_or(o, "mode", "dedicated");
  if (m == "dedicated") return dmacopy::WqMode::Dedicated;
  if (m == "shared") return dmacopy::WqMode::Shared;
  throw coded_range_error(o.Env(), "ERR_DMACOPY_OUT_OF_RANGE", "mode must be 'dedicated' or 'shared'");
}

// One software DSA queue from the (already validated) emulator settings of lib/.
std::unique_ptr<dmacopy::WorkQueue> soft_queue(const Napi::Object& q) {
  dmacopy::SoftDeviceConfig c;
  c.name = string_or(q, "name", c.name);
  c.engines = static_cast<uint32_t>(number_or(q, "engines", c.engines));
  c.wq_size = static_cast<uint32_t>(number_or(q, "wqSize", c.wq_size));
  c.mode = mode_of(q);
  c.max_transfer_size =
      static_cast<uint64_t>(number_or(q, "maxTransferSize", static_cast<double>(c.max_transfer_size)));
  c.max_batch_size = static_cast<uint32_t>(number_or(q, "maxBatchSize", c.max_batch_size));
  c.seed = static_cast<uint64_t>(number_or(q, "seed", static_cast<double>(c.seed)));
  c.latency_us = static_cast<uint32_t>(number_or(q, "latencyUs", c.latency_us));
  c.jitter_us = static_cast<uint32_t>(number_or(q, "jitterUs", c.jitter_us));
  Napi::Value fv = q.Get("faults");
  if (fv.IsObject()) {
    Napi::Object f = fv.As<Napi::Object>();
    c.faults.page_fault = number_or(f, "pageFault", 0);
    c.faults.backward = number_or(f, "backward", 0);
    c.faults.error = number_or(f, "error", 0);
    c.faults.hang = number_or(f, "hang", 0);
    c.faults.late = number_or(f, "late", 0);
    c.faults.late_ms = static_cast<uint32_t>(number_or(f, "lateMs", c.faults.late_ms));
    c.faults.retry = number_or(f, "retry", 0);
    c.faults.disable = number_or(f, "disable", 0);
  }
  return std::make_unique<dmacopy::SoftWorkQueue>(c);
}

// One /dev/dsa queue from what lib/discovery.ts read.
std::unique_ptr<dmacopy::UserWorkQueue> user_queue(const Napi::Object& q) {
  dmacopy::UserQueueConfig c;
  c.device_path = string_or(q, "devicePath", "");
  c.info.name = string_or(q, "name", "");
  c.info.mode = mode_of(q);
  c.info.size = static_cast<uint32_t>(number_or(q, "size", 0));
  c.info.max_transfer_size = static_cast<uint64_t>(number_or(q, "maxTransferSize", 0));
  c.info.max_batch_size = static_cast<uint32_t>(number_or(q, "maxBatchSize", 0));
  c.info.cache_control = bool_or(q, "cacheControl", false);
  c.info.block_on_fault = bool_or(q, "blockOnFault", false);
  c.info.numa_node = static_cast<int>(number_or(q, "numaNode", -1));
  c.wq_state_path = string_or(q, "wqStatePath", "");
  c.device_state_path = string_or(q, "deviceStatePath", "");
  c.device_errors_path = string_or(q, "deviceErrorsPath", "");
  std::string path = string_or(q, "submission", "auto");
  c.submission = path == "portal"  ? dmacopy::SubmissionPath::Portal
                 : path == "write" ? dmacopy::SubmissionPath::Write
                                   : dmacopy::SubmissionPath::Auto;
  c.probe_timeout_ms = static_cast<uint32_t>(number_or(q, "probeTimeoutMs", c.probe_timeout_ms));
  return std::make_unique<dmacopy::UserWorkQueue>(c);
}

// A work's device deadline: the engine's timeout, stretched for big works so that a slow but
// healthy device is not abandoned (1 ms more per MiB, i.e. it must beat ~1 GB/s).
uint64_t work_deadline(double timeout_ms, uint64_t work_bytes) {
  double ms = timeout_ms + static_cast<double>(work_bytes) / (1024.0 * 1024.0);
  return monotonic_ns() + static_cast<uint64_t>(ms * 1e6);
}

}  // namespace

void EngineResources::shutdown() {
  closed = true;
  // The DSA channels first: it drains its queues and may still hand fallbacks to the CPU copy pool.
  if (dsa) dsa->close();
  if (cpu) cpu->shutdown();
}

Napi::Function EngineHandle::Define(Napi::Env env) {
  return DefineClass(
      env, "NativeEngine",
      {InstanceMethod<&EngineHandle::Copy>("copy"), InstanceMethod<&EngineHandle::Stats>("stats"),
       InstanceMethod<&EngineHandle::Close>("close"), InstanceMethod<&EngineHandle::Queues>("queues"),
       InstanceMethod<&EngineHandle::EndBatch>("endBatch"), InstanceMethod<&EngineHandle::RegisterSync>("registerSync"),
       InstanceMethod<&EngineHandle::WaitSync>("waitSync")});
}

EngineHandle::EngineHandle(const Napi::CallbackInfo& info) : Napi::ObjectWrap<EngineHandle>(info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject())
    throw coded_type_error(env, "ERR_DMACOPY_INVALID_ARG", "NativeEngine options must be an object");
  Napi::Object opts = info[0].As<Napi::Object>();
  uint32_t threads = uint32_arg(opts.Get("threads"), "threads");
  if (threads < 1 || threads > 1024)
    throw coded_range_error(env, "ERR_DMACOPY_OUT_OF_RANGE", "threads must be from 1 to 1024");
  double nt = number_arg(opts.Get("nonTemporalMinBytes"), "nonTemporalMinBytes");
  core_ = std::make_shared<EngineResources>();
  core_->cpu = std::make_unique<dmacopy::CpuCopyPool>(threads);
  core_->non_temporal_min_bytes = nt >= 1.8e19 ? UINT64_MAX : static_cast<uint64_t>(nt < 0 ? 0 : nt);
  core_->timeout_ms = number_or(opts, "timeoutMs", 1000);

  Napi::Value dv = opts.Get("dsa");
  if (dv.IsObject()) {
    Napi::Object d = dv.As<Napi::Object>();
    std::string kind = string_or(d, "kind", "");
    if (!d.Get("queues").IsArray())
      throw coded_type_error(env, "ERR_DMACOPY_INVALID_ARG", "dsa.queues must be an array");
    Napi::Array qs = d.Get("queues").As<Napi::Array>();
    std::vector<std::unique_ptr<dmacopy::WorkQueue>> queues;
    for (uint32_t i = 0; i < qs.Length(); ++i) {
      Napi::Value qv = qs.Get(i);
      if (!qv.IsObject()) throw coded_type_error(env, "ERR_DMACOPY_INVALID_ARG", "dsa.queues entries must be objects");
      if (kind == "emulated") {
        queues.push_back(soft_queue(qv.As<Napi::Object>()));
      } else if (kind == "user") {
        auto uq = user_queue(qv.As<Napi::Object>());
        dmacopy::OpenResult r = uq->open();
        core_->open_results.push_back(r);
        if (r.ok) queues.push_back(std::move(uq));
      } else {
        throw coded_range_error(env, "ERR_DMACOPY_OUT_OF_RANGE", "dsa.kind must be 'emulated' or 'user'");
      }
    }
    dmacopy::DsaChannelOptions o;
    Napi::Value ov = d.Get("options");
    if (ov.IsObject()) {
      Napi::Object oo = ov.As<Napi::Object>();
      o.cache_control = bool_or(oo, "cacheControl", o.cache_control);
      o.page_fault_retries = static_cast<uint32_t>(number_or(oo, "pageFaultRetries", o.page_fault_retries));
      o.retry_spins = static_cast<uint32_t>(number_or(oo, "retrySpins", o.retry_spins));
      o.quarantine_after = static_cast<uint32_t>(number_or(oo, "quarantineAfter", o.quarantine_after));
    }
    if (!queues.empty()) {
      // Completion events go through this environment's channel, which lib/ installed first.
      EventChannel& events = AddonData::of(env).events(env);
      core_->dsa = std::make_unique<dmacopy::DsaChannels>(std::move(queues), core_->cpu.get(), &events, o);
    }
  }
  AddonData::of(env).register_engine(core_);
}

EngineHandle::~EngineHandle() {
  // The JS handle was collected; if close() was never called, threads still need joining.
  if (core_) core_->shutdown();
}

Napi::Value EngineHandle::Copy(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (core_->closed)
    throw coded_error(env, "ERR_DMACOPY_CLOSED", "The engine is closed: open a new one with openEngine().");
  const uint32_t mode = uint32_arg(info[0], "mode");
  const double op_id = number_arg(info[1], "opId");
  std::vector<BufferSpan> spans = buffer_spans(info[2]);
  const uint32_t form = uint32_arg(info[3], "form");
  DoubleTable table = double_table(info[4], "table");
  DoubleTable bounds = double_table(info[5], "bounds");
  if (mode > kAsync || form > kRegionForm)
    throw coded_range_error(env, "ERR_DMACOPY_OUT_OF_RANGE", "unknown copy mode or table form");
  if (bounds.length < 4 || bounds.length % 2 != 0)
    throw coded_range_error(env, "ERR_DMACOPY_OUT_OF_RANGE", "bounds must hold at least two (folio, offset) pairs");

  std::vector<CopyRegion> folios;
  dmacopy::PlanStatus st;
  if (form == kListForm) {
    if (table.length % dmacopy::kListFields != 0)
      throw coded_range_error(env, "ERR_DMACOPY_OUT_OF_RANGE", "list table length must be a multiple of 5");
    st = dmacopy::plan_list(spans.data(), spans.size(), table.data, table.length / dmacopy::kListFields, folios);
  } else {
    if (table.length != dmacopy::kRegionFields)
      throw coded_range_error(env, "ERR_DMACOPY_OUT_OF_RANGE", "region table must hold 6 numbers");
    st = dmacopy::plan_region(spans.data(), spans.size(), table.data, folios);
  }
  // A chunk of a larger batch is checked against the chunks before it, not only itself.
  const bool chunked = info[7].IsBoolean() && info[7].As<Napi::Boolean>().Value();
  if (st.ok()) {
    st = chunked               ? trackers_[static_cast<uint64_t>(op_id)].add(folios)
         : form == kRegionForm ? dmacopy::check_region_overlap(folios)
                               : dmacopy::check_overlaps(folios);
  }
  const size_t k = bounds.length / 2 - 1;
  auto pieces = std::make_shared<dmacopy::WorkPieces>();
  if (st.ok()) st = dmacopy::split_works(folios, bounds.data, k, *pieces);
  if (!st.ok()) throw plan_error(env, st);

  uint64_t total = 0;
  for (const CopyRegion& r : pieces->pieces) total += r.len;
  const StoreKind store = total >= core_->non_temporal_min_bytes ? StoreKind::NonTemporal : StoreKind::Cached;
  // The jobs co-own the piece table; an aliasing pointer avoids a second allocation.
  std::shared_ptr<const std::vector<CopyRegion>> shared_pieces(pieces, &pieces->pieces);

  Napi::Uint32Array counts = Napi::Uint32Array::New(env, k);
  size_t busy_works = 0;
  for (size_t w = 0; w < k; ++w) {
    counts[w] = static_cast<uint32_t>(pieces->work_begin[w + 1] - pieces->work_begin[w]);
    if (counts[w] != 0) ++busy_works;
  }

  auto make_job = [&](size_t w) {
    CpuCopyJob job;
    job.table = shared_pieces;
    job.begin = pieces->work_begin[w];
    job.end = pieces->work_begin[w + 1];
    job.op_id = static_cast<uint64_t>(op_id);
    job.work = static_cast<uint32_t>(w);
    job.store = store;
    return job;
  };

  if (core_->dsa && mode != kInline) {
    // Device path: one submit_work per work; its return value is that work's pending count.
    // A synchronous call waits here for its own events instead of returning to JavaScript.
    EventChannel& events = AddonData::of(env).events(env);
    const uint64_t op = static_cast<uint64_t>(op_id);
    SyncWaiter waiter;
    if (mode == kSync) events.register_sync(op, &waiter);
    // Works from cpu_works_from on are the CPU's share, run beside the device (DTO's split).
    const uint32_t cpu_works_from = info[8].IsNumber() ? uint32_arg(info[8], "cpuWorksFrom") : static_cast<uint32_t>(k);
    uint64_t expected = 0;
    for (size_t w = 0; w < k; ++w) {
      const size_t b = pieces->work_begin[w], e = pieces->work_begin[w + 1];
      if (w >= cpu_works_from) {
        counts[w] = static_cast<uint32_t>(e - b);
        expected += e - b;
        if (b == e) continue;
        CpuCopyJob job = make_job(w);
        job.sink = &events;
        core_->cpu->submit(static_cast<unsigned>(w - cpu_works_from), std::move(job));
        continue;
      }
      uint64_t work_bytes = 0;
      for (size_t i = b; i < e; ++i) work_bytes += pieces->pieces[i].len;
      uint32_t n = b == e ? 0
                          : core_->dsa->submit_work(w, op, static_cast<uint32_t>(w), pieces->pieces.data() + b, e - b,
                                                    work_deadline(core_->timeout_ms, work_bytes));
      counts[w] = n;
      expected += n;
    }
    if (mode == kSync) {
      EventRecord totals = waiter.wait_for(expected);
      events.unregister_sync(op);
      // The sum of the op's events, in event layout, for lib/ to apply as one event.
      if (info[6].IsTypedArray() && info[6].As<Napi::TypedArray>().TypedArrayType() == napi_float64_array) {
        Napi::Float64Array out = info[6].As<Napi::Float64Array>();
        for (size_t i = 0; i < kEventFields && i < out.ElementLength(); ++i) out[i] = totals.f[i];
      }
    }
    return counts;
  }

  if (mode == kInline) {
    for (size_t w = 0; w < k; ++w) {
      if (counts[w] == 0) continue;
      CpuCopyJob job = make_job(w);
      core_->cpu->run_here(job);
    }
  } else if (mode == kSync) {
    // The calling thread copies the first busy work itself instead of idling while it waits.
    Latch latch(busy_works);
    bool caller_took_one = false;
    CpuCopyJob own;
    for (size_t w = 0; w < k; ++w) {
      if (counts[w] == 0) continue;
      CpuCopyJob job = make_job(w);
      job.done = [&latch] { latch.count_down(); };
      if (!caller_took_one) {
        own = std::move(job);
        caller_took_one = true;
      } else {
        core_->cpu->submit(static_cast<unsigned>(w), std::move(job));
      }
    }
    if (caller_took_one) core_->cpu->run_here(own);
    latch.wait();
  } else {
    EventChannel& events = AddonData::of(env).events(env);
    for (size_t w = 0; w < k; ++w) {
      if (counts[w] == 0) continue;
      CpuCopyJob job = make_job(w);
      job.sink = &events;
      core_->cpu->submit(static_cast<unsigned>(w), std::move(job));
    }
  }
  return counts;
}

Napi::Value EngineHandle::Stats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  dmacopy::CpuCopyPoolStats s = core_->cpu->stats();
  o.Set("cpuJobs", Napi::Number::New(env, static_cast<double>(s.jobs)));
  o.Set("cpuRegions", Napi::Number::New(env, static_cast<double>(s.regions)));
  o.Set("cpuBytes", Napi::Number::New(env, static_cast<double>(s.bytes)));
  o.Set("cpuThreads", Napi::Number::New(env, core_->cpu->threads()));
  o.Set("inFlightJobs", Napi::Number::New(env, static_cast<double>(core_->cpu->in_flight())));
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
    ds.Set("quarantines", num(d.quarantines));
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
      chans.Set(static_cast<uint32_t>(i), co);
    }
    ds.Set("channels", chans);
    o.Set("dsa", ds);
  }
  return o;
}

Napi::Value EngineHandle::EndBatch(const Napi::CallbackInfo& info) {
  trackers_.erase(static_cast<uint64_t>(number_arg(info[0], "opId")));
  return info.Env().Undefined();
}

Napi::Value EngineHandle::RegisterSync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const uint64_t op = static_cast<uint64_t>(number_arg(info[0], "opId"));
  auto& waiter = sync_waiters_[op];
  waiter = std::make_unique<SyncWaiter>();
  AddonData::of(env).events(env).register_sync(op, waiter.get());
  return env.Undefined();
}

Napi::Value EngineHandle::WaitSync(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  const uint64_t op = static_cast<uint64_t>(number_arg(info[0], "opId"));
  const double expected = number_arg(info[1], "expected");
  auto it = sync_waiters_.find(op);
  if (it == sync_waiters_.end())
    throw coded_error(env, "ERR_DMACOPY_INTERNAL", "waitSync without registerSync: please report this");
  EventRecord totals = it->second->wait_for(static_cast<uint64_t>(expected));
  AddonData::of(env).events(env).unregister_sync(op);
  sync_waiters_.erase(it);
  if (info[2].IsTypedArray() && info[2].As<Napi::TypedArray>().TypedArrayType() == napi_float64_array) {
    Napi::Float64Array out = info[2].As<Napi::Float64Array>();
    for (size_t i = 0; i < kEventFields && i < out.ElementLength(); ++i) out[i] = totals.f[i];
  }
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
    o.Set("reason", Napi::String::New(env, r.reason));
    o.Set("remedy", Napi::String::New(env, r.remedy));
    o.Set("path", Napi::String::New(env, dmacopy::to_string(r.path)));
    o.Set("instruction", Napi::String::New(env, dmacopy::to_string(r.instruction)));
    o.Set("pathNote", Napi::String::New(env, r.path_note));
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
