#include "native_engine.h"

#include <condition_variable>
#include <mutex>
#include <string>

#include "addon_data.h"
#include "args.h"
#include "batch_plan.h"
#include "errors.h"
#include "event_channel.h"

namespace dmacopy_addon {

using dmacopy::BufferSpan;
using dmacopy::CopyRegion;
using dmacopy::CpuJob;
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

}  // namespace

void EngineCore::shutdown() {
  closed = true;
  if (cpu) cpu->shutdown();
}

Napi::Function NativeEngine::Define(Napi::Env env) {
  return DefineClass(env, "NativeEngine",
                     {InstanceMethod<&NativeEngine::Copy>("copy"), InstanceMethod<&NativeEngine::Stats>("stats"),
                      InstanceMethod<&NativeEngine::Close>("close")});
}

NativeEngine::NativeEngine(const Napi::CallbackInfo& info) : Napi::ObjectWrap<NativeEngine>(info) {
  Napi::Env env = info.Env();
  if (!info[0].IsObject()) throw coded_type_error(env, "ERR_DMACOPY_INVALID_ARG", "NativeEngine options must be an object");
  Napi::Object opts = info[0].As<Napi::Object>();
  uint32_t threads = uint32_arg(opts.Get("threads"), "threads");
  if (threads < 1 || threads > 1024) throw coded_range_error(env, "ERR_DMACOPY_OUT_OF_RANGE", "threads must be from 1 to 1024");
  double nt = number_arg(opts.Get("nonTemporalMinBytes"), "nonTemporalMinBytes");
  core_ = std::make_shared<EngineCore>();
  core_->cpu = std::make_unique<dmacopy::CpuEngine>(threads);
  core_->non_temporal_min_bytes = nt >= 1.8e19 ? UINT64_MAX : static_cast<uint64_t>(nt < 0 ? 0 : nt);
  AddonData::of(env).register_engine(core_);
}

NativeEngine::~NativeEngine() {
  // The JS handle was collected; if close() was never called, threads still need joining.
  if (core_) core_->shutdown();
}

Napi::Value NativeEngine::Copy(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (core_->closed) throw coded_error(env, "ERR_DMACOPY_CLOSED", "The engine is closed: open a new one with openEngine().");
  const uint32_t mode = uint32_arg(info[0], "mode");
  const double op_id = number_arg(info[1], "opId");
  std::vector<BufferSpan> spans = buffer_spans(info[2]);
  const uint32_t form = uint32_arg(info[3], "form");
  DoubleTable table = double_table(info[4], "table");
  DoubleTable bounds = double_table(info[5], "bounds");
  if (mode > kAsync || form > kRegionForm) throw coded_range_error(env, "ERR_DMACOPY_OUT_OF_RANGE", "unknown copy mode or table form");
  if (bounds.length < 4 || bounds.length % 2 != 0)
    throw coded_range_error(env, "ERR_DMACOPY_OUT_OF_RANGE", "bounds must hold at least two (folio, offset) pairs");

  std::vector<CopyRegion> folios;
  dmacopy::PlanStatus st;
  if (form == kListForm) {
    if (table.length % dmacopy::kListFields != 0) throw coded_range_error(env, "ERR_DMACOPY_OUT_OF_RANGE", "list table length must be a multiple of 5");
    st = dmacopy::plan_list(spans.data(), spans.size(), table.data, table.length / dmacopy::kListFields, folios);
  } else {
    if (table.length != dmacopy::kRegionFields) throw coded_range_error(env, "ERR_DMACOPY_OUT_OF_RANGE", "region table must hold 6 numbers");
    st = dmacopy::plan_region(spans.data(), spans.size(), table.data, folios);
  }
  if (st.ok()) st = dmacopy::check_overlaps(folios);
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
    CpuJob job;
    job.table = shared_pieces;
    job.begin = pieces->work_begin[w];
    job.end = pieces->work_begin[w + 1];
    job.op_id = static_cast<uint64_t>(op_id);
    job.work = static_cast<uint32_t>(w);
    job.store = store;
    return job;
  };

  if (mode == kInline) {
    for (size_t w = 0; w < k; ++w) {
      if (counts[w] == 0) continue;
      CpuJob job = make_job(w);
      core_->cpu->run_here(job);
    }
  } else if (mode == kSync) {
    // The calling thread copies the first busy work itself instead of idling while it waits.
    Latch latch(busy_works);
    bool caller_took_one = false;
    CpuJob own;
    for (size_t w = 0; w < k; ++w) {
      if (counts[w] == 0) continue;
      CpuJob job = make_job(w);
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
      CpuJob job = make_job(w);
      job.sink = &events;
      core_->cpu->submit(static_cast<unsigned>(w), std::move(job));
    }
  }
  return counts;
}

Napi::Value NativeEngine::Stats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  Napi::Object o = Napi::Object::New(env);
  dmacopy::CpuEngineStats s = core_->cpu->stats();
  o.Set("cpuJobs", Napi::Number::New(env, static_cast<double>(s.jobs)));
  o.Set("cpuRegions", Napi::Number::New(env, static_cast<double>(s.regions)));
  o.Set("cpuBytes", Napi::Number::New(env, static_cast<double>(s.bytes)));
  o.Set("cpuThreads", Napi::Number::New(env, core_->cpu->threads()));
  o.Set("inFlightJobs", Napi::Number::New(env, static_cast<double>(core_->cpu->in_flight())));
  return o;
}

Napi::Value NativeEngine::Close(const Napi::CallbackInfo& info) {
  // Joins the threads after they finished every queued job: nothing writes after this returns.
  core_->shutdown();
  AddonData::of(info.Env()).unregister_engine(core_);
  return info.Env().Undefined();
}

}  // namespace dmacopy_addon
