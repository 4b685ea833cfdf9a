// heap_probe: prints where a 16 KiB malloc'ed block (a server's buffer) starts
// within its 4 KiB page, for heap_shift_test.sh. The block is taken before any
// output, so the allocations before it are the same on every run.
#include <cstdint>
#include <cstdio>
#include <cstdlib>

int main() {
  void* block = std::malloc(16 * 1024);
  if (block == nullptr) return 1;
#if defined(__SANITIZE_ADDRESS__)
  const char* allocator = "asan";
#elif defined(__SANITIZE_THREAD__)
  const char* allocator = "tsan";
#else
  const char* allocator = "glibc";
#endif
  std::printf(
      "%s %ju\n", allocator,
      static_cast<std::uintmax_t>(reinterpret_cast<std::uintptr_t>(block) % 4096));
  std::free(block);
  return 0;
}
