// The one interface every DSA work queue implements: the software device (soft_device.*) and the
// real /dev/dsa queue (user_queue.*). Nothing above this interface knows which one it talks to
// (the split follows SPDK's idxd.c / idxd_user.c / idxd_kernel.c).
#pragma once

#include <linux/idxd.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace dmacopy {

enum class WqMode : uint8_t { Dedicated, Shared };

// What one submission attempt returned.
enum class SubmitStatus : uint8_t {
  Accepted,  // the descriptor was handed to the device (for a dedicated queue this proves nothing:
             // MOVDIR64B is a posted write; the caller must never exceed `size` in flight)
  Retry,     // shared queue full (ENQCMD ZF=1, write() EAGAIN): back off, then use the CPU
  Disabled,  // the queue is disabled or the device halted: stop using it
  Error,     // the submission path itself failed (errno in last_errno())
};

struct WqInfo {
  std::string name;  // "wq0.0" or "soft0.0"
  WqMode mode = WqMode::Dedicated;
  uint32_t size = 0;               // descriptors the queue holds (dedicated: the in-flight bound)
  uint64_t max_transfer_size = 0;  // bytes per descriptor
  bool cache_control = false;      // the device honours IDXD_OP_FLAG_CC (gen_cap bit 2)
};

class WorkQueue {
 public:
  virtual ~WorkQueue() = default;
  WorkQueue(const WorkQueue&) = delete;
  WorkQueue& operator=(const WorkQueue&) = delete;

  virtual const WqInfo& info() const = 0;

  // Submits one 64-byte descriptor. The descriptor memory may be reused as soon as this returns
  // (MOVDIR64B/ENQCMD/write() all copy it); the completion record it names must stay valid
  // until the device wrote it or drain() returned. The caller zeroes the record and fences
  // before calling (build helpers in dsa_hw.h do both).
  virtual SubmitStatus submit(const dsa_hw_desc& desc) = 0;

  // Submits up to n descriptors in order; returns how many were accepted and, when fewer than
  // n, the status of the first one that was not. The write() path sends them in one syscall.
  virtual size_t submit_many(const dsa_hw_desc* descs, size_t n, SubmitStatus* stopped) {
    for (size_t i = 0; i < n; ++i) {
      SubmitStatus s = submit(descs[i]);
      if (s != SubmitStatus::Accepted) {
        if (stopped) *stopped = s;
        return i;
      }
    }
    if (stopped) *stopped = SubmitStatus::Accepted;
    return n;
  }

  // Cheap health check the poller calls while descriptors are outstanding (sysfs queue and
  // device state, a fork child, a closed file). Returns false once the queue is disabled, halted
  // or unusable: a disabled queue completes nothing more that it held.
  virtual bool healthy() = 0;

  // Asked once healthy() returned false (or a submission said Disabled): true when the queue is
  // known to hold nothing more of ours, a queue disabled or a device halted as the kernel
  // reports it (a WQ disable completes only after what the queue held has ended); false when it
  // cannot tell, such as a descriptor stream torn by a partial write or a file no longer valid:
  // then what it holds may still run, and the poller treats the queue like one whose Drain never
  // completed (its works end wedged, its records stay until the release returned).
  virtual bool quiet() const { return true; }

  // True once per new software error latched on the DEVICE (poll() POLLIN, the 'errors' file).
  // The latch is device-wide: the error may be another client's. The poller finds out whether
  // it was this queue's with an in-band Drain (see completion_poller.h), never from this alone.
  virtual bool take_device_error() { return false; }

  // The release of the queue's file: afterwards it is unusable until reopen() succeeds. On real
  // hardware the kernel drains only on the LAST release of the file, without a timeout, so this
  // may block for as long as the device takes (forever on a wedged device), and it returns at
  // once WITHOUT draining while another reference exists (a fork child, a dup). So nothing may
  // conclude from its return that the device is quiet; the poller learns that from a Drain
  // descriptor and calls this only off its own thread (queue_reaper.h).
  virtual void drain() = 0;

  // Makes a drained or unhealthy queue usable again, if it can be. Returns false if not.
  virtual bool reopen() = 0;

  // errno of the last failed system call, 0 if none.
  virtual int last_errno() const { return 0; }

 protected:
  WorkQueue() = default;
};

}  // namespace dmacopy
