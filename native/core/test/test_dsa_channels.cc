// DsaChannels end to end over software devices: counting, splitting, the fault matrix with
// guard bytes and "no event before its bytes", quarantine, close, and the dcbm regression.
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <mutex>
#include <random>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "check.h"
#include "clock.h"
#include "completion_arena.h"
#include "cpu_features.h"
#include "dsa_channels.h"
#include "dsa_hw.h"
#include "naive_strategy.h"
#include "page_buffer.h"
#include "queue_reaper.h"
#include "soft_device.h"
#include "test_configs.h"

using namespace dmacopy;

namespace {

// A CPU copy pool stand-in that copies on its own thread, like the real one.
class ThreadCopier : public CpuCopier {
 public:
  ThreadCopier() : t_([this] { loop(); }) {}
  ~ThreadCopier() override {
    {
      std::lock_guard<std::mutex> lk(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    t_.join();
  }
  void copy_async(std::vector<CopyRegion> regions, std::function<void()> done) override {
    std::lock_guard<std::mutex> lk(mu_);
    q_.push_back({std::move(regions), std::move(done)});
    cv_.notify_one();
    ++calls;
  }
  int calls = 0;

 private:
  void loop() {
    std::unique_lock<std::mutex> lk(mu_);
    for (;;) {
      cv_.wait(lk, [this] { return stop_ || !q_.empty(); });
      if (q_.empty()) return;
      auto job = std::move(q_.front());
      q_.erase(q_.begin());
      lk.unlock();
      for (auto& r : job.first) std::memmove(r.dst, r.src, r.len);
      job.second();
      lk.lock();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::pair<std::vector<CopyRegion>, std::function<void()>>> q_;
  bool stop_ = false;
  std::thread t_;
};

// Tracks every work; when a work's last descriptor is reported, checks its bytes right there,
// inside post(): an event that came before its bytes would show up as a mismatch.
class CheckingSink : public EventSink {
 public:
  struct Work {
    std::vector<CopyRegion> regions;
    uint32_t total = 0, completed = 0;
    bool done = false;
  };
  void expect(uint64_t op, uint32_t work, std::vector<CopyRegion> regions, uint32_t total) {
    std::lock_guard<std::mutex> lk(mu_);
    Work& w = works_[key(op, work)];
    w.regions = std::move(regions);
    w.total = total;
    if (w.completed >= w.total && !w.done) finish(w);  // events before submit_work returned
  }
  void post(const CompletionEvent* ev, size_t n) override {
    std::lock_guard<std::mutex> lk(mu_);
    ++posts;
    for (size_t i = 0; i < n; ++i) {
      const CompletionEvent& e = ev[i];
      Work& w = works_[key(e.op_id, e.work)];
      w.completed += e.completed;
      events++;
      sum.completed += e.completed;
      sum.device_bytes += e.device_bytes;
      sum.cpu_bytes += e.cpu_bytes;
      sum.fallback_timeout += e.fallback_timeout;
      sum.fallback_error += e.fallback_error;
      sum.fallback_page_fault += e.fallback_page_fault;
      sum.fallback_submit += e.fallback_submit;
      sum.out_of_order += e.out_of_order;
      sum.page_fault_retries += e.page_fault_retries;
      sum.wedged += e.wedged;
      if (w.total && w.completed > w.total) ++overcount;
      if (w.total && w.completed >= w.total && !w.done) finish(w);
    }
    cv_.notify_all();
  }
  bool wait_all(size_t n_done, int ms) {
    std::unique_lock<std::mutex> lk(mu_);
    return cv_.wait_for(lk, std::chrono::milliseconds(ms), [&] { return finished >= n_done; });
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<uint64_t, Work> works_;
  size_t finished = 0, mismatched_works = 0, overcount = 0, events = 0, posts = 0;
  CompletionEvent sum;

 private:
  static uint64_t key(uint64_t op, uint32_t w) { return op * 1000003ull + w; }
  void finish(Work& w) {
    w.done = true;
    ++finished;
    for (auto& r : w.regions)
      if (std::memcmp(r.dst, r.src, r.len) != 0) {
        ++mismatched_works;
        break;
      }
  }
};

// A software queue that leaves its device's counters behind when close() destroys it (after the
// drain close() does), so a test can read them afterwards; raw pointers die with the queue.
class CountedSoftQueue : public SoftWorkQueue {
 public:
  CountedSoftQueue(const SoftDeviceConfig& c, SoftDeviceCounters* out) : SoftWorkQueue(c), out_(out) {}
  ~CountedSoftQueue() override {
    if (out_) *out_ = device().counters();
  }

 private:
  SoftDeviceCounters* out_;
};

// raw: the queues, valid until close(); finals (resized here): their counters after close().
std::vector<std::unique_ptr<WorkQueue>> make_queues(std::vector<SoftDeviceConfig> cfgs,
                                                    std::vector<SoftWorkQueue*>* raw,
                                                    std::vector<SoftDeviceCounters>* finals = nullptr) {
  std::vector<std::unique_ptr<WorkQueue>> qs;
  if (finals) finals->assign(cfgs.size(), SoftDeviceCounters());
  for (size_t i = 0; i < cfgs.size(); ++i) {
    auto q = std::make_unique<CountedSoftQueue>(cfgs[i], finals ? &(*finals)[i] : nullptr);
    if (raw) raw->push_back(q.get());
    qs.push_back(std::move(q));
  }
  return qs;
}

// A queue that executes each memmove at once (copying the bytes, so a wrong "success" would
// still look byte-exact) and completes it with a fixed raw status byte.
class FixedStatusQueue : public WorkQueue {
 public:
  // *submitted counts descriptors; it outlives the queue (close() destroys the queues).
  FixedStatusQueue(uint8_t raw, uint64_t* submitted) : submitted_(submitted), raw_(raw) {
    info_.name = "fixed0.0";
    info_.size = 8;
    info_.max_transfer_size = 4096;
  }
  const WqInfo& info() const override { return info_; }
  SubmitStatus submit(const dsa_hw_desc& d) override {
    auto* dst = reinterpret_cast<uint8_t*>(static_cast<uintptr_t>(d.dst_addr));
    auto* src = reinterpret_cast<const uint8_t*>(static_cast<uintptr_t>(d.src_addr));
    if (d.opcode == DSA_OPCODE_MEMMOVE) std::memmove(dst, src, d.xfer_size);
    auto* cr = reinterpret_cast<dsa_completion_record*>(static_cast<uintptr_t>(d.completion_addr));
    store_status(cr, raw_);
    ++*submitted_;
    return SubmitStatus::Accepted;
  }
  bool healthy() override { return true; }
  void drain() override {}
  bool reopen() override { return true; }

 private:
  uint64_t* submitted_;
  uint8_t raw_;
  WqInfo info_;
};

// A software queue that logs every descriptor it accepted (dst, len): poller-thread only, read
// after close().
class LoggingQueue : public WorkQueue {
 public:
  LoggingQueue(const SoftDeviceConfig& c, std::vector<std::pair<uint64_t, uint32_t>>* log,
               SoftDeviceCounters* final_counters)
      : q_(c), log_(log), final_(final_counters) {}
  ~LoggingQueue() override { *final_ = q_.device().counters(); }
  const WqInfo& info() const override { return q_.info(); }
  SubmitStatus submit(const dsa_hw_desc& d) override {
    SubmitStatus s = q_.submit(d);
    if (s == SubmitStatus::Accepted) log_->push_back({d.dst_addr, d.xfer_size});
    return s;
  }
  size_t submit_many(const dsa_hw_desc* d, size_t n, SubmitStatus* stopped) override {
    size_t k = q_.submit_many(d, n, stopped);
    for (size_t i = 0; i < k; ++i) log_->push_back({d[i].dst_addr, d[i].xfer_size});
    return k;
  }
  bool healthy() override { return q_.healthy(); }
  void drain() override { q_.drain(); }
  bool reopen() override { return q_.reopen(); }

 private:
  SoftWorkQueue q_;
  std::vector<std::pair<uint64_t, uint32_t>>* log_;
  SoftDeviceCounters* final_;
};

struct RealFaultRun {
  DsaChannelsStats st;
  SoftDeviceCounters dev;
  std::vector<std::pair<uint64_t, uint32_t>> log;
  bool exact = false;
  bool finished = false;
  size_t mismatched = 1;
  uint32_t pieces = 0;
};

// Copies `len` bytes into dst + dst_off (of a 64-page mmap whose pages are all dropped first:
// their content is about to be overwritten) through a software device with real_page_faults,
// max_transfer_size 4 pages, page_fault_retries 16.
RealFaultRun copy_into_dropped_pages(size_t dst_off) {
  RealFaultRun out;
  dmacopy_test::PageBuffer dst(64);
  const size_t ps = dst.page_size();
  std::vector<uint8_t> src(48 * ps);
  for (size_t i = 0; i < src.size(); ++i) src[i] = uint8_t(i * 29 + 3);
  std::memset(dst.data(), 0xCD, dst.size());
  if (!dst.drop(0, 64)) return out;
  SoftDeviceConfig c = typical_soft_device();
  c.max_transfer_size = 4 * ps;
  c.wq_size = 8;
  c.faults.real_page_faults = true;
  DsaChannelOptions o = typical_channel_options();
  o.page_fault_retries = 16;
  std::vector<std::unique_ptr<WorkQueue>> qs;
  qs.push_back(std::make_unique<LoggingQueue>(c, &out.log, &out.dev));
  CheckingSink sink;
  DsaChannels eng(std::move(qs), nullptr, &sink, o);
  CopyRegion r{dst.data() + dst_off, src.data(), src.size()};
  out.pieces = eng.submit_work(0, 7, 0, &r, 1, 0);
  sink.expect(7, 0, {r}, out.pieces);
  out.finished = sink.wait_all(1, 10000);
  eng.close();
  out.st = eng.stats();
  out.mismatched = sink.mismatched_works;
  out.exact = std::memcmp(dst.data() + dst_off, src.data(), src.size()) == 0;
  return out;
}

}  // namespace

TEST("a work is split at max_transfer_size and counted per descriptor") {
  SoftDeviceConfig c = typical_soft_device();
  c.max_transfer_size = 4096;
  c.wq_size = 8;
  std::vector<SoftWorkQueue*> raw;
  CheckingSink sink;
  DsaChannels eng(make_queues({c}, &raw), nullptr, &sink, typical_channel_options());
  std::vector<uint8_t> src(100000), dst(100000, 0);
  for (size_t i = 0; i < src.size(); ++i) src[i] = uint8_t(i * 13 + 5);
  CopyRegion regs[3] = {{dst.data(), src.data(), 10000},
                        {dst.data() + 10000, src.data() + 10000, 0},
                        {dst.data() + 20000, src.data() + 20000, 80000}};
  uint32_t n = eng.submit_work(0, 1, 0, regs, 3, 0);
  CHECK_EQ(n, 3u + 20u);
  sink.expect(1, 0, {regs[0], regs[2]}, n);
  CHECK(sink.wait_all(1, 5000));
  CHECK_EQ(sink.mismatched_works, 0u);
  CHECK_EQ(sink.sum.completed, n);
  CHECK_EQ(sink.sum.device_bytes, 90000u);
  CHECK(sink.events < n);  // coalesced, not one per descriptor
  DsaChannelsStats st = eng.stats();
  CHECK_EQ(st.descriptors, uint64_t(n));
  CHECK_EQ(st.submitted, uint64_t(n));
  CHECK(st.channels[0].max_in_flight <= 8);
  CHECK(raw[0]->device().counters().dropped == 0);  // before close(): close() destroys the queues
  eng.close();
  eng.close();                                         // idempotent
  CHECK_EQ(eng.submit_work(0, 2, 0, regs, 1, 0), 0u);  // after close: done synchronously
}

TEST("fault matrix: randomized works, all faults, no byte lost, guards intact, faults visible") {
  const int kWorks = 2400;
  std::vector<SoftDeviceConfig> cfgs(2, typical_soft_device());
  for (int i = 0; i < 2; ++i) {
    SoftDeviceConfig& c = cfgs[i];
    c.name = i == 0 ? "soft0.0" : "soft1.0";
    c.engines = 2;
    c.wq_size = 16;
    c.mode = i == 0 ? WqMode::Dedicated : WqMode::Shared;
    c.max_transfer_size = 4096;
    c.seed = 1000 + i;
    c.jitter_us = 30;
    c.faults.page_fault = 0.08;
    c.faults.backward = 0.3;
    c.faults.error = 0.02;
    c.faults.hang = 0.002;
    c.faults.hang_ms = 25;  // past the 15 ms deadline: a Drain has to wait for it
    c.faults.lost_record = 0.002;
    c.faults.late = 0.004;
    c.faults.late_ms = 30;
    c.faults.retry = i == 1 ? 0.3 : 0;
    c.faults.disable = 0.001;
  }
  std::vector<SoftWorkQueue*> raw;
  CheckingSink sink;
  ThreadCopier cpu;
  DsaChannelOptions o = typical_channel_options();
  o.page_fault_retries = 1;
  o.retry_spins = 2;
  o.quarantine_after = 1000000;  // keep both queues in play: every fault kind must show
  std::vector<SoftDeviceCounters> finals;
  DsaChannels eng(make_queues(cfgs, &raw, &finals), &cpu, &sink, o);

  const uint64_t reused_before = CompletionArena::reused_while_owned();
  std::mt19937_64 rng(12345);
  const size_t kGuard = 64;
  size_t guard_bad = 0, submitted = 0, zero_works = 0;
  uint64_t op = 0;
  for (int wave = 0; wave < kWorks / 8; ++wave) {
    struct Buf {
      std::vector<uint8_t> src, dst;
      std::vector<CopyRegion> regs;
      std::vector<std::pair<size_t, size_t>> spans;  // dst offset, len
    };
    std::vector<Buf> bufs(8);
    size_t expect_done = sink.finished;
    for (int k = 0; k < 8; ++k) {
      Buf& b = bufs[k];
      int nreg = 1 + int(rng() % 6);
      size_t total = 0;
      std::vector<size_t> lens;
      for (int j = 0; j < nreg; ++j) {
        size_t len = (rng() % 4 == 0) ? rng() % 13000 : rng() % 3000;  // some > max_transfer_size
        lens.push_back(len);
        total += len + 2 * kGuard + 64;
      }
      b.src.resize(total);
      b.dst.assign(total, 0xC5);
      for (auto& x : b.src) x = uint8_t(rng());
      size_t off = kGuard;
      for (size_t len : lens) {
        size_t mis = rng() % 64;  // random alignment
        CopyRegion r{b.dst.data() + off + mis, b.src.data() + off + mis, len};
        b.regs.push_back(r);
        b.spans.push_back({off + mis, len});
        off += mis + len + 2 * kGuard;
      }
      uint64_t deadline = monotonic_ns() + 15'000'000;  // 15 ms: hangs and lates must hit it
      ++op;
      uint32_t n = eng.submit_work(size_t(k), op, uint32_t(k), b.regs.data(), b.regs.size(), deadline);
      if (n == 0) {
        ++zero_works;
        continue;
      }
      ++submitted;
      sink.expect(op, uint32_t(k), b.regs, n);
      ++expect_done;
    }
    CHECK(sink.wait_all(expect_done, 10000));
    for (auto& b : bufs) {
      std::vector<bool> inside(b.dst.size(), false);
      for (auto& s : b.spans)
        for (size_t i = 0; i < s.second; ++i) inside[s.first + i] = true;
      for (size_t i = 0; i < b.dst.size(); ++i)
        if (!inside[i] && b.dst[i] != 0xC5) {
          ++guard_bad;
          break;
        }
    }
  }
  eng.close();
  CHECK_EQ(sink.mismatched_works, 0u);
  CHECK_EQ(sink.overcount, 0u);
  CHECK_EQ(guard_bad, 0u);
  CHECK_EQ(CompletionArena::reused_while_owned(), reused_before);  // no record recycled under the device
  CHECK_EQ(sink.finished, submitted);
  DsaChannelsStats st = eng.stats();
  SoftDeviceCounters d0 = finals[0], d1 = finals[1];  // close() destroyed the queues
  std::printf("  works %zu (+%zu empty), descriptors %llu, events %zu in %zu posts\n", submitted, zero_works,
              (unsigned long long)st.descriptors, sink.events, sink.posts);
  std::printf(
      "  device: pf %llu err %llu hang %llu late %llu disable %llu retry %llu reordered %llu lost %llu drains %llu\n",
      (unsigned long long)(d0.page_faults + d1.page_faults), (unsigned long long)(d0.errors + d1.errors),
      (unsigned long long)(d0.hangs + d1.hangs), (unsigned long long)(d0.lates + d1.lates),
      (unsigned long long)(d0.disables + d1.disables), (unsigned long long)d1.retry_injected,
      (unsigned long long)(d0.reordered + d1.reordered), (unsigned long long)(d0.lost_records + d1.lost_records),
      (unsigned long long)(d0.drain_descriptors + d1.drain_descriptors));
  std::printf(
      "  engine: fb timeout %llu error %llu pf %llu submit %llu, pf retries %llu, ooo %llu, timeouts %llu, "
      "unhealthy %llu, retries %llu\n",
      (unsigned long long)st.fallback_timeout, (unsigned long long)st.fallback_error,
      (unsigned long long)st.fallback_page_fault, (unsigned long long)st.fallback_submit,
      (unsigned long long)st.page_fault_retries, (unsigned long long)st.out_of_order, (unsigned long long)st.timeouts,
      (unsigned long long)st.unhealthy, (unsigned long long)st.retries);
  // Every injected fault is visible in the device counters and in the engine's report.
  CHECK(d0.page_faults + d1.page_faults > 0);
  CHECK(d0.errors + d1.errors > 0);
  CHECK(d0.hangs + d1.hangs > 0);
  CHECK(d0.lates + d1.lates > 0);
  CHECK(d0.disables + d1.disables > 0);
  CHECK(d0.lost_records + d1.lost_records > 0);
  CHECK(d0.drain_descriptors + d1.drain_descriptors > 0);
  CHECK(d1.retry_injected > 0);
  CHECK(d0.dropped == 0);  // never more in flight than the dedicated queue holds
  CHECK(st.channels[0].max_in_flight <= 16);
  CHECK(st.page_faults > 0 && st.page_fault_retries > 0);
  CHECK(st.fallback_page_fault > 0);
  CHECK(st.errors > 0 && st.fallback_error > 0);
  CHECK(st.timeouts > 0 && st.drains > 0);
  CHECK(st.lost_records > 0);
  CHECK_EQ(st.wedged, 0u);  // every hang ends: no channel is wedged, no work reported so
  CHECK_EQ(sink.sum.wedged, 0u);
  CHECK(st.unhealthy > 0);
  CHECK(st.retries > 0 && st.fallback_submit > 0);
  CHECK(st.out_of_order > 0);
  CHECK_EQ(sink.sum.completed, st.completed);
  CHECK_EQ(uint64_t(sink.sum.fallback_timeout), st.fallback_timeout);
  CHECK_EQ(uint64_t(sink.sum.out_of_order), st.out_of_order);
  CHECK_EQ(st.descriptors, st.completed);
}

TEST("a channel that keeps failing is quarantined and work moves on") {
  std::vector<SoftDeviceConfig> cfgs(2, typical_soft_device());
  cfgs[0].name = "bad";
  cfgs[0].faults.error = 1.0;
  cfgs[0].wq_size = 4;
  cfgs[0].max_transfer_size = 1024;
  cfgs[1].name = "good";
  cfgs[1].wq_size = 4;
  cfgs[1].max_transfer_size = 1024;
  CheckingSink sink;
  DsaChannels eng(make_queues(cfgs, nullptr), nullptr, &sink, typical_channel_options());
  std::vector<uint8_t> src(64 * 1024), dst(64 * 1024);
  for (size_t i = 0; i < src.size(); ++i) src[i] = uint8_t(i ^ 0x5a);
  size_t done = 0;
  for (int w = 0; w < 16; ++w) {
    CopyRegion r{dst.data() + w * 4096, src.data() + w * 4096, 4096};
    uint32_t n = eng.submit_work(0, 7, uint32_t(w), &r, 1, 0);
    CHECK_EQ(n, 4u);
    sink.expect(7, uint32_t(w), {r}, n);
    ++done;
    CHECK(sink.wait_all(done, 5000));
  }
  CHECK_EQ(sink.mismatched_works, 0u);
  CHECK(src == dst);
  DsaChannelsStats st = eng.stats();
  CHECK(!eng.channel_usable(0));
  CHECK(eng.channel_usable(1));
  CHECK_EQ(st.quarantines, 1u);
  CHECK(st.channels[0].quarantined);
  CHECK(st.channels[1].completed > 0);
}

TEST("wedged device: close() returns within its bound, works end marked wedged, records outlive the release") {
  SoftDeviceConfig c = typical_soft_device();
  c.faults.hang = 1.0;
  c.faults.hang_ms = 4000;  // far past the Drain's deadline: wedged as far as the engine can tell
  c.wq_size = 4;
  CheckingSink sink;
  ThreadCopier cpu;
  DsaChannelOptions o = typical_channel_options();
  o.drain_timeout_ms = 50;
  DsaChannels eng(make_queues({c}, nullptr), &cpu, &sink, o);
  std::vector<uint8_t> src(8192, 0x77), dst(8192, 0);
  CopyRegion r{dst.data(), src.data(), 8192};
  uint32_t n = eng.submit_work(0, 9, 0, &r, 1, 0);
  sink.expect(9, 0, {r}, n);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  CHECK_EQ(sink.finished, 0u);
  auto t0 = std::chrono::steady_clock::now();
  eng.close();
  auto took = std::chrono::steady_clock::now() - t0;
  CHECK(took < std::chrono::milliseconds(2000));  // the bound: drain_timeout_ms, not the device (4 s)
  CHECK_EQ(sink.finished, 1u);
  CHECK_EQ(sink.mismatched_works, 0u);
  CHECK(src == dst);                       // the CPU copied it
  CHECK_EQ(sink.sum.wedged, uint64_t(n));  // and says the device may still write it
  DsaChannelsStats st = eng.stats();
  CHECK_EQ(st.wedged, 1u);
  CHECK(st.channels[0].wedged && st.channels[0].quarantined);
  CHECK(QueueReaper::pending() >= 1);  // the release is still waiting for the device
  // The device finishes later and writes its records: into memory still allocated (ASan would
  // see a write to freed memory), and the release returns only then.
  CHECK(QueueReaper::wait_idle(15000));
  CHECK(src == dst);
}

TEST("close() while page faults are outstanding: their continuations go to the CPU, every work finishes") {
  // Before, a page fault read during the shutdown fence queued its continuation for a retry that
  // nothing submitted any more: the work never reached its count (a promise that never settled,
  // a copyBatchSync that never returned) and its bytes were never copied.
  SoftDeviceConfig c = typical_soft_device();
  c.max_transfer_size = 4096;
  c.wq_size = 8;
  c.latency_us = 20000;  // still outstanding when close() starts
  c.faults.page_fault = 1.0;
  CheckingSink sink;
  ThreadCopier cpu;
  DsaChannelOptions o = typical_channel_options();
  CHECK(o.page_fault_retries > 0);  // continuations would be retried on the device
  DsaChannels eng(make_queues({c}, nullptr), &cpu, &sink, o);
  std::vector<uint8_t> src(4 * 4096), dst(4 * 4096, 0);
  for (size_t i = 0; i < src.size(); ++i) src[i] = uint8_t(i * 7 + 1);
  CopyRegion r{dst.data(), src.data(), src.size()};
  uint32_t n = eng.submit_work(0, 11, 0, &r, 1, 0);
  sink.expect(11, 0, {r}, n);
  std::this_thread::sleep_for(std::chrono::milliseconds(2));
  eng.close();
  CHECK_EQ(sink.finished, 1u);
  CHECK_EQ(sink.mismatched_works, 0u);
  CHECK_EQ(sink.overcount, 0u);
  CHECK(src == dst);
  CHECK(sink.sum.fallback_page_fault > 0);  // the device faulted and the CPU finished
}

namespace {

// A software queue that, once, reports itself unusable without being quiet while descriptors
// are in flight: a real queue whose descriptor stream was torn, or whose file is no longer
// valid. The device itself goes on executing them.
class UnusableNotQuiet : public WorkQueue {
 public:
  explicit UnusableNotQuiet(const SoftDeviceConfig& c) : q_(c) {}
  const WqInfo& info() const override { return q_.info(); }
  SubmitStatus submit(const dsa_hw_desc& d) override { return q_.submit(d); }
  size_t submit_many(const dsa_hw_desc* d, size_t n, SubmitStatus* s) override { return q_.submit_many(d, n, s); }
  bool healthy() override {
    if (!fired_ && q_.device().in_flight() > 0) fired_ = true;
    return fired_ ? false : q_.healthy();
  }
  bool quiet() const override { return false; }
  void drain() override { q_.drain(); }
  bool reopen() override { return false; }

 private:
  bool fired_ = false;
  SoftWorkQueue q_;
};

}  // namespace

TEST("a queue unusable without being quiet: its works end wedged, never done, and no record is reused") {
  // Before, any healthy() == false settled the outstanding pieces as if the device had stopped:
  // works reported done, records freed, and then the device wrote the caller's reused buffer and
  // records handed out again.
  SoftDeviceConfig c = typical_soft_device();
  c.max_transfer_size = 4096;
  c.wq_size = 8;
  c.latency_us = 50000;
  std::vector<std::unique_ptr<WorkQueue>> qs;
  qs.push_back(std::make_unique<UnusableNotQuiet>(c));
  CheckingSink sink;
  ThreadCopier cpu;
  DsaChannels eng(std::move(qs), &cpu, &sink, typical_channel_options());
  std::vector<uint8_t> src(4096, 0xAB), dst(4096, 0);
  CopyRegion r{dst.data(), src.data(), src.size()};
  const uint64_t reused0 = CompletionArena::reused_while_owned();
  uint32_t n = eng.submit_work(0, 12, 0, &r, 1, 0);
  sink.expect(12, 0, {r}, n);
  CHECK(sink.wait_all(1, 5000));
  CHECK(src == dst);
  CHECK_EQ(sink.sum.wedged, uint64_t(n));  // the caller is told the device may still write
  DsaChannelsStats st = eng.stats();
  CHECK(st.channels[0].quarantined);
  CHECK(QueueReaper::wait_idle(15000));  // the records go only once the release returned
  CHECK_EQ(CompletionArena::reused_while_owned() - reused0, 0u);
  eng.close();
}

TEST("deadline: a slow descriptor is reported done only once a Drain proves the device finished it") {
  SoftDeviceConfig c = typical_soft_device();
  c.faults.hang = 1.0;
  c.faults.hang_ms = 60;
  c.wq_size = 8;
  std::vector<SoftWorkQueue*> raw;
  CheckingSink sink;
  ThreadCopier cpu;
  DsaChannels eng(make_queues({c}, &raw), &cpu, &sink, typical_channel_options());
  // A fork() child (or a dup) holds the queue's file: a release would return without draining,
  // so the engine must not rely on one.
  raw[0]->device().hold_file();
  std::vector<uint8_t> src(4096, 0x3c), dst(4096, 0);
  CopyRegion r{dst.data(), src.data(), 4096};
  auto t0 = std::chrono::steady_clock::now();
  uint32_t n = eng.submit_work(0, 11, 0, &r, 1, monotonic_ns() + 10'000'000);  // 10 ms deadline
  sink.expect(11, 0, {r}, n);
  CHECK(sink.wait_all(1, 5000));
  auto took = std::chrono::steady_clock::now() - t0;
  CHECK(took >= std::chrono::milliseconds(55));  // not at the deadline: when the device was done
  CHECK(src == dst);
  CHECK_EQ(sink.mismatched_works, 0u);
  DsaChannelsStats st = eng.stats();
  CHECK(st.timeouts >= 1 && st.drains >= 1);
  CHECK_EQ(st.wedged, 0u);
  CHECK_EQ(sink.sum.wedged, 0u);
  CHECK(raw[0]->device().counters().drain_descriptors >= 1);
  CHECK(eng.channel_usable(0));  // one slow descriptor is no reason to quarantine
  raw[0]->device().drop_file();
  eng.close();
}

TEST(
    "a device-wide software error from another engine drains nothing of ours; the guilty engine's lost pieces go to "
    "the CPU") {
  auto latch = soft_error_latch("shared-dev-for-two-engines");
  SoftDeviceConfig good = typical_soft_device(), bad = typical_soft_device();
  good.errors = bad.errors = latch;
  good.name = "soft0.0";
  bad.name = "soft0.1";
  good.latency_us = bad.latency_us = 200;  // descriptors stay outstanding while errors land
  bad.faults.lost_record = 0.3;
  CheckingSink sink_good, sink_bad;
  ThreadCopier cpu;
  DsaChannelOptions o = typical_channel_options();
  o.quarantine_after = 1000000;
  DsaChannels a(make_queues({good}, nullptr), &cpu, &sink_good, o);
  DsaChannels b(make_queues({bad}, nullptr), &cpu, &sink_bad, o);
  const size_t kLen = 256 * 1024;
  std::vector<uint8_t> sa(kLen), da(kLen), sb(kLen), db(kLen);
  for (size_t i = 0; i < kLen; ++i) sa[i] = uint8_t(i * 7), sb[i] = uint8_t(i * 13);
  size_t done_a = 0, done_b = 0;
  for (uint32_t w = 0; w < 20; ++w) {
    std::fill(da.begin(), da.end(), 0);
    std::fill(db.begin(), db.end(), 0);
    std::vector<CopyRegion> ra, rb;
    for (size_t off = 0; off < kLen; off += 4096) {
      ra.push_back(CopyRegion{da.data() + off, sa.data() + off, 4096});
      rb.push_back(CopyRegion{db.data() + off, sb.data() + off, 4096});
    }
    uint32_t na = a.submit_work(0, 100 + w, 0, ra.data(), ra.size(), 0);
    uint32_t nb = b.submit_work(0, 200 + w, 0, rb.data(), rb.size(), 0);
    sink_good.expect(100 + w, 0, ra, na);
    sink_bad.expect(200 + w, 0, rb, nb);
    CHECK(sink_good.wait_all(++done_a, 10000));
    CHECK(sink_bad.wait_all(++done_b, 10000));
    CHECK(sa == da);
    CHECK(sb == db);
  }
  DsaChannelsStats ga = a.stats(), gb = b.stats();
  std::printf("  good: foreign %llu drains %llu lost %llu cpu %llu; bad: lost %llu drains %llu, latch %llu\n",
              (unsigned long long)ga.foreign_errors, (unsigned long long)ga.drains, (unsigned long long)ga.lost_records,
              (unsigned long long)ga.cpu_bytes, (unsigned long long)gb.lost_records, (unsigned long long)gb.drains,
              (unsigned long long)latch->count.load());
  CHECK(latch->count.load() > 0);
  CHECK(ga.foreign_errors > 0);   // it saw them...
  CHECK_EQ(ga.lost_records, 0u);  // ...and lost nothing,
  CHECK_EQ(ga.cpu_bytes, 0u);     // so the CPU did none of its work,
  CHECK_EQ(ga.quarantines, 0u);   // and it is not blamed
  CHECK(gb.lost_records > 0);     // the guilty one found its own lost descriptors
  CHECK(gb.cpu_bytes > 0);
  CHECK_EQ(sink_good.mismatched_works + sink_bad.mismatched_works, 0u);
  a.close();
  b.close();
}

TEST("poller sleeps when idle and wakes promptly on submission") {
  SoftDeviceConfig c = typical_soft_device();
  CheckingSink sink;
  DsaChannels eng(make_queues({c}, nullptr), nullptr, &sink, typical_channel_options());
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // let it reach its sleep
  clock_t c0 = clock();
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  double cpu_s = double(clock() - c0) / CLOCKS_PER_SEC;  // whole process, incl. device engines
  CHECK(cpu_s < 0.05);
  std::vector<uint8_t> src(4096, 1), dst(4096);
  CopyRegion r{dst.data(), src.data(), 4096};
  auto t0 = std::chrono::steady_clock::now();
  uint32_t n = eng.submit_work(0, 1, 0, &r, 1, 0);
  sink.expect(1, 0, {r}, n);
  CHECK(sink.wait_all(1, 2000));
  auto us = std::chrono::duration_cast<std::chrono::microseconds>(std::chrono::steady_clock::now() - t0).count();
  std::printf("  idle cpu %.3f s over 200 ms; wake-to-event %lld us\n", cpu_s, (long long)us);
  CHECK(us < 20000);
}

TEST("idle wait on an outstanding descriptor: UMWAIT where the CPU has WAITPKG, else yield, and says which ran") {
  SoftDeviceConfig c = typical_soft_device();
  c.latency_us = 20000;  // one descriptor outstanding for 20 ms: the poller goes through its idle stages
  CheckingSink sink;
  DsaChannels eng(make_queues({c}, nullptr), nullptr, &sink, typical_channel_options());
  std::vector<uint8_t> src(4096, 1), dst(4096);
  CopyRegion r{dst.data(), src.data(), 4096};
  // The stages are counted (64 pauses, 32 yields, then a sleep): on a loaded machine each yield
  // may give the core away for a whole time slice, and 20 ms can pass before the sleep stage.
  // Descriptors follow one another until the poller slept (at most 50: a second).
  DsaChannelsStats s;
  for (uint64_t op = 1; op <= 50; ++op) {
    uint32_t n = eng.submit_work(0, op, 0, &r, 1, 0);
    sink.expect(op, 0, {r}, n);
    CHECK(sink.wait_all(op, 2000));
    s = eng.stats();
    if (s.idle_sleeps > 0) break;
  }
  const bool waitpkg = cpu_features().waitpkg;
  std::printf("  idle wait path: %s (umwait %llu, yield %llu, sleep %llu)\n", waitpkg ? "UMONITOR/UMWAIT" : "yield",
              (unsigned long long)s.idle_umwaits, (unsigned long long)s.idle_yields, (unsigned long long)s.idle_sleeps);
  if (waitpkg) {
    // Yields may still be counted: once nothing is outstanding there is no record to wait on.
    CHECK(s.idle_umwaits > 0);
  } else {
    CHECK_EQ(s.idle_umwaits, 0u);
    CHECK(s.idle_yields > 0);
  }
  CHECK(s.idle_sleeps > 0);  // and it still sleeps between stages: never a hot spin while waiting
  eng.close();
}

TEST("regression: wait-for-last-descriptor returns early; DsaChannels never does (same seeds)") {
  // Whether the last descriptor completes first depends on the device's jitter and on how its two
  // engine threads are scheduled: on a loaded machine a dozen seeds may all complete in order.
  // So seeds run until the naive wait was caught early (at least 12, at most 200); the engine is
  // checked on every one of them.
  int naive_early = 0, engine_bad = 0;
  uint64_t seed = 1;
  for (; seed <= 200 && (seed <= 12 || naive_early == 0); ++seed) {
    SoftDeviceConfig c = typical_soft_device();
    c.engines = 2;
    c.wq_size = 32;
    c.jitter_us = 1000;
    c.seed = seed;
    const size_t kN = 24, kLen = 4096;
    std::vector<uint8_t> src(kN * kLen);
    for (size_t i = 0; i < src.size(); ++i) src[i] = uint8_t(i * 31 + seed);
    std::vector<CopyRegion> regs;
    {
      SoftWorkQueue q(c);
      std::vector<uint8_t> dst(kN * kLen, 0);
      for (size_t i = 0; i < kN; ++i) regs.push_back({dst.data() + i * kLen, src.data() + i * kLen, kLen});
      NaiveLastDescriptorCopy naive(q, kN);
      bool ok = naive.copy(regs.data(), kN, 2'000'000'000ull);
      bool complete = std::memcmp(dst.data(), src.data(), dst.size()) == 0;  // checked at return
      if (ok && !complete) ++naive_early;
      regs.clear();
    }  // naive's destructor drained the queue before dst is freed
    {
      std::vector<uint8_t> dst(kN * kLen, 0);
      for (size_t i = 0; i < kN; ++i) regs.push_back({dst.data() + i * kLen, src.data() + i * kLen, kLen});
      CheckingSink sink;
      DsaChannels eng(make_queues({c}, nullptr), nullptr, &sink, typical_channel_options());
      uint32_t n = eng.submit_work(0, seed, 0, regs.data(), regs.size(), 0);
      sink.expect(seed, 0, regs, n);
      CHECK(sink.wait_all(1, 5000));
      engine_bad += int(sink.mismatched_works);
      eng.close();
      regs.clear();
    }
  }
  std::printf("  naive returned early in %d of %llu seeds; engine early: %d\n", naive_early,
              (unsigned long long)(seed - 1), engine_bad);
  CHECK(naive_early >= 1);
  CHECK_EQ(engine_bad, 0);
}

TEST("channel options: quarantine_after 0 and page_fault_retries above 255 are refused, naming the field") {
  auto refused = [](const DsaChannelOptions& o) {
    CheckingSink sink;
    try {
      DsaChannels eng(make_queues({typical_soft_device()}, nullptr), nullptr, &sink, o);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  CHECK(refused(DsaChannelOptions()).find("DsaChannelOptions.quarantine_after") != std::string::npos);
  DsaChannelOptions o = typical_channel_options();
  o.drain_timeout_ms = 0;
  CHECK(refused(o).find("DsaChannelOptions.drain_timeout_ms") != std::string::npos);
  o.drain_timeout_ms = 1000;
  o.page_fault_retries = 256;
  CHECK(refused(o).find("DsaChannelOptions.page_fault_retries") != std::string::npos);
  o.page_fault_retries = 255;
  CHECK(refused(o).empty());
}

TEST("page_fault_retries 0 means none: the CPU finishes a piece at its first page fault") {
  SoftDeviceConfig c = typical_soft_device();
  c.max_transfer_size = 4096;
  c.wq_size = 8;
  c.faults.page_fault = 1.0;
  DsaChannelOptions o = typical_channel_options();
  o.page_fault_retries = 0;
  o.retry_spins = 0;  // 0 is legitimate too (unused here: a dedicated queue never answers Retry)
  std::vector<SoftWorkQueue*> raw;
  CheckingSink sink;
  DsaChannels eng(make_queues({c}, &raw), nullptr, &sink, o);
  std::vector<uint8_t> src(64 * 1024), dst(64 * 1024, 0);
  for (size_t i = 0; i < src.size(); ++i) src[i] = uint8_t(i * 7 + 3);
  CopyRegion r{dst.data(), src.data(), src.size()};
  uint32_t n = eng.submit_work(0, 5, 0, &r, 1, 0);
  CHECK_EQ(n, 16u);
  sink.expect(5, 0, {r}, n);
  CHECK(sink.wait_all(1, 5000));
  CHECK_EQ(sink.mismatched_works, 0u);
  CHECK(src == dst);
  DsaChannelsStats st = eng.stats();
  CHECK_EQ(st.page_fault_retries, 0u);
  CHECK_EQ(st.fallback_page_fault, uint64_t(n));
  CHECK_EQ(raw[0]->device().counters().page_faults, uint64_t(n));
  CHECK(eng.channel_usable(0));  // page faults are not failures: no quarantine
}

// Guards issue 11: a status the poller does not know is an error, never a success or a page
// fault: the piece is redone by the CPU (fallback_error) and no byte counts as device-copied.
// Today's poller masked bit 7 before testing for success, so a raw 0x81 counted as a success.
TEST("unknown completion statuses (0x26, 0x27, 0x7e, 0x81) send the piece to the CPU as an error") {
  for (uint8_t raw : {uint8_t(0x26), uint8_t(0x27), uint8_t(0x7e), uint8_t(0x81)}) {
    std::vector<std::unique_ptr<WorkQueue>> qs;
    uint64_t submitted = 0;
    auto q = std::make_unique<FixedStatusQueue>(raw, &submitted);
    qs.push_back(std::move(q));
    DsaChannelOptions o = typical_channel_options();
    o.quarantine_after = 1000;  // keep the channel: every piece meets the status
    CheckingSink sink;
    DsaChannels eng(std::move(qs), nullptr, &sink, o);
    std::vector<uint8_t> src(8 * 4096), dst(8 * 4096, 0);
    for (size_t i = 0; i < src.size(); ++i) src[i] = uint8_t(i * 11 + raw);
    CopyRegion r{dst.data(), src.data(), src.size()};
    uint32_t n = eng.submit_work(0, 9, 0, &r, 1, 0);
    CHECK_EQ(n, 8u);
    sink.expect(9, 0, {r}, n);
    CHECK(sink.wait_all(1, 5000));
    eng.close();
    CHECK(src == dst);
    DsaChannelsStats st = eng.stats();
    CHECK_EQ(submitted, uint64_t(n));
    CHECK_EQ(st.device_completed, 0u);
    CHECK_EQ(st.device_bytes, 0u);
    CHECK_EQ(st.page_faults, 0u);
    CHECK_EQ(st.errors, uint64_t(n));
    CHECK_EQ(st.fallback_error, uint64_t(n));
    CHECK_EQ(sink.sum.cpu_bytes, uint64_t(src.size()));
  }
}

// Guards issue 11: page faults from real memory state. Destination pages dropped with
// MADV_DONTNEED are not resident; the software device (real_page_faults) faults at the first one
// of a piece with a page-granular fault_addr, the poller makes the rest of the piece's
// destination present (MADV_POPULATE_WRITE), and the continuation goes on from there on the
// device: every byte arrives, one fault a piece (not one a page: a fresh 2 MiB destination once
// took three faults and then went to the CPU), none finished by the CPU, and every continuation
// starts on a page boundary.
TEST("real page faults: dropped destination pages are faulted once a piece, populated and continued on the device") {
  RealFaultRun run = copy_into_dropped_pages(0);
  const size_t ps = size_t(sysconf(_SC_PAGESIZE));
  CHECK(run.finished);
  CHECK(run.exact);
  CHECK_EQ(run.mismatched, 0u);
  CHECK_EQ(run.pieces, 12u);
  CHECK_EQ(run.dev.real_page_faults, 12u);  // one per piece: its other pages were populated
  CHECK_EQ(run.st.page_faults, 12u);
  CHECK_EQ(run.st.page_fault_retries, 12u);
  CHECK_EQ(run.st.fallback_page_fault, 0u);
  CHECK_EQ(run.st.cpu_bytes, 0u);
  CHECK_EQ(run.st.device_bytes, uint64_t(48 * ps));
  CHECK_EQ(run.log.size(), size_t(12 + 12));
  for (auto& e : run.log) CHECK_EQ(e.first % ps, 0u);  // continuations resume at the fault's page
}

// Guards issue 11: the touch is page-granular. A piece that starts mid-page on a page that is not
// resident gets fault_addr = that page's address, before the piece's first byte. The old touch
// skipped such an address, so the same fault came back until page_fault_retries ran out and the
// CPU finished every piece; touching the page (inside the piece's own bytes) lets the device go on.
TEST("real page faults: a fault_addr before the piece on the same page is touched, the device goes on") {
  RealFaultRun run = copy_into_dropped_pages(100);
  const size_t ps = size_t(sysconf(_SC_PAGESIZE));
  CHECK(run.finished);
  CHECK(run.exact);
  CHECK_EQ(run.mismatched, 0u);
  CHECK_EQ(run.pieces, 12u);
  CHECK_EQ(run.st.fallback_page_fault, 0u);
  CHECK_EQ(run.st.cpu_bytes, 0u);
  CHECK_EQ(run.st.device_bytes, uint64_t(48 * ps));
  // A piece faults at its first page not present, and its other pages are populated then; a
  // page two pieces share may fault for both before either populates it (11 such pages). Every
  // fault is continued on the device.
  CHECK(run.dev.real_page_faults >= 12u && run.dev.real_page_faults <= 24u);
  CHECK_EQ(run.st.page_fault_retries, run.dev.real_page_faults);
}

DMACOPY_TEST_MAIN

TEST("the record audit catches a record released while its descriptor could still write it") {
  CompletionArena arena(4);
  uint8_t buf[64];
  const uint64_t dst = reinterpret_cast<uintptr_t>(buf);
  const uint64_t before = CompletionArena::reused_while_owned();
  uint32_t slot = arena.acquire();
  arena.set_owner(slot, dst);
  CHECK(CompletionArena::audit_record_write(arena.record(slot), dst));  // owned by that descriptor
  arena.release(slot);
  CHECK(!CompletionArena::audit_record_write(arena.record(slot), dst));  // released: a reuse
  uint32_t again = arena.acquire();
  arena.set_owner(again, dst + 4096);
  CHECK(!CompletionArena::audit_record_write(arena.record(again), dst));  // another descriptor's now
  CHECK_EQ(CompletionArena::reused_while_owned(), before + 2);
  uint8_t other[32];
  CHECK(CompletionArena::audit_record_write(other, dst));  // not an arena's record: not audited
}

TEST("regression: a page-fault continuation queued while a quarantined channel settles still finishes") {
  // Found by the fault campaign (--round-seed 3254232879): errors quarantine the channel while a
  // fence settles it; a record settled then was a page fault, whose continuation went to the
  // channel's retry queue just before the channel was retired, and its work never finished.
  SoftDeviceConfig c = typical_soft_device();
  c.wq_size = 8;
  c.max_transfer_size = 4096;
  c.faults.page_fault = 0.5;
  c.faults.error = 0.3;
  c.jitter_us = 50;
  CheckingSink sink;
  ThreadCopier cpu;
  DsaChannelOptions o = typical_channel_options();
  o.quarantine_after = 1;
  size_t done = 0;
  for (uint64_t seed = 1; seed <= 40; ++seed) {
    c.seed = seed;
    DsaChannels eng(make_queues({c, c}, nullptr), &cpu, &sink, o);
    std::vector<uint8_t> src(64 * 1024), dst(64 * 1024, 0);
    for (size_t i = 0; i < src.size(); ++i) src[i] = uint8_t(i * 3 + seed);
    CopyRegion r{dst.data(), src.data(), src.size()};
    uint32_t n = eng.submit_work(0, seed, 0, &r, 1, 0);
    sink.expect(seed, 0, {r}, n);
    CHECK(sink.wait_all(++done, 5000));
    CHECK(src == dst);
    eng.close();
  }
  CHECK_EQ(sink.mismatched_works, 0u);
}

namespace {

// A software queue that keeps a copy of every descriptor it accepted, whole (poller thread
// only; read after close()).
class DescriptorLog : public WorkQueue {
 public:
  DescriptorLog(const SoftDeviceConfig& c, std::vector<dsa_hw_desc>* log) : q_(c), log_(log) {}
  const WqInfo& info() const override { return q_.info(); }
  SubmitStatus submit(const dsa_hw_desc& d) override {
    SubmitStatus s = q_.submit(d);
    if (s == SubmitStatus::Accepted) log_->push_back(d);
    return s;
  }
  size_t submit_many(const dsa_hw_desc* d, size_t n, SubmitStatus* stopped) override {
    size_t k = q_.submit_many(d, n, stopped);
    log_->insert(log_->end(), d, d + k);
    return k;
  }
  bool healthy() override { return q_.healthy(); }
  void drain() override { q_.drain(); }
  bool reopen() override { return q_.reopen(); }

 private:
  SoftWorkQueue q_;
  std::vector<dsa_hw_desc>* log_;
};

// The pieces of work w of a plan, as a sink expects them.
std::vector<CopyRegion> work_pieces(const WorkPieces& plan, size_t w) {
  return {plan.pieces.begin() + plan.work_begin[w], plan.pieces.begin() + plan.work_begin[w + 1]};
}

bool same_except_record(dsa_hw_desc a, dsa_hw_desc b) {
  a.completion_addr = 0;
  b.completion_addr = 0;
  return std::memcmp(&a, &b, sizeof a) == 0;
}

}  // namespace

// Issue 13: on a device, a prepared batch's descriptors are built once; a re-run only takes
// fresh completion records.
TEST("prepared batch: descriptors built once, submitted as built with a fresh record, bytes exact every run") {
  SoftDeviceConfig c = typical_soft_device();
  c.max_transfer_size = 4096;
  c.wq_size = 8;
  std::vector<dsa_hw_desc> log[2];
  std::vector<std::unique_ptr<WorkQueue>> qs;
  for (int i = 0; i < 2; ++i) qs.push_back(std::make_unique<DescriptorLog>(c, &log[i]));
  CheckingSink sink;
  DsaChannels eng(std::move(qs), nullptr, &sink, typical_channel_options());
  std::vector<uint8_t> src(200000), dst(200000, 0);
  auto plan = std::make_shared<WorkPieces>();
  plan->pieces = {{dst.data(), src.data(), 10000},
                  {dst.data() + 10000, src.data() + 10000, 90000},
                  {dst.data() + 100000, src.data() + 100000, 4096},
                  {dst.data() + 104096, src.data() + 104096, 95904}};
  plan->work_begin = {0, 2, 4};
  auto pd = eng.prepare(plan, 2);
  CHECK(pd != nullptr);
  // 10000 B and 90000 B at 4096 B a descriptor: 3 + 22; 4096 B and 95904 B: 1 + 24.
  CHECK_EQ(pd->descriptors, 50u);
  CHECK_EQ(pd->works[0].descs.size(), 25u);
  CHECK_EQ(pd->works[1].channel, 1u);
  // Each is what the poller would build for that cut, with no record yet.
  size_t d = 0;
  for (size_t off = 0; off < 90000; off += 4096, ++d) {
    dsa_hw_desc want;
    const uint32_t len = uint32_t(std::min<size_t>(4096, 90000 - off));
    build_memmove(&want, dst.data() + 10000 + off, src.data() + 10000 + off, len, nullptr, false);
    CHECK(std::memcmp(&want, &pd->works[0].descs[3 + d], sizeof want) == 0);
  }
  uint64_t op = 100;
  for (int run = 0; run < 3; ++run, ++op) {
    for (size_t i = 0; i < src.size(); ++i) src[i] = uint8_t(i * 7 + run * 31 + 1);  // new bytes, same views
    for (uint32_t w = 0; w < 2; ++w) {
      uint32_t n = eng.submit_prepared(w, op, w, pd, 0);
      CHECK_EQ(n, 25u);
      sink.expect(op, w, work_pieces(*plan, w), n);
    }
    CHECK(sink.wait_all(size_t(2 * (run + 1)), 5000));
    CHECK(src == dst);
  }
  // The batch lets go of its plan and descriptors while a run is in flight: the run keeps them.
  std::weak_ptr<const PreparedDescriptors> gone = pd;
  const std::vector<dsa_hw_desc> built0 = pd->works[0].descs;
  for (size_t i = 0; i < src.size(); ++i) src[i] = uint8_t(i * 13);
  uint32_t n = eng.submit_prepared(0, op, 0, pd, 0);
  std::vector<CopyRegion> last = work_pieces(*plan, 0);
  pd.reset();
  plan.reset();
  sink.expect(op, 0, last, n);
  CHECK(sink.wait_all(7, 5000));
  CHECK_EQ(sink.mismatched_works, 0u);
  eng.close();
  CHECK(gone.expired());  // and frees them once it is over
  DsaChannelsStats st = eng.stats();
  CHECK_EQ(st.prebuilt, 175u);  // 3 runs x 50, and 25
  CHECK_EQ(st.submitted, 175u);
  CHECK_EQ(log[0].size(), 100u);
  // What the queue received is the descriptor as prepared, pointed at a record of the channel.
  for (const dsa_hw_desc& got : log[0]) {
    size_t i = 0;
    while (i < built0.size() && built0[i].dst_addr != got.dst_addr) ++i;
    CHECK(i < built0.size());
    if (i < built0.size()) CHECK(same_except_record(got, built0[i]));
    CHECK(got.completion_addr != 0);
  }
}

TEST("prepared batch: page-fault continuations are built afresh, a work whose channel is quarantined is cut anew") {
  // Page faults: every first submission is the prepared descriptor, every continuation a new one.
  {
    SoftDeviceConfig c = typical_soft_device();
    c.max_transfer_size = 4096;
    c.wq_size = 8;
    c.faults.page_fault = 0.5;
    DsaChannelOptions o = typical_channel_options();
    o.page_fault_retries = 8;
    CheckingSink sink;
    DsaChannels eng(make_queues({c}, nullptr), nullptr, &sink, o);
    std::vector<uint8_t> src(256 * 1024), dst(256 * 1024, 0);
    auto plan = std::make_shared<WorkPieces>();
    plan->pieces = {{dst.data(), src.data(), src.size()}};
    plan->work_begin = {0, 1};
    auto pd = eng.prepare(plan, 1);
    for (uint64_t run = 1; run <= 4; ++run) {
      for (size_t i = 0; i < src.size(); ++i) src[i] = uint8_t(i * 5 + run);
      uint32_t n = eng.submit_prepared(0, run, 0, pd, 0);
      CHECK_EQ(n, 64u);
      sink.expect(run, 0, plan->pieces, n);
      CHECK(sink.wait_all(size_t(run), 5000));
      CHECK(src == dst);
    }
    eng.close();
    DsaChannelsStats st = eng.stats();
    CHECK_EQ(sink.mismatched_works, 0u);
    CHECK(st.page_fault_retries > 0);
    CHECK_EQ(st.prebuilt, 4u * 64u);
    CHECK_EQ(st.submitted, st.prebuilt + st.page_fault_retries);
  }
  // Channel 0 quarantined after the batch was prepared: work 0 goes to channel 1, cut and built
  // for it there; work 1 still runs from its descriptors.
  {
    std::vector<SoftDeviceConfig> cfgs(2, typical_soft_device());
    for (auto& c : cfgs) {
      c.wq_size = 4;
      c.max_transfer_size = 1024;
    }
    cfgs[0].faults.error = 1.0;
    CheckingSink sink;
    DsaChannels eng(make_queues(cfgs, nullptr), nullptr, &sink, typical_channel_options());
    std::vector<uint8_t> src(64 * 1024), dst(64 * 1024, 0);
    auto plan = std::make_shared<WorkPieces>();
    plan->pieces = {{dst.data(), src.data(), 32 * 1024}, {dst.data() + 32 * 1024, src.data() + 32 * 1024, 32 * 1024}};
    plan->work_begin = {0, 1, 2};
    auto pd = eng.prepare(plan, 2);
    CHECK_EQ(pd->works[0].channel, 0u);
    size_t done = 0;
    for (uint64_t op = 1; op <= 8 && eng.channel_usable(0); ++op) {  // errors until quarantined
      CopyRegion r = plan->pieces[0];
      uint32_t n = eng.submit_work(0, op, 0, &r, 1, 0);
      sink.expect(op, 0, {r}, n);
      CHECK(sink.wait_all(++done, 5000));
    }
    CHECK(!eng.channel_usable(0));
    for (size_t i = 0; i < src.size(); ++i) src[i] = uint8_t(i * 3 + 9);
    for (uint32_t w = 0; w < 2; ++w) {
      uint32_t n = eng.submit_prepared(w, 50, w, pd, 0);
      CHECK_EQ(n, 32u);
      sink.expect(50, w, work_pieces(*plan, w), n);
    }
    CHECK(sink.wait_all(done + 2, 5000));
    CHECK(src == dst);
    CHECK_EQ(sink.mismatched_works, 0u);
    eng.close();
    DsaChannelsStats st = eng.stats();
    CHECK_EQ(st.channels[0].prebuilt, 0u);
    CHECK_EQ(st.channels[1].prebuilt, 32u);  // work 1 only: work 0 was built for channel 0
    CHECK(st.channels[1].submitted >= 64u);
  }
}
