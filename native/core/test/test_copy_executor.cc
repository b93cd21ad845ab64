// CopyExecutor: inline / sync / async on the CPU, device works with a CPU share on the software
// device, the synchronous wait summing events through the EventRouter, the deadline formula,
// and a submit that throws mid-batch (everything already queued finishes before the exception
// leaves run(), the sync registration is undone, the executor keeps working).
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <thread>
#include <vector>

#include "check.h"
#include "copy_executor.h"
#include "soft_device.h"
#include "test_configs.h"

using namespace dmacopy;

namespace {

// The downstream end of the router: what JavaScript would have received, summed per op.
class RecordingSink : public EventRecordSink {
 public:
  void post_records(const EventRecord* r, size_t n) override {
    std::lock_guard<std::mutex> lk(mu_);
    for (size_t i = 0; i < n; ++i) {
      EventRecord& t = per_op_[static_cast<uint64_t>(r[i].f[kEvOp])];
      for (size_t f = kEvCompleted; f < kEventFields; ++f) t.f[f] += r[i].f[f];
      ++records_;
    }
    cv_.notify_all();
  }
  // Waits (bounded) until op's events completed `expected`; returns its sums.
  EventRecord wait(uint64_t op, double expected, int timeout_ms = 10000) {
    std::unique_lock<std::mutex> lk(mu_);
    cv_.wait_for(lk, std::chrono::milliseconds(timeout_ms), [&] { return per_op_[op].f[kEvCompleted] >= expected; });
    return per_op_[op];
  }
  EventRecord of(uint64_t op) {
    std::lock_guard<std::mutex> lk(mu_);
    return per_op_[op];
  }

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  std::map<uint64_t, EventRecord> per_op_;
  size_t records_ = 0;
};

// A batch: `works` works of `pieces_per_work` pieces of `piece` bytes, src filled from seed.
struct Batch {
  std::vector<uint8_t> src, dst;
  std::shared_ptr<WorkPieces> plan = std::make_shared<WorkPieces>();
  Batch(size_t works, size_t pieces_per_work, size_t piece, uint8_t seed) {
    const size_t total = works * pieces_per_work * piece;
    src.resize(total);
    dst.assign(total, 0xEE);
    for (size_t i = 0; i < total; ++i) src[i] = static_cast<uint8_t>(i * 31 + seed);
    for (size_t w = 0; w < works; ++w) {
      plan->work_begin.push_back(plan->pieces.size());
      for (size_t p = 0; p < pieces_per_work; ++p) {
        size_t off = (w * pieces_per_work + p) * piece;
        plan->pieces.push_back({dst.data() + off, src.data() + off, piece});
      }
    }
    plan->work_begin.push_back(plan->pieces.size());
  }
  size_t works() const { return plan->work_begin.size() - 1; }
  uint64_t bytes() const { return src.size(); }
  bool work_copied(size_t w) const {
    for (size_t i = plan->work_begin[w]; i < plan->work_begin[w + 1]; ++i) {
      const CopyRegion& r = plan->pieces[i];
      if (std::memcmp(r.dst, r.src, r.len) != 0) return false;
    }
    return true;
  }
  bool all_copied() const { return src == dst; }
};

CopyRequest request(const Batch& b, uint64_t op, CopyMode mode, size_t cpu_works_from = SIZE_MAX) {
  CopyRequest r;
  r.op_id = op;
  r.plan = b.plan;
  r.mode = mode;
  r.cpu_works_from = cpu_works_from;
  return r;
}

uint64_t sum(const std::vector<uint32_t>& v) {
  uint64_t s = 0;
  for (uint32_t x : v) s += x;
  return s;
}

std::vector<std::unique_ptr<WorkQueue>> soft_queues(size_t n, uint32_t latency_us) {
  std::vector<std::unique_ptr<WorkQueue>> qs;
  for (size_t i = 0; i < n; ++i) {
    SoftDeviceConfig c = typical_soft_device();
    c.name = "soft" + std::to_string(i) + ".0";
    c.engines = 2;
    c.wq_size = 32;
    c.max_transfer_size = 64 * 1024;
    c.seed = 11 + i;
    c.latency_us = latency_us;
    c.jitter_us = latency_us;
    qs.push_back(std::make_unique<SoftWorkQueue>(c));
  }
  return qs;
}

// Throws std::bad_alloc from the pool's nth submit from now on (1-based), once.
void fail_nth_submit(CpuCopyPool& pool, int nth) {
  auto calls = std::make_shared<std::atomic<int>>(0);
  pool.set_submit_fault_for_test([calls, nth] {
    if (++*calls == nth) throw std::bad_alloc();
  });
}

}  // namespace

TEST("work deadline: timeout plus 1 ms per MiB") {
  CHECK_EQ(CopyExecutor::work_deadline(5, 1000, 0), 5u + 1000000000u);
  CHECK_EQ(CopyExecutor::work_deadline(0, 1000, 2u << 20), 1002000000u);
  CHECK_EQ(CopyExecutor::work_deadline(0, 5, 512u << 10), 5500000u);
  // Deadlines past the clock's range saturate instead of wrapping (or converting out of range).
  CHECK_EQ(CopyExecutor::work_deadline(5, 9007199254740991.0, 0), UINT64_MAX);
  CHECK_EQ(CopyExecutor::work_deadline(5, 1e13, 0), UINT64_MAX);
  CHECK_EQ(CopyExecutor::work_deadline(UINT64_MAX - 10, 1000, 0), UINT64_MAX);
  CHECK_EQ(CopyExecutor::work_deadline(0, 1e12, 0), 1000000000000000000u);
}

TEST("inline, sync and async on the CPU copy every byte; counts are pieces per work") {
  CpuCopyPool pool(3);
  CopyExecutor ex(pool, nullptr, 1000);
  RecordingSink sink;
  EventRouter router(&sink);
  for (CopyMode mode : {CopyMode::Inline, CopyMode::Sync, CopyMode::Async}) {
    Batch b(5, 7, 3000 + static_cast<size_t>(mode), static_cast<uint8_t>(mode));
    std::vector<uint32_t> counts(b.works());
    const uint64_t op = 10 + static_cast<uint64_t>(mode);
    ex.run(request(b, op, mode), counts.data(), mode == CopyMode::Inline ? nullptr : &router, nullptr);
    for (uint32_t c : counts) CHECK_EQ(c, 7u);
    if (mode == CopyMode::Async) {
      EventRecord t = sink.wait(op, static_cast<double>(sum(counts)));
      CHECK_EQ(t.f[kEvCompleted], 35.0);
      CHECK_EQ(t.f[kEvCpuBytes], static_cast<double>(b.bytes()));
    } else {
      // Inline and sync return with every byte in place and post nothing.
      CHECK(b.all_copied());
      CHECK_EQ(sink.of(op).f[kEvCompleted], 0.0);
    }
    CHECK(b.all_copied());
  }
}

TEST("empty works are skipped; sync with one busy work runs on the caller alone") {
  CpuCopyPool pool(2);
  CopyExecutor ex(pool, nullptr, 1000);
  Batch b(1, 3, 5000, 3);
  b.plan->work_begin = {0, 0, 3, 3};  // works 0 and 2 empty
  std::vector<uint32_t> counts(3);
  ex.run(request(b, 1, CopyMode::Sync), counts.data(), nullptr, nullptr);
  CHECK_EQ(counts[0], 0u);
  CHECK_EQ(counts[1], 3u);
  CHECK_EQ(counts[2], 0u);
  CHECK(b.all_copied());
  CHECK_EQ(pool.stats().jobs, 1u);
}

TEST("device works with a CPU share on the software device: async events and sync totals") {
  CpuCopyPool pool(2);
  RecordingSink sink;
  EventRouter router(&sink);
  DsaChannels dev(soft_queues(2, 50), &pool, &router, typical_channel_options());
  CopyExecutor ex(pool, &dev, 1000);
  for (CopyMode mode : {CopyMode::Async, CopyMode::Sync}) {
    // 6 works: 0..3 on the device (pieces of 100 KB over a 64 KB transfer limit: 2 each), 4..5 on the CPU.
    Batch b(6, 4, 100 * 1024, static_cast<uint8_t>(40 + static_cast<int>(mode)));
    std::vector<uint32_t> counts(b.works());
    const uint64_t op = 100 + static_cast<uint64_t>(mode);
    EventRecord totals{};
    ex.run(request(b, op, mode, 4), counts.data(), &router, &totals);
    for (size_t w = 0; w < 4; ++w) CHECK_EQ(counts[w], 8u);  // descriptors
    for (size_t w = 4; w < 6; ++w) CHECK_EQ(counts[w], 4u);  // pieces
    const double expected = static_cast<double>(sum(counts));
    EventRecord t = mode == CopyMode::Async ? sink.wait(op, expected) : totals;
    CHECK_EQ(t.f[kEvCompleted], expected);
    CHECK_EQ(t.f[kEvDeviceBytes] + t.f[kEvCpuBytes], static_cast<double>(b.bytes()));
    CHECK(t.f[kEvCpuBytes] >= 2.0 * 4 * 100 * 1024);  // at least the CPU share
    CHECK(b.all_copied());
    // A synchronous op's events were summed natively, never forwarded.
    if (mode == CopyMode::Sync) CHECK_EQ(sink.of(op).f[kEvCompleted], 0.0);
  }
  dev.close();
}

TEST("event router: a sync registration sums its op's events, forwards the rest, undoes on scope exit") {
  RecordingSink sink;
  EventRouter router(&sink);
  EventRecord got{};
  {
    SyncRegistration reg(router, 7);
    std::thread poster([&] {
      for (int i = 0; i < 100; ++i) {
        router.job_progress(7, static_cast<uint32_t>(i % 3), 2, 1000);
        router.job_progress(8, 0, 1, 10);
        CompletionEvent e;
        e.op_id = 7;
        e.completed = 1;
        e.device_bytes = 64;
        e.fallback_timeout = 1;
        router.post(&e, 1);
      }
    });
    got = reg.waiter().wait_for(300);
    poster.join();
  }
  CHECK_EQ(got.f[kEvCompleted], 300.0);
  CHECK_EQ(got.f[kEvCpuBytes], 100000.0);
  CHECK_EQ(got.f[kEvDeviceBytes], 6400.0);
  CHECK_EQ(got.f[kEvFallbackTimeout], 100.0);
  CHECK_EQ(sink.of(7).f[kEvCompleted], 0.0);
  CHECK_EQ(sink.of(8).f[kEvCompleted], 100.0);
  router.job_progress(7, 0, 5, 5);  // registration gone: forwarded now
  CHECK_EQ(sink.of(7).f[kEvCompleted], 5.0);
}

TEST("CPU submit throws mid-batch (sync and async): queued jobs finish first, the executor recovers") {
  // One thread: works are pinned to it, one job each. Three threads: the works are shared out in
  // slices (cpu_slices.h) by one job per thread. Either way a throwing submit returns only after
  // every job already queued finished, and the executor works again afterwards.
  for (unsigned threads : {1u, 3u}) {
    CpuCopyPool pool(threads);
    CopyExecutor ex(pool, nullptr, 1000);
    RecordingSink sink;
    EventRouter router(&sink);
    for (CopyMode mode : {CopyMode::Sync, CopyMode::Async}) {
      // Large works, so the queued ones are still copying when the failing submit throws.
      auto b = std::make_unique<Batch>(6, 2, 4u << 20, 9);
      std::vector<uint32_t> counts(b->works());
      // Pinned: sync work 0 is the caller's own, works 1 and 2 are submits 1 and 2; async works
      // 0..1. Shared: submit 1 queued a job that takes slices; submit 2 throws.
      fail_nth_submit(pool, threads == 1 ? 3 : 2);
      bool threw = false;
      try {
        ex.run(request(*b, 200 + static_cast<uint64_t>(mode), mode), counts.data(), &router, nullptr);
      } catch (const std::bad_alloc&) {
        threw = true;
      }
      CHECK(threw);
      // Nothing queued is still waiting (a job counts itself out just after its done() call).
      for (int i = 0; i < 1000 && pool.in_flight() != 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
      CHECK_EQ(pool.in_flight(), 0u);
      if (threads == 1) {
        const size_t first_queued = mode == CopyMode::Sync ? 1 : 0;
        CHECK(b->work_copied(first_queued));
        CHECK(b->work_copied(first_queued + 1));
        CHECK(!b->work_copied(5));  // never queued
      } else {
        CHECK(b->all_copied());  // the one queued taker took every slice, and finished first
      }
      b.reset();  // the caller's buffers go: ASan would see any late write
      pool.set_submit_fault_for_test(nullptr);
      Batch again(4, 3, 70000, 1);
      std::vector<uint32_t> c2(again.works());
      ex.run(request(again, 300 + static_cast<uint64_t>(mode), CopyMode::Sync), c2.data(), &router, nullptr);
      CHECK(again.all_copied());
    }
  }
}

// A copyBatchSync caller waits for the bytes, not for every job it queued: here the other copy
// thread is held busy, so its taker job cannot start until released; the caller takes every
// slice itself and returns. (Before, it waited for that job: an event loop blocked behind a
// SCHED_IDLE thread on a loaded machine.)
TEST("sync shared batch: the caller returns once every slice is copied, not when every job ran") {
  CpuCopyPool pool(2);
  CopyExecutor ex(pool, nullptr, 1000);
  std::atomic<bool> release{false}, holding{false};
  CpuCopyJob blocker;
  blocker.table = std::make_shared<std::vector<CopyRegion>>();
  blocker.done = [&] {
    holding = true;
    while (!release.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  };
  pool.submit(1, std::move(blocker));  // thread 1 busy until released
  while (!holding.load()) std::this_thread::yield();
  Batch b(2, 4, 1u << 20, 3);
  std::vector<uint32_t> counts(b.works());
  std::atomic<bool> returned{false};
  std::thread caller([&] {
    ex.run(request(b, 77, CopyMode::Sync), counts.data(), nullptr, nullptr);
    returned = true;
  });
  for (int i = 0; i < 5000 && !returned.load(); ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  CHECK(returned.load());         // did not wait for the blocked thread's job
  CHECK(pool.in_flight() >= 1u);  // the queued taker has not even started
  release = true;
  caller.join();
  CHECK(b.all_copied());
  for (int i = 0; i < 1000 && pool.in_flight() != 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  CHECK_EQ(pool.in_flight(), 0u);  // it started, found nothing to take, and ended
}

TEST("device batch: the CPU share's submit throws; device works drain, sync registration undone") {
  CpuCopyPool pool(2);
  RecordingSink sink;
  EventRouter router(&sink);
  DsaChannels dev(soft_queues(2, 3000), &pool, &router, typical_channel_options());  // slow device: works are in flight
  CopyExecutor ex(pool, &dev, 1000);
  for (CopyMode mode : {CopyMode::Sync, CopyMode::Async}) {
    const uint64_t op = 400 + static_cast<uint64_t>(mode);
    auto b = std::make_unique<Batch>(6, 3, 96 * 1024, 5);
    std::vector<uint32_t> counts(b->works());
    fail_nth_submit(pool, 2);  // works 0..2 device, 3 CPU queued, 4 throws, 5 never
    bool threw = false;
    try {
      ex.run(request(*b, op, mode, 3), counts.data(), &router, nullptr);
    } catch (const std::bad_alloc&) {
      threw = true;
    }
    CHECK(threw);
    for (size_t w = 0; w < 4; ++w) CHECK(b->work_copied(w));
    CHECK(!b->work_copied(5));
    b.reset();
    // Registration undone: a later event of the op goes downstream instead of to a dead waiter.
    const double before = sink.of(op).f[kEvCompleted];
    router.job_progress(op, 0, 1, 1);
    CHECK_EQ(sink.of(op).f[kEvCompleted], before + 1);
    // Async: every event of what was queued was posted before run() threw.
    if (mode == CopyMode::Async) CHECK_EQ(before, 3.0 * 3 * 2 + 3.0);
    pool.set_submit_fault_for_test(nullptr);
    Batch again(4, 2, 80 * 1024, 2);
    std::vector<uint32_t> c2(again.works());
    EventRecord totals{};
    ex.run(request(again, op + 10, CopyMode::Sync, 2), c2.data(), &router, &totals);
    CHECK(again.all_copied());
    CHECK_EQ(totals.f[kEvCompleted], static_cast<double>(sum(c2)));
  }
  dev.close();
}

DMACOPY_TEST_MAIN
