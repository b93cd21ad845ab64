// libFuzzer harness: page-fault continuation math end to end. A simulated device copies a
// memmove partially (PAGE_FAULT_NOBOF), forward (the head is done) or backward (the tail is
// done), any number of times with fuzzed bytes_completed (including values past xfer_size);
// each continuation comes from memmove_remainder(); the CPU finishes what is left. Oracles:
// the destination equals the source byte for byte, nothing outside it is written (ASan
// redzones + guard bytes), and every continuation stays inside the original range.
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
  const uint32_t xfer = p.ConsumeIntegralInRange<uint32_t>(0, 1 << 16);
  const size_t guard = 64;
  std::vector<uint8_t> src(xfer ? xfer : 1), dstbuf(xfer + 2 * guard, 0xEE);
  for (uint32_t i = 0; i < xfer; ++i) src[i] = static_cast<uint8_t>(i * 131 + 7);
  uint8_t* dst = dstbuf.data() + guard;
  const uint64_t s0 = reinterpret_cast<uintptr_t>(src.data()), d0 = reinterpret_cast<uintptr_t>(dst);
  uint64_t s = s0, d = d0;
  uint32_t len = xfer;
  int steps = p.ConsumeIntegralInRange<int>(0, 32);
  while (len > 0 && steps-- > 0) {
    dsa_completion_record cr;
    std::memset(&cr, 0, sizeof cr);
    const int kind = p.ConsumeIntegralInRange<int>(0, 3);
    uint32_t done;
    if (kind == 0) {  // success: the device copied everything
      std::memmove(reinterpret_cast<void*>(d), reinterpret_cast<const void*>(s), len);
      len = 0;
      break;
    }
    const bool backward = kind == 3;
    // bytes_completed as the device reports it (may be anything: the math must clamp).
    uint32_t reported = p.ConsumeBool() ? p.ConsumeIntegral<uint32_t>() : p.ConsumeIntegralInRange<uint32_t>(0, len);
    done = reported < len ? reported : len;
    if (backward)
      std::memmove(reinterpret_cast<void*>(d + len - done), reinterpret_cast<const void*>(s + len - done), done);
    else std::memmove(reinterpret_cast<void*>(d), reinterpret_cast<const void*>(s), done);
    cr.status = DSA_COMP_PAGE_FAULT_NOBOF | (p.ConsumeBool() ? DSA_COMP_STATUS_WRITE : 0);
    cr.result = backward ? static_cast<uint8_t>(p.ConsumeIntegralInRange<int>(1, 255)) : 0;
    cr.bytes_completed = reported;
    cr.fault_addr = backward ? s + len - done - 1 : s + done;
    CompletionInfo c = decode_completion(&cr);
    FUZZ_CHECK(c.status == DSA_COMP_PAGE_FAULT_NOBOF);
    // The CPU touch: 0, or a byte of this piece's own buffer on fault_addr's page (here fault_addr
    // may also be anything at all, like a misbehaving device's).
    CompletionInfo ct = c;
    if (p.ConsumeBool()) ct.fault_addr = p.ConsumeIntegral<uint64_t>();
    const uint64_t ps = uint64_t(1) << p.ConsumeIntegralInRange<int>(12, 21);
    const uint64_t at = fault_touch_address(s, d, len, ct, ps);
    const uint64_t tb = ct.fault_on_write ? d : s;
    FUZZ_CHECK(at == 0 || (at >= tb && at < tb + len && (at & ~(ps - 1)) == (ct.fault_addr & ~(ps - 1))));
    if (ct.fault_addr >= tb && ct.fault_addr < tb + len) FUZZ_CHECK(at != 0);
    MemmoveRemainder r = memmove_remainder(s, d, len, c);
    FUZZ_CHECK(r.len == len - done);
    // The continuation stays inside the original range on both sides.
    FUZZ_CHECK(r.src >= s0 && r.src + r.len <= s0 + xfer);
    FUZZ_CHECK(r.dst >= d0 && r.dst + r.len <= d0 + xfer);
    s = r.src;
    d = r.dst;
    len = r.len;
    if (len == 0) break;
  }
  // The CPU finishes any remainder (the engine's fallback after its retry bound).
  if (len > 0) std::memmove(reinterpret_cast<void*>(d), reinterpret_cast<const void*>(s), len);
  FUZZ_CHECK(std::memcmp(dst, src.data(), xfer) == 0);
  for (size_t i = 0; i < guard; ++i) FUZZ_CHECK(dstbuf[i] == 0xEE && dstbuf[guard + xfer + i] == 0xEE);
  return 0;
}
