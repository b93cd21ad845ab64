#include "copy_kernels.h"

#include <emmintrin.h>
#include <immintrin.h>

#include <cstring>

namespace dmacopy {
namespace {

// Streaming stores write whole 64-byte destination lines only. A partial line at either end is
// written with ordinary stores: a line that mixes streaming and cached stores (from this region
// and its neighbour, when regions are not line-aligned) forces a partial write-combining flush,
// which costs hundreds of nanoseconds per region.

// 64 bytes per iteration with 16-byte streaming stores: SSE2 is part of x86-64, so this runs on
// every CPU the addon can load on.
void copy_nt_sse2(uint8_t* dst, const uint8_t* src, size_t len) {
  size_t head = (64 - (reinterpret_cast<uintptr_t>(dst) & 63)) & 63;
  if (head > len) head = len;
  std::memcpy(dst, src, head);
  dst += head;
  src += head;
  len -= head;
  size_t blocks = len / 64;
  for (size_t i = 0; i < blocks; ++i) {
    __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src));
    __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 16));
    __m128i c = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 32));
    __m128i d = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + 48));
    _mm_stream_si128(reinterpret_cast<__m128i*>(dst), a);
    _mm_stream_si128(reinterpret_cast<__m128i*>(dst + 16), b);
    _mm_stream_si128(reinterpret_cast<__m128i*>(dst + 32), c);
    _mm_stream_si128(reinterpret_cast<__m128i*>(dst + 48), d);
    src += 64;
    dst += 64;
  }
  std::memcpy(dst, src, len - blocks * 64);
}

// Same with 32-byte AVX stores, compiled for AVX only in this function and chosen at run time
// (no global -m flags: the addon must load on any x86-64).
__attribute__((target("avx"))) void copy_nt_avx(uint8_t* dst, const uint8_t* src, size_t len) {
  size_t head = (64 - (reinterpret_cast<uintptr_t>(dst) & 63)) & 63;
  if (head > len) head = len;
  std::memcpy(dst, src, head);
  dst += head;
  src += head;
  len -= head;
  size_t lines = len / 64;
  for (size_t i = 0; i < lines; ++i) {
    __m256i a = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src));
    __m256i b = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(src + 32));
    _mm256_stream_si256(reinterpret_cast<__m256i*>(dst), a);
    _mm256_stream_si256(reinterpret_cast<__m256i*>(dst + 32), b);
    src += 64;
    dst += 64;
  }
  _mm256_zeroupper();
  std::memcpy(dst, src, len - lines * 64);
}

using NtCopyFn = void (*)(uint8_t*, const uint8_t*, size_t);

NtCopyFn pick_nt_copy() {
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx") ? copy_nt_avx : copy_nt_sse2;
}

const NtCopyFn nt_copy = pick_nt_copy();

}  // namespace

void copy_bytes(uint8_t* dst, const uint8_t* src, size_t len, StoreKind kind) {
  if (kind == StoreKind::NonTemporal && len >= kMinNonTemporalRegion) {
    nt_copy(dst, src, len);
  } else {
    std::memcpy(dst, src, len);
  }
}

void store_fence() { _mm_sfence(); }

}  // namespace dmacopy
