// The real DSA work queue: a user-type idxd queue opened through its character device
// /dev/dsa/wqD.Q (kernel drivers/dma/idxd/cdev.c). Plain C++17, no Node-API.
//
// open():   open(O_RDWR|O_CLOEXEC|O_NONBLOCK), then (unless forced to write()) mmap the 4 KiB
//           portal (PROT_WRITE, MAP_SHARED|MAP_POPULATE). Since INTEL-SA-01084 (2024) mmap
//           needs CAP_SYS_RAWIO (EPERM otherwise); any mmap failure falls back to write().
//           The portal is used only when the CPU has the instruction the queue mode needs
//           (dedicated: MOVDIR64B, shared: ENQCMD). The fd stays open (poll() health checks,
//           write() submission, and the kernel drains the queue when it is released).
//           A NOOP probe then proves the queue completes work before it is trusted.
// submit(): portal: sfence + MOVDIR64B/ENQCMD at a rotating 64-byte offset of the portal page;
//           write(): sfence + write(fd, descs, 64*n) (several descriptors per syscall; partial
//           writes continue; EAGAIN -> Retry; EINTR retried; EPERM -> Disabled).
// drain():  munmap the portal and close the fd; the kernel drains in-flight descriptors on
//           release (idxd_file_dev_release). Unusable until reopen().
// fork():   a child cannot use the parent's queue (VM_DONTCOPY portal, no PASID, and kernels
//           with 8dfa57aabff6 refuse write/poll/mmap from another mm). A pthread_atfork child
//           handler closes the inherited fd in the child (so the parent's drain() is not
//           defeated by a child holding the file open) and marks the queue: submit() returns
//           Disabled there, and reopen() in the child opens a fresh fd.
//
// Thread-safety: one submitter at a time per queue; healthy() may run concurrently with
// submit(). open/drain/reopen must not race with anything else on the same queue.
// O_NONBLOCK has no effect on the idxd cdev (its write() never sleeps on the queue); it makes a
// stand-in node (a FIFO in tests) report EAGAIN instead of blocking the submitter.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "completion_arena.h"
#include "work_queue.h"

namespace dmacopy {

enum class SubmissionPath : uint8_t { Auto, Portal, Write };
enum class PortalInstruction : uint8_t { None, Movdir64b, Enqcmd };

const char* to_string(SubmissionPath p);
const char* to_string(PortalInstruction i);

// Everything discovery read from sysfs and /dev for one queue, plus options.
struct UserQueueConfig {
  std::string device_path;         // "/dev/dsa/wq0.0" (under DMACOPY_DEV_ROOT in tests)
  WqInfo info;                     // name, mode, size, max_transfer_size,
                                   // cache_control (device gen_cap bit 2)
  std::string wq_state_path;       // optional: ".../wq0.0/state"; "" = no sysfs checks
  std::string device_state_path;   // optional: ".../dsa0/state"
  std::string device_errors_path;  // optional: ".../dsa0/errors" (SWERR words); a change after
                                   // open marks the queue unhealthy (see healthy())
  SubmissionPath submission = SubmissionPath::Auto;
  bool probe = true;  // submit a NOOP at open and wait for its completion
  uint32_t probe_timeout_ms = 500;
  uint32_t health_recheck_ms = 5;  // sysfs state files are re-read at most this often
  uint32_t enqcmd_retries = 8;     // ENQCMD attempts per submit before returning Retry
  // A write() that stops inside a descriptor (never seen from idxd, which accepts whole
  // descriptors, but possible on a stand-in node) is completed within this time; otherwise the
  // byte stream is torn and the queue is disabled until reopen().
  uint32_t torn_write_timeout_ms = 100;

  // Test seam: a regular file may stand in for the device node (mapped as the portal). Off in
  // production, where a regular file would receive the probe descriptor as file contents.
  bool allow_regular_file = false;

  // Test seam: replaces ::write() for the write() path (nullptr/empty = the real syscall).
  std::function<ssize_t(int fd, const void* buf, size_t len)> write_fn;
};

// Why open()/reopen() failed, as a code (with errno in OpenResult::err): lib/ turns code and errno
// into reason and remedy text.
enum class OpenErrorCode : uint8_t {
  None,
  NoNode,                    // ENOENT/ENOTDIR: no /dev/dsa/wqD.Q
  Permission,                // EACCES (or EPERM from open): node permissions
  Busy,                      // EBUSY: dedicated queue already opened by another process
  NoSva,                     // EOPNOTSUPP/EINVAL/ENODEV/ENXIO at open: no SVA/PASID bind
  OpenFailed,                // any other open() errno
  NotCharDevice,             // the node opened, but is a regular file or directory (a wrong dev root)
  QueueNotEnabled,           // sysfs wq state is not "enabled"
  DeviceNotEnabled,          // sysfs device state is not "enabled" (disabled, halted)
  PortalUnavailable,         // submission=portal forced, but mmap failed (EPERM: no CAP_SYS_RAWIO)
  PortalInstructionMissing,  // submission=portal forced, but the CPU lacks MOVDIR64B/ENQCMD
  ProbeSubmitFailed,         // the NOOP probe could not be submitted
  ProbeTimeout,              // the NOOP probe did not complete before probe_timeout_ms
  ProbeFailed,               // the NOOP probe completed with an error status
};
const char* to_string(OpenErrorCode c);

struct OpenResult {
  bool ok = false;
  OpenErrorCode code = OpenErrorCode::None;
  int err = 0;  // errno of the failing call (0 for probe/state failures)
  // One line, what went wrong (facts only: core diagnostics and tests). Advice for operators
  // lives in lib/ (the remedy catalogue), keyed by code and err; JavaScript never gets this.
  std::string reason;
  // What is in use on success (and what was decided before a probe failure):
  SubmissionPath path = SubmissionPath::Auto;  // Portal or Write once decided
  PortalInstruction instruction = PortalInstruction::None;
  int mmap_errno = 0;        // why the portal was not mapped (0: mapped or not tried)
  uint8_t probe_status = 0;  // completion status byte of the probe (masked), 0 if none
  // poll() already reported a software error at open. idxd reports the DEVICE's last SWERR
  // (sw_err.valid stays set until the next error), so an old error from any client would
  // otherwise make this queue look broken forever: POLLIN is then not used by healthy(), and
  // only a change of the device 'errors' file (device_errors_path) signals a new error.
  bool swerr_at_open = false;
};

// Pure errno -> code (and a factual reason) for open() of the device node (exposed for tests).
OpenResult classify_open_errno(int err, const std::string& device_path, WqMode mode);

class UserWorkQueue : public WorkQueue {
 public:
  explicit UserWorkQueue(UserQueueConfig config);
  ~UserWorkQueue() override;

  // Opens the node, maps the portal or chooses write(), probes. Idempotent while open.
  OpenResult open();
  const OpenResult& last_open_result() const { return open_result_; }

  // WorkQueue
  const WqInfo& info() const override { return config_.info; }
  SubmitStatus submit(const dsa_hw_desc& desc) override;
  size_t submit_many(const dsa_hw_desc* descs, size_t n, SubmitStatus* stopped) override;
  bool healthy() override;
  bool quiet() const override { return quiet_.load(std::memory_order_relaxed); }
  bool take_device_error() override;
  void drain() override;
  bool reopen() override;  // drain() if needed, then open(); details in last_open_result()
  int last_errno() const override { return last_errno_; }

  bool is_open() const { return fd_ >= 0; }
  int fd() const { return fd_; }                 // diagnostics and tests
  SubmissionPath path() const { return path_; }  // Portal or Write while open
  PortalInstruction instruction() const { return insn_; }
  // Why the queue is disabled, closed or unhealthy ("" if it is none of these).
  std::string status_reason() const;
  // Descriptors accepted since open (both paths), and write() syscalls made.
  uint64_t submitted() const { return submitted_; }
  uint64_t write_calls() const { return write_calls_; }
  const UserQueueConfig& config() const { return config_; }

  // Called by the pthread_atfork child handler (internal).
  void on_fork_child();

 private:
  enum class State : uint8_t { Closed, Open, Disabled };

  OpenResult open_or_reuse();
  // `unreadable` (optional) tells a state file that could not be read from one that was read and
  // said something else than "enabled".
  OpenResult check_sysfs_states(bool* unreadable = nullptr) const;
  OpenResult run_probe();
  void close_fd_and_portal();
  // The same, on a thread of its own (QueueReaper::release_file), keeping the probe record alive
  // until the release returned.
  void release_off_thread();
  bool forked() const;
  // `quiet`: the cause proves the queue holds nothing more of ours (see WorkQueue::quiet()).
  void disable(const std::string& why, int err, bool quiet = false);
  void mark_unhealthy(const std::string& why, bool quiet = false);
  void set_reason(const std::string& why);
  SubmitStatus submit_portal(const dsa_hw_desc& desc);
  size_t submit_write(const dsa_hw_desc* descs, size_t n, SubmitStatus* stopped);
  ssize_t do_write(const void* buf, size_t len);
  bool finish_torn_descriptor(const uint8_t* rest, size_t len);

  UserQueueConfig config_;
  OpenResult open_result_;
  std::atomic<State> state_{State::Closed};  // read by healthy() while submit() may disable
  int fd_ = -1;
  volatile uint8_t* portal_ = nullptr;
  SubmissionPath path_ = SubmissionPath::Auto;
  PortalInstruction insn_ = PortalInstruction::None;
  std::atomic<uint32_t> portal_line_{0};
  pid_t owner_pid_ = 0;
  std::atomic<bool> fork_child_{false};
  std::atomic<bool> unhealthy_{false};
  std::atomic<bool> quiet_{false};  // see quiet(); meaningful once disabled or unhealthy
  std::atomic<uint64_t> next_sysfs_check_ns_{0};
  bool swerr_at_open_ = false;
  bool have_errors_baseline_ = false;
  uint64_t next_errors_check_ns_ = 0;  // take_device_error() runs on the poller thread only
  std::string errors_baseline_;
  mutable std::mutex reason_mu_;
  std::string status_reason_;
  std::atomic<int> last_errno_{0};
  uint64_t submitted_ = 0;
  uint64_t write_calls_ = 0;
  // The NOOP probe's record, in an arena of its own like every record the device writes (whole
  // pages, locked, not inherited by a fork() child, which would write-protect them here). Made
  // by the first probe, and again by the probe after one that failed: the queue's file is then
  // released on a thread of its own (the release may take as long as the device does), which
  // takes the record along, since it must outlive that release, whatever becomes of this object.
  std::shared_ptr<CompletionArena> probe_record_;
};

}  // namespace dmacopy
