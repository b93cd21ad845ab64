// Completion records for one queue: a fixed set of slots (the queue's in-flight window), one
// 32-byte-aligned dsa_completion_record each, in one contiguous aligned allocation.
// A slot is released only once its record was seen written, or once the queue that owned it
// was released (the poller settles a queue with an in-band Drain, or retires the queue and this
// whole arena together when a descriptor never completes): a record is never reused while the
// device may still write it. The ownership audit below checks exactly that.
// The record memory cannot fault when the device writes it (on DSA 1.0 a fault while writing a
// completion record loses the record and raises SWERR): it is its own anonymous mapping, shared
// with no other heap object, pre-faulted (MAP_POPULATE, then every page written) and mlock()ed
// where the process may (unprivileged processes have a small RLIMIT_MEMLOCK: EPERM / ENOMEM /
// EAGAIN from mlock are tolerated, remembered in lock_errno() and counted in lock_failures()).
// Not thread-safe: one owner (the poller) uses it.
#pragma once

#include <linux/idxd.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

namespace dmacopy {

class CompletionArena {
 public:
  static constexpr uint32_t kNoSlot = UINT32_MAX;

  explicit CompletionArena(uint32_t capacity);
  ~CompletionArena();
  CompletionArena(const CompletionArena&) = delete;
  CompletionArena& operator=(const CompletionArena&) = delete;

  uint32_t capacity() const { return capacity_; }
  // The mapping that holds the records (page-aligned, a whole number of pages).
  const void* memory() const { return records_; }
  size_t memory_bytes() const { return bytes_; }
  bool locked() const { return lock_errno_ == 0; }
  int lock_errno() const { return lock_errno_; }  // 0: mlock succeeded
  // Arenas in this process whose mlock failed (each still pre-faulted).
  static uint64_t lock_failures();
  uint32_t free_count() const { return static_cast<uint32_t>(free_.size()); }
  uint32_t in_use_count() const { return capacity_ - free_count(); }

  // A free slot with its record zeroed, or kNoSlot when every slot is in use or buried.
  uint32_t acquire();
  // The device finished with the slot (its status was seen non-zero): reusable at once.
  void release(uint32_t slot);

  // Ownership audit (what the fault campaign counts as "records reused while owned"): the poller
  // says which destination a slot's descriptor writes; a device about to write a record asks
  // audit_record_write() whether the record still belongs to that descriptor. A record released
  // (or reacquired for another descriptor) while the device could still write it fails the audit.
  void set_owner(uint32_t slot, uint64_t dst) { owners_[slot].store(dst, std::memory_order_release); }
  // Called by a (software) device right before it writes the record of a descriptor writing dst.
  // Returns false, and counts it, when the record is an arena's and not owned by that descriptor.
  static bool audit_record_write(const void* record, uint64_t dst);
  static uint64_t reused_while_owned();  // audit failures in this process

  dsa_completion_record* record(uint32_t slot) { return &records_[slot]; }
  const dsa_completion_record* record(uint32_t slot) const { return &records_[slot]; }
  uint32_t slot_of(const dsa_completion_record* cr) const { return static_cast<uint32_t>(cr - records_); }

 private:
  uint32_t capacity_;
  size_t bytes_ = 0;
  int lock_errno_ = 0;
  dsa_completion_record* records_;
  std::vector<uint32_t> free_;                       // stack of free slots
  std::unique_ptr<std::atomic<uint64_t>[]> owners_;  // per slot: the owning descriptor's dst, 0 = free
};

}  // namespace dmacopy
