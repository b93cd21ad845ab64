// Intel DSA hardware layout and descriptor building, on top of the real <linux/idxd.h> structs.
// Everything the device reads or writes is built here, so the layout rules (sizes, offsets,
// flags, record alignment, fences) live in one place and are checked at compile time.
#pragma once

#include <linux/idxd.h>

#include <cstddef>
#include <cstdint>

namespace dmacopy {

// The descriptor and record layout the device expects (DSA spec / <linux/idxd.h>).
static_assert(sizeof(dsa_hw_desc) == 64, "dsa_hw_desc must be 64 bytes");
static_assert(sizeof(dsa_completion_record) == 32, "dsa_completion_record must be 32 bytes");
static_assert(offsetof(dsa_hw_desc, completion_addr) == 8, "completion_addr offset");
static_assert(offsetof(dsa_hw_desc, src_addr) == 16, "src_addr offset");
static_assert(offsetof(dsa_hw_desc, desc_list_addr) == 16, "desc_list_addr offset");
static_assert(offsetof(dsa_hw_desc, dst_addr) == 24, "dst_addr offset");
static_assert(offsetof(dsa_hw_desc, xfer_size) == 32, "xfer_size offset");
static_assert(offsetof(dsa_hw_desc, desc_count) == 32, "desc_count offset");
static_assert(offsetof(dsa_hw_desc, int_handle) == 36, "int_handle offset");
static_assert(offsetof(dsa_hw_desc, op_specific) == 40, "op_specific offset");
static_assert(offsetof(dsa_completion_record, status) == 0, "status offset");
static_assert(offsetof(dsa_completion_record, result) == 1, "result offset");
static_assert(offsetof(dsa_completion_record, bytes_completed) == 4, "bytes_completed offset");
static_assert(offsetof(dsa_completion_record, fault_addr) == 8, "fault_addr offset");

constexpr size_t kCompletionAlign = 32;  // misaligned records fail with DSA_COMP_CRA_ALIGN
constexpr uint32_t kMemmoveFlags = IDXD_OP_FLAG_CRAV | IDXD_OP_FLAG_RCR;  // a record for every descriptor

// Zeroes all 32 bytes of a record: the device only writes what an operation defines, and a
// stale status from the previous use of the slot would read as an instant completion.
void prepare_completion(dsa_completion_record* cr);

// Makes the record zeroing and descriptor stores globally visible before the submission
// instruction (MOVDIR64B is weakly ordered). Call once before each submit / submit_many.
inline void submission_fence() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_sfence();
#else
  __atomic_thread_fence(__ATOMIC_SEQ_CST);
#endif
  __asm__ __volatile__("" ::: "memory");
}

// Memmove of len bytes (len <= UINT32_MAX and <= the queue's max_transfer_size: the caller
// splits; see descriptors_for / piece_limit). CRAV|RCR always; CC when the device honours it.
void build_memmove(dsa_hw_desc* d, void* dst, const void* src, uint32_t len, dsa_completion_record* cr,
                   bool cache_control);

// NOOP with a completion record: used to probe that a queue accepts work at all.
void build_noop(dsa_hw_desc* d, dsa_completion_record* cr);

// Drain with a completion record: completes only after every descriptor submitted before it on
// the queue (same PASID on a shared queue) completed. It waits; it aborts nothing. Flags beyond
// CRAV|RCR stay clear: the Readback and Suppress-Drain flags do not apply to user work.
void build_drain(dsa_hw_desc* d, dsa_completion_record* cr);

// The status byte as the device published it: an acquire load, so the rest of the record (and
// the data the operation wrote) is visible once a non-zero status is seen.
inline uint8_t load_status(const dsa_completion_record* cr) {
  return __atomic_load_n(reinterpret_cast<const volatile uint8_t*>(cr), __ATOMIC_ACQUIRE);
}

// Publishes a status with release semantics: everything written before (data, other record
// fields) is visible to a reader that sees the status. Used by the software device.
inline void store_status(dsa_completion_record* cr, uint8_t status) {
  __atomic_store_n(reinterpret_cast<volatile uint8_t*>(cr), status, __ATOMIC_RELEASE);
}

// Status codes newer than the installed <linux/idxd.h> (its enum dsa_completion_status ends at
// DSA_COMP_TRANSLATION_FAIL 0x1c): newer uapi headers add DSA_COMP_DRAIN_EVL (0x26, a drain that
// found event-log entries) and DSA_COMP_BATCH_EVL_ERR (0x27). Enum values cannot be tested with
// #ifdef, so they are defined here under our own names with the kernel's values.
constexpr uint8_t kDsaCompDrainEvl = 0x26;     // DSA_COMP_DRAIN_EVL
constexpr uint8_t kDsaCompBatchEvlErr = 0x27;  // DSA_COMP_BATCH_EVL_ERR

struct CompletionInfo {
  uint8_t status = 0;            // status & DSA_COMP_STATUS_MASK (never compare the raw byte)
  uint8_t raw_status = 0;        // the byte as written: for classify_memmove_status only
  bool fault_on_write = false;   // status & DSA_COMP_STATUS_WRITE
  uint8_t result = 0;            // memmove: 0 = ran forward, else backward (do not advance)
  uint32_t bytes_completed = 0;  // batch: descriptors completed
  uint64_t fault_addr = 0;
};

// Decodes a record whose status was already seen non-zero (load_status) by this thread.
CompletionInfo decode_completion(const dsa_completion_record* cr);

// "SUCCESS", "PAGE_FAULT_NOBOF", "DRAIN_EVL", ... ; "UNKNOWN" for codes no header names.
const char* status_name(uint8_t status);

// What a memmove's record means for the piece. Only the exact byte DSA_COMP_SUCCESS is success
// (bit 7, "fault on write", is defined for page-fault statuses only, so 0x81 is not a success);
// DSA_COMP_PAGE_FAULT_NOBOF with or without bit 7 is a partial completion to continue; every
// other code (errors, codes this build does not know, codes not valid for a memmove) is an
// error: the device may have left anything in the destination, the CPU redoes the piece.
enum class CompletionClass : uint8_t { Success, PageFault, Error };
CompletionClass classify_memmove_status(uint8_t raw_status);

// The largest xfer_size one descriptor may carry on a queue: its max_transfer_size, never
// above the 32-bit xfer_size field (a 0 limit means "unknown": the field limit).
uint32_t piece_limit(uint64_t max_transfer_size);

// Descriptors needed for len bytes on a queue with this max_transfer_size (0 for len 0).
uint64_t descriptors_for(uint64_t len, uint64_t max_transfer_size);

// Continues a memmove after a partial completion (PAGE_FAULT_NOBOF): the remainder is
// xfer_size - bytes_completed; src/dst advance only when the copy ran forward (result 0).
// The caller builds the next descriptor from it (len 0: nothing left).
struct MemmoveRemainder {
  uint64_t src = 0, dst = 0;
  uint32_t len = 0;
};
MemmoveRemainder memmove_remainder(uint64_t src, uint64_t dst, uint32_t xfer_size, const CompletionInfo& c);

// The byte the CPU touches to fault in the page that holds c.fault_addr before a continuation:
// the first byte of the memmove's destination (write fault) or source (read fault) that lies on
// that page, so the page is made present (page granularity, like accel-config) while only the
// piece's own bytes are ever accessed. 0 when the page holds none of them (a bogus fault_addr):
// nothing is touched. page_size must be a power of two.
uint64_t fault_touch_address(uint64_t src, uint64_t dst, uint32_t xfer_size, const CompletionInfo& c,
                             uint64_t page_size);

}  // namespace dmacopy
