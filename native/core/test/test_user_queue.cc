// UserWorkQueue without DSA hardware: a FIFO served by a test agent stands in for /dev/dsa/wqD.Q
// (write() path, probe, partial writes, EAGAIN, drain/reopen, fork, health), a regular file
// stands in for the portal (MOVDIR64B; skipped where the CPU lacks it), plus the CPU feature
// mask and the typed open errors.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "check.h"
#include "clock.h"
#include "cpu_features.h"
#include "dsa_channels.h"
#include "dsa_hw.h"
#include "fifo_agent.h"
#include "portal.h"
#include "process_agent.h"
#include "queue_reaper.h"
#include "test_configs.h"
#include "user_queue.h"

using namespace dmacopy;
using dmacopy_test::AgentOptions;
using dmacopy_test::FifoAgent;
using dmacopy_test::ProcessAgent;
using dmacopy_test::ProcessAgentOptions;
using dmacopy_test::TempDir;

namespace {

UserQueueConfig fifo_config(const std::string& path, WqMode mode = WqMode::Dedicated) {
  UserQueueConfig c;
  c.device_path = path;
  c.info.name = "wq0.0";
  c.info.mode = mode;
  c.info.size = 128;
  c.info.max_transfer_size = 1u << 21;
  c.probe_timeout_ms = 2000;
  c.allow_regular_file = true;  // some tests map a regular file as the portal
  return c;
}

bool contains(const std::string& s, const char* part) { return s.find(part) != std::string::npos; }

// n memmoves of `len` bytes each, with 32-byte-aligned records and guard bytes after dst.
struct Copies {
  static constexpr size_t kGuard = 64;
  size_t n, len;
  std::vector<uint8_t> src, dst;
  dsa_completion_record* records;
  std::vector<dsa_hw_desc> descs;

  Copies(size_t n_, size_t len_, uint8_t seed = 1) : n(n_), len(len_), src(n_ * len_), dst(n_ * len_ + kGuard, 0xEE) {
    records = static_cast<dsa_completion_record*>(std::aligned_alloc(32, ((n * 32 + 31) / 32) * 32 + 32));
    descs.resize(n);
    for (size_t i = 0; i < src.size(); ++i) src[i] = static_cast<uint8_t>(i * 7 + seed + i / 251);
    for (size_t i = 0; i < n; ++i) {
      prepare_completion(&records[i]);
      build_memmove(&descs[i], dst.data() + i * len, src.data() + i * len, static_cast<uint32_t>(len), &records[i],
                    false);
    }
    std::memset(dst.data(), 0, n * len);
  }
  ~Copies() { std::free(records); }
  Copies(const Copies&) = delete;
  Copies& operator=(const Copies&) = delete;

  bool wait_all(uint64_t timeout_ms = 2000) {
    for (size_t i = 0; i < n; ++i)
      if (wait_for_status(&records[i].status, timeout_ms * 1000000ull) == 0) return false;
    return true;
  }
  bool all_success() const {
    for (size_t i = 0; i < n; ++i)
      if ((load_status(&records[i]) & DSA_COMP_STATUS_MASK) != DSA_COMP_SUCCESS) return false;
    return true;
  }
  bool verify() const {
    if (std::memcmp(dst.data(), src.data(), n * len) != 0) return false;
    for (size_t i = 0; i < kGuard; ++i)
      if (dst[n * len + i] != 0xEE) return false;
    return true;
  }
};

// Sets DMACOPY_CPU_FEATURES_MASK for the scope, restoring the previous value.
struct ScopedMask {
  std::string old;
  bool had;
  explicit ScopedMask(const char* v) {
    const char* o = std::getenv("DMACOPY_CPU_FEATURES_MASK");
    had = o != nullptr;
    if (had) old = o;
    if (v) setenv("DMACOPY_CPU_FEATURES_MASK", v, 1);
    else unsetenv("DMACOPY_CPU_FEATURES_MASK");
    cpu_features_reload();
  }
  ~ScopedMask() {
    if (had) setenv("DMACOPY_CPU_FEATURES_MASK", old.c_str(), 1);
    else unsetenv("DMACOPY_CPU_FEATURES_MASK");
    cpu_features_reload();
  }
};

void write_text(const std::string& path, const char* text) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) return;
  (void)!::write(fd, text, std::strlen(text));
  ::close(fd);
}

bool read_text(const std::string& path, std::string* out) {
  int fd = ::open(path.c_str(), O_RDONLY);
  if (fd < 0) return false;
  char buf[256];
  ssize_t n = ::read(fd, buf, sizeof buf);
  ::close(fd);
  if (n < 0) return false;
  out->assign(buf, size_t(n));
  return true;
}

}  // namespace

// ---- (c) CPU features ----------------------------------------------------------------------

TEST("cpu features: mask parsing") {
  uint32_t keep = 0;
  std::string err;
  CHECK(parse_cpu_feature_mask("none", &keep, &err));
  CHECK_EQ(keep, 0u);
  CHECK(parse_cpu_feature_mask("movdir64b", &keep, &err));
  CHECK_EQ(keep, static_cast<uint32_t>(kCpuMovdir64b));
  CHECK(parse_cpu_feature_mask("MOVDIR64B, waitpkg", &keep, &err));
  CHECK_EQ(keep, static_cast<uint32_t>(kCpuMovdir64b | kCpuWaitpkg));
  CHECK(parse_cpu_feature_mask("all", &keep, &err));
  CHECK_EQ(keep, static_cast<uint32_t>(kCpuMovdir64b | kCpuEnqcmd | kCpuWaitpkg | kCpuMovdiri));
  CHECK(parse_cpu_feature_mask("", &keep, &err));  // empty: no override
  CHECK_EQ(keep, static_cast<uint32_t>(kCpuMovdir64b | kCpuEnqcmd | kCpuWaitpkg | kCpuMovdiri));
  CHECK(parse_cpu_feature_mask(nullptr, &keep, &err));
  CHECK_EQ(keep, static_cast<uint32_t>(kCpuMovdir64b | kCpuEnqcmd | kCpuWaitpkg | kCpuMovdiri));
  CHECK(!parse_cpu_feature_mask("enqcmd,avx9000", &keep, &err));
  CHECK_EQ(keep, static_cast<uint32_t>(kCpuEnqcmd));
  CHECK(contains(err, "avx9000"));
}

TEST("cpu features: the mask only removes, never adds") {
  const CpuFeatures hw = cpu_features_hardware();
  std::printf("  CPUID leaf 7 ECX: %s; kernel enables enqcmd: %s\n", hw.describe().c_str(),
              kernel_enables_enqcmd() ? "yes" : "no");
  {
    ScopedMask m("movdir64b,enqcmd,waitpkg,movdiri");
    CHECK_EQ(cpu_features().bits(), hw.bits());  // asking for everything gives only what exists
  }
  {
    ScopedMask m("none");
    CHECK_EQ(cpu_features().bits(), 0u);
  }
  {
    ScopedMask m("movdir64b");
    CHECK_EQ(cpu_features().bits(), hw.bits() & kCpuMovdir64b);
    CHECK(!cpu_features().enqcmd);
    CHECK(!cpu_features().waitpkg);
  }
  {
    ScopedMask m("bogus");
    CHECK_EQ(cpu_features().bits(), 0u);
    CHECK(contains(cpu_features_mask_error(), "bogus"));
  }
  {
    ScopedMask m(nullptr);
    CHECK_EQ(cpu_features().bits(), hw.bits());
    CHECK(cpu_features_mask_error().empty());
  }
}

TEST("cpu features: TSC calibration and status waits") {
#if defined(__x86_64__)
  uint64_t per_us = tsc_ticks_per_us();
  CHECK(per_us > 100);     // > 100 MHz
  CHECK(per_us < 100000);  // < 100 GHz
  uint64_t now = read_tsc();
  uint64_t dl = tsc_deadline_after_ns(1000000);
  CHECK(dl > now + per_us * 900);
#endif
  alignas(32) dsa_completion_record rec{};
  prepare_completion(&rec);
  uint64_t t0 = monotonic_ns();
  CHECK_EQ(wait_for_status(&rec.status, 5000000), 0);  // 5 ms timeout
  uint64_t waited = monotonic_ns() - t0;
  CHECK(waited >= 5000000);
  CHECK(waited < 500000000);
  std::thread t([&] {
    FifoAgent::sleep_us(3000);
    store_status(&rec, DSA_COMP_SUCCESS);
  });
  CHECK_EQ(wait_for_status(&rec.status, 2000000000ull), DSA_COMP_SUCCESS);
  t.join();
}

// ---- typed open errors ----------------------------------------------------------------------

TEST("open errors: errno classification gives codes (remedies are lib's, keyed by code and errno)") {
  OpenResult r = classify_open_errno(ENOENT, "/dev/dsa/wq0.0", WqMode::Dedicated);
  CHECK(r.code == OpenErrorCode::NoNode);
  CHECK_EQ(r.err, ENOENT);
  r = classify_open_errno(EACCES, "/dev/dsa/wq0.0", WqMode::Shared);
  CHECK(r.code == OpenErrorCode::Permission);
  CHECK_EQ(r.err, EACCES);
  r = classify_open_errno(EBUSY, "/dev/dsa/wq0.0", WqMode::Dedicated);
  CHECK(r.code == OpenErrorCode::Busy);
  CHECK(contains(r.reason, "dedicated"));
  CHECK_EQ(r.err, EBUSY);
  r = classify_open_errno(EPERM, "/dev/dsa/wq0.0", WqMode::Dedicated);
  CHECK(r.code == OpenErrorCode::Permission);
  r = classify_open_errno(EOPNOTSUPP, "/dev/dsa/wq0.0", WqMode::Shared);
  CHECK(r.code == OpenErrorCode::NoSva);
  CHECK_EQ(r.err, EOPNOTSUPP);
  r = classify_open_errno(EMFILE, "/dev/dsa/wq0.0", WqMode::Shared);
  CHECK(r.code == OpenErrorCode::OpenFailed);
  CHECK(contains(r.reason, "EMFILE"));
  CHECK(!r.ok);
}

TEST("open: a missing node is NoNode/ENOENT") {
  TempDir dir;
  UserWorkQueue q(fifo_config(dir.file("wq9.9")));
  OpenResult r = q.open();
  CHECK(!r.ok);
  CHECK(r.code == OpenErrorCode::NoNode);
  CHECK_EQ(r.err, ENOENT);
  CHECK(!q.is_open());
  CHECK(q.submit(dsa_hw_desc{}) == SubmitStatus::Disabled);
  CHECK(!q.healthy());
}

TEST("open: a node without permission is Permission/EACCES") {
  TempDir dir;
  std::string node = dir.fifo("wq0.0");
  chmod(node.c_str(), 0);
  if (geteuid() != 0) {
    UserWorkQueue q(fifo_config(node));
    OpenResult r = q.open();
    CHECK(r.code == OpenErrorCode::Permission);
    CHECK_EQ(r.err, EACCES);
    return;
  }
  // root bypasses file modes (CAP_DAC_OVERRIDE): check in a child that drops to nobody.
  chmod(dir.path().c_str(), 0755);
  pid_t pid = fork();
  if (pid == 0) {
    if (setgid(65534) != 0 || setuid(65534) != 0) _exit(77);
    UserWorkQueue q(fifo_config(node));
    OpenResult r = q.open();
    _exit(r.code == OpenErrorCode::Permission && r.err == EACCES ? 0 : 1);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  if (WIFEXITED(st) && WEXITSTATUS(st) == 77) SKIP("running as root and cannot switch to uid 65534 (no CAP_SETUID?)");
  CHECK(WIFEXITED(st));
  CHECK_EQ(WEXITSTATUS(st), 0);
}

// ---- (a) the write() path against a FIFO ----------------------------------------------------

TEST("fifo: open falls back from mmap (ENODEV) to write() and the NOOP probe completes") {
  TempDir dir;
  std::string node = dir.fifo("wq0.0");
  FifoAgent agent(node);
  UserWorkQueue q(fifo_config(node));
  OpenResult r = q.open();
  CHECK(r.ok);
  CHECK(r.code == OpenErrorCode::None);
  CHECK(r.path == SubmissionPath::Write);
  CHECK(q.path() == SubmissionPath::Write);
  CHECK_EQ(r.mmap_errno, ENODEV);  // pipes have no mmap: the portal fallback ran
  CHECK_EQ(r.probe_status, DSA_COMP_SUCCESS);
  CHECK(agent.wait_descriptors(1, 1000));
  auto seen = agent.seen();
  CHECK_EQ(seen.size(), 1u);
  if (!seen.empty()) {
    CHECK_EQ(seen[0].opcode, static_cast<unsigned>(DSA_OPCODE_NOOP));
    CHECK_EQ(seen[0].flags, static_cast<unsigned>(IDXD_OP_FLAG_CRAV | IDXD_OP_FLAG_RCR));
    CHECK_EQ(seen[0].completion_addr % 32, 0u);
    CHECK_EQ(seen[0].pasid, 0u);
  }
  CHECK_EQ(agent.misaligned_records(), 0u);
  CHECK(q.healthy());
  CHECK(q.is_open());
  CHECK(q.open().ok);  // idempotent while open: no second probe
  CHECK_EQ(agent.descriptors(), 1u);
}

TEST("fifo: memmoves through write(), one syscall for the whole submit_many") {
  TempDir dir;
  std::string node = dir.fifo("wq0.0");
  FifoAgent agent(node);
  UserWorkQueue q(fifo_config(node));
  CHECK(q.open().ok);
  Copies c(8, 4096 + 3);
  uint64_t calls = q.write_calls();
  SubmitStatus st = SubmitStatus::Error;
  CHECK_EQ(q.submit_many(c.descs.data(), c.n, &st), c.n);
  CHECK(st == SubmitStatus::Accepted);
  CHECK_EQ(q.write_calls() - calls, 1u);
  CHECK(c.wait_all());
  CHECK(c.all_success());
  CHECK(c.verify());
  // submit() of a single descriptor too.
  Copies one(1, 100, 9);
  CHECK(q.submit(one.descs[0]) == SubmitStatus::Accepted);
  CHECK(one.wait_all());
  CHECK(one.verify());
  CHECK_EQ(q.submitted(), 1u + 8u + 1u);  // probe + 8 + 1
  CHECK(q.healthy());
}

TEST("fifo: 300 descriptors in one write(), agent reassembles 100-byte reads") {
  TempDir dir;
  std::string node = dir.fifo("wq0.0");
  AgentOptions o;
  o.read_chunk = 100;  // not a multiple of 64
  FifoAgent agent(node, o);
  UserWorkQueue q(fifo_config(node));
  CHECK(q.open().ok);
  Copies c(300, 64, 3);  // 19200 bytes: fits the default 64 KiB pipe in one write
  uint64_t calls = q.write_calls();
  SubmitStatus st;
  CHECK_EQ(q.submit_many(c.descs.data(), c.n, &st), c.n);
  CHECK(st == SubmitStatus::Accepted);
  CHECK_EQ(q.write_calls() - calls, 1u);
  CHECK(c.wait_all());
  CHECK(c.verify());
  CHECK(agent.reads() > 100);
}

TEST("fifo: a full pipe gives a partial write, then EAGAIN -> Retry; the rest follows later") {
  TempDir dir;
  std::string node = dir.fifo("wq0.0");
  AgentOptions o;
  o.pipe_size = 4096;  // one page: 64 descriptors
  FifoAgent agent(node, o);
  UserWorkQueue q(fifo_config(node));
  CHECK(q.open().ok);
  agent.pause();
  Copies c(200, 32, 5);
  uint64_t calls = q.write_calls();
  SubmitStatus st = SubmitStatus::Accepted;
  size_t n1 = q.submit_many(c.descs.data(), c.n, &st);
  CHECK_EQ(n1, 64u);  // the first write() took one page, a whole number of descriptors
  CHECK(st == SubmitStatus::Retry);
  CHECK_EQ(q.last_errno(), EAGAIN);
  CHECK_EQ(q.write_calls() - calls, 2u);  // partial write, then EAGAIN
  CHECK(q.submit(c.descs[n1]) == SubmitStatus::Retry);
  agent.resume();
  size_t done = n1;
  for (int spins = 0; done < c.n && spins < 2000; ++spins) {
    done += q.submit_many(c.descs.data() + done, c.n - done, &st);
    if (st == SubmitStatus::Retry) FifoAgent::sleep_us(500);
    else CHECK(st == SubmitStatus::Accepted);
  }
  CHECK_EQ(done, c.n);
  CHECK(c.wait_all());
  CHECK(c.verify());
  CHECK(q.healthy());
}

TEST("fifo: a write() torn inside a descriptor is completed (stand-in only; idxd never tears)") {
  TempDir dir;
  std::string node = dir.fifo("wq0.0");
  FifoAgent agent(node);
  int calls = 0;
  UserQueueConfig cfg = fifo_config(node);
  cfg.write_fn = [&calls](int fd, const void* b, size_t n) -> ssize_t {
    ++calls;
    if (calls == 2) return ::write(fd, b, n > 100 ? 100 : n);  // after the probe: 1 whole + 36 bytes
    if (calls == 3) {
      errno = EAGAIN;  // and the rest of the torn descriptor is not accepted at once
      return -1;
    }
    if (calls == 4) return ::write(fd, b, n > 10 ? 10 : n);
    return ::write(fd, b, n);
  };
  UserWorkQueue q(cfg);
  CHECK(q.open().ok);
  Copies c(4, 256, 7);
  SubmitStatus st;
  CHECK_EQ(q.submit_many(c.descs.data(), c.n, &st), c.n);
  CHECK(st == SubmitStatus::Accepted);
  CHECK(c.wait_all());
  CHECK(c.verify());
  CHECK(q.healthy());
}

TEST("fifo: a torn write that cannot be completed disables the queue until reopen()") {
  TempDir dir;
  std::string node = dir.fifo("wq0.0");
  FifoAgent agent(node);
  bool tear = false;
  int torn_calls = 0;
  UserQueueConfig cfg = fifo_config(node);
  cfg.torn_write_timeout_ms = 20;
  cfg.write_fn = [&](int fd, const void* b, size_t n) -> ssize_t {
    if (!tear) return ::write(fd, b, n);
    if (torn_calls++ == 0) return ::write(fd, b, n < 80 ? n : 80);  // one descriptor and a quarter
    errno = EAGAIN;                                                 // and the rest never goes
    return -1;
  };
  UserWorkQueue q(cfg);
  CHECK(q.open().ok);
  tear = true;
  Copies c(4, 64, 2);
  SubmitStatus st;
  uint64_t t0 = monotonic_ns();
  size_t n = q.submit_many(c.descs.data(), c.n, &st);
  CHECK(monotonic_ns() - t0 >= 20000000ull);
  CHECK_EQ(n, 1u);
  CHECK(st == SubmitStatus::Disabled);
  CHECK_EQ(q.last_errno(), ETIMEDOUT);
  CHECK(contains(q.status_reason(), "torn"));
  CHECK(q.submit(c.descs[1]) == SubmitStatus::Disabled);
  CHECK(!q.healthy());
  CHECK_EQ(wait_for_status(&c.records[0].status, 1000000000ull), DSA_COMP_SUCCESS);  // the whole one ran
  FifoAgent::sleep_us(5000);
  for (size_t i = 1; i < c.n; ++i) CHECK_EQ(load_status(&c.records[i]), 0);  // the others never arrived
  // The FIFO holds 16 stray bytes (a real device never gets here). When the last opener closes,
  // the pipe's contents go away; a fresh agent then sees a clean stream.
  agent.stop();
  q.drain();
  tear = false;
  FifoAgent agent2(node);
  CHECK(q.reopen());
  Copies d(2, 64, 4);
  CHECK_EQ(q.submit_many(d.descs.data(), d.n, &st), d.n);
  CHECK(d.wait_all());
  CHECK(d.verify());
}

TEST("fifo: EINTR is retried, EPERM disables (fork), EINVAL is an Error, EIO disables") {
  TempDir dir;
  std::string node = dir.fifo("wq0.0");
  FifoAgent agent(node);
  int inject = 0;  // errno to return once on the next write (0: none)
  UserQueueConfig cfg = fifo_config(node);
  cfg.write_fn = [&inject](int fd, const void* b, size_t n) -> ssize_t {
    if (inject) {
      errno = inject;
      inject = 0;
      return -1;
    }
    return ::write(fd, b, n);
  };
  UserWorkQueue q(cfg);
  CHECK(q.open().ok);

  Copies a(2, 128, 1);
  inject = EINTR;
  SubmitStatus st;
  CHECK_EQ(q.submit_many(a.descs.data(), a.n, &st), a.n);
  CHECK(st == SubmitStatus::Accepted);
  CHECK(a.wait_all());
  CHECK(a.verify());

  Copies b(1, 64, 2);
  inject = EINVAL;  // e.g. a misaligned completion record: the kernel rejects the descriptor
  CHECK(q.submit(b.descs[0]) == SubmitStatus::Error);
  CHECK_EQ(q.last_errno(), EINVAL);
  CHECK(q.healthy());  // the queue itself is fine
  CHECK(q.submit(b.descs[0]) == SubmitStatus::Accepted);
  CHECK(b.wait_all());

  inject = EPERM;  // kernel 8dfa57aabff6: current->mm != ctx->mm
  CHECK(q.submit(b.descs[0]) == SubmitStatus::Disabled);
  CHECK_EQ(q.last_errno(), EPERM);
  CHECK(contains(q.status_reason(), "fork"));
  CHECK(!q.healthy());
  CHECK(q.submit(b.descs[0]) == SubmitStatus::Disabled);
  CHECK(q.reopen());
  CHECK(q.healthy());

  inject = EIO;
  CHECK(q.submit(b.descs[0]) == SubmitStatus::Disabled);
  CHECK(contains(q.status_reason(), "disabled"));
  CHECK(q.quiet());  // the kernel refuses writes to a queue it disabled: nothing of ours runs
  CHECK(q.reopen());
  inject = EBADF;  // the fd is gone: that says nothing of what the device still runs
  CHECK(q.submit(b.descs[0]) == SubmitStatus::Disabled);
  CHECK(!q.quiet());
  CHECK(q.reopen());
  Copies d(3, 64, 8);
  CHECK_EQ(q.submit_many(d.descs.data(), d.n, &st), d.n);
  CHECK(d.wait_all());
  CHECK(d.verify());
}

// ---- (d) timeouts and probe failures ---------------------------------------------------------

TEST("probe: an agent that never answers -> ProbeTimeout, fd closed") {
  TempDir dir;
  std::string node = dir.fifo("wq0.0");
  AgentOptions o;
  o.complete = false;
  FifoAgent agent(node, o);
  UserQueueConfig cfg = fifo_config(node);
  cfg.probe_timeout_ms = 60;
  UserWorkQueue q(cfg);
  uint64_t t0 = monotonic_ns();
  OpenResult r = q.open();
  uint64_t took = monotonic_ns() - t0;
  CHECK(!r.ok);
  CHECK(r.code == OpenErrorCode::ProbeTimeout);
  CHECK(contains(r.reason, "60 ms"));
  CHECK(took >= 60000000ull);
  CHECK(took < 1000000000ull);
  CHECK(!q.is_open());
  CHECK(q.submit(dsa_hw_desc{}) == SubmitStatus::Disabled);
  CHECK(agent.wait_descriptors(1, 1000));  // the NOOP did reach the "device"
}

TEST("probe: nobody reading the node -> ProbeTimeout") {
  TempDir dir;
  std::string node = dir.fifo("wq0.0");
  UserQueueConfig cfg = fifo_config(node);
  cfg.probe_timeout_ms = 30;
  UserWorkQueue q(cfg);
  OpenResult r = q.open();
  CHECK(r.code == OpenErrorCode::ProbeTimeout);
  CHECK(!q.is_open());
}

TEST("probe: an error status -> ProbeFailed with the masked status") {
  TempDir dir;
  std::string node = dir.fifo("wq0.0");
  AgentOptions o;
  o.status = DSA_COMP_HW_ERR1 | DSA_COMP_STATUS_WRITE;
  FifoAgent agent(node, o);
  UserWorkQueue q(fifo_config(node));
  OpenResult r = q.open();
  CHECK(r.code == OpenErrorCode::ProbeFailed);
  CHECK_EQ(r.probe_status, DSA_COMP_HW_ERR1);
  CHECK(contains(r.reason, "0x20"));
  CHECK(!q.is_open());
}

// ---- health, drain, reopen ---------------------------------------------------------------------

TEST("health: POLLIN on the fd (SWERR stand-in: unread data) is a device error, reported once, not ill health") {
  TempDir dir;
  std::string node = dir.fifo("wq0.0");
  FifoAgent agent(node);
  UserWorkQueue q(fifo_config(node));
  CHECK(q.open().ok);
  CHECK(q.healthy());
  CHECK(!q.take_device_error());
  agent.pause();
  Copies c(1, 64);
  CHECK(q.submit(c.descs[0]) == SubmitStatus::Accepted);
  // The FIFO is readable on our fd: POLLIN, as idxd reports SWERR. Device-wide and sticky, so it
  // is news once, and it does not make the queue unhealthy (it may be another client's error).
  CHECK(q.take_device_error());
  CHECK(contains(q.status_reason(), "software error"));
  CHECK(!q.take_device_error());
  CHECK(q.healthy());
  agent.resume();
  CHECK(c.wait_all());
  CHECK(q.healthy());
  q.drain();
  CHECK(!q.healthy());
  CHECK(q.reopen());
  CHECK(q.healthy());
}

TEST("health: a software error already latched at open is a baseline; a change of 'errors' is news once") {
  TempDir dir;
  std::string node = dir.fifo("wq0.0");
  std::string errors = dir.file("dsa0.errors");
  write_text(errors, "0x8000000000000001,0x0000000000000000,0x0000000000000000,0x0000000000000000\n");
  AgentOptions o;
  o.start_paused = true;
  FifoAgent agent(node, o);
  int w = ::open(node.c_str(), O_WRONLY | O_NONBLOCK);
  uint8_t zeros[64] = {};
  CHECK_EQ(::write(w, zeros, 64), 64);  // the fd polls readable from the start: a latched SWERR
  UserQueueConfig cfg = fifo_config(node);
  cfg.probe = false;
  cfg.device_errors_path = errors;
  cfg.health_recheck_ms = 0;
  UserWorkQueue q(cfg);
  OpenResult r = q.open();
  CHECK(r.ok);
  CHECK(r.swerr_at_open);
  CHECK(q.healthy());  // an old error does not condemn the queue
  CHECK(!q.take_device_error());
  write_text(errors, "0x8000000000000003,0x0000000000000000,0x0000000000000000,0x0000000000000000\n");
  CHECK(q.take_device_error());  // a change of the device's 'errors' file is a new error
  CHECK(!q.take_device_error());
  CHECK(q.healthy());
  CHECK(contains(q.status_reason(), "software error"));
  ::close(w);
  agent.resume();
  CHECK(agent.wait_descriptors(1, 1000));
}

TEST("health: the 'errors' file is re-read at most every health_recheck_ms (the poller asks every 100 us)") {
  TempDir dir;
  std::string node = dir.fifo("wq0.0");
  std::string errors = dir.file("dsa0.errors");
  write_text(errors, "0x0000000000000000,0x0000000000000000,0x0000000000000000,0x0000000000000000\n");
  FifoAgent agent(node);
  UserQueueConfig cfg = fifo_config(node);
  cfg.probe = false;
  cfg.device_errors_path = errors;
  cfg.health_recheck_ms = 200;
  UserWorkQueue q(cfg);
  CHECK(q.open().ok);
  CHECK(!q.take_device_error());  // the first call reads the file: unchanged
  write_text(errors, "0x8000000000000003,0x0000000000000000,0x0000000000000000,0x0000000000000000\n");
  const auto changed = std::chrono::steady_clock::now();
  bool seen = q.take_device_error();
  // Within the period the file is not read again (unless this thread was descheduled that long).
  if (std::chrono::steady_clock::now() - changed < std::chrono::milliseconds(150)) CHECK(!seen);
  auto end = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!seen && std::chrono::steady_clock::now() < end) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    seen = q.take_device_error();
  }
  CHECK(seen);  // after the period: news, once
  CHECK(std::chrono::steady_clock::now() - changed >= std::chrono::milliseconds(150));
  CHECK(!q.take_device_error());
}

TEST("health: sysfs device/queue state files are re-read; halted/disabled are typed") {
  TempDir dir;
  std::string node = dir.fifo("wq0.0");
  std::string dev_state = dir.file("dsa0.state"), wq_state = dir.file("wq0.0.state");
  write_text(dev_state, "enabled\n");
  write_text(wq_state, "enabled\n");
  FifoAgent agent(node);
  UserQueueConfig cfg = fifo_config(node);
  cfg.device_state_path = dev_state;
  cfg.wq_state_path = wq_state;
  cfg.health_recheck_ms = 0;
  UserWorkQueue q(cfg);
  CHECK(q.open().ok);
  CHECK(q.healthy());
  write_text(dev_state, "halted\n");
  CHECK(!q.healthy());
  CHECK(contains(q.status_reason(), "halted"));
  q.drain();
  OpenResult r = q.open();
  CHECK(r.code == OpenErrorCode::DeviceNotEnabled);
  write_text(dev_state, "enabled\n");
  write_text(wq_state, "disabled\n");
  r = q.open();
  CHECK(r.code == OpenErrorCode::QueueNotEnabled);
  write_text(wq_state, "enabled\n");
  CHECK(q.reopen());
  CHECK(q.healthy());
  unlink(wq_state.c_str());  // the queue vanished from sysfs
  CHECK(!q.healthy());
  write_text(wq_state, "enabled\n");
  // Read and disabled: quiet (nothing of ours runs any more). A state this code does not know:
  // unhealthy, but not known to be quiet.
  CHECK(q.reopen());
  write_text(wq_state, "disabled\n");
  CHECK(!q.healthy());
  CHECK(q.quiet());
  write_text(wq_state, "enabled\n");
  CHECK(q.reopen());
  write_text(wq_state, "locked\n");
  CHECK(!q.healthy());
  CHECK(!q.quiet());
  write_text(wq_state, "enabled\n");
  CHECK(q.reopen());
  {
    // A state file that cannot be read for want of a file descriptor (a process at its fd
    // limit) says nothing about the queue: still healthy, and not latched.
    rlimit saved{};
    CHECK_EQ(getrlimit(RLIMIT_NOFILE, &saved), 0);
    rlimit tight = saved;
    tight.rlim_cur = 3;  // every fd this process could open is taken
    CHECK_EQ(setrlimit(RLIMIT_NOFILE, &tight), 0);
    const bool during = q.healthy();
    CHECK_EQ(setrlimit(RLIMIT_NOFILE, &saved), 0);
    CHECK(during);
    CHECK(q.healthy());
  }

  // The recheck interval rate-limits the file reads.
  UserQueueConfig cfg2 = cfg;
  cfg2.health_recheck_ms = 60000;
  UserWorkQueue q2(cfg2);
  CHECK(q2.open().ok);
  CHECK(q2.healthy());
  write_text(wq_state, "disabled\n");
  CHECK(q2.healthy());  // not re-read yet
}

TEST("drain: closes fd, submissions are Disabled, reopen() probes again and works") {
  TempDir dir;
  std::string node = dir.fifo("wq0.0");
  FifoAgent agent(node);
  UserWorkQueue q(fifo_config(node));
  CHECK(q.open().ok);
  int old_fd = q.fd();
  q.drain();
  CHECK(!q.is_open());
  CHECK(fcntl(old_fd, F_GETFD) == -1);
  CHECK(q.submit(dsa_hw_desc{}) == SubmitStatus::Disabled);
  CHECK(contains(q.status_reason(), "drained"));
  CHECK(!q.healthy());
  q.drain();  // twice is harmless
  CHECK(q.reopen());
  CHECK(q.is_open());
  CHECK(agent.wait_descriptors(2, 1000));  // two NOOP probes
  Copies c(5, 1000, 6);
  SubmitStatus st;
  CHECK_EQ(q.submit_many(c.descs.data(), c.n, &st), c.n);
  CHECK(c.wait_all());
  CHECK(c.verify());
  CHECK(q.reopen());  // reopen of an open queue drains and opens again
  CHECK(q.healthy());
}

TEST("fork: the child's queue is Disabled, its inherited fd closed; reopen() in the child works") {
  TempDir dir;
  std::string node = dir.fifo("wq0.0");
  auto agent = std::make_unique<FifoAgent>(node);
  UserWorkQueue q(fifo_config(node));
  CHECK(q.open().ok);
  int parent_fd = q.fd();
  agent.reset();  // no other threads at fork()
  pid_t pid = fork();
  if (pid == 0) {
    int fails = 0;
    Copies c(1, 64);
    if (q.submit(c.descs[0]) != SubmitStatus::Disabled) fails |= 1;
    if (q.status_reason().find("fork") == std::string::npos) fails |= 2;
    if (q.healthy()) fails |= 4;
    if (fcntl(parent_fd, F_GETFD) != -1 || errno != EBADF) fails |= 8;  // closed by the atfork handler
    FifoAgent child_agent(node);
    if (!q.reopen()) fails |= 16;
    if (q.submit(c.descs[0]) != SubmitStatus::Accepted) fails |= 32;
    if (!c.wait_all() || !c.verify()) fails |= 64;
    child_agent.stop();
    _exit(fails);
  }
  int st = 0;
  waitpid(pid, &st, 0);
  CHECK(WIFEXITED(st));
  CHECK_EQ(WEXITSTATUS(st), 0);
  // The parent's queue is untouched.
  CHECK_EQ(q.fd(), parent_fd);
  CHECK(fcntl(parent_fd, F_GETFD) != -1);
  FifoAgent agent2(node);
  Copies c(3, 512, 4);
  SubmitStatus s;
  CHECK_EQ(q.submit_many(c.descs.data(), c.n, &s), c.n);
  CHECK(c.wait_all());
  CHECK(c.verify());
  CHECK(q.healthy());
}

TEST("fifo: a shared queue without ENQCMD uses write() too") {
  TempDir dir;
  std::string node = dir.fifo("wq1.0");
  FifoAgent agent(node);
  ScopedMask m("movdir64b,waitpkg,movdiri");  // no ENQCMD whatever the CPU has
  UserWorkQueue q(fifo_config(node, WqMode::Shared));
  OpenResult r = q.open();
  CHECK(r.ok);
  CHECK(r.path == SubmissionPath::Write);
  CHECK(r.instruction == PortalInstruction::None);
  Copies c(2, 4096, 1);
  SubmitStatus st;
  CHECK_EQ(q.submit_many(c.descs.data(), c.n, &st), c.n);
  CHECK(c.wait_all());
  CHECK(c.verify());
}

// ---- forced submission paths and (b) the MOVDIR64B portal -------------------------------------

TEST("forced portal: FIFO (no mmap) -> PortalUnavailable/ENODEV") {
  TempDir dir;
  std::string node = dir.fifo("wq0.0");
  UserQueueConfig cfg = fifo_config(node);
  cfg.submission = SubmissionPath::Portal;
  UserWorkQueue q(cfg);
  OpenResult r = q.open();
  CHECK(r.code == OpenErrorCode::PortalUnavailable);
  CHECK_EQ(r.err, ENODEV);
  CHECK_EQ(r.mmap_errno, ENODEV);
  CHECK(!q.is_open());
}

TEST("a regular file is refused as a device node outside tests: the probe never lands in it") {
  TempDir dir;
  std::string file = dir.file("wq0.0");
  write_text(file, "");
  UserQueueConfig cfg = fifo_config(file);
  cfg.allow_regular_file = false;
  UserWorkQueue q(cfg);
  OpenResult r = q.open();
  CHECK(!r.ok);
  CHECK(contains(r.reason, "not a character device"));
  CHECK(r.code == OpenErrorCode::NotCharDevice);  // its own code: lib/ names the wrong dev root
  struct stat st;
  CHECK(::stat(file.c_str(), &st) == 0 && st.st_size == 0);
  CHECK(!q.is_open());
}

TEST("forced write: no mmap is attempted on a mappable node") {
  TempDir dir;
  std::string file = dir.file("portal");
  write_text(file, "");
  UserQueueConfig cfg = fifo_config(file);
  cfg.submission = SubmissionPath::Write;
  cfg.probe = false;
  UserWorkQueue q(cfg);
  OpenResult r = q.open();
  CHECK(r.ok);
  CHECK(r.path == SubmissionPath::Write);
  CHECK_EQ(r.mmap_errno, 0);
}

TEST("portal: forced portal without the instruction (masked) -> PortalInstructionMissing") {
  TempDir dir;
  std::string file = dir.file("portal");
  int fd = ::open(file.c_str(), O_RDWR | O_CREAT, 0600);
  CHECK(ftruncate(fd, 4096) == 0);
  ::close(fd);
  ScopedMask m("none");
  for (WqMode mode : {WqMode::Dedicated, WqMode::Shared}) {
    UserQueueConfig cfg = fifo_config(file, mode);
    cfg.submission = SubmissionPath::Portal;
    cfg.probe = false;
    UserWorkQueue q(cfg);
    OpenResult r = q.open();
    CHECK(r.code == OpenErrorCode::PortalInstructionMissing);
    CHECK(contains(r.reason, mode == WqMode::Dedicated ? "MOVDIR64B" : "ENQCMD"));
    CHECK(!q.is_open());
    // auto: the portal was mappable, but the write() path is used
    cfg.submission = SubmissionPath::Auto;
    UserWorkQueue q2(cfg);
    r = q2.open();
    CHECK(r.ok);
    CHECK(r.path == SubmissionPath::Write);
    CHECK_EQ(r.mmap_errno, 0);
    CHECK(r.instruction == PortalInstruction::None);
  }
}

TEST("portal: MOVDIR64B lands 64 bytes at rotating offsets of a mapped file") {
  if (!cpu_features().movdir64b)
    SKIP("this CPU (or DMACOPY_CPU_FEATURES_MASK) lacks MOVDIR64B (CPUID: " + cpu_features_hardware().describe() + ")");
  TempDir dir;
  std::string file = dir.file("portal");
  int fd = ::open(file.c_str(), O_RDWR | O_CREAT, 0600);
  CHECK(ftruncate(fd, 4096) == 0);
  void* view = mmap(nullptr, 4096, PROT_READ, MAP_SHARED, fd, 0);
  CHECK(view != MAP_FAILED);
  if (view == MAP_FAILED) return;
  const uint8_t* bytes = static_cast<const uint8_t*>(view);
  UserQueueConfig cfg = fifo_config(file, WqMode::Dedicated);
  cfg.submission = SubmissionPath::Portal;
  cfg.probe = false;  // nothing completes a file
  UserWorkQueue q(cfg);
  OpenResult r = q.open();
  CHECK(r.ok);
  CHECK(r.path == SubmissionPath::Portal);
  CHECK(r.instruction == PortalInstruction::Movdir64b);
  std::vector<dsa_hw_desc> descs(70);
  for (size_t i = 0; i < descs.size(); ++i) {
    std::memset(&descs[i], 0, sizeof descs[i]);
    descs[i].opcode = DSA_OPCODE_MEMMOVE;
    descs[i].src_addr = 0x1000 * (i + 1);
    descs[i].dst_addr = 0xabc000 + i;
    descs[i].xfer_size = static_cast<uint32_t>(i + 1);
  }
  for (size_t i = 0; i < 64; ++i) {
    CHECK(q.submit(descs[i]) == SubmitStatus::Accepted);
    CHECK(std::memcmp(bytes + i * 64, &descs[i], 64) == 0);
  }
  SubmitStatus st;
  CHECK_EQ(q.submit_many(descs.data() + 64, 6, &st), 6u);  // wraps to offset 0
  for (size_t i = 64; i < 70; ++i) CHECK(std::memcmp(bytes + (i - 64) * 64, &descs[i], 64) == 0);
  CHECK(std::memcmp(bytes + 6 * 64, &descs[6], 64) == 0);
  q.drain();
  munmap(view, 4096);
  ::close(fd);
}

TEST("portal: auto on a mappable node uses the portal only when the CPU has the instruction") {
  TempDir dir;
  std::string file = dir.file("portal");
  int fd = ::open(file.c_str(), O_RDWR | O_CREAT, 0600);
  CHECK(ftruncate(fd, 4096) == 0);
  ::close(fd);
  UserQueueConfig cfg = fifo_config(file, WqMode::Dedicated);
  cfg.probe = false;
  UserWorkQueue q(cfg);
  OpenResult r = q.open();
  CHECK(r.ok);
  CHECK_EQ(r.mmap_errno, 0);
  if (cpu_features().movdir64b) CHECK(r.path == SubmissionPath::Portal);
  else CHECK(r.path == SubmissionPath::Write);
  std::printf("  auto on a mappable dedicated node: %s (instruction %s, mmap errno %d)\n", to_string(r.path),
              to_string(r.instruction), r.mmap_errno);
}

DMACOPY_TEST_MAIN

// ---- the stand-in device in another process -----------------------------------------------------

namespace {

// Sums a DsaChannels' events; waits for a number of finished works.
struct SumSink : EventSink {
  std::mutex mu;
  std::condition_variable cv;
  CompletionEvent sum;
  std::map<std::pair<uint64_t, uint32_t>, uint32_t> left;  // (op, work) -> descriptors left
  size_t finished = 0;
  void expect(uint64_t op, uint32_t work, uint32_t n) {
    std::lock_guard<std::mutex> lk(mu);
    left[{op, work}] += n;
  }
  void post(const CompletionEvent* ev, size_t n) override {
    std::lock_guard<std::mutex> lk(mu);
    for (size_t i = 0; i < n; ++i) {
      const CompletionEvent& e = ev[i];
      sum.completed += e.completed;
      sum.device_bytes += e.device_bytes;
      sum.cpu_bytes += e.cpu_bytes;
      sum.page_fault_retries += e.page_fault_retries;
      sum.wedged += e.wedged;
      uint32_t& l = left[{e.op_id, e.work}];
      l -= e.completed;
      if (l == 0 && e.completed) ++finished;
    }
    cv.notify_all();
  }
  bool wait(size_t n, int ms) {
    std::unique_lock<std::mutex> lk(mu);
    return cv.wait_for(lk, std::chrono::milliseconds(ms), [&] { return finished >= n; });
  }
};

std::unique_ptr<UserWorkQueue> open_write_queue(const std::string& node, uint32_t size) {
  UserQueueConfig cfg = fifo_config(node);
  cfg.submission = SubmissionPath::Write;
  cfg.info.size = size;
  auto q = std::make_unique<UserWorkQueue>(cfg);
  OpenResult r = q->open();
  if (!r.ok) {
    std::fprintf(stderr, "open: %s\n", r.reason.c_str());
    return nullptr;
  }
  return q;
}

}  // namespace

TEST(
    "out-of-process device: write() submission, poll() health and release, bytes copied through the client's page "
    "tables") {
  TempDir dir;
  std::string node = dir.fifo("wq0.0");
  ProcessAgent agent(node);
  CHECK(agent.ok());
  CHECK(agent.pid() != getpid());
  auto q = open_write_queue(node, 32);  // the NOOP probe went to the other process and back
  CHECK(q != nullptr);
  if (!q) return;
  std::vector<std::unique_ptr<WorkQueue>> qs;
  qs.push_back(std::move(q));
  SumSink sink;
  DsaChannels eng(std::move(qs), nullptr, &sink, typical_channel_options());
  const size_t kLen = 1 << 20;
  std::vector<uint8_t> src(kLen), dst(kLen, 0);
  for (size_t i = 0; i < kLen; ++i) src[i] = uint8_t(i * 31 + i / 4096);
  std::vector<CopyRegion> regs;
  for (size_t off = 0; off < kLen; off += 4096) regs.push_back(CopyRegion{dst.data() + off, src.data() + off, 4096});
  uint32_t n = eng.submit_work(0, 1, 0, regs.data(), regs.size(), 0);
  sink.expect(1, 0, n);
  CHECK(sink.wait(1, 10000));
  CHECK(src == dst);
  CHECK_EQ(sink.sum.device_bytes, uint64_t(kLen));  // all of it by the other process
  CHECK_EQ(sink.sum.cpu_bytes, 0u);
  eng.close();
}

TEST("out-of-process device: an inaccessible destination page (EFAULT) completes PAGE_FAULT_NOBOF at that page") {
  TempDir dir;
  std::string node = dir.fifo("wq0.0");
  ProcessAgent agent(node);
  CHECK(agent.ok());
  auto q = open_write_queue(node, 8);
  CHECK(q != nullptr);
  if (!q) return;
  const size_t ps = 4096;
  auto* map = static_cast<uint8_t*>(mmap(nullptr, 2 * ps, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  CHECK(map != MAP_FAILED);
  CHECK_EQ(mprotect(map + ps, ps, PROT_NONE), 0);
  std::vector<uint8_t> src(1024, 0x42);
  alignas(32) dsa_completion_record cr{};
  dsa_hw_desc d;
  build_memmove(&d, map + ps - 300, src.data(), 1024, &cr, false);  // 300 bytes fit, then the hole
  CHECK(q->submit(d) == SubmitStatus::Accepted);
  auto end = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (load_status(&cr) == 0 && std::chrono::steady_clock::now() < end) std::this_thread::yield();
  CompletionInfo c = decode_completion(&cr);
  CHECK_EQ(c.status, DSA_COMP_PAGE_FAULT_NOBOF);
  CHECK(c.fault_on_write);
  CHECK_EQ(c.bytes_completed, 300u);
  CHECK_EQ(c.fault_addr, uint64_t(reinterpret_cast<uintptr_t>(map + ps)));
  CHECK(map[ps - 1] == 0x42 && map[ps - 300] == 0x42);
  munmap(map, 2 * ps);
}

TEST("out-of-process device: pages not resident fault, the poller touches them, the device continues") {
  TempDir dir;
  std::string node = dir.fifo("wq0.0");
  ProcessAgentOptions o;
  o.pagemap_faults = true;
  ProcessAgent agent(node, o);
  CHECK(agent.ok());
  auto q = open_write_queue(node, 16);
  CHECK(q != nullptr);
  if (!q) return;
  std::vector<std::unique_ptr<WorkQueue>> qs;
  qs.push_back(std::move(q));
  SumSink sink;
  DsaChannelOptions opts = typical_channel_options();
  opts.page_fault_retries = 4;
  DsaChannels eng(std::move(qs), nullptr, &sink, opts);
  const size_t kLen = 64 * 4096;
  auto* dst = static_cast<uint8_t*>(mmap(nullptr, kLen, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  std::vector<uint8_t> src(kLen);
  for (size_t i = 0; i < kLen; ++i) src[i] = uint8_t(i ^ (i >> 9));
  CHECK_EQ(madvise(dst, kLen, MADV_DONTNEED), 0);  // every destination page: mapped, not resident
  CopyRegion r{dst, src.data(), kLen};
  uint32_t n = eng.submit_work(0, 2, 0, &r, 1, 0);
  sink.expect(2, 0, n);
  CHECK(sink.wait(1, 10000));
  CHECK(std::memcmp(dst, src.data(), kLen) == 0);
  DsaChannelsStats st = eng.stats();
  CHECK(st.page_faults > 0);
  CHECK(st.page_fault_retries > 0);  // continued on the device after the touch
  CHECK(sink.sum.device_bytes > 0);
  eng.close();
  munmap(dst, kLen);
}

TEST("out-of-process wedged device: the Drain never completes, the work ends wedged, close() is bounded") {
  TempDir dir;
  std::string node = dir.fifo("wq0.0");
  ProcessAgentOptions o;
  o.wedge = true;
  UserQueueConfig cfg = fifo_config(node);
  cfg.submission = SubmissionPath::Write;
  cfg.info.size = 16;
  cfg.probe = false;  // a wedged device would fail the probe
  ProcessAgent agent(node, o);
  CHECK(agent.ok());
  auto q = std::make_unique<UserWorkQueue>(cfg);
  CHECK(q->open().ok);
  std::vector<std::unique_ptr<WorkQueue>> qs;
  qs.push_back(std::move(q));
  SumSink sink;
  DsaChannelOptions opts = typical_channel_options();
  opts.drain_timeout_ms = 50;
  DsaChannels eng(std::move(qs), nullptr, &sink, opts);
  std::vector<uint8_t> src(16 * 4096, 0x5c), dst(16 * 4096, 0);
  CopyRegion r{dst.data(), src.data(), src.size()};
  uint32_t n = eng.submit_work(0, 3, 0, &r, 1, monotonic_ns() + 10'000'000);
  sink.expect(3, 0, n);
  CHECK(sink.wait(1, 5000));
  CHECK(src == dst);                       // the CPU copied it...
  CHECK_EQ(sink.sum.wedged, uint64_t(n));  // ...and says the device may still write it
  auto t0 = std::chrono::steady_clock::now();
  eng.close();
  CHECK(std::chrono::steady_clock::now() - t0 < std::chrono::milliseconds(3000));
  CHECK_EQ(eng.stats().wedged, 1u);
  CHECK(QueueReaper::wait_idle(2000));  // a FIFO's release returns (a real wedged device's would not)
}

TEST(
    "out-of-process dedicated queue on the write() path: overflow is dropped with a device error; the engine never "
    "overflows it") {
  TempDir dir;
  std::string node = dir.fifo("wq0.0");
  std::string errors = dir.file("dsa0.errors");
  write_text(errors, "0x0000000000000000,0x0000000000000000,0x0000000000000000,0x0000000000000000\n");
  ProcessAgentOptions o;
  o.wq_size = 4;
  o.latency_us = 2000;
  o.errors_path = errors;
  {
    // Straight at the queue: 6 descriptors into 4 entries. write() takes them all (no feedback).
    ProcessAgent agent(node, o);
    CHECK(agent.ok());
    UserQueueConfig cfg = fifo_config(node);
    cfg.submission = SubmissionPath::Write;
    cfg.info.size = 4;
    cfg.device_errors_path = errors;
    cfg.health_recheck_ms = 0;
    UserWorkQueue q(cfg);
    CHECK(q.open().ok);
    CHECK(!q.take_device_error());
    Copies c(6, 256);
    CHECK_EQ(q.submit_many(c.descs.data(), 6, nullptr), 6u);
    auto end = std::chrono::steady_clock::now() + std::chrono::seconds(5);
    bool seen = false;
    while (!seen && std::chrono::steady_clock::now() < end) {
      seen = q.take_device_error();
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    CHECK(seen);
    CHECK(q.healthy());  // a device error is not ill health of the queue
    std::this_thread::sleep_for(std::chrono::milliseconds(40));
    int completed = 0;
    for (size_t i = 0; i < 6; ++i) completed += load_status(&c.records[i]) == DSA_COMP_SUCCESS;
    CHECK_EQ(completed, 4);  // two dropped: their records never come
  }
  {
    // Through the engine: a window of size-1 keeps an entry for the Drain; nothing is dropped.
    write_text(errors, "0x0000000000000000,0x0000000000000000,0x0000000000000000,0x0000000000000000\n");
    o.latency_us = 200;
    ProcessAgent agent(node, o);
    CHECK(agent.ok());
    UserQueueConfig cfg = fifo_config(node);
    cfg.submission = SubmissionPath::Write;
    cfg.info.size = 4;
    cfg.device_errors_path = errors;
    auto q = std::make_unique<UserWorkQueue>(cfg);
    CHECK(q->open().ok);
    std::vector<std::unique_ptr<WorkQueue>> qs;
    qs.push_back(std::move(q));
    SumSink sink;
    DsaChannels eng(std::move(qs), nullptr, &sink, typical_channel_options());
    std::vector<uint8_t> src(256 * 1024, 0x61), dst(256 * 1024, 0);
    CopyRegion r{dst.data(), src.data(), src.size()};
    uint32_t n = eng.submit_work(0, 4, 0, &r, 1, monotonic_ns() + 2'000'000);  // a 2 ms deadline: fences too
    sink.expect(4, 0, n);
    CHECK(sink.wait(1, 20000));
    CHECK(src == dst);
    DsaChannelsStats st = eng.stats();
    CHECK(st.channels[0].max_in_flight <= 3);
    CHECK_EQ(st.lost_records, 0u);  // nothing dropped: every record came, Drains included
    eng.close();
    std::string e;
    CHECK(read_text(errors, &e));
    CHECK(e.rfind("0x0000000000000000,", 0) == 0);  // the device raised no error
  }
}
