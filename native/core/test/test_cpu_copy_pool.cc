// The CPU copy pool: every byte copied, progress counted exactly once, shutdown loses nothing.
#include <sched.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstring>
#include <random>
#include <thread>
#include <vector>

#include "check.h"
#include "cpu_copy_pool.h"

using namespace dmacopy;

namespace {
struct CountingSink : CpuProgressSink {
  std::atomic<uint64_t> regions{0}, bytes{0};
  void job_progress(uint64_t, uint32_t, uint32_t r, uint64_t b) override {
    regions += r;
    bytes += b;
  }
};
}  // namespace

TEST("jobs on every channel copy byte-exact, cached and non-temporal") {
  for (StoreKind kind : {StoreKind::Cached, StoreKind::NonTemporal}) {
    CpuCopyPool eng(3);
    std::mt19937 rng(7);
    const size_t n = 300;
    std::vector<std::vector<uint8_t>> src(n), dst(n);
    auto table = std::make_shared<std::vector<CopyRegion>>();
    uint64_t total = 0;
    for (size_t i = 0; i < n; ++i) {
      size_t len = rng() % 20000;
      src[i].resize(len + 7);
      dst[i].assign(len + 7, 0xEE);
      for (auto& c : src[i]) c = static_cast<uint8_t>(rng());
      size_t off = rng() % 7;
      table->push_back({dst[i].data() + off, src[i].data() + off, len});
      total += len;
    }
    CountingSink sink;
    std::atomic<int> done{0};
    for (unsigned w = 0; w < 5; ++w) {
      CpuCopyJob job;
      job.table = table;
      job.begin = n * w / 5;
      job.end = n * (w + 1) / 5;
      job.store = kind;
      job.sink = &sink;
      job.done = [&] { done++; };
      eng.submit(w, std::move(job));
    }
    while (done.load() < 5) std::this_thread::yield();
    CHECK_EQ(sink.regions.load(), n);
    CHECK_EQ(sink.bytes.load(), total);
    for (size_t i = 0; i < n; ++i) {
      const CopyRegion& r = (*table)[i];
      size_t off = r.dst - dst[i].data();
      CHECK(std::memcmp(r.dst, r.src, r.len) == 0);
      for (size_t j = 0; j < off; ++j) CHECK(dst[i][j] == 0xEE);
      for (size_t j = off + r.len; j < dst[i].size(); ++j) CHECK(dst[i][j] == 0xEE);
    }
  }
}

TEST("adjacent regions are copied as one run with or without a progress sink, past 16 MiB too") {
  // Before, without a sink (inline jobs, a sync caller's share, the DSA poller's fallback) the
  // merge stopped for good after the first 16 MiB of a job: every later folio was its own copy,
  // with partial lines at both ends.
  const size_t f = 4100, n = 8192;  // 32 MiB of folios that continue each other
  std::vector<uint8_t> src(f * n), dst(f * n);
  for (size_t i = 0; i < src.size(); ++i) src[i] = static_cast<uint8_t>(i * 31 + 7);
  auto table = std::make_shared<std::vector<CopyRegion>>();
  for (size_t i = 0; i < n; ++i) table->push_back({dst.data() + i * f, src.data() + i * f, f});
  for (bool with_sink : {false, true}) {
    std::fill(dst.begin(), dst.end(), 0);
    CpuCopyPool eng(1);
    CountingSink sink;
    CpuCopyJob job;
    job.table = table;
    job.begin = 0;
    job.end = n;
    job.store = StoreKind::NonTemporal;
    if (with_sink) job.sink = &sink;
    eng.run_here(job);
    CHECK(src == dst);
    // A few runs with a sink (a report per 16 MiB cuts them), one run without (~4100 before).
    std::printf("  copies with_sink=%d: %llu\n", int(with_sink), (unsigned long long)eng.stats().copies);
    CHECK(eng.stats().copies <= (with_sink ? 8u : 1u));
  }
}

TEST("large jobs report progress in several deltas that add up") {
  CpuCopyPool eng(1);
  std::vector<uint8_t> s(64 << 20, 3), d(64 << 20, 0);
  auto table = std::make_shared<std::vector<CopyRegion>>();
  for (size_t off = 0; off < s.size(); off += 1 << 20) table->push_back({d.data() + off, s.data() + off, 1 << 20});
  struct Sink : CpuProgressSink {
    std::atomic<int> calls{0};
    std::atomic<uint64_t> bytes{0};
    void job_progress(uint64_t, uint32_t, uint32_t, uint64_t b) override {
      calls++;
      bytes += b;
    }
  } sink;
  std::atomic<bool> done{false};
  CpuCopyJob job;
  job.table = table;
  job.end = table->size();
  job.sink = &sink;
  job.done = [&] { done = true; };
  eng.submit(0, std::move(job));
  while (!done) std::this_thread::yield();
  CHECK(sink.calls.load() >= 4);
  CHECK_EQ(sink.bytes.load(), uint64_t(64) << 20);
  CHECK(d[(64 << 20) - 1] == 3);
}

// A coalesced work (a CPU engine's region form) is one long run standing for many folio regions:
// it is still copied in report-sized slices (progress while it runs), every byte is reported
// once, and its regions all come with the last report, after the last byte.
TEST("a coalesced run is copied in slices with progress; its regions come with the last bytes") {
  CpuCopyPool eng(1);
  const size_t len = (40u << 20) + 12345;
  std::vector<uint8_t> s(len), d(len, 0);
  for (size_t i = 0; i < len; ++i) s[i] = static_cast<uint8_t>(i * 131 + 7);
  auto table = std::make_shared<std::vector<CopyRegion>>();
  table->push_back({d.data(), s.data(), len});
  struct Sink : CpuProgressSink {
    std::vector<std::pair<uint32_t, uint64_t>> calls;  // one thread reports: no lock needed
    const std::vector<uint8_t>* dst = nullptr;
    const std::vector<uint8_t>* src = nullptr;
    uint64_t seen = 0;
    bool prefix_ok = true;
    void job_progress(uint64_t, uint32_t, uint32_t r, uint64_t b) override {
      calls.emplace_back(r, b);
      seen += b;
      // Every byte reported so far is already in place.
      prefix_ok = prefix_ok && std::memcmp(dst->data(), src->data(), seen) == 0;
    }
  } sink;
  sink.dst = &d;
  sink.src = &s;
  std::atomic<bool> done{false};
  CpuCopyJob job;
  job.table = table;
  job.end = 1;
  job.regions = 10251;  // what the run stands for
  job.store = StoreKind::NonTemporal;
  job.sink = &sink;
  job.done = [&] { done = true; };
  eng.submit(0, std::move(job));
  while (!done) std::this_thread::yield();
  CHECK(d == s);
  CHECK(sink.prefix_ok);
  CHECK_EQ(sink.calls.size(), size_t(3));  // 16 MiB, 16 MiB, the rest
  uint64_t bytes = 0;
  for (size_t i = 0; i < sink.calls.size(); ++i) {
    bytes += sink.calls[i].second;
    CHECK_EQ(sink.calls[i].first, i + 1 == sink.calls.size() ? 10251u : 0u);
  }
  CHECK_EQ(bytes, uint64_t(len));
  CHECK_EQ(eng.stats().regions, 10251u);
}

TEST("shutdown finishes queued jobs and later submits still copy") {
  auto eng = std::make_unique<CpuCopyPool>(2);
  std::vector<uint8_t> s(1 << 20, 9), d(1 << 20, 0);
  std::atomic<int> done{0};
  for (int i = 0; i < 64; ++i) {
    auto table = std::make_shared<std::vector<CopyRegion>>();
    table->push_back({d.data() + i * 16384, s.data() + i * 16384, 16384});
    CpuCopyJob job;
    job.table = table;
    job.end = 1;
    job.done = [&] { done++; };
    eng->submit(i, std::move(job));
  }
  eng->shutdown();
  CHECK_EQ(done.load(), 64);
  std::vector<uint8_t> d2(100, 0);
  eng->copy_async({{d2.data(), s.data(), 100}}, [&] { done++; });
  CHECK_EQ(done.load(), 65);
  CHECK(d2[99] == 9);
  CHECK_EQ(eng->in_flight(), 0u);
}

// What `read` returns on each copy thread (channels 0..n-1), called there by a job's done callback.
template <typename Read>
static std::vector<int> on_copy_threads(CpuCopyPool& eng, unsigned channels, Read read) {
  std::vector<int> seen(channels, -100);
  std::atomic<unsigned> done{0};
  std::vector<uint8_t> s(64, 1), d(64, 0);
  for (unsigned c = 0; c < channels; ++c) {
    CpuCopyJob job;
    job.table = std::make_shared<std::vector<CopyRegion>>(std::vector<CopyRegion>{{d.data(), s.data(), 64}});
    job.end = 1;
    job.done = [&, c] {
      seen[c] = read();
      done++;
    };
    eng.submit(c, std::move(job));
  }
  while (done.load() < channels) std::this_thread::yield();
  return seen;
}

// The nice value each copy thread runs at.
static std::vector<int> thread_nice(CpuCopyPool& eng, unsigned channels) {
  return on_copy_threads(eng, channels, [] {
    errno = 0;
    return getpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)));
  });
}

// The scheduling policy each copy thread runs under (Linux: policies are per thread).
static std::vector<int> thread_policy(CpuCopyPool& eng, unsigned channels) {
  return on_copy_threads(eng, channels, [] { return sched_getscheduler(0); });
}

TEST("copy threads run at the nice value asked for; the calling thread keeps its own") {
  errno = 0;
  const int own = getpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)));
  {
    CpuCopyPool eng(2, 19);
    CHECK_EQ(eng.nice(), 19);
    for (int n : thread_nice(eng, 2)) CHECK_EQ(n, 19);
    CHECK_EQ(eng.stats().nice_failures, 0u);
  }
  {
    CpuCopyPool eng(2, 0);  // 0: the threads inherit the process's priority, untouched
    for (int n : thread_nice(eng, 2)) CHECK_EQ(n, own);
  }
  CHECK_EQ(getpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid))), own);
  CpuCopyPool clamped(1, 40);
  CHECK_EQ(clamped.nice(), 19);
}

TEST("idle: copy threads run under SCHED_IDLE; the calling thread keeps its policy") {
  const int own = sched_getscheduler(0);
  {
    CpuCopyPool eng(2, 10, true);
    CHECK(eng.idle());
    for (int p : thread_policy(eng, 2)) CHECK_EQ(p, SCHED_IDLE);
    CHECK_EQ(eng.stats().nice_failures, 0u);
  }
  {
    CpuCopyPool eng(2, 10);
    for (int p : thread_policy(eng, 2)) CHECK_EQ(p, SCHED_OTHER);
  }
  CHECK_EQ(sched_getscheduler(0), own);
}

// The CPUs this process may run on.
static std::vector<int> allowed_cpus() {
  cpu_set_t set;
  CPU_ZERO(&set);
  std::vector<int> out;
  if (sched_getaffinity(0, sizeof set, &set) != 0) return out;
  for (int c = 0; c < CPU_SETSIZE; ++c)
    if (CPU_ISSET(c, &set)) out.push_back(c);
  return out;
}

// The one CPU each copy thread may run on (-1: more than one).
static std::vector<int> thread_cpu(CpuCopyPool& eng, unsigned channels) {
  return on_copy_threads(eng, channels, [] {
    cpu_set_t set;
    CPU_ZERO(&set);
    if (sched_getaffinity(0, sizeof set, &set) != 0 || CPU_COUNT(&set) != 1) return -1;
    for (int c = 0; c < CPU_SETSIZE; ++c)
      if (CPU_ISSET(c, &set)) return c;
    return -1;
  });
}

TEST("pinned: each copy thread is bound to its CPU, pools rotate, helpers avoid the caller's CPU") {
  const std::vector<int> cpus = allowed_cpus();
  if (cpus.size() < 2) SKIP("needs two CPUs");
  const std::vector<int> two{cpus[0], cpus[1]};
  {
    CpuCopyPool unbound(2, 0);
    CHECK(unbound.pinned_cpus().empty());
    for (int c : thread_cpu(unbound, 2)) CHECK_EQ(c, -1);
    CHECK_EQ(unbound.helper(0), 0u);
  }
  CpuCopyPool a(2, 0, false, two);
  const std::vector<int> pa = a.pinned_cpus();
  CHECK_EQ(pa.size(), 2u);
  CHECK(pa[0] != pa[1]);
  CHECK(thread_cpu(a, 2) == pa);  // what the pool says is what the threads are bound to
  CHECK_EQ(a.stats().pin_failures, 0u);
  // Each pinned pool of the process starts where the one before it stopped: two one-thread pools
  // in a row get different CPUs.
  CpuCopyPool b(1, 0, false, two);
  CpuCopyPool c(1, 0, false, two);
  CHECK(b.pinned_cpus()[0] != c.pinned_cpus()[0]);
  // The helper of a synchronous batch is a thread bound elsewhere than the calling thread.
  for (int here : two) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(here, &set);
    cpu_set_t saved;
    sched_getaffinity(0, sizeof saved, &saved);
    CHECK_EQ(sched_setaffinity(0, sizeof set, &set), 0);
    CHECK(pa[a.helper(0)] != here);
    CHECK(pa[a.helper(1)] == here);  // the one on this CPU comes last
    sched_setaffinity(0, sizeof saved, &saved);
  }
  // Bound threads still copy every byte.
  std::vector<uint8_t> src(1 << 20), dst(1 << 20);
  for (size_t i = 0; i < src.size(); ++i) src[i] = uint8_t(i * 7);
  std::atomic<int> done{0};
  for (unsigned ch = 0; ch < 2; ++ch) {
    CpuCopyJob job;
    auto table = std::make_shared<std::vector<CopyRegion>>();
    table->push_back({dst.data() + ch * (512 << 10), src.data() + ch * (512 << 10), 512 << 10});
    job.table = table;
    job.end = 1;
    job.done = [&] { ++done; };
    a.submit(ch, std::move(job));
  }
  while (done.load() < 2) std::this_thread::yield();
  CHECK(src == dst);
  // A CPU outside the set the kernel accepts: that thread stays unbound, and is counted.
  CpuCopyPool bad(1, 0, false, {CPU_SETSIZE - 1});
  CHECK_EQ(bad.pinned_cpus().size(), 1u);
  CHECK_EQ(bad.pinned_cpus()[0], -1);
  CHECK_EQ(bad.stats().pin_failures, 1u);
}

DMACOPY_TEST_MAIN
