// Descriptor throughput of the DSA channels, end to end and bookkeeping alone.
// Build and run (from the repo root):
//   mkdir -p build && g++ -std=c++17 -O2 -pthread -I native/core -o build/bench_dsa_channels native/core/bench/bench_dsa_channels.cc native/core/*.cc && build/bench_dsa_channels
//
//  1. end to end, 64-byte regions: submit_work → software device → poll → count → EventSink
//  2. end to end, 4 KiB regions
//  3. bookkeeping only: an "instant" queue completes each descriptor inside submit (writes the
//     record, copies nothing), so what is left is the engine's own per-descriptor cost:
//     splitting, descriptor build, record zeroing, fence, window/arena, scan, decode, counting.
//  4. the same, prepared (engine.prepare on a device): descriptors built once, each run copying
//     them into the submission with a fresh record (submit_prepared).
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>
#include <vector>

#include "dsa_channels.h"
#include "dsa_hw.h"
#include "soft_device.h"

using namespace dmacopy;

namespace {

class CountingSink : public EventSink {
 public:
  void post(const CompletionEvent* ev, size_t n) override {
    uint64_t c = 0;
    for (size_t i = 0; i < n; ++i) c += ev[i].completed;
    completed.fetch_add(c, std::memory_order_release);
  }
  std::atomic<uint64_t> completed{0};
};

// Completes every descriptor at submission: the device side costs (almost) nothing.
class InstantQueue : public WorkQueue {
 public:
  InstantQueue() {
    info_.name = "instant";
    info_.size = 256;
    info_.max_transfer_size = 1u << 21;
  }
  const WqInfo& info() const override { return info_; }
  SubmitStatus submit(const dsa_hw_desc& d) override {
    auto* cr = reinterpret_cast<dsa_completion_record*>(static_cast<uintptr_t>(d.completion_addr));
    cr->bytes_completed = d.xfer_size;
    store_status(cr, DSA_COMP_SUCCESS);
    return SubmitStatus::Accepted;
  }
  bool healthy() override { return true; }
  void drain() override {}
  bool reopen() override { return true; }

 private:
  WqInfo info_;
};

double run(std::vector<std::unique_ptr<WorkQueue>> qs, size_t region, size_t per_work, size_t works_in_flight,
           uint64_t total_desc, const char* label, bool prepared = false) {
  CountingSink sink;
  // The library's policy values (lib/defaults.ts PAGE_FAULT_RETRIES, QUARANTINE_AFTER); the
  // bench has no faults, so they only have to be valid.
  DsaChannelOptions opts;
  opts.page_fault_retries = 2;
  opts.quarantine_after = 3;
  opts.drain_timeout_ms = 1000;  // lib/defaults.ts DRAIN_TIMEOUT_MS
  DsaChannels eng(std::move(qs), nullptr, &sink, opts);
  std::vector<uint8_t> src(region * per_work), dst(region * per_work);
  std::memset(src.data(), 1, src.size());
  std::vector<CopyRegion> regs(per_work);
  for (size_t i = 0; i < per_work; ++i) regs[i] = {dst.data() + i * region, src.data() + i * region, region};
  auto plan = std::make_shared<WorkPieces>();
  plan->pieces = regs;
  plan->work_begin = {0, regs.size()};
  std::shared_ptr<const PreparedDescriptors> pd = prepared ? eng.prepare(plan, 1) : nullptr;
  uint64_t submitted = 0;
  uint32_t work = 0;
  uint64_t op = 1;
  auto t0 = std::chrono::steady_clock::now();
  while (submitted < total_desc) {
    // Keep a few works in flight (same buffers: the bench measures descriptors, not data).
    while (submitted - sink.completed.load(std::memory_order_acquire) >= works_in_flight * per_work)
      std::this_thread::yield();
    // A prepared batch's runs are ops of their own (one work each); a plain one's are works of op 1.
    submitted +=
        pd ? eng.submit_prepared(0, op++, 0, pd, 0) : eng.submit_work(0, 1, work++, regs.data(), regs.size(), 0);
  }
  while (sink.completed.load(std::memory_order_acquire) < submitted) std::this_thread::yield();
  double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  eng.close();
  double rate = double(submitted) / s;
  std::printf("%-44s %10.0f descriptors/s  %7.1f ns/descriptor  (%llu descriptors, %.2f s)\n", label, rate, 1e9 / rate,
              (unsigned long long)submitted, s);
  return rate;
}

std::vector<std::unique_ptr<WorkQueue>> soft(uint32_t engines) {
  SoftDeviceConfig c;  // lib/defaults.ts EMULATOR_DEFAULTS, but a deeper queue and the given engines
  c.engines = engines;
  c.wq_size = 256;
  c.max_transfer_size = 2u << 20;
  c.seed = 1;
  std::vector<std::unique_ptr<WorkQueue>> v;
  v.push_back(std::make_unique<SoftWorkQueue>(c));
  return v;
}

}  // namespace

int main() {
  std::printf("hardware threads: %u\n", std::thread::hardware_concurrency());
  run(soft(1), 64, 4096, 4, 4000000, "end to end, 64 B, soft device (1 engine)");
  run(soft(1), 4096, 1024, 4, 1000000, "end to end, 4 KiB, soft device (1 engine)");
  std::vector<std::unique_ptr<WorkQueue>> iq;
  iq.push_back(std::make_unique<InstantQueue>());
  run(std::move(iq), 64, 4096, 4, 8000000, "bookkeeping only (instant queue)");
  std::vector<std::unique_ptr<WorkQueue>> iq2;
  iq2.push_back(std::make_unique<InstantQueue>());
  run(std::move(iq2), 64, 4096, 4, 8000000, "bookkeeping only, prepared (instant queue)", true);
  return 0;
}
