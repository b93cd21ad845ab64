// libFuzzer harness: descriptor building and splitting, completion-record
// decoding of arbitrary (device-written) records and status names. Oracles:
//  - splitting len bytes at a queue's max_transfer_size gives descriptors_for() pieces, each
//    at most piece_limit() bytes and at least one byte, contiguous, covering exactly len bytes;
//  - build_memmove leaves every reserved byte zero and sets CRAV|RCR;
//  - decoding any 32 bytes is defined (UBSan) and consistent with the raw status byte.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "dsa_hw.h"

#include "fuzz_check.h"

using namespace dmacopy;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider p(data, size);
  // Splitting arithmetic over the full 64-bit range.
  uint64_t mts;
  switch (p.ConsumeIntegralInRange<int>(0, 3)) {
    case 0: mts = p.ConsumeIntegral<uint64_t>(); break;
    case 1: mts = 0; break;
    case 2: mts = p.ConsumeIntegralInRange<uint64_t>(1, 1 << 16); break;
    default: mts = UINT32_MAX + p.ConsumeIntegralInRange<uint64_t>(0, 2) - 1; break;
  }
  const uint64_t len = p.ConsumeBool() ? p.ConsumeIntegral<uint64_t>() : p.ConsumeIntegralInRange<uint64_t>(0, 1 << 20);
  const uint32_t lim = piece_limit(mts);
  FUZZ_CHECK(lim >= 1);
  if (mts != 0 && mts <= UINT32_MAX) FUZZ_CHECK(lim == mts);
  const uint64_t n = descriptors_for(len, mts);
  FUZZ_CHECK(static_cast<unsigned __int128>(n) * lim >= len);
  FUZZ_CHECK(n == 0 ? len == 0 : static_cast<unsigned __int128>(n - 1) * lim < len);

  // Build the descriptors for a bounded length on a fake address range and check the pieces.
  if (n <= 4096) {
    alignas(32) static dsa_completion_record rec;
    alignas(64) static dsa_hw_desc descs[4096];
    const uint64_t src0 = 0x10000000ull, dst0 = 0x7f0000000000ull;  // never dereferenced
    uint64_t off = 0;
    const bool cc = p.ConsumeBool();
    for (uint64_t i = 0; i < n; ++i) {
      uint64_t piece = len - off < lim ? len - off : lim;
      FUZZ_CHECK(piece >= 1 && piece <= UINT32_MAX);
      dsa_hw_desc* d = &descs[i];
      std::memset(static_cast<void*>(d), 0xA5, sizeof *d);
      build_memmove(d, reinterpret_cast<void*>(dst0 + off), reinterpret_cast<const void*>(src0 + off),
                    static_cast<uint32_t>(piece), &rec, cc);
      FUZZ_CHECK(d->opcode == DSA_OPCODE_MEMMOVE);
      FUZZ_CHECK((d->flags & kMemmoveFlags) == kMemmoveFlags);
      FUZZ_CHECK(((d->flags & IDXD_OP_FLAG_CC) != 0) == cc);
      FUZZ_CHECK(d->xfer_size == piece && d->src_addr == src0 + off && d->dst_addr == dst0 + off);
      FUZZ_CHECK(d->completion_addr == reinterpret_cast<uintptr_t>(&rec));
      // Reserved: everything except bytes 0..3 (pasid/priv word), 4..7 (flags/opcode),
      // 8..39 (completion, src, dst, xfer_size). The pasid/priv word must be zero too.
      const uint8_t* b = reinterpret_cast<const uint8_t*>(d);
      for (size_t j = 0; j < 4; ++j) FUZZ_CHECK(b[j] == 0);
      for (size_t j = 36; j < 64; ++j) FUZZ_CHECK(b[j] == 0);
      off += piece;
    }
    FUZZ_CHECK(off == len);
  }

  // Completion records as a (possibly misbehaving) device may write them.
  {
    alignas(32) dsa_completion_record cr;
    std::memset(&cr, 0, sizeof cr);
    std::vector<uint8_t> raw = p.ConsumeBytes<uint8_t>(sizeof cr);
    if (!raw.empty()) std::memcpy(&cr, raw.data(), raw.size());
    const uint8_t status_byte = reinterpret_cast<const uint8_t*>(&cr)[0];
    CompletionInfo c = decode_completion(&cr);
    FUZZ_CHECK(c.status == (status_byte & DSA_COMP_STATUS_MASK));
    FUZZ_CHECK(c.fault_on_write == ((status_byte & DSA_COMP_STATUS_WRITE) != 0));
    FUZZ_CHECK(c.bytes_completed == cr.bytes_completed && c.fault_addr == cr.fault_addr && c.result == cr.result);
    const char* name = status_name(status_byte);
    FUZZ_CHECK(name != nullptr && name[0] != '\0');
    FUZZ_CHECK(std::strcmp(name, status_name(c.status)) == 0);

    // Continuation of a memmove from this record: never past the original range.
    const uint32_t xfer = p.ConsumeIntegral<uint32_t>();
    const uint64_t src = p.ConsumeIntegral<uint64_t>() >> 1, dst = p.ConsumeIntegral<uint64_t>() >> 1;
    MemmoveRemainder r = memmove_remainder(src, dst, xfer, c);
    FUZZ_CHECK(r.len <= xfer);
    const uint32_t done = xfer - r.len;
    FUZZ_CHECK(done == (c.bytes_completed < xfer ? c.bytes_completed : xfer));
    if (c.result == 0) FUZZ_CHECK(r.src == src + done && r.dst == dst + done);
    else FUZZ_CHECK(r.src == src && r.dst == dst);
  }
  return 0;
}
