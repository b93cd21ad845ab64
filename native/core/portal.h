// The DSA submission and waiting instructions, emitted as raw bytes (no -mmovdir64b/-menqcmd/
// -mwaitpkg needed, as in DTO, DML, SPDK, DPDK and accel-config), with memory operands and a
// "memory" clobber so the compiler cannot move the descriptor or completion-record stores
// across them, and an sfence before each submission (the record was zeroed and the descriptor
// written with ordinary stores; they must be globally visible before the device reads them).
//
// PRECONDITION for every instruction helper: the caller checked cpu_features() (cpu_features.h)
// and the instruction is present. These helpers do not check again (they sit on the hot path).
// wait_for_status() is the exception: it checks WAITPKG itself. (The plain fence for the
// write() path is dsa_hw.h's submission_fence(); copy_kernels.h owns store_fence().)
#pragma once

#include <cstddef>
#include <cstdint>

#include "clock.h"
#include "cpu_features.h"

namespace dmacopy {

#if defined(__x86_64__)

// MOVDIR64B (%rdx), %rax: a posted 64-byte direct store of desc into the portal line at
// `portal` (64-byte aligned). No feedback: on a dedicated queue the caller must respect the
// queue size. REQUIRES cpu_features().movdir64b.
inline void movdir64b(volatile void* portal, const void* desc) {
  asm volatile(
      "sfence\n\t"
      ".byte 0x66, 0x0f, 0x38, 0xf8, 0x02"  // movdir64b (%rdx), %rax
      : "+m"(*static_cast<volatile char(*)[64]>(portal))
      : "a"(portal), "d"(desc), "m"(*static_cast<const char(*)[64]>(desc))
      : "memory");
}

// ENQCMD (%rdx), %rax: a non-posted 64-byte enqueue; the CPU fills the PASID from IA32_PASID.
// Returns true when the device accepted it (ZF=0), false for Retry (ZF=1: the shared queue is
// at its threshold, disabled, ...). REQUIRES cpu_features().enqcmd.
inline bool enqcmd(volatile void* portal, const void* desc) {
  unsigned char retry;
  asm volatile(
      "sfence\n\t"
      ".byte 0xf2, 0x0f, 0x38, 0xf8, 0x02\n\t"  // enqcmd (%rdx), %rax
      "setz %0"
      : "=r"(retry), "+m"(*static_cast<volatile char(*)[64]>(portal))
      : "a"(portal), "d"(desc), "m"(*static_cast<const char(*)[64]>(desc))
      : "memory", "cc");
  return retry == 0;
}

// UMONITOR %rax: arm the address monitor on the line holding addr. REQUIRES waitpkg.
inline void umonitor(const volatile void* addr) {
  asm volatile(".byte 0xf3, 0x48, 0x0f, 0xae, 0xf0" : : "a"(addr) : "memory");
}

// UMWAIT %ecx: wait (C0.2 when state == 0, C0.1 when state == 1) until the monitored line is
// written, the TSC reaches tsc_deadline, or the OS limit (IA32_UMWAIT_CONTROL, 100000 cycles
// by default) expires. Returns CF: true when the OS time limit, not the deadline or a store,
// ended the wait. REQUIRES waitpkg.
inline bool umwait(uint32_t state, uint64_t tsc_deadline) {
  unsigned char cf;
  asm volatile(
      ".byte 0xf2, 0x48, 0x0f, 0xae, 0xf1\n\t"  // umwait %ecx (deadline in edx:eax)
      "setc %0"
      : "=r"(cf)
      : "c"(state), "a"(static_cast<uint32_t>(tsc_deadline)), "d"(static_cast<uint32_t>(tsc_deadline >> 32))
      : "memory", "cc");
  return cf != 0;
}

#else  // not x86-64: no portal instructions exist; callers never get here (features all off).

inline void movdir64b(volatile void*, const void*) { __builtin_trap(); }
inline bool enqcmd(volatile void*, const void*) { __builtin_trap(); }
inline void umonitor(const volatile void*) { __builtin_trap(); }
inline bool umwait(uint32_t, uint64_t) { __builtin_trap(); }

#endif

// Waits until *status becomes non-zero or timeout_ns elapses. Spins briefly with pause, then
// uses UMONITOR/UMWAIT with a TSC deadline where WAITPKG exists (re-checking the status
// between arming the monitor and waiting), otherwise short sleeps. Returns the status byte
// (unmasked; 0 means the deadline passed). Not the data-path waiter (that is the completion
// engine); used for the probe and by tests.
uint8_t wait_for_status(const volatile uint8_t* status, uint64_t timeout_ns);

}  // namespace dmacopy
