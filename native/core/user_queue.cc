#include "user_queue.h"

#include "clock.h"
#include "queue_reaper.h"

#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <set>

#include "cpu_features.h"
#include "dsa_hw.h"
#include "portal.h"

namespace dmacopy {

namespace {

constexpr size_t kPortalSize = 4096;
constexpr size_t kDescSize = sizeof(dsa_hw_desc);

// ---- fork handling: every live queue, so the atfork child handler can disown them ----------

std::mutex& registry_mu() {
  static std::mutex* mu = new std::mutex;  // leaked: usable during exit and in atfork handlers
  return *mu;
}
std::set<UserWorkQueue*>& registry() {
  static std::set<UserWorkQueue*>* r = new std::set<UserWorkQueue*>;
  return *r;
}
void atfork_prepare() { registry_mu().lock(); }
void atfork_parent() { registry_mu().unlock(); }
void atfork_child() {
  for (UserWorkQueue* q : registry()) q->on_fork_child();
  registry_mu().unlock();
}
void register_queue(UserWorkQueue* q) {
  static std::once_flag once;
  std::call_once(once, [] { pthread_atfork(atfork_prepare, atfork_parent, atfork_child); });
  std::lock_guard<std::mutex> lock(registry_mu());
  registry().insert(q);
}
void unregister_queue(UserWorkQueue* q) {
  std::lock_guard<std::mutex> lock(registry_mu());
  registry().erase(q);
}

// ---- small helpers ---------------------------------------------------------------------------

std::string errno_text(int e) {
  const char* name = nullptr;
  switch (e) {
    case EPERM: name = "EPERM"; break;
    case ENOENT: name = "ENOENT"; break;
    case EINTR: name = "EINTR"; break;
    case EIO: name = "EIO"; break;
    case ENXIO: name = "ENXIO"; break;
    case EBADF: name = "EBADF"; break;
    case EAGAIN: name = "EAGAIN"; break;
    case EFAULT: name = "EFAULT"; break;
    case EBUSY: name = "EBUSY"; break;
    case ENODEV: name = "ENODEV"; break;
    case ENOTDIR: name = "ENOTDIR"; break;
    case EINVAL: name = "EINVAL"; break;
    case EACCES: name = "EACCES"; break;
    case ENOMEM: name = "ENOMEM"; break;
    case EMFILE: name = "EMFILE"; break;
    case EOPNOTSUPP: name = "EOPNOTSUPP"; break;
    case ESHUTDOWN: name = "ESHUTDOWN"; break;
    case ETIMEDOUT: name = "ETIMEDOUT"; break;
    default: break;
  }
  char msg[96];
  const char* text = strerror_r(e, msg, sizeof msg);  // GNU variant returns the string
  std::string out = name ? name : "errno " + std::to_string(e);
  return out + " (" + (text ? text : "?") + ")";
}

// Reads a one-line sysfs attribute; false if unreadable. Trailing whitespace is stripped.
bool read_state_file(const std::string& path, std::string* out) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  char buf[256];  // state words, or the four SWERR words of 'errors'
  ssize_t r;
  do {
    r = ::read(fd, buf, sizeof buf - 1);
  } while (r < 0 && errno == EINTR);
  ::close(fd);
  if (r < 0) return false;
  size_t n = static_cast<size_t>(r);
  while (n > 0 && (buf[n - 1] == '\n' || buf[n - 1] == ' ' || buf[n - 1] == '\t' || buf[n - 1] == '\r')) --n;
  out->assign(buf, n);
  return true;
}

void sleep_us(long us) {
  timespec ts{us / 1000000, (us % 1000000) * 1000};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

const char* needed_instruction_name(WqMode mode) { return mode == WqMode::Dedicated ? "MOVDIR64B" : "ENQCMD"; }

}  // namespace

// ---- names -------------------------------------------------------------------------------------

const char* to_string(SubmissionPath p) {
  switch (p) {
    case SubmissionPath::Auto: return "auto";
    case SubmissionPath::Portal: return "portal";
    case SubmissionPath::Write: return "write";
  }
  return "?";
}

const char* to_string(PortalInstruction i) {
  switch (i) {
    case PortalInstruction::None: return "none";
    case PortalInstruction::Movdir64b: return "movdir64b";
    case PortalInstruction::Enqcmd: return "enqcmd";
  }
  return "?";
}

const char* to_string(OpenErrorCode c) {
  switch (c) {
    case OpenErrorCode::None: return "ok";
    case OpenErrorCode::NoNode: return "no-node";
    case OpenErrorCode::Permission: return "permission";
    case OpenErrorCode::Busy: return "busy";
    case OpenErrorCode::NoSva: return "no-sva";
    case OpenErrorCode::OpenFailed: return "open-failed";
    case OpenErrorCode::NotCharDevice: return "not-char-device";
    case OpenErrorCode::QueueNotEnabled: return "queue-not-enabled";
    case OpenErrorCode::DeviceNotEnabled: return "device-not-enabled";
    case OpenErrorCode::PortalUnavailable: return "portal-unavailable";
    case OpenErrorCode::PortalInstructionMissing: return "portal-instruction-missing";
    case OpenErrorCode::ProbeSubmitFailed: return "probe-submit-failed";
    case OpenErrorCode::ProbeTimeout: return "probe-timeout";
    case OpenErrorCode::ProbeFailed: return "probe-failed";
  }
  return "?";
}

OpenResult classify_open_errno(int err, const std::string& path, WqMode mode) {
  OpenResult r;
  r.ok = false;
  r.err = err;
  switch (err) {
    case ENOENT:
    case ENOTDIR:
      r.code = OpenErrorCode::NoNode;
      r.reason = "no device node " + path;
      break;
    case EACCES:
      r.code = OpenErrorCode::Permission;
      r.reason = "permission denied opening " + path;
      break;
    case EPERM:
      r.code = OpenErrorCode::Permission;
      r.reason = "opening " + path + " is not permitted (EPERM)";
      break;
    case EBUSY:
      r.code = OpenErrorCode::Busy;
      r.reason = std::string(mode == WqMode::Dedicated ? "dedicated" : "") +
                 (mode == WqMode::Dedicated ? " queue " : "queue ") + path +
                 " is already opened by another process (a dedicated queue has one owner)";
      break;
    case EOPNOTSUPP:
    case EINVAL:
    case ENODEV:
    case ENXIO:
      r.code = OpenErrorCode::NoSva;
      r.reason = "the kernel could not bind this process to the device for " + path + ": " + errno_text(err);
      break;
    default:
      r.code = OpenErrorCode::OpenFailed;
      r.reason = "open " + path + " failed: " + errno_text(err);
      break;
  }
  return r;
}

// ---- UserWorkQueue ---------------------------------------------------------------------------

UserWorkQueue::UserWorkQueue(UserQueueConfig config) : config_(std::move(config)) {
  register_queue(this);
  set_reason("not opened");
}

UserWorkQueue::~UserWorkQueue() {
  unregister_queue(this);
  close_fd_and_portal();
}

std::string UserWorkQueue::status_reason() const {
  std::lock_guard<std::mutex> lock(reason_mu_);
  return status_reason_;
}

void UserWorkQueue::set_reason(const std::string& why) {
  std::lock_guard<std::mutex> lock(reason_mu_);
  status_reason_ = why;
}

void UserWorkQueue::disable(const std::string& why, int err, bool quiet) {
  if (err) last_errno_ = err;
  if (state_ == State::Open) {
    state_ = State::Disabled;
    quiet_.store(quiet, std::memory_order_relaxed);
  }
  set_reason(why);
}

void UserWorkQueue::mark_unhealthy(const std::string& why, bool quiet) {
  bool was = unhealthy_.exchange(true);
  if (!was) {
    quiet_.store(quiet, std::memory_order_relaxed);
    set_reason(why);
  }
}

bool UserWorkQueue::forked() const { return fork_child_.load(std::memory_order_relaxed); }

void UserWorkQueue::on_fork_child() {
  // Runs in the child right after fork(), single-threaded. The portal is not mapped here
  // (idxd sets VM_DONTCOPY; stand-in mappings got MADV_DONTFORK), so only forget it. Closing
  // the inherited fd keeps the parent's drain() effective: the kernel drains on the LAST
  // release of the file, which a child holding a copy would postpone.
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
  portal_ = nullptr;
  // The probe's record is not mapped here either (its arena is MADV_DONTFORK), and destroying
  // the arena would take a lock another thread may have held at fork(): forget it (a leak in the
  // child only); a reopen() probes with a fresh one.
  if (probe_record_) {
    static auto* forgotten = new std::vector<std::shared_ptr<CompletionArena>>();
    forgotten->push_back(std::move(probe_record_));
  }
  fork_child_.store(true, std::memory_order_relaxed);
  if (state_ == State::Open) state_ = State::Disabled;
}

void UserWorkQueue::release_off_thread() {
  void* portal = nullptr;
  if (portal_ && !forked() && getpid() == owner_pid_) portal = const_cast<uint8_t*>(portal_);
  QueueReaper::release_file(fd_, portal, portal ? kPortalSize : 0, std::move(probe_record_));
  fd_ = -1;
  portal_ = nullptr;
}

void UserWorkQueue::close_fd_and_portal() {
  if (portal_) {
    // Never unmap in a process that does not own the mapping (raw clone without atfork).
    if (!forked() && getpid() == owner_pid_) munmap(const_cast<uint8_t*>(portal_), kPortalSize);
    portal_ = nullptr;
  }
  if (fd_ >= 0) {
    ::close(fd_);  // Linux releases the fd even when close reports EINTR; never retry
    fd_ = -1;
  }
}

OpenResult UserWorkQueue::check_sysfs_states(bool* unreadable) const {
  OpenResult r;
  r.ok = true;
  std::string s;
  if (unreadable) *unreadable = false;
  if (!config_.device_state_path.empty()) {
    if (!read_state_file(config_.device_state_path, &s)) {
      if (unreadable) *unreadable = true;
      r.ok = false;
      r.code = OpenErrorCode::DeviceNotEnabled;
      r.err = errno;
      r.reason = "cannot read device state " + config_.device_state_path + ": " + errno_text(errno);
      return r;
    }
    if (s != "enabled") {
      r.ok = false;
      r.code = OpenErrorCode::DeviceNotEnabled;
      r.reason = "device state is '" + s + "' (" + config_.device_state_path + ")";
      return r;
    }
  }
  if (!config_.wq_state_path.empty()) {
    if (!read_state_file(config_.wq_state_path, &s)) {
      if (unreadable) *unreadable = true;
      r.ok = false;
      r.code = OpenErrorCode::QueueNotEnabled;
      r.err = errno;
      r.reason = "cannot read queue state " + config_.wq_state_path + ": " + errno_text(errno);
      return r;
    }
    if (s != "enabled") {
      r.ok = false;
      r.code = OpenErrorCode::QueueNotEnabled;
      r.reason = "queue state is '" + s + "' (" + config_.wq_state_path + ")";
      return r;
    }
  }
  return r;
}

OpenResult UserWorkQueue::open() {
  OpenResult r = open_or_reuse();
  open_result_ = r;
  if (r.ok) set_reason("");
  else set_reason(r.reason);
  return r;
}

OpenResult UserWorkQueue::open_or_reuse() {
  if (state_ == State::Open && !forked()) return open_result_;
  if (state_ != State::Closed) close_fd_and_portal();
  state_ = State::Closed;

  OpenResult st = check_sysfs_states();
  if (!st.ok) return st;

  const std::string& path = config_.device_path;
  int fd;
  do {
    fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC | O_NONBLOCK);
  } while (fd < 0 && errno == EINTR);
  if (fd < 0) {
    last_errno_ = errno;
    return classify_open_errno(errno, path, config_.info.mode);
  }
  // A regular file (a mistyped DMACOPY_DEV_ROOT, a copied fixture tree) would take the probe
  // descriptor, and with it a heap address, as file contents: refuse anything but a character
  // device (or the FIFO that tests stand in with).
  struct stat node;
  if (::fstat(fd, &node) != 0 ||
      !(S_ISCHR(node.st_mode) || S_ISFIFO(node.st_mode) || (config_.allow_regular_file && S_ISREG(node.st_mode)))) {
    ::close(fd);
    OpenResult f;
    f.ok = false;
    f.code = OpenErrorCode::NotCharDevice;
    f.reason = path + " is not a character device";
    return f;
  }

  OpenResult r;
  const WqMode mode = config_.info.mode;
  const CpuFeatures cpu = cpu_features();
  const bool have_insn = mode == WqMode::Dedicated ? cpu.movdir64b : (cpu.enqcmd && kernel_enables_enqcmd());
  const PortalInstruction want = mode == WqMode::Dedicated ? PortalInstruction::Movdir64b : PortalInstruction::Enqcmd;
  auto fail = [&](OpenErrorCode code, int err, std::string reason) {
    if (err) last_errno_ = err;
    OpenResult f = r;
    f.ok = false;
    f.code = code;
    f.err = err;
    f.reason = std::move(reason);
    return f;
  };

  // The portal is mapped whenever the configuration allows it, even if the CPU then cannot
  // use it: mmap_errno tells `dmacopy info` whether CAP_SYS_RAWIO is the missing piece.
  void* map = MAP_FAILED;
  if (config_.submission == SubmissionPath::Write) {
    r.path = SubmissionPath::Write;
  } else {
    map = mmap(nullptr, kPortalSize, PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, 0);
    if (map == MAP_FAILED) {
      int e = errno;
      r.mmap_errno = e;
      std::string why = "mmap of the portal failed: " + errno_text(e);
      if (config_.submission == SubmissionPath::Portal) {
        ::close(fd);
        return fail(OpenErrorCode::PortalUnavailable, e, "portal submission forced, but " + why);
      }
      r.path = SubmissionPath::Write;
    } else if (!have_insn) {
      munmap(map, kPortalSize);
      map = MAP_FAILED;
      std::string why = std::string("the CPU lacks ") + needed_instruction_name(mode) +
                        " (effective CPU features: " + cpu.describe() + ")";
      if (mode == WqMode::Shared && cpu.enqcmd && !kernel_enables_enqcmd())
        why = "the kernel does not enable ENQCMD (no 'enqcmd' flag in /proc/cpuinfo: no IOMMU SVA support)";
      if (config_.submission == SubmissionPath::Portal) {
        ::close(fd);
        return fail(OpenErrorCode::PortalInstructionMissing, 0,
                    std::string("portal submission forced for a ") +
                        (mode == WqMode::Dedicated ? "dedicated" : "shared") + " queue, but " + why);
      }
      r.path = SubmissionPath::Write;
    } else {
      // Mirror idxd's VM_DONTCOPY for any node (stand-ins too): a child never has the mapping.
      madvise(map, kPortalSize, MADV_DONTFORK);
      r.path = SubmissionPath::Portal;
      r.instruction = want;
    }
  }

  // Baselines for healthy(): a software error the device already reports, and its SWERR words.
  {
    pollfd pfd{fd, POLLIN, 0};
    r.swerr_at_open = ::poll(&pfd, 1, 0) > 0 && (pfd.revents & POLLIN);
    swerr_at_open_ = r.swerr_at_open;
    have_errors_baseline_ =
        !config_.device_errors_path.empty() && read_state_file(config_.device_errors_path, &errors_baseline_);
    next_errors_check_ns_ = 0;
  }

  fd_ = fd;
  portal_ = map == MAP_FAILED ? nullptr : static_cast<volatile uint8_t*>(map);
  path_ = r.path;
  insn_ = r.instruction;
  owner_pid_ = getpid();
  fork_child_.store(false, std::memory_order_relaxed);
  unhealthy_.store(false, std::memory_order_relaxed);
  quiet_.store(false, std::memory_order_relaxed);
  next_sysfs_check_ns_.store(0, std::memory_order_relaxed);
  portal_line_.store(0, std::memory_order_relaxed);
  submitted_ = 0;
  write_calls_ = 0;
  last_errno_ = 0;
  state_ = State::Open;

  if (config_.probe) {
    OpenResult p = run_probe();
    if (!p.ok) {
      // Releasing the file makes the kernel drain the queue, so the probe record cannot be
      // written late. But that release waits for the device, with no timeout (forever on a
      // wedged one), and open() runs on the caller's thread (the JavaScript thread, in
      // openEngine()): release on a thread of its own, keeping the record until it returned.
      release_off_thread();
      state_ = State::Closed;
      OpenResult f = fail(p.code, p.err, p.reason);
      f.probe_status = p.probe_status;
      return f;
    }
    r.probe_status = p.probe_status;
  }
  r.ok = true;
  r.code = OpenErrorCode::None;
  return r;
}

OpenResult UserWorkQueue::run_probe() {
  OpenResult r;
  dsa_hw_desc desc;
  if (!probe_record_) probe_record_ = std::make_shared<CompletionArena>(1);  // see probe_record_
  prepare_completion(probe_record_->record(0));
  build_noop(&desc, probe_record_->record(0));  // NOOP, CRAV|RCR, 32-byte-aligned record
  submission_fence();                           // the zeroed record is visible before the device can write it

  const uint64_t timeout_ns = static_cast<uint64_t>(config_.probe_timeout_ms) * 1000000ull;
  const uint64_t deadline = monotonic_ns() + timeout_ns;
  for (;;) {
    SubmitStatus s = submit(desc);
    if (s == SubmitStatus::Accepted) break;
    if (s == SubmitStatus::Retry && monotonic_ns() < deadline) {
      sleep_us(50);
      continue;
    }
    r.ok = false;
    r.code = OpenErrorCode::ProbeSubmitFailed;
    r.err = last_errno_;
    r.reason = std::string("the NOOP probe could not be submitted (") +
               (s == SubmitStatus::Retry      ? "queue stayed full"
                : s == SubmitStatus::Disabled ? "queue disabled"
                                              : "error") +
               (last_errno_ ? ": " + errno_text(last_errno_) : std::string()) + ")" +
               (status_reason().empty() ? "" : ": " + status_reason());
    return r;
  }
  uint64_t now = monotonic_ns();
  uint8_t st = wait_for_status(&probe_record_->record(0)->status, now < deadline ? deadline - now : 0);
  if (st == 0) {
    r.ok = false;
    r.code = OpenErrorCode::ProbeTimeout;
    r.reason = "the NOOP probe did not complete within " + std::to_string(config_.probe_timeout_ms) + " ms";
    return r;
  }
  r.probe_status = st & DSA_COMP_STATUS_MASK;
  if (r.probe_status != DSA_COMP_SUCCESS) {
    char buf[160];
    std::snprintf(buf, sizeof buf, "the NOOP probe completed with status 0x%02x (raw 0x%02x)", r.probe_status, st);
    r.ok = false;
    r.code = OpenErrorCode::ProbeFailed;
    r.reason = buf;
    return r;
  }
  r.ok = true;
  return r;
}

SubmitStatus UserWorkQueue::submit(const dsa_hw_desc& desc) {
  SubmitStatus s = SubmitStatus::Accepted;
  submit_many(&desc, 1, &s);
  return s;
}

size_t UserWorkQueue::submit_many(const dsa_hw_desc* descs, size_t n, SubmitStatus* stopped) {
  SubmitStatus dummy;
  if (!stopped) stopped = &dummy;
  if (forked()) {
    set_reason(
        "this process is a fork() child of the queue's owner: inherited queues cannot submit "
        "(no PASID, the kernel refuses the fd); reopen() opens a fresh one");
    *stopped = SubmitStatus::Disabled;
    return 0;
  }
  if (state_ != State::Open || unhealthy_.load(std::memory_order_relaxed)) {
    if (state_ == State::Closed && status_reason().empty()) set_reason("queue is closed (drained); reopen() first");
    *stopped = SubmitStatus::Disabled;
    return 0;
  }
  if (n == 0) {
    *stopped = SubmitStatus::Accepted;
    return 0;
  }
  if (path_ == SubmissionPath::Portal) {
    for (size_t i = 0; i < n; ++i) {
      SubmitStatus s = submit_portal(descs[i]);
      if (s != SubmitStatus::Accepted) {
        *stopped = s;
        return i;
      }
    }
    *stopped = SubmitStatus::Accepted;
    return n;
  }
  return submit_write(descs, n, stopped);
}

SubmitStatus UserWorkQueue::submit_portal(const dsa_hw_desc& desc) {
  // Rotate through the 64 lines of the portal page (DML get_portal_ptr; SPDK per-channel offsets).
  auto line = [this] {
    uint32_t k = portal_line_.fetch_add(1, std::memory_order_relaxed) & 63u;
    return portal_ + (static_cast<size_t>(k) << 6);
  };
  if (insn_ == PortalInstruction::Movdir64b) {
    movdir64b(line(), &desc);  // open() checked cpu_features().movdir64b
    ++submitted_;
    return SubmitStatus::Accepted;
  }
  uint32_t tries = config_.enqcmd_retries ? config_.enqcmd_retries : 1;
  for (uint32_t i = 0; i < tries; ++i) {
    if (enqcmd(line(), &desc)) {  // open() checked cpu_features().enqcmd and the kernel flag
      ++submitted_;
      return SubmitStatus::Accepted;
    }
    cpu_relax();
  }
  return SubmitStatus::Retry;
}

ssize_t UserWorkQueue::do_write(const void* buf, size_t len) {
  ++write_calls_;
  if (config_.write_fn) return config_.write_fn(fd_, buf, len);
  return ::write(fd_, buf, len);
}

bool UserWorkQueue::finish_torn_descriptor(const uint8_t* rest, size_t len) {
  const uint64_t deadline = monotonic_ns() + static_cast<uint64_t>(config_.torn_write_timeout_ms) * 1000000ull;
  while (len > 0) {
    ssize_t r = do_write(rest, len);
    if (r > 0) {
      rest += r;
      len -= static_cast<size_t>(r);
      continue;
    }
    int e = r == 0 ? EAGAIN : errno;
    if (e == EINTR) continue;
    if (e != EAGAIN && e != EWOULDBLOCK) {
      last_errno_ = e;
      return false;
    }
    uint64_t now = monotonic_ns();
    if (now >= deadline) {
      last_errno_ = ETIMEDOUT;
      return false;
    }
    pollfd p{fd_, POLLOUT, 0};
    int ms = static_cast<int>((deadline - now + 999999) / 1000000);
    if (::poll(&p, 1, ms > 1 ? 1 : ms) > 0) sleep_us(50);  // writable yet refused: back off a little
  }
  return true;
}

size_t UserWorkQueue::submit_write(const dsa_hw_desc* descs, size_t n, SubmitStatus* stopped) {
  const uint8_t* bytes = reinterpret_cast<const uint8_t*>(descs);
  const size_t total = n * kDescSize;
  size_t done = 0;
  int interrupts = 0;
  *stopped = SubmitStatus::Accepted;
  submission_fence();  // zeroed records and descriptors are visible before the kernel submits them
  while (done < total) {
    ssize_t r = do_write(bytes + done, total - done);
    if (r > 0) {
      done += static_cast<size_t>(r);
      if (done > total) done = total;  // a broken write_fn; never trust it past the buffer
      size_t torn = done % kDescSize;
      if (torn) {
        // The node took part of a descriptor. idxd never does this (it accepts whole
        // descriptors); a stand-in might. The rest of that descriptor must follow, or the
        // stream is desynchronised for good.
        if (!finish_torn_descriptor(bytes + done, kDescSize - torn)) {
          disable("write() stopped inside a descriptor and the rest could not be sent (" + errno_text(last_errno_) +
                      "): the descriptor stream is torn; reopen() the queue",
                  last_errno_);
          submitted_ += done / kDescSize;
          *stopped = SubmitStatus::Disabled;
          return done / kDescSize;
        }
        done += kDescSize - torn;
      }
      continue;  // a partial write: idxd stopped at a descriptor it could not submit; the next
                 // call reports why (EAGAIN, EINVAL, ...) or continues
    }
    if (r == 0) {  // no progress and no error: treat as full
      *stopped = SubmitStatus::Retry;
      break;
    }
    int e = errno;
    if (e == EINTR && ++interrupts < 1000) continue;
    last_errno_ = e;
    if (e == EAGAIN || e == EWOULDBLOCK) {
      *stopped = SubmitStatus::Retry;  // shared queue full after the kernel's ENQCMDS retries
    } else if (e == EPERM) {
      disable(
          "write() refused with EPERM: the fd belongs to another address space (a fork() child using an "
          "inherited queue?); reopen() from this process",
          e);
      *stopped = SubmitStatus::Disabled;
    } else if (e == EIO || e == ENXIO || e == ENODEV || e == ESHUTDOWN || e == EBADF) {
      // The device file is gone (the queue's driver unbound, the device removed): what the queue
      // held has ended then. A queue disabled while still bound refuses nothing here (idxd's
      // write() has no state check: a dedicated queue drops the descriptor, a shared one answers
      // EAGAIN); the sysfs state check catches that case (check_sysfs_states). EBADF only says
      // the fd is gone, not what the device still runs.
      disable("write() failed with " + errno_text(e) + ": the queue or device is disabled", e, e != EBADF);
      *stopped = SubmitStatus::Disabled;
    } else {
      *stopped = SubmitStatus::Error;  // EINVAL (bad descriptor, e.g. misaligned record), EFAULT, ...
    }
    break;
  }
  size_t accepted = done / kDescSize;
  submitted_ += accepted;
  return accepted;
}

bool UserWorkQueue::healthy() {
  if (forked()) {
    set_reason("this process is a fork() child of the queue's owner; reopen() opens a fresh queue");
    return false;
  }
  if (state_ != State::Open) return false;
  if (unhealthy_.load(std::memory_order_relaxed)) return false;

  pollfd p{fd_, POLLIN, 0};
  int r;
  int tries = 0;
  do {
    r = ::poll(&p, 1, 0);
  } while (r < 0 && errno == EINTR && ++tries < 100);
  if (r < 0) {
    // poll() itself failed (ENOMEM, or signals all along): that says nothing about the queue.
    // Latching it would settle works the device may still be running; ask again next time.
    return true;
  }
  if (r > 0 && (p.revents & (POLLNVAL | POLLERR | POLLHUP))) {
    if (p.revents & POLLNVAL)
      mark_unhealthy(
          "the queue fd is no longer valid (POLLNVAL; kernels with 8dfa57aabff6 report this, via a "
          "-EPERM poll mask, to a process other than the opener)");
    else mark_unhealthy("poll() on the queue fd reported an error (revents 0x" + std::to_string(p.revents) + ")");
    return false;
  }
  // POLLIN alone is the device-wide software-error latch: take_device_error(), not health.

  if (!config_.wq_state_path.empty() || !config_.device_state_path.empty()) {
    uint64_t now = monotonic_ns();
    if (now >= next_sysfs_check_ns_.load(std::memory_order_relaxed)) {
      next_sysfs_check_ns_.store(now + static_cast<uint64_t>(config_.health_recheck_ms) * 1000000ull,
                                 std::memory_order_relaxed);
      bool unreadable = false;
      OpenResult st = check_sysfs_states(&unreadable);
      if (!st.ok && unreadable && st.err != ENOENT && st.err != ENOTDIR && st.err != ENODEV) {
        // A state file that could not be read (EMFILE in a process at its fd limit, ENOMEM) says
        // nothing about the queue: not latched, read again on the next check. A file that is
        // gone (ENOENT) is news: the queue left sysfs.
        next_sysfs_check_ns_.store(0, std::memory_order_relaxed);
        return true;
      }
      if (!st.ok) {
        // Read, and not "enabled": a disabled queue or a disabled or halted device holds nothing
        // more of ours. A state this code does not know proves nothing.
        const bool quiet =
            st.reason.find("'disabled'") != std::string::npos || st.reason.find("'halted'") != std::string::npos;
        mark_unhealthy(st.reason, quiet);
        return false;
      }
    }
  }
  return true;
}

bool UserWorkQueue::take_device_error() {
  if (forked() || state_ != State::Open || fd_ < 0) return false;
  bool fresh = false;
  // POLLIN: idxd's sw_err.valid, device-wide and sticky. Its first appearance is news; after
  // that only the 'errors' file can tell a newer error apart.
  if (!swerr_at_open_) {
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, 0) > 0 && (p.revents & POLLIN)) {
      swerr_at_open_ = true;
      fresh = true;
    }
  }
  // The 'errors' file is re-read at most every health_recheck_ms, as the state files are: the
  // poller asks every 100 us while descriptors are outstanding, and an open/read/close of a
  // sysfs file each time would cost a busy channel a few per cent of a core. A lost record waits
  // for its Drain far longer than this.
  const uint64_t now = monotonic_ns();
  if (have_errors_baseline_ && now >= next_errors_check_ns_) {
    next_errors_check_ns_ = now + static_cast<uint64_t>(config_.health_recheck_ms) * 1000000ull;
    std::string errs;
    if (read_state_file(config_.device_errors_path, &errs) && errs != errors_baseline_) {
      errors_baseline_ = errs;
      fresh = true;
    }
  }
  if (fresh)
    set_reason("the device reported a software error (device-wide: maybe another client's); checking with a Drain");
  return fresh;
}

void UserWorkQueue::drain() {
  bool had = fd_ >= 0 || portal_ != nullptr;
  close_fd_and_portal();
  State before = state_;
  state_ = State::Closed;
  if (before == State::Open && !unhealthy_.load(std::memory_order_relaxed)) set_reason("queue drained; reopen() first");
  else if (had && status_reason().empty()) set_reason("queue drained; reopen() first");
}

bool UserWorkQueue::reopen() {
  if (state_ != State::Closed || fd_ >= 0) drain();
  OpenResult r = open();
  return r.ok;
}

}  // namespace dmacopy
