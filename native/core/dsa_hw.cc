#include "dsa_hw.h"

#include <cstring>

namespace dmacopy {

void prepare_completion(dsa_completion_record* cr) { std::memset(static_cast<void*>(cr), 0, sizeof(*cr)); }

void build_memmove(dsa_hw_desc* d, void* dst, const void* src, uint32_t len, dsa_completion_record* cr,
                   bool cache_control) {
  std::memset(static_cast<void*>(d), 0, sizeof(*d));  // every reserved field must be zero
  d->opcode = DSA_OPCODE_MEMMOVE;
  d->flags = kMemmoveFlags | (cache_control ? IDXD_OP_FLAG_CC : 0);
  d->completion_addr = reinterpret_cast<uintptr_t>(cr);
  d->src_addr = reinterpret_cast<uintptr_t>(src);
  d->dst_addr = reinterpret_cast<uintptr_t>(dst);
  d->xfer_size = len;
}

void build_noop(dsa_hw_desc* d, dsa_completion_record* cr) {
  std::memset(static_cast<void*>(d), 0, sizeof(*d));
  d->opcode = DSA_OPCODE_NOOP;
  d->flags = IDXD_OP_FLAG_CRAV | IDXD_OP_FLAG_RCR;
  d->completion_addr = reinterpret_cast<uintptr_t>(cr);
}

void build_drain(dsa_hw_desc* d, dsa_completion_record* cr) {
  std::memset(static_cast<void*>(d), 0, sizeof(*d));
  d->opcode = DSA_OPCODE_DRAIN;
  d->flags = IDXD_OP_FLAG_CRAV | IDXD_OP_FLAG_RCR;
  d->completion_addr = reinterpret_cast<uintptr_t>(cr);
}

CompletionInfo decode_completion(const dsa_completion_record* cr) {
  CompletionInfo c;
  uint8_t raw = load_status(cr);
  c.raw_status = raw;
  c.status = raw & DSA_COMP_STATUS_MASK;
  c.fault_on_write = (raw & DSA_COMP_STATUS_WRITE) != 0;
  c.result = cr->result;
  c.bytes_completed = cr->bytes_completed;
  c.fault_addr = cr->fault_addr;
  return c;
}

const char* status_name(uint8_t status) {
  switch (status & DSA_COMP_STATUS_MASK) {
    case DSA_COMP_NONE: return "NONE";
    case DSA_COMP_SUCCESS: return "SUCCESS";
    case DSA_COMP_SUCCESS_PRED: return "SUCCESS_PRED";
    case DSA_COMP_PAGE_FAULT_NOBOF: return "PAGE_FAULT_NOBOF";
    case DSA_COMP_PAGE_FAULT_IR: return "PAGE_FAULT_IR";
    case DSA_COMP_BATCH_FAIL: return "BATCH_FAIL";
    case DSA_COMP_BATCH_PAGE_FAULT: return "BATCH_PAGE_FAULT";
    case DSA_COMP_DR_OFFSET_NOINC: return "DR_OFFSET_NOINC";
    case DSA_COMP_DR_OFFSET_ERANGE: return "DR_OFFSET_ERANGE";
    case DSA_COMP_DIF_ERR: return "DIF_ERR";
    case DSA_COMP_BAD_OPCODE: return "BAD_OPCODE";
    case DSA_COMP_INVALID_FLAGS: return "INVALID_FLAGS";
    case DSA_COMP_NOZERO_RESERVE: return "NOZERO_RESERVE";
    case DSA_COMP_XFER_ERANGE: return "XFER_ERANGE";
    case DSA_COMP_DESC_CNT_ERANGE: return "DESC_CNT_ERANGE";
    case DSA_COMP_DR_ERANGE: return "DR_ERANGE";
    case DSA_COMP_OVERLAP_BUFFERS: return "OVERLAP_BUFFERS";
    case DSA_COMP_DCAST_ERR: return "DCAST_ERR";
    case DSA_COMP_DESCLIST_ALIGN: return "DESCLIST_ALIGN";
    case DSA_COMP_INT_HANDLE_INVAL: return "INT_HANDLE_INVAL";
    case DSA_COMP_CRA_XLAT: return "CRA_XLAT";
    case DSA_COMP_CRA_ALIGN: return "CRA_ALIGN";
    case DSA_COMP_ADDR_ALIGN: return "ADDR_ALIGN";
    case DSA_COMP_PRIV_BAD: return "PRIV_BAD";
    case DSA_COMP_TRAFFIC_CLASS_CONF: return "TRAFFIC_CLASS_CONF";
    case DSA_COMP_PFAULT_RDBA: return "PFAULT_RDBA";
    case DSA_COMP_HW_ERR1: return "HW_ERR1";
    case DSA_COMP_HW_ERR_DRB: return "HW_ERR_DRB";
    case DSA_COMP_TRANSLATION_FAIL: return "TRANSLATION_FAIL";
    case kDsaCompDrainEvl: return "DRAIN_EVL";
    case kDsaCompBatchEvlErr: return "BATCH_EVL_ERR";
    default: return "UNKNOWN";
  }
}

CompletionClass classify_memmove_status(uint8_t raw_status) {
  if (raw_status == DSA_COMP_SUCCESS) return CompletionClass::Success;
  if ((raw_status & DSA_COMP_STATUS_MASK) == DSA_COMP_PAGE_FAULT_NOBOF) return CompletionClass::PageFault;
  return CompletionClass::Error;
}

uint32_t piece_limit(uint64_t max_transfer_size) {
  if (max_transfer_size == 0 || max_transfer_size > UINT32_MAX) return UINT32_MAX;
  return static_cast<uint32_t>(max_transfer_size);
}

uint64_t descriptors_for(uint64_t len, uint64_t max_transfer_size) {
  uint64_t lim = piece_limit(max_transfer_size);
  return len / lim + (len % lim != 0 ? 1 : 0);
}

MemmoveRemainder memmove_remainder(uint64_t src, uint64_t dst, uint32_t xfer_size, const CompletionInfo& c) {
  MemmoveRemainder r;
  uint32_t done = c.bytes_completed < xfer_size ? c.bytes_completed : xfer_size;
  r.len = xfer_size - done;
  // A forward copy completed the head: continue after it. A backward copy (overlap, result
  // != 0) completed the tail: the remainder starts where the original did.
  r.src = c.result == 0 ? src + done : src;
  r.dst = c.result == 0 ? dst + done : dst;
  return r;
}

uint64_t fault_touch_address(uint64_t src, uint64_t dst, uint32_t xfer_size, const CompletionInfo& c,
                             uint64_t page_size) {
  const uint64_t page = c.fault_addr & ~(page_size - 1);
  const uint64_t base = c.fault_on_write ? dst : src;
  if (xfer_size == 0 || base > UINT64_MAX - xfer_size) return 0;
  const uint64_t end = base + xfer_size;
  const uint64_t lo = page > base ? page : base;  // first byte of the piece on that page
  if (lo >= end || lo - page >= page_size) return 0;
  return lo;
}

}  // namespace dmacopy
