// heap_shift: a preload that moves the heap of the process it is loaded into.
//
//   ECHO_LADDER_HEAP_SHIFT=816 LD_PRELOAD=/abs/path/libheap_shift.so ./server ...
//
// bench_all starts every server of a round with the same shift, a different one
// each round, so that a cell's median is taken over several heap layouts rather
// than one. Why: address space layout randomization moves the stack by a random
// number of bytes on every start, but the heap only by whole pages, so where a
// malloc'ed buffer sits within its 4 KiB page is the same on every start of one
// command line, and it can change how fast the kernel copies into that buffer
// (docs/decisions.md, "Comparing 05 with the peers").
//
// Before main runs, one block is taken from the heap and never freed, so every
// later block starts that many bytes further on. glibc rounds a request of n
// bytes to a chunk of max(32, n + 8 rounded up to 16) bytes, so asking for
// shift - 8 moves what follows by exactly `shift`, a multiple of 16, >= 32.
// Anything else (unset, 0, malformed, above 65,536) leaves the heap alone.
#include <cstdlib>

namespace {

// Keeps the block reachable, so that the compiler does not drop the malloc.
void* volatile g_block = nullptr;

__attribute__((constructor)) void shift_heap() {
  const char* text = std::getenv("ECHO_LADDER_HEAP_SHIFT");
  if (text == nullptr || *text == '\0') return;
  char* end = nullptr;
  const long shift = std::strtol(text, &end, 10);
  if (*end != '\0' || shift < 32 || shift > 65536 || shift % 16 != 0) return;
  g_block = std::malloc(static_cast<std::size_t>(shift) - 8);
}

}  // namespace
